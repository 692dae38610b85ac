"""Attention on PIM for a batch of sequences: channel groups (AttAcc's mapping; docs/pim.md, "Batches").

PIM-GPT (batch 1) runs one query at a time over all channels: tokens over every bank for the
scores, head h on channel h mod C for the context. With several sequences that leaves channels
idle whenever a sequence has fewer heads than there are channels (a TP-8 rank of llama-2-70b: 8
query heads on 160 HBM3 pseudo-channels). AttAcc (Park et al., ASPLOS'24; its artifact
``scale-snu/attacc_simulator``, ``gen_trace_attacc_bank.py``) instead gives every (sequence, head)
its own channel and runs the rest in turns. Here the C channels are split into G groups (sizes
differ by at most one channel); each group holds the KV cache of its share of the sequences (sizes
differ by at most one sequence, the larger shares on the larger groups) and runs them one after the
other with PIM-GPT's mapping on its own channels: the channel programs, the DRAM command
simulation and the softmax/score overlap of :mod:`llmsim.devices.pim` unchanged, on a geometry of
the group's channel count. Groups alike in (channels, sequences) are costed once.

The op takes the slowest group's time; energy, bytes and commands are the sum over all groups.
The ASIC's ``asic.count`` vector units serve the groups: with G <= count every group has count // G
units of its own (a softmax's head rows spread over them); with more groups than units, ceil(G /
count) groups share a unit, which serves their softmax and partial-sum jobs in the order they
become ready (:func:`flow`) -- a shared unit serialises softmax across groups.

G is chosen as a mapper would for a fixed decode batch: the candidate with the least time (ties:
fewer groups). G = 1 is PIM-GPT's sequential mapping, so batch-parallel attention is never slower
than it, and batch 1 is exactly PIM-GPT's. A prefill (several queries per sequence) ranks the
candidates by each sequence's last query, then costs the best one and G = 1 query by query.

Grouped-query attention: AiM-style MACs take one input vector per burst, so each query head reads
its K/V rows (r = H / Hkv times the KV cache). With ``bank_mac_vectors_per_burst`` k > 1 (a GQA-aware
what-if) one burst feeds min(k, r) query vectors of a KV head's group; the mapper takes it or not,
whichever is faster (fewer passes over K/V, but fewer head passes to spread over a group's channels).

KV capacity: a group's channels must hold its sequences' KV cache. When the device knows what its
memory holds (:class:`~llmsim.devices.base.KvResidency`, declared by whoever checked the model fits:
``make_device``, a system run, ``serve``), a group of c of the C channels has c / C of the room left
beside the weights and activations (spread over every channel), times B / N when N > B sequences
(micro-batches) share the device and lay out alike. It must hold its s sequences' K and V over every
layer the device holds (the s longest, an upper bound; G = 1: the exact total). A split whose fullest
group overflows is not a candidate; G = 1 is the least demanding split (in any other, some group's
sequence share is at least its channel share), so when it overflows nothing fits and the op is refused
(:class:`~llmsim.errors.CapacityError`). A device that knows nothing of its memory (costed op by op)
maps unconstrained.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace

from llmsim.devices.base import Cost, Phase
from llmsim.devices.pim_dram import _attention_banks
from llmsim.errors import CapacityError
from llmsim.graph.ops import Op

ALL_GROUP_COUNTS_UP_TO = 32  # batches up to this size try every group count; larger ones a geometric set


@dataclass(frozen=True)
class GroupKind:
    """``groups`` channel groups of ``channels`` channels, each running ``seqs`` sequences."""

    groups: int
    channels: int
    seqs: int


@dataclass(frozen=True)
class Plan:
    """The chosen split: G groups of these kinds; ``share`` groups per ASIC unit, ``units`` ASIC
    units per group; ``seconds`` the slowest group's time."""

    groups: int
    kinds: tuple[GroupKind, ...]
    units: int
    share: int
    seconds: float
    vectors: int = 1  # query vectors each K/V burst feeds (GQA-aware MACs; 1 = every head reads its rows)
    refused: int = 0  # candidates (G, vectors) refused because their fullest group's KV overflowed its channels
    kv_peak_fill: float | None = None  # the fullest group's KV / its room (None: the device's memory is unknown)

    @property
    def kv_fill_imbalance(self) -> float:
        """How much faster the fullest group's channels fill with KV cache than the device's average
        (max over groups of sequence share / channel share; 1 = balanced)."""
        B = sum(k.groups * k.seqs for k in self.kinds)
        C = sum(k.groups * k.channels for k in self.kinds)
        return max((k.seqs / B) / (k.channels / C) for k in self.kinds)


def group_kinds(B: int, C: int, G: int) -> tuple[GroupKind, ...]:
    """Split C channels and B sequences over G groups (1 <= G <= min(B, C)): channel and sequence
    counts differ by at most one; the C mod G larger groups take the B mod G larger shares first."""
    if not 1 <= G <= min(B, C):
        raise ValueError(f"group count {G} outside 1..min(batch {B}, channels {C})")
    c0, a = divmod(C, G)  # a groups of c0 + 1 channels
    s0, r = divmod(B, G)  # r groups of s0 + 1 sequences
    kinds = []
    if r <= a:
        parts = ((r, c0 + 1, s0 + 1), (a - r, c0 + 1, s0), (G - a, c0, s0))
    else:
        parts = ((a, c0 + 1, s0 + 1), (r - a, c0, s0 + 1), (G - r, c0, s0))
    for n, c, s in parts:
        if n > 0 and c > 0 and s > 0:
            kinds.append(GroupKind(n, c, s))
    return tuple(kinds)


def candidates(B: int, C: int) -> list[int]:
    """Group counts tried: every count for small batches; otherwise powers of two and the counts
    that give every group an equal share (B / 2^j). The set depends on B only, capped at min(B, C),
    so a device with more channels tries at least the counts a smaller one does."""
    if B <= ALL_GROUP_COUNTS_UP_TO:
        s = set(range(1, B + 1))
    else:
        s = {1 << j for j in range(B.bit_length())} | {-(-B // (1 << j)) for j in range(B.bit_length())} | {B}
    return sorted(g for g in s if g <= min(B, C))


def flow(bank: list[tuple[float, float]], asic: list[tuple[float, float]], share: int = 1) -> float:
    """Finish time of queries on one group's banks and an ASIC unit shared by ``share`` identical
    groups. Per query i: scores S_i (banks), softmax (ASIC), context C_i (banks, after the softmax),
    partial sums (ASIC); the banks score query i+1 while the ASIC runs softmax i.

    ``share`` = 1 is the exact two-machine recurrence; otherwise the unit serves the groups' jobs in
    the order they become ready (ties: group, then issue order), a list schedule of the same chain."""
    if share == 1:
        tb, ta = bank[0][0], 0.0
        for i in range(len(bank)):
            ta = max(ta, tb) + asic[i][0]
            if i + 1 < len(bank):
                tb += bank[i + 1][0]
            tb = max(tb, ta) + bank[i][1]
            if asic[i][1]:
                ta = max(ta, tb) + asic[i][1]
        return max(tb, ta)
    n, ta, order = len(bank), 0.0, share
    tb = [bank[0][0]] * share
    heap = [(tb[g], g, g, 0, 0) for g in range(share)]  # (ready, group, order, job: 0 softmax / 1 sums, query)
    while heap:
        ready, g, _, job, i = heapq.heappop(heap)
        ta = max(ta, ready) + asic[i][job]
        if job:
            continue
        if i + 1 < n:
            tb[g] += bank[i + 1][0]
        tb[g] = max(tb[g], ta) + bank[i][1]
        for nxt, q in ((1, i), (0, i + 1)):
            if (nxt and asic[q][1]) or (not nxt and q < n):
                heapq.heappush(heap, (tb[g], g, order, nxt, q))
                order += 1
    return max(ta, max(tb))


def _scaled(c: Cost, k: int) -> Cost:
    """``k`` copies of ``c``'s work (energy, bytes, FLOPs, counts; busy-time stats become sums over the
    copies); time and phases unchanged."""
    if k == 1:
        return c
    return replace(c, cycles=c.cycles * k, compute_cycles=c.compute_cycles * k, flops=c.flops * k,
                   bytes_by_level={n: v * k for n, v in c.bytes_by_level.items()},
                   energy_j={n: v * k for n, v in c.energy_j.items()}, stats={n: v * k for n, v in c.stats.items()})


class BatchAttention:
    """Attention of one op on a :class:`~llmsim.devices.pim.Pim` device, sequences over channel groups."""

    def __init__(self, dev, op: Op, last_query_only: bool = False):
        self.dev, self.op = dev, op
        self.B, self.H, self.Sq, self.Skv, self.D = (op.dim(x) for x in ("B", "H", "Sq", "Skv", "D"))
        self.kdt = op.kv_dtype or op.dtype
        self.g = dev.geometry(self.kdt)
        self.parts: dict[tuple[int, int, int, int], tuple] = {}
        self.groups: dict[tuple, tuple] = {}
        self.last_query_only = last_query_only
        # variable-length batches: every sequence's (Sq, Skv), dealt to the groups sequence by sequence
        self.varlen: tuple[tuple[int, int], ...] | None = op.attr("varlen") if self.B > 1 else None

    def skvs(self, sq: int | None = None, skv: int | None = None) -> list[int]:
        """Keys seen by each query of one sequence of ``sq`` queries over ``skv`` keys (default: the op's
        Sq and Skv; only the last query's: a proxy for ranking splits)."""
        sq, skv = sq or self.Sq, skv or self.Skv
        if self.last_query_only:
            return [skv]
        if self.op.attr("causal"):
            keys = [skv - sq + i + 1 for i in range(sq)]
            w = self.op.attr("window")  # sliding-window attention: a query sees at most w keys
            return [min(k, w) for k in keys] if w else keys
        return [skv] * sq

    def vector_options(self) -> list[int]:
        """Query vectors per K/V burst the mapper may use: 1 (every query head reads its K/V rows, as
        AiM's MACs must) and, with ``bank_mac_vectors_per_burst`` k > 1 and grouped-query attention,
        min(k, r) for the r query heads sharing a KV head (fewer passes, but fewer heads to spread)."""
        k, Hkv = self.dev.spec.bank_mac_vectors_per_burst, self.op.dim("Hkv")
        if k == 1 or Hkv >= self.H or self.H % Hkv:
            return [1]
        return [1, min(k, self.H // Hkv)]

    def head_passes(self, vec: int) -> int:
        """Passes over K/V rows per query with ``vec`` query vectors per burst: H without sharing,
        Hkv x ceil(r / vec) with it."""
        if vec == 1:
            return self.H
        Hkv = self.op.dim("Hkv")
        return Hkv * -(-(self.H // Hkv) // vec)

    def query(self, channels: int, units: int, skv: int, vec: int = 1) -> tuple:
        """(scores s, softmax s, context s, partial sums s, cost) of one query on ``channels`` channels
        with ``units`` ASIC units and ``vec`` query vectors per burst (cached per op)."""
        key = (channels, units, skv, vec)
        if key not in self.parts:
            dev, op, H, D = self.dev, self.op, self.H, self.D
            g = self.g if channels == self.g.channels else replace(self.g, channels=channels)
            passes = self.head_passes(vec)
            (ts, ss, bs), (tc, sc, bc), adds = _attention_banks(dev.mem, g, passes, skv, D, op.dtype, vec)
            sm = dev._asic_cost("softmax", H, skv, op.dtype, 2.0 * H * skv * op.dtype.bytes, units=units)
            tr, red = dev._reduce(adds, op.dtype)
            flops = 4.0 * H * skv * D
            fed = H / passes  # query vectors a burst feeds on average
            cost = (dev._dram_cost(ts, ss, bs, flops / 2, self.kdt, fed)
                    + dev._dram_cost(tc, sc, bc, flops / 2, self.kdt, fed) + replace(sm, phases=()) + red)
            self.parts[key] = (ts, sm.seconds, tc, tr, cost)
        return self.parts[key]

    def group(self, kind: GroupKind, units: int, share: int, vec: int = 1) -> tuple[float, Cost, list, list]:
        """(time, cost of one group, per-query bank and ASIC times) of a group of ``kind`` (cached per
        op: :meth:`plan` times the splits, :meth:`cost` sums the chosen one's groups)."""
        key = (kind, units, share, vec)
        if key not in self.groups:
            self.groups[key] = self._group(kind, units, share, vec)
        return self.groups[key]

    def _group(self, kind: GroupKind, units: int, share: int, vec: int) -> tuple[float, Cost, list, list]:
        bank_t, asic_t, total = [], [], Cost()
        for _ in range(kind.seqs):
            for skv in self.skvs():
                ts, tx, tc, tr, cost = self.query(kind.channels, units, skv, vec)
                bank_t.append((ts, tc))
                asic_t.append((tx, tr))
                total = total + cost
        return flow(bank_t, asic_t, share), total, bank_t, asic_t

    def deal(self, kinds: tuple[GroupKind, ...]) -> list[tuple[int, tuple[tuple[int, int], ...]]]:
        """A variable-length batch's sequences dealt to the groups of ``kinds``: (channels, sequences) per
        group. Longest first, each to the group (with a free sequence slot) whose work so far — keys read
        over its channels — is least (a mapper balancing its groups; ties: the earlier group)."""
        slots = [(k.channels, k.seqs) for k in kinds for _ in range(k.groups)]
        load, held = [0.0] * len(slots), [[] for _ in slots]
        for sq, skv in sorted(self.varlen, key=lambda x: (-sum(self.skvs(*x)), x)):
            g = min((i for i, (_, n) in enumerate(slots) if len(held[i]) < n), key=lambda i: load[i])
            held[g].append((sq, skv))
            load[g] += sum(self.skvs(sq, skv)) / slots[g][0]
        return [(c, tuple(h)) for (c, _), h in zip(slots, held, strict=True)]

    def seq_group(self, channels: int, seqs: tuple[tuple[int, int], ...], units: int, share: int,
                  vec: int) -> tuple[float, Cost, list, list]:
        """:meth:`group` for one group of a variable-length batch holding the sequences ``seqs`` (a unit
        shared by ``share`` groups is modelled as serving copies of this one, as for equal sequences)."""
        key = (channels, seqs, units, share, vec)
        if key not in self.groups:
            bank_t, asic_t, total = [], [], Cost()
            for sq, skv in seqs:
                for keys in self.skvs(sq, skv):
                    ts, tx, tc, tr, cost = self.query(channels, units, keys, vec)
                    bank_t.append((ts, tc))
                    asic_t.append((tx, tr))
                    total = total + cost
            self.groups[key] = (flow(bank_t, asic_t, share), total, bank_t, asic_t)
        return self.groups[key]

    def asic_split(self, G: int) -> tuple[int, int]:
        """(ASIC units per group, groups per unit)."""
        count = self.dev.spec.asic.count
        return (count // G, 1) if G <= count else (1, -(-G // count))

    def kv_fill(self, G: int) -> float | None:
        """The fullest group's KV cache over its room with G groups (module docstring; None: the
        device's memory is unknown, or stores no KV)."""
        res = self.dev.kv_residency
        if res is None or res.bytes_per_token == 0:
            return None
        keys = self.seq_keys()
        room = res.kv_room_bytes * (self.B / res.sequences if res.sequences else 1.0)
        if room <= 0:
            return float("inf")
        C = self.g.channels
        return max(sum(keys[:k.seqs]) * res.bytes_per_token / (room * k.channels / C)
                   for k in group_kinds(self.B, C, G))

    def seq_keys(self) -> list[int]:
        """Keys each sequence holds, longest first (attr ``varlen``, else Skv for every sequence)."""
        v = self.op.attr("varlen")
        return sorted((skv for _, skv in v), reverse=True) if v else [self.Skv] * self.B

    def _refuse(self) -> CapacityError:
        res, keys = self.dev.kv_residency, self.seq_keys()
        need = sum(keys) * res.bytes_per_token
        share = f" x its {self.B} of the {res.sequences} sequences held" if res.sequences else ""
        total = res.other_bytes + need * ((res.sequences or self.B) / self.B)
        return CapacityError(
            f"KV cache does not fit {self.dev.spec.name}: attention {self.op.name} needs {need / 1e9:.2f} GB for "
            f"{self.B} sequences ({sum(keys)} keys x {res.bytes_per_token:.0f} B/token) > its room "
            f"{res.kv_room_bytes / 1e9:.2f} GB{share} (memory capacity {res.capacity_bytes / 1e9:.2f} GB - weights "
            f"and activations {res.other_bytes / 1e9:.2f} GB); needs at least "
            f"{max(2, math.ceil(total / res.capacity_bytes))} devices (a system preset with --tp/--pp)")

    def plan(self) -> Plan:
        opts = [(vec, G) for vec in self.vector_options() for G in candidates(self.B, self.g.channels)]
        fill = {G: self.kv_fill(G) for G in {G for _, G in opts}}
        fits = [o for o in opts if fill[o[1]] is None or fill[o[1]] <= 1.0]
        if not fits:
            raise self._refuse()
        refused, opts = len(opts) - len(fits), fits
        if self.Sq > 1 and len(opts) > 2:
            # prefill: rank the splits by each sequence's last query, then cost the best and G = 1 exactly
            proxy = BatchAttention(self.dev, self.op, last_query_only=True)
            proxy.parts = self.parts
            opts = sorted({(1, 1), min(opts, key=lambda o: proxy._split(*o).seconds)})
        best = None
        for vec, G in opts:
            p = self._split(vec, G)
            if best is None or p.seconds < best.seconds:
                best = p
        return replace(best, refused=refused, kv_peak_fill=fill[best.groups])

    def _split(self, vec: int, G: int) -> Plan:
        units, share = self.asic_split(G)
        kinds = group_kinds(self.B, self.g.channels, G)
        if self.varlen:
            t = max(self.seq_group(c, seqs, units, share, vec)[0] for c, seqs in self.deal(kinds))
        else:
            t = max(self.group(k, units, share, vec)[0] for k in kinds)
        return Plan(G, kinds, units, share, t, vec)

    def cost(self) -> Cost:
        p = self.plan()
        if self.varlen:  # every group its own sequences
            runs = [self.seq_group(c, seqs, p.units, p.share, p.vectors) for c, seqs in self.deal(p.kinds)]
            costs = [r[1] for r in runs]
        else:  # groups of a kind alike: one costed, times their count
            runs = [self.group(k, p.units, p.share, p.vectors) for k in p.kinds]
            costs = [_scaled(r[1], k.groups) for r, k in zip(runs, p.kinds, strict=True)]
        total = costs[0]
        for c in costs[1:]:
            total = total + c
        bank_t, asic_t = runs[-1][2], runs[-1][3]
        if p.groups == 1 and len(bank_t) == 1:
            (ts, tc), (tx, tr) = bank_t[0], asic_t[0]
            phases = tuple(Phase(u, s) for u, s in (("banks", ts), ("asic", tx), ("banks", tc), ("asic", tr)) if s)
        else:
            phases = (Phase("banks", p.seconds),)
        stats = total.stats | {"pim_kv_refused_splits": float(p.refused)} if p.refused else total.stats
        return replace(total, seconds=p.seconds, flops=self.op.flops, phases=phases, stats=stats)


def attention_cost(dev, op: Op) -> Cost:
    """The cost of attention ``op`` on PIM device ``dev`` (one group at batch 1: PIM-GPT's mapping)."""
    return BatchAttention(dev, op).cost()


def attention_plan(dev, op: Op) -> Plan:
    """The channel-group split :func:`attention_cost` uses for ``op``."""
    return BatchAttention(dev, op).plan()


__all__ = ["BatchAttention", "GroupKind", "Plan", "attention_cost", "attention_plan", "candidates", "flow",
           "group_kinds"]
