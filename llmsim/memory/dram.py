"""Cycle-level DRAM model: request streams in, cycles / commands / row hits / energy out.

:class:`DramModel` wraps the jitted memory controller of :mod:`llmsim.memory.kernels` with the
spec's constraint table (:mod:`llmsim.memory.timing`). Addresses map at burst granularity by the
spec's ``address_mapping`` (fields most significant first, DRAMsim3 notation); the default
``rorabacobgch`` = row : rank : bank : column : bank_group : channel rotates consecutive bursts over
channels, then bank groups (so back-to-back bursts of a channel obey tCCD_S, not tCCD_L), then
columns of the open rows, then banks, then rows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from llmsim.config.memory import MAPPING_FIELDS, DramSpec
from llmsim.errors import ConfigError
from llmsim.memory import kernels as K
from llmsim.memory.timing import CMD_NAMES, table

ENERGY_COMPONENTS = ("act_pre", "rd_wr", "mac", "io", "refresh", "background")


@dataclass(frozen=True)
class DramStats:
    """Cost of one request stream. ``bytes`` counts data read or written by RD/WR plus data read
    inside the banks by MAC_AB (``banks * burst_bytes`` each); ``energy_j`` by component, with
    ``background`` the standby energy of this stream run alone (devices do not use it)."""

    cycles: int
    seconds: float
    bytes: int
    commands: dict[str, int]
    row_hits: int
    row_misses: int
    energy_j: dict[str, float] = field(default_factory=dict)

    @property
    def row_hit_rate(self) -> float:
        n = self.row_hits + self.row_misses
        return self.row_hits / n if n else 0.0

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds else 0.0

    @property
    def energy_total_j(self) -> float:
        return sum(self.energy_j.values())

    def __add__(self, other: DramStats) -> DramStats:
        """Sequential composition: times, bytes, counts and energies add."""
        def add(a: dict, b: dict, zero):
            return {k: a.get(k, zero) + b.get(k, zero) for k in sorted(set(a) | set(b))}

        return DramStats(
            cycles=self.cycles + other.cycles,
            seconds=self.seconds + other.seconds,
            bytes=self.bytes + other.bytes,
            commands=add(self.commands, other.commands, 0),
            row_hits=self.row_hits + other.row_hits,
            row_misses=self.row_misses + other.row_misses,
            energy_j=add(self.energy_j, other.energy_j, 0.0),
        )


@dataclass(frozen=True)
class Requests:
    """Explicit request arrays (one entry per burst): op (0 read, 1 write, 2 MAC_AB), channel,
    bank group (within the rank), bank (within the group), row; optional rank (default 0)."""

    op: np.ndarray
    channel: np.ndarray
    bank_group: np.ndarray
    bank: np.ndarray
    row: np.ndarray
    rank: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.op)


class DramModel:
    """Cycle-level model of one :class:`DramSpec` memory system."""

    def __init__(self, spec: DramSpec) -> None:
        s = spec
        if s.banks > K.BANK_MASK + 1:  # the kernel packs a request's bank into 16 bits
            raise ConfigError(f"ranks x bank_groups x banks_per_group = {s.banks} banks per channel; "
                              f"the DRAM model supports at most {K.BANK_MASK + 1}")
        self.spec = spec
        self._cons, self._pstart = table(spec)
        # banks one REFB refreshes: one (per-bank refresh) or one in every bank group (same-bank, DDR5 REFsb)
        self._refb_banks = s.bank_groups if s.controller.refresh == "same_bank" else 1
        self._geom = np.array(
            [s.channels, s.banks, s.banks_per_group, s.bank_groups * s.banks_per_group,
             s.bursts_per_row, s.rows, s.bank_groups, s.ranks],
            dtype=np.int64,
        )
        m = s.address_mapping
        # field codes, least significant first (the kernel's F_* order is MAPPING_FIELDS)
        self._amap = np.array([MAPPING_FIELDS.index(m[i:i + 2]) for i in range(10, -1, -2)], dtype=np.int64)

    # ---- address mapping ----
    def map_bursts(self, burst_index: np.ndarray) -> Requests:
        """Decode burst indices (address // burst_bytes) by ``spec.address_mapping`` into (channel,
        bank group, bank, row, rank); the column is dropped (it never changes timing)."""
        s, x = self.spec, np.asarray(burst_index, dtype=np.int64)
        radix = (s.channels, s.ranks, s.bank_groups, s.banks_per_group, s.rows, s.bursts_per_row)
        f = [None] * 6
        for code in self._amap:
            f[code] = x % radix[code]
            x = x // radix[code]
        ch, rk, bg, bk, row = f[0], f[1], f[2], f[3], f[4]
        return Requests(np.zeros_like(ch), ch, bg, bk, row, rk)

    def span_bursts(self, span_bytes: int | None) -> int:
        """Bursts in ``span_bytes`` (default: the whole capacity); refuses spans outside (0, capacity]."""
        s = self.spec
        n = s.capacity_bytes // s.burst_bytes if span_bytes is None else int(span_bytes) // s.burst_bytes
        if not 0 < n <= s.capacity_bytes // s.burst_bytes:
            raise ConfigError(f"stream span_bytes {span_bytes} must be in [{s.burst_bytes}, {s.capacity_bytes}]")
        return n

    def requests(self, n_bursts: int, *, write: bool = False, pattern: str = "sequential", seed: int = 0,
                 span_bytes: int | None = None) -> Requests:
        """The request arrays that :meth:`stream` generates inside the kernel (for tests/inspection)."""
        i = np.arange(n_bursts, dtype=np.int64)
        if pattern == "sequential":
            req = self.map_bursts(i)
        else:
            x = _hash31(i, seed, 1) * 2147483648 + _hash31(i, seed, 2)
            req = self.map_bursts(x % self.span_bursts(span_bytes))
        op = np.full(n_bursts, K.OP_WRITE if write else K.OP_READ, dtype=np.int64)
        return Requests(op, req.channel, req.bank_group, req.bank, req.row, req.rank)

    # ---- simulation ----
    def stream(
        self, n_bytes: int, *, write: bool = False, pattern: Literal["sequential", "random"] = "sequential",
        seed: int = 0, span_bytes: int | None = None,
    ) -> DramStats:
        """Read (or write) ``n_bytes`` spread over all channels by the address mapping.

        ``sequential`` walks addresses 0, burst_bytes, ...; ``random`` draws each burst address
        uniformly from the first ``span_bytes`` (default: all of memory) with a seeded hash. Cached
        per (spec, n_bytes, write, pattern, seed, span).
        """
        if pattern not in ("sequential", "random"):
            raise ConfigError(f"stream pattern must be 'sequential' or 'random', not {pattern!r}")
        return _stream_cached(self.spec, int(n_bytes), bool(write), pattern, int(seed), self.span_bursts(span_bytes))

    def run(self, requests: Requests, *, refresh: bool = True, trace: int = 0) -> DramStats:
        """Simulate explicit requests (each channel takes its own in order). ``trace`` > 0 also keeps
        the first ``trace`` commands as ``self.last_trace`` (rows: cycle, cmd, channel, first bank or
        -1 for all banks)."""
        s = self.spec
        rank = np.zeros(len(requests), np.int64) if requests.rank is None else np.asarray(requests.rank, np.int64)
        for name, arr, hi in (("channel", requests.channel, s.channels),
                              ("bank_group", requests.bank_group, s.bank_groups),
                              ("bank", requests.bank, s.banks_per_group), ("row", requests.row, s.rows),
                              ("rank", rank, s.ranks), ("op", requests.op, 3)):
            a = np.asarray(arr)
            if len(a) and (a.min() < 0 or a.max() >= hi):
                raise ConfigError(f"request {name} out of range [0, {hi})")
        bank = (rank * s.bank_groups + np.asarray(requests.bank_group, np.int64)) * s.banks_per_group
        bank = bank + np.asarray(requests.bank, np.int64)
        return self._simulate(
            np.asarray(requests.op, np.int64), np.asarray(requests.channel, np.int64), bank,
            np.asarray(requests.row, np.int64), len(requests), K.GEN_ARRAYS, 0, K.OP_READ, refresh, trace,
        )

    def _params(self, refresh: bool, gen_op: int, span: int) -> np.ndarray:
        s, t, c = self.spec, self.spec.timing, self.spec.controller
        mode = ("all_bank", "per_bank", "same_bank").index(c.refresh)  # the kernel's REF_* codes
        interval = t.tREFI // s.ranks if mode == K.REF_ALL_BANK else t.tREFIpb
        p = np.zeros(17, dtype=np.int64)
        p[[K.P_CL, K.P_CWL, K.P_NBL, K.P_REFRESH, K.P_PAGE, K.P_SCHED]] = (
            t.CL, t.CWL, s.nBL, int(refresh), ("open", "closed", "adaptive").index(c.page_policy),
            int(c.scheduler == "frfcfs"))
        p[[K.P_RQ, K.P_WQ, K.P_BQ, K.P_WHI, K.P_WLO, K.P_HITCAP, K.P_BUSES]] = (
            c.read_queue_requests, c.write_buffer_requests, c.bank_queue_requests, c.write_high_requests,
            c.write_low_requests, c.row_hit_cap, s.command_buses)
        p[[K.P_REF_INTERVAL, K.P_REF_MODE, K.P_GEN_OP, K.P_SPAN]] = (interval, mode, gen_op, span)
        return p

    def _simulate(self, op, ch, bank, row, n, gen, seed, gen_op, refresh, trace_len, span=0) -> DramStats:
        params = self._params(refresh, gen_op, span or self.span_bursts(None))
        trace = np.zeros((trace_len, 4), dtype=np.int64)
        cycles, counts, hits, misses, ntr = K.simulate(
            op, ch, bank, row, n, gen, seed, self._cons, self._pstart, self._geom, self._amap, params, trace
        )
        self.last_trace = trace[:ntr]
        return self._stats(int(cycles), counts, int(hits), int(misses))

    def _stats(self, cycles: int, counts: np.ndarray, hits: int, misses: int) -> DramStats:
        s, e = self.spec, self.spec.energy
        cmds = {name: int(counts[k]) for k, name in enumerate(CMD_NAMES)}
        burst_bits = s.burst_bytes * 8
        seconds = cycles * s.tck_s
        mac_bits = cmds["MAC_AB"] * s.banks * burst_bits
        io_bits = (cmds["RD"] + cmds["WR"]) * burst_bits
        pj = {
            "act_pre": (cmds["ACT"] + cmds["ACT_AB"] * s.banks) * e.act_pj,
            "rd_wr": cmds["RD"] * burst_bits * e.rd_pj_per_bit + cmds["WR"] * burst_bits * e.wr_pj_per_bit,
            "mac": mac_bits * (e.rd_pj_per_bit if e.mac_pj_per_bit is None else e.mac_pj_per_bit),
            "io": io_bits * e.io_pj_per_bit,
            # ref_pj is one REF of one rank; a per-bank REF refreshes one bank's share of it
            "refresh": (cmds["REF"] + cmds["REFB"] * self._refb_banks * s.ranks / s.banks) * e.ref_pj,
            # standby over this stream alone; devices never add it per op (ops overlap and idle):
            # the engine charges it per step wall time (Device.background_power_w)
            "background": e.background_mw * 1e9 * seconds * s.channels,  # mW * s -> pJ
        }
        return DramStats(
            cycles=cycles, seconds=seconds, bytes=(io_bits + mac_bits) // 8, commands=cmds,
            row_hits=hits, row_misses=misses, energy_j={k: v * 1e-12 for k, v in pj.items()},
        )


def _hash31(i: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """NumPy twin of :func:`llmsim.memory.kernels.hash31` (same int64 arithmetic)."""
    m = 0x7FFFFFFF
    h = ((i & m) * 2654435761 + (i >> 31) * 97 + seed * 40503 + salt * 7919) & m
    h ^= h >> 15
    h = (h * 2246822519) & m
    h ^= h >> 13
    h = (h * 3266489917) & m
    h ^= h >> 16
    return h


@functools.lru_cache(maxsize=256)
def _stream_cached(spec: DramSpec, n_bytes: int, write: bool, pattern: str, seed: int, span: int) -> DramStats:
    model = DramModel(spec)
    n = -(-n_bytes // spec.burst_bytes)
    empty = np.zeros(0, np.int64)
    gen = K.GEN_SEQUENTIAL if pattern == "sequential" else K.GEN_RANDOM
    op = K.OP_WRITE if write else K.OP_READ
    return model._simulate(empty, empty, empty, empty, n, gen, seed, op, True, 0, span)
