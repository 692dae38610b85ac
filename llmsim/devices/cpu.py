"""CPU: cores × SIMD × FMA units, a cache hierarchy with GEMM blocking, DRAM, eager dispatch.

The cycle-level cost of an op on ``threads`` cores (all facts from the preset YAML):

* **GEMM** (matmul): BLIS five-loop blocking chosen from the cache capacities
  (:mod:`llmsim.devices._cpu_blocking`); compute = busiest thread's micro-kernel calls ×
  ``2·mr·nr / flops_per_cycle[dtype]`` cycles per rank-1 step (edge tiles cost a full tile, the
  thread split rounds up); bytes per level from the loop nest. With the framework BLAS's measured
  rates: a one-row product takes the library's GEMV path (no packing: the weight streams once, no
  faster than ``gemv_weight_bytes_per_s``); a multi-row GEMM first packs its weight at
  ``CpuSpec.pack_rate(M)`` (measured per row count: BLAS libraries take other paths for few rows;
  additive: packing precedes the panel's compute), and that measured pass
  covers B's read, the packed write and the first pass over the packed panel, so only further
  passes stay in the level traffic. Both add ``weight_row_s`` per weight row (output column). A
  weight larger than the last-level cache also sends its packed copy to main memory and back.
* **Attention**: per (sequence, head, block of ``mr`` query rows) a score GEMM, softmax and a
  context GEMM, split over threads; K/V stream from main memory once, are re-read from cache
  by later query blocks.
* **Streaming ops** (norm, activation, elementwise, embedding, kv_write): single-threaded below
  ``parallel_grain_elements`` per thread (PyTorch ``parallel_for``), arithmetic at
  ``vector_flops_fraction`` of the FMA rate.

Time of an op = max(compute, bytes_l / bandwidth_l for every level l) — hardware prefetch
overlaps memory with compute — plus ``parallel_region_s`` when it runs on more than one thread.
Private levels (``private_levels``) give per-core capacity and bandwidth, scaled by the threads
in use; shared levels give totals. Activations live in the innermost level with room
(``cache_fill_fraction`` of it), else main memory; weights and the KV cache always stream from
main memory. Framework dispatch (eager PyTorch) runs on the same cores before the op
(``framework.synchronous``), so it is charged on the ``cores`` unit.
"""

from __future__ import annotations

from dataclasses import replace
from math import ceil

from llmsim.config.hardware import CpuSpec, SramLevelSpec
from llmsim.devices._cpu_blocking import Blocking, choose_blocking, gemm_traffic, gemv_traffic
from llmsim.devices.base import Cost, Device, Phase
from llmsim.errors import UnsupportedOpError
from llmsim.graph.ops import Op, OpKind
from llmsim.memory.stream import sequential_bandwidth


def _unmove(traffic: list[float], x: float, level: int) -> None:
    """Take back ``x`` bytes counted at levels ``0..level`` (the inverse of the blocking model's move)."""
    for i in range(level + 1):
        traffic[i] = max(0.0, traffic[i] - x)


class Cpu(Device):
    kind = "cpu"
    cycle_level = True
    units = {"host": 1, "cores": 1}
    dequant_unit = {"cores": "cores"}  # SIMD on the same cores, before the FMAs

    def __init__(self, spec: CpuSpec, fidelity="cycle", mode: str = "graph"):
        super().__init__(spec, fidelity=fidelity, mode=mode)
        self.levels: list[SramLevelSpec] = list(spec.onchip)
        self.private = [lvl.name in spec.private_levels for lvl in self.levels]
        self.threads = min(spec.threads or spec.cores.count, spec.cores.count)

    def unit_for(self, op: Op) -> str:
        return "cores"

    def compute_unit_for(self, op: Op) -> str:
        return "cores"

    # ---- the hierarchy ------------------------------------------------------------------------
    @property
    def dram_index(self) -> int:
        return len(self.levels)

    def level_names(self) -> list[str]:
        return [lvl.name for lvl in self.levels] + ["dram"]

    def capacity(self, i: int, threads: int) -> float:
        """Bytes of level ``i`` reachable by ``threads`` cores (private levels add up)."""
        lvl = self.levels[i]
        return lvl.capacity_bytes * (threads if self.private[i] else 1)

    def home(self, n_bytes: float, threads: int) -> int:
        """Innermost level whose fill share holds ``n_bytes``; the DRAM index when none does."""
        fill = self.spec.cache_fill_fraction
        for i in range(len(self.levels)):
            if n_bytes <= fill * self.capacity(i, threads):
                return i
        return self.dram_index

    def bandwidth(self, i: int, threads: int) -> float:
        """Bytes/s level ``i`` delivers to ``threads`` cores."""
        if i == self.dram_index:
            return self.main_memory_bandwidth(threads)
        lvl = self.levels[i]
        return lvl.bandwidth_bytes_per_s * (threads if self.private[i] else 1)

    def main_memory_bandwidth(self, threads: int) -> float:
        """Sustained main-memory bandwidth for ``threads`` cores: the cycle-level DRAM model's
        sequential rate (:func:`llmsim.memory.stream.sequential_bandwidth`) × the residual
        ``memory_efficiency`` (what the DRAM timing does not explain: controller, prefetch, fabric),
        capped by what the cores can draw. The one place main memory is modelled."""
        bw = sequential_bandwidth(self.spec.memory) * self.spec.memory_efficiency
        per_core = self.spec.core_memory_bandwidth_bytes_per_s
        return min(bw, threads * per_core) if per_core else bw

    def dram_energy_j_per_byte(self) -> float:
        return self.spec.memory.energy_pj_per_bit_estimate * 8e-12

    # ---- roofline (the law the cycle model must respect) ----------------------------------------
    def level_traffic(self, op: Op) -> list[tuple[str, float, float, float]]:
        """Weights and KV (and activations larger than all caches together) at peak DRAM bandwidth;
        the rest at the aggregate L1 bandwidth of every core (every byte reaches the core through L1)."""
        act = op.read.activation + op.write.activation
        all_caches = sum(self.capacity(i, self.spec.cores.count) for i in range(len(self.levels)))
        dram = op.read.weight + op.read.kv + op.write.kv + (act if act > all_caches else 0.0)
        out = [("dram", dram, self.spec.memory.peak_bandwidth_bytes_per_s, self.dram_energy_j_per_byte())]
        onchip = op.bytes_total - dram
        if onchip > 0:
            l1 = self.levels[0]
            out.append(("l1", onchip, self.bandwidth(0, self.spec.cores.count), l1.energy_pj_per_byte * 1e-12))
        return out

    # ---- the cycle-level model ---------------------------------------------------------------------
    def flops_per_cycle(self, op: Op) -> float:
        fpc = self.spec.cores.flops_per_cycle.get(op.dtype, 0.0)
        if fpc <= 0:
            raise UnsupportedOpError(f"op {op.name}: {self.spec.name} has no {op.dtype.value} path on 'cores'")
        return fpc

    def cycle_cost(self, op: Op) -> Cost:
        if op.kind == OpKind.matmul:
            traffic, cycles, threads, executed, stats = self._gemm(op)
        elif op.kind == OpKind.attention:
            traffic, cycles, threads, executed, stats = self._attention(op)
        else:
            traffic, cycles, threads, executed, stats = self._stream(op)
        return self._assemble(op, traffic, cycles, threads, executed, stats)

    def _assemble(self, op: Op, traffic: list[float], cycles: float, threads: int, executed: float,
                  stats: dict[str, float]) -> Cost:
        clock = self.spec.cores.clock_hz
        t_compute = cycles / clock
        names = self.level_names()
        t_levels = [b / self.bandwidth(i, threads) for i, b in enumerate(traffic) if b > 0]
        # a GEMV streams its weights no faster than the library's measured rate; packing a weight
        # before a multi-row GEMM runs before the panel's compute on the same cores, so it adds
        t = max([t_compute, stats.get("gemv_floor_s", 0.0)] + t_levels) + stats.get("pack_s", 0.0)
        if threads > 1:
            t += self.spec.parallel_region_s
        energy = {"compute": executed * self.spec.cores.energy_per_flop_j(op.dtype)}
        for i, b in enumerate(traffic):
            e = self.dram_energy_j_per_byte() if i == self.dram_index else self.levels[i].energy_pj_per_byte * 1e-12
            energy[names[i]] = b * e
        stats = stats | {"threads": float(threads), "executed_flops": executed}
        return Cost(seconds=t, cycles=t * clock, compute_cycles=cycles, flops=op.flops,
                    bytes_by_level={names[i]: b for i, b in enumerate(traffic)}, energy_j=energy,
                    phases=(Phase("cores", t),), stats=stats)

    def _blocking(self, M: int, K: int, N: int, elem_bytes: float) -> Blocking:
        mr, nr = self.spec.register_tile
        cap = [lvl.capacity_bytes for lvl in self.levels]  # per thread: one private slice, or the shared level
        return choose_blocking(M, K, N, mr, nr, elem_bytes, cap[0], cap[1], cap[-1], self.spec.cache_fill_fraction)

    def _gemm(self, op: Op):
        M, K, N, E = op.dim("M"), op.dim("K"), op.dim("N"), op.dim("experts")
        Me = ceil(M / E)  # rows per expert; experts run one after another
        b = op.dtype.bytes
        weighted = bool(op.attr("weighted", True))
        bw = op.weight_dtype.bytes if weighted and op.weight_dtype else b
        mr, nr = self.spec.register_tile
        threads = max(1, min(self.threads, ceil(Me / mr) * ceil(N / nr)))
        blk = self._blocking(Me, K, N, b)
        a_home = self.home(Me * K * b, threads)
        b_home = self.dram_index if weighted else self.home(K * N * b, threads)
        c_home = self.home(Me * N * b, threads)
        g = gemm_traffic(Me, K, N, blk, b, bw, b, (a_home, b_home, c_home), len(self.levels) - 1,
                         len(self.levels) + 1, threads, self.flops_per_cycle(op))
        cycles = E * g.compute_cycles
        executed = E * 2.0 * g.tiles * min(mr, Me) * nr * K
        if op.attr("bias", False):  # bias add: one vector FLOP per output, on the busiest thread
            cycles += ceil(Me * N / threads) * E / (self.flops_per_cycle(op) * self.spec.vector_flops_fraction)
            executed += M * N
        stats = {"mc": blk.mc, "kc": blk.kc, "nc": blk.nc, "tiles": float(g.tiles)}
        traffic = list(g.bytes_by_level)
        packed_level = len(self.levels) - 1
        if Me == 1:  # the library's GEMV path: B streams once from its home, unpacked
            traffic = list(gemv_traffic(K, N, b, bw, (a_home, b_home, c_home), len(self.levels) + 1))
        w_bytes = E * K * N * bw
        if weighted and b_home == self.dram_index:  # the BLAS library's measured weight-streaming rates
            rows_s = E * N * self.spec.weight_row_s  # the library's per-weight-row (output column) cost
            if Me == 1 and self.spec.gemv_weight_bytes_per_s:
                stats["gemv_floor_s"] = w_bytes / self.spec.gemv_weight_bytes_per_s + rows_s
            elif Me > 1 and (pack := self.spec.pack_rate(Me)):
                # the measured packing time is everything an M-row GEMM spends beyond its FLOPs: reading
                # B, writing the packed panel and one pass over it; only further passes (row blocks
                # beyond the first) stay in the level traffic, so the model reproduces its calibration
                stats["pack_s"] = w_bytes / pack + rows_s
                _unmove(traffic, K * N * bw, b_home)
                _unmove(traffic, 2.0 * K * N * b, packed_level)
                if K * N * b > self.levels[packed_level].capacity_bytes:
                    # the library packs the whole weight for a few rows (MKL: measured ~40% more time per
                    # byte once the weight passes the usable LLC): the packed copy is written to and read
                    # back from main memory, which the in-cache calibration did not pay
                    spill = 2.0 * E * K * N * b
                    stats["pack_spill_s"] = spill / self.bandwidth(self.dram_index, threads)
                    stats["pack_s"] += stats["pack_spill_s"]
        return [E * x for x in traffic], cycles, threads, executed, stats

    def _attention(self, op: Op):
        B, H, Hkv, Sq, Skv, D = (op.dim(k) for k in ("B", "H", "Hkv", "Sq", "Skv", "D"))
        b, kvb = op.dtype.bytes, (op.kv_dtype or op.dtype).bytes
        mr, nr = self.spec.register_tile
        fpc = self.flops_per_cycle(op)
        q_blocks = ceil(Sq / mr)
        items = B * H * q_blocks
        threads = max(1, min(self.threads, items))
        rows = min(mr, Sq)
        causal_share = op.attr("pairs", Sq * Skv) / (Sq * Skv)
        gemm_flops = causal_share * 2.0 * rows * (D * ceil(Skv / nr) * nr + Skv * ceil(D / nr) * nr)
        softmax_flops = causal_share * 5.0 * rows * Skv
        per_item = gemm_flops / fpc + softmax_flops / (fpc * self.spec.vector_flops_fraction)
        cycles = ceil(items / threads) * per_item
        executed = items * (gemm_flops + softmax_flops)
        t = [0.0] * (len(self.levels) + 1)

        def move(x: float, level: int) -> None:
            for i in range(level + 1):
                t[i] += x

        kv_head = 2.0 * Skv * D * kvb                                    # one head's K and V
        move(op.read.kv, self.dram_index)                                 # every K/V head streams in once
        move(B * H * q_blocks * kv_head - op.read.kv, self.home(kv_head, 1))  # later (query block, head) reads
        act = op.read.activation + op.write.activation
        move(act, self.home(act, threads))                                     # Q in, context out
        move(2.0 * items * causal_share * rows * Skv * b, self.home(rows * Skv * b, 1))  # scores: write, read
        return t, cycles, threads, executed, {"items": float(items)}

    def _stream(self, op: Op):
        rows, width = op.dim("rows"), op.dim("width")
        elems = rows * width
        threads = max(1, min(self.threads, ceil(elems / self.spec.parallel_grain_elements)))
        fpc = self.flops_per_cycle(op) if op.flops else 1.0
        cycles = op.flops / threads / (fpc * self.spec.vector_flops_fraction)
        cpe = self.spec.pointwise_cycles_per_element.get(op.attr("fn", ""), 0.0)
        cycles = max(cycles, ceil(elems / threads) * cpe)  # the framework kernel's measured per-element cost
        t = [0.0] * (len(self.levels) + 1)
        mem = op.read.weight + op.read.kv + op.write.kv
        act = op.read.activation + op.write.activation
        for x, h in ((mem, self.dram_index), (act, self.home(act, threads))):
            for i in range(h + 1):
                t[i] += x
        return t, cycles, threads, op.flops, {}

    # ---- framework -------------------------------------------------------------------------------
    def host_phases(self, op: Op) -> tuple[Phase, ...]:
        """Eager dispatch runs on the cores themselves when the framework is synchronous."""
        phases = super().host_phases(op)
        if self.spec.framework.synchronous:
            return tuple(replace(p, unit="cores", issue=False) for p in phases)
        return phases
