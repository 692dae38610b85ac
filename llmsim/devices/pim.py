"""PIM-DRAM (PIM-GPT): MAC units in every DRAM bank plus a controller ASIC (docs/pim.md).

Units: ``banks`` (all channels' banks and channel buses, driven in lock-step by the ASIC's
PIM commands), ``asic`` (vector unit: LayerNorm, Softmax, GELU, residual adds, partial-sum
reduction) and ``link`` (host link). Matrix ops become per-channel all-bank MAC programs
(:mod:`llmsim.devices.pim_map`) whose every ACT_AB / MAC_AB / PRE_AB / REF is scheduled by the
cycle-level DRAM model (:class:`~llmsim.memory.DramModel`); the ASIC's cycles follow from the
element count, the lane count and the operation counts of its Taylor-series exp and
Newton-Raphson reciprocal / inverse square root. Within one op the ASIC overlaps the banks
where the data flow allows (partial sums of tile i while tile i+1 MACs; softmax of query i
while the scores of query i+1 are computed) by an exact two-machine recurrence; between ops
the engine overlaps them.

Prefill is a sequence of vector-matrix products, one token after the other: the global buffer
holds one input vector (2 KB = 1,024 BF16), so the banks cannot batch tokens.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import replace

from llmsim.config.base import DType
from llmsim.devices.base import Cost, Device, Phase, is_matrix
from llmsim.devices.pim_batch import attention_cost
from llmsim.devices.pim_dram import _kv_write_stats, _program_stats, _run_programs  # noqa: F401
from llmsim.devices.pim_map import Geometry, Program, vmm_programs
from llmsim.errors import ConfigError, UnsupportedOpError
from llmsim.graph.ops import Op, OpKind
from llmsim.memory import DramModel, DramStats

TOKEN_ID_BYTES = 4  # one int32 token id per sequence from the host


def _flow(bank: list[float], asic: list[float]) -> float:
    """Finish time of chunks that each run on the banks, then on the ASIC (chunk i's ASIC part
    after its bank part and after chunk i-1's ASIC part; banks never wait for the ASIC)."""
    tb = ta = 0.0
    for b, a in zip(bank, asic, strict=True):
        tb += b
        if a > 0:
            ta = max(ta, tb) + a
    return max(tb, ta)


# lowered step graph -> {(global buffer bytes, kept ops): its FFN-pipelined rewrite}; see PimDevice.step_graph
_REWRITTEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Pim(Device):
    kind = "pim"
    cycle_level = True
    units = {"banks": 1, "asic": 1, "link": 1}
    dequant_unit = {"bank_mac": None, "asic": "asic"}  # bank MACs read weights and K/V in place

    def __init__(self, spec, fidelity="cycle", mode="graph"):
        super().__init__(spec, fidelity, mode)
        m = spec.memory
        self.mem = m
        self.t_mac = m.timing.values()["tCCD_MAC"] * m.tck_s  # seconds per MAC_AB
        self.sram = spec.onchip_level("asic_sram")
        if self.sram is None:
            raise ConfigError(f"{spec.name}: PIM needs an onchip level named 'asic_sram' (the ASIC buffer)")

    def step_graph(self, graph, keep=frozenset()):
        """FFNs as pipelines of global-buffer tiles (docs/pim.md, "Overlap"). The rewrite depends on the
        graph and the buffer size only, and nothing downstream mutates a step graph: it is kept per graph
        (weakly), so a sweep's points and a run's steps that share a lowered graph rewrite it once."""
        from llmsim.devices.pim_flow import pipeline_ffn

        per_graph = _REWRITTEN.setdefault(graph, {})
        key = (self.spec.global_buffer_bytes, frozenset(keep))
        if key not in per_graph:
            per_graph[key] = pipeline_ffn(graph, self.spec.global_buffer_bytes, keep)
        return per_graph[key]

    # ---- where an op runs ----------------------------------------------------------------
    def unit_for(self, op: Op) -> str:
        return "banks" if is_matrix(op) or op.kind in (OpKind.kv_write, OpKind.embedding) else "asic"

    def compute_unit_for(self, op: Op) -> str:
        return "bank_mac" if is_matrix(op) else "asic"

    # ---- rates -----------------------------------------------------------------------------
    def geometry(self, dtype: DType) -> Geometry:
        m, b = self.mem, dtype.bytes
        burst = int(m.burst_bytes / b)
        if self.spec.mac_lanes_per_bank < burst:
            raise UnsupportedOpError(f"{self.spec.name}: mac_lanes_per_bank ({self.spec.mac_lanes_per_bank}) is "
                                     f"narrower than one {dtype.value} burst ({burst} elements)")
        return Geometry(m.channels, m.banks, int(m.row_bytes / b), burst, int(self.spec.global_buffer_bytes / b))

    @property
    def mac_peak_flops_per_s(self) -> float:
        """All banks' MAC units, one MAC_AB every tCCD_MAC (feeding ``bank_mac_vectors_per_burst`` vectors)."""
        lanes = self.spec.mac_lanes_per_bank * self.spec.bank_mac_vectors_per_burst
        return self.mem.channels * self.mem.banks * lanes * 2 / self.t_mac

    @property
    def internal_bandwidth_bytes_per_s(self) -> float:
        """Bytes the banks read for MACs: one burst per bank per tCCD_MAC."""
        return self.mem.channels * self.mem.banks * self.mem.burst_bytes / self.t_mac

    def asic_lanes(self, dtype: DType) -> float:
        return self.spec.asic.flops_per_cycle.get(dtype) or min(self.spec.asic.flops_per_cycle.values())

    # ---- roofline --------------------------------------------------------------------------
    def _split_flops(self, op: Op) -> tuple[float, float]:
        """(FLOPs on the bank MACs, FLOPs on the ASIC)."""
        if op.kind == OpKind.matmul:
            mac = 2.0 * op.dim("M") * op.dim("K") * op.dim("N")
        elif op.kind == OpKind.attention:
            mac = 2.0 * op.attr("score_flops")
        else:
            mac = 0.0
        return mac, op.flops - mac

    def level_traffic(self, op: Op) -> list[tuple[str, float, float, float]]:
        m, e = self.mem, self.mem.energy
        bus = ("channel_bus", m.peak_bandwidth_bytes_per_s, e.io_pj_per_bit * 8e-12)
        if is_matrix(op):
            internal = op.read.weight + op.read.kv
            mac_j_per_byte = (e.rd_pj_per_bit if e.mac_pj_per_bit is None else e.mac_pj_per_bit) * 8e-12
            return [("dram_internal", internal, self.internal_bandwidth_bytes_per_s, mac_j_per_byte),
                    (bus[0], op.read.activation + op.write.activation, *bus[1:])]
        if op.kind == OpKind.kv_write:
            return [(bus[0], op.write.kv, *bus[1:])]
        if op.kind == OpKind.embedding:
            return [(bus[0], op.read.weight, *bus[1:])]
        return [("asic_sram", op.bytes_total, self.sram.bandwidth_bytes_per_s * self.spec.asic.count,
                 self.sram.energy_pj_per_byte * 1e-12)]

    def bound(self, op: Op) -> Cost:
        """max(bank-MAC FLOPs / MAC peak, ASIC FLOPs / ASIC peak, bytes_l / bandwidth_l)."""
        mac, rest = self._split_flops(op)
        if mac and self.spec.bank_mac.peak_flops_per_s(op.dtype) <= 0:
            raise UnsupportedOpError(f"op {op.name}: {self.spec.name} bank MACs have no {op.dtype.value} path")
        asic_peak = self.asic_lanes(op.dtype) * self.spec.asic.clock_hz * self.spec.asic.count
        t_c = max(mac / self.mac_peak_flops_per_s, rest / asic_peak)
        traffic = self.level_traffic(op)
        t = max([t_c] + [b / bw for _, b, bw, _ in traffic if b])
        energy = {"bank_mac": mac * self.spec.bank_mac.energy_per_flop_j(op.dtype),
                  "asic": rest * self.spec.asic.energy_per_flop_j(op.dtype)}
        for lvl, b, _, j in traffic:
            energy[lvl] = b * j
        return Cost(seconds=t, cycles=t / self.t_mac, compute_cycles=t_c / self.t_mac, flops=op.flops,
                    bytes_by_level={lvl: b for lvl, b, _, _ in traffic}, energy_j=energy,
                    phases=(Phase(self.unit_for(op), t),))

    # ---- the ASIC ----------------------------------------------------------------------------
    def asic_ops_per_element(self, fn: str) -> float:
        """Vector-lane operations per element (counts in docs/pim.md): exp = Horner Taylor series
        (a mul and an add per term), 1/x = seed + 3 ops per Newton step."""
        s = self.spec
        exp = 2 * s.exp_taylor_terms
        recip = 1 + 3 * s.reciprocal_newton_iterations
        gelu = 5 + 1 + exp + 1 + recip + 2 + 3  # u = c(x + a x^3); tanh u = 1 - 2/(e^2u + 1); x(1 + tanh)/2
        silu = exp + 1 + recip + 1  # x / (1 + e^-x)
        table = {"add": 1, "rope": 3, "relu": 1, "gelu": gelu, "gelu_mul": gelu + 1, "silu_mul": silu + 1,
                 "silu": silu, "max": 1,
                 "softmax": 4 + exp, "layernorm": 8, "rmsnorm": 4, "reduce": 1}
        if fn not in table:
            raise UnsupportedOpError(f"{self.spec.name}: the ASIC has no '{fn}' routine")
        return table[fn]

    def asic_row_serial_cycles(self, fn: str, dtype: DType) -> float:
        """Per-row cycles that do not vectorise: reduction trees and scalar Newton iterations."""
        s, p = self.spec, self.spec.asic_pipeline_cycles
        tree = math.ceil(math.log2(max(2, self.asic_lanes(dtype))))
        if fn == "layernorm":
            return 2 * tree + (1 + 4 * s.rsqrt_newton_iterations) * p
        if fn == "rmsnorm":
            return tree + (1 + 4 * s.rsqrt_newton_iterations) * p
        if fn == "softmax":
            return 2 * tree + (1 + 3 * s.reciprocal_newton_iterations) * p
        return 0.0

    def asic_seconds(self, fn: str, rows: int, width: int, dtype: DType, sram_bytes: float) -> tuple[float, float]:
        """(seconds, lane ops) of ``rows`` x ``width`` elements of ``fn``: per row, the larger of
        lane cycles and SRAM cycles, plus its serial part and the pipeline fill."""
        lanes, clk = self.asic_lanes(dtype), self.spec.asic.clock_hz
        ops = self.asic_ops_per_element(fn) * width
        sram_per_row = sram_bytes / rows if rows else 0.0
        row_cycles = max(math.ceil(ops / lanes), math.ceil(sram_per_row * clk / self.sram.bandwidth_bytes_per_s))
        cycles = rows * (row_cycles + self.asic_row_serial_cycles(fn, dtype)) + self.spec.asic_pipeline_cycles
        return cycles / clk, ops * rows

    def _asic_cost(self, fn: str, rows: int, width: int, dtype: DType, sram_bytes: float,
                   whole_row: bool = True, units: int = 1) -> Cost:
        """``whole_row``: the routine needs a whole row in the buffer (norms, softmax). ``units``: ASIC
        vector units sharing the rows (each with its own lanes and ``asic_sram``); the busiest sets the time."""
        if whole_row and 3 * width * dtype.bytes > self.sram.capacity_bytes:
            raise ConfigError(f"{self.spec.name}: a {width}-wide row does not fit asic_sram "
                              f"({self.sram.capacity_bytes} B)")
        if units > 1 and rows > 1:
            busiest = -(-rows // min(units, rows))
            t, _ = self.asic_seconds(fn, busiest, width, dtype, sram_bytes * busiest / rows)
            ops = self.asic_ops_per_element(fn) * width * rows
        else:
            t, ops = self.asic_seconds(fn, rows, width, dtype, sram_bytes)
        return Cost(seconds=t, cycles=t * self.spec.asic.clock_hz, compute_cycles=t * self.spec.asic.clock_hz,
                    bytes_by_level={"asic_sram": sram_bytes},
                    energy_j={"asic": ops * self.spec.asic.energy_per_flop_j(dtype)
                              + sram_bytes * self.sram.energy_pj_per_byte * 1e-12},
                    phases=(Phase("asic", t),), stats={"asic_busy_s": t})

    # ---- the banks ---------------------------------------------------------------------------
    def run_programs(self, progs: list[Program], dtype: DType, out_bytes: float) -> tuple[float, DramStats, float]:
        """(seconds of the slowest channel, all channels' DRAM stats, channel-bus bytes)."""
        return _run_programs(self.mem, progs, dtype, out_bytes)

    def _dram_cost(self, seconds: float, stats: DramStats | None, bus_bytes: float, flops: float, dtype: DType,
                   vectors: float = 1) -> Cost:
        """Energy, bytes and command counts of bank-side work lasting ``seconds``; ``vectors``: input
        vectors each burst read feeds, on average (``bank_mac_vectors_per_burst``)."""
        e = self.mem.energy
        d = stats.energy_j if stats else {}
        cmds = stats.commands if stats else {}
        mac_bytes = cmds.get("MAC_AB", 0) * self.mem.banks * self.mem.burst_bytes
        rdwr_bytes = (cmds.get("RD", 0) + cmds.get("WR", 0)) * self.mem.burst_bytes
        lane_flops = mac_bytes / dtype.bytes * 2
        if vectors != 1:
            lane_flops *= vectors
        energy = {
            "dram_act_pre": d.get("act_pre", 0.0), "dram_mac_rd": d.get("mac", 0.0) + d.get("rd_wr", 0.0),
            "dram_io": d.get("io", 0.0) + bus_bytes * 8 * e.io_pj_per_bit * 1e-12,
            "dram_refresh": d.get("refresh", 0.0),  # standby ("background"): per step (Device.background_power_w)
            "bank_mac": lane_flops * self.spec.bank_mac.energy_per_flop_j(dtype),
        }
        st = {f"dram_{k}": float(v) for k, v in cmds.items() if v}
        if stats:
            st |= {"row_hits": float(stats.row_hits), "row_misses": float(stats.row_misses)}
        st |= {"bank_busy_s": seconds, "mac_bytes": float(mac_bytes)}
        mac_cycles = cmds.get("MAC_AB", 0) / self.mem.channels * self.t_mac / self.mem.tck_s  # tCK issuing MACs
        return Cost(seconds=seconds, cycles=seconds / self.mem.tck_s, compute_cycles=mac_cycles,
                    flops=flops, bytes_by_level={"dram_internal": float(mac_bytes),
                                                 "channel_bus": bus_bytes + rdwr_bytes},
                    energy_j=energy, phases=(Phase("banks", seconds),), stats=st)

    def _reduce(self, adds: int, dtype: DType) -> tuple[float, Cost]:
        """Partial-sum / bias additions on the ASIC: (seconds, cost without phases)."""
        if adds <= 0:
            return 0.0, Cost()
        c = self._asic_cost("reduce", 1, adds, dtype, 3.0 * adds * dtype.bytes, whole_row=False)
        return c.seconds, replace(c, phases=())

    # ---- cycle-level costs ---------------------------------------------------------------------
    def cycle_cost(self, op: Op) -> Cost:
        k = op.kind
        if k == OpKind.matmul:
            return self._matmul(op)
        if k == OpKind.attention:
            return self._attention(op)
        if k == OpKind.kv_write:
            return self._kv_write(op)
        if k == OpKind.embedding:
            return self._embedding(op)
        rows, width = op.dim("rows"), op.dim("width")
        fn = "add" if k == OpKind.elementwise and op.attr("fn") == "add" else op.attr("fn")
        c = self._asic_cost(fn, rows, width, op.dtype, op.bytes_total, whole_row=op.kind == OpKind.norm,
                            units=self.spec.asic.count)
        return replace(c, flops=op.flops)

    def _matmul(self, op: Op) -> Cost:
        M, K, N = op.dim("M"), op.dim("K"), op.dim("N")
        wdt = op.weight_dtype or op.dtype
        g = self.geometry(wdt)
        progs = [Program() for _ in range(g.channels)]
        adds = vmm_programs(K, N, g, progs)
        one = progs[0].passes
        for p in progs:  # M tokens, one after the other: the one-token program M times
            p.rows *= M
            p.gb_elems, p.out_elems, p.passes = p.gb_elems * M, p.out_elems * M, p.passes * M
        t_bank, stats, bus = self.run_programs(progs, op.dtype, op.dtype.bytes)
        bank = self._dram_cost(t_bank, stats, bus, op.flops, wdt)
        # chunks = (token, K-tile); tile i > 0 adds N partial sums, the last tile also the bias
        bias = N if op.attr("bias") else 0
        per_chunk = [(N if i else 0) + (bias if i == one - 1 else 0) for i in range(one)] * M
        t_of = {a: self._reduce(a, op.dtype)[0] for a in set(per_chunk)}
        t_add = [t_of[a] for a in per_chunk]
        t_total = _flow([t_bank / len(per_chunk)] * len(per_chunk), t_add)
        _, red = self._reduce(adds * M + bias * M, op.dtype)
        tail = t_total - t_bank
        phases = (Phase("banks", t_bank),) + ((Phase("asic", tail),) if tail > 0 else ())
        return replace(bank + red, seconds=t_total, phases=phases)

    def _attention(self, op: Op) -> Cost:
        """Sequences over channel groups, each group PIM-GPT's mapping (``pim_batch``; batch 1: one group)."""
        return attention_cost(self, op)

    def _kv_write(self, op: Op) -> Cost:
        """K appended to its reserved row (row-major, contiguous bursts); V column-major: every
        element to its own reserved row, one masked burst each (docs/pim.md)."""
        g = self.geometry(op.kv_dtype or op.dtype)
        s = _kv_write_stats(self.mem, op.dim("rows"), op.dim("width"), g.bursts(op.dim("width")), g.row_elems)
        return self._dram_cost(s.seconds, s, 0.0, 0.0, op.kv_dtype or op.dtype)

    def _embedding(self, op: Op) -> Cost:
        """Token ids over the host link, table rows read over the channels, summed on the ASIC."""
        rows, width, tables = op.dim("rows"), op.dim("width"), op.attr("tables", 1)
        link = self.spec.host_link
        t_link, e_link = 0.0, 0.0
        if link is not None:
            nbytes = rows * TOKEN_ID_BYTES
            t_link = link.latency_s + nbytes / link.bandwidth_bytes_per_s
            e_link = nbytes * 8 * link.energy_pj_per_bit * 1e-12
        s = DramModel(self.mem).stream(int(op.read.weight))
        bank = self._dram_cost(s.seconds, s, 0.0, 0.0, op.weight_dtype or op.dtype)
        adds = (tables - 1) * rows * width
        asic = self._asic_cost("add", rows, width, op.dtype, 3.0 * adds * op.dtype.bytes) if adds else None
        cost = bank + Cost(energy_j={"host_link": e_link}, bytes_by_level={"host_link": rows * TOKEN_ID_BYTES})
        phases = ((Phase("link", t_link),) if t_link else ()) + (Phase("banks", s.seconds),)
        if asic:
            cost, phases = cost + replace(asic, phases=()), phases + asic.phases
        return replace(cost, seconds=sum(p.seconds for p in phases), flops=op.flops, phases=phases)
