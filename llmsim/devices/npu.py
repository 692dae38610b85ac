"""NPU: systolic-array cores with double-buffered operand SRAMs, a DMA to DRAM and a vector unit.

Cycle-level model (``fidelity="cycle"``):

* **matmul** and the two GEMMs of **attention** run on the systolic cores. Each GEMM is mapped by
  :func:`llmsim.devices.npu_map.map_gemm` (core split, sub-array, temporal chunks) and costed fold
  by fold with fill and drain by :func:`llmsim.kernels.systolic.simulate_tiled_gemm`: ifmap /
  filter / ofmap SRAMs of ``onchip`` levels ``ifmap``, ``filter``, ``ofmap`` (per core, halves
  double-buffered), loads and write-backs on one DMA whose rate is the achieved bandwidth of the
  main memory (stalls when it cannot keep up). A PE completes ``pe_macs_per_cycle[dtype]`` MACs
  per cycle by packing that many reduction elements (K is mapped as ceil(K / k) packed elements).
  Attention of B x H heads runs B x Hkv score GEMMs ``(Sq*g x D).(D x Skv)`` and as many context
  GEMMs ``(Sq*g x Skv).(Skv x D)`` (g = H / Hkv query heads share one K/V head), the full
  ``Sq x Skv`` rectangle (no causal block skipping); the softmax between them runs on the vector
  unit. A matmul bias is added by the vector unit in the output path.
* **norm, activation, elementwise, embedding, kv_write** run on the vector unit, streamed from
  DRAM with DMA double buffering: time = max(FLOPs / vector peak, bytes / DMA bandwidth).
* **Main memory** is the cycle-level DRAM model: :func:`main_memory` takes the steady state of a long
  sequential read and write (:func:`llmsim.memory.stream.steady_rate`, simulated once per DRAM spec)
  and uses its bandwidth and energy per byte (by DRAM component) for every transfer --
  the stated approximation: no per-op command simulation, no interference between streams.
* **Energy**: MACs at the array's pJ/FLOP by dtype, SRAM bytes (array-side accesses plus DMA
  fills and drains) at the buffers' pJ/B, DRAM bytes from the DRAM model's components, vector
  FLOPs at the vector unit's pJ/FLOP; static power and DRAM background (standby) power are added
  by the engine per step wall time (``Device.background_power_w``), not per transferred byte.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from llmsim.config.base import DType
from llmsim.config.memory import DramSpec
from llmsim.devices.base import Cost, Device, Phase, is_matrix
from llmsim.devices.npu_map import BUFFERS, ArrayConfig, GemmMapping, map_gemm
from llmsim.graph.ops import FLOPS_PER_ELEMENT, Op, OpKind
from llmsim.memory.stream import steady_rate


@dataclass(frozen=True)
class MainMemory:
    """Achieved streaming bandwidth and energy per byte of one DRAM system (from the DRAM model)."""

    read_bytes_per_s: float
    write_bytes_per_s: float
    read_j_per_byte: dict[str, float]
    write_j_per_byte: dict[str, float]

    def energy(self, read_bytes: float, write_bytes: float) -> dict[str, float]:
        keys = set(self.read_j_per_byte) | set(self.write_j_per_byte)
        return {f"dram_{k}": read_bytes * self.read_j_per_byte.get(k, 0.0)
                + write_bytes * self.write_j_per_byte.get(k, 0.0) for k in sorted(keys)}


@functools.lru_cache(maxsize=64)
def main_memory(spec: DramSpec) -> MainMemory:
    """The one place the NPU talks to main memory: the simulated steady state of each direction."""
    rd_bw, rd_e = steady_rate(spec)
    wr_bw, wr_e = steady_rate(spec, write=True)
    return MainMemory(rd_bw, wr_bw, rd_e, wr_e)


class Npu(Device):
    kind = "npu"
    cycle_level = True
    units = {"host": 1, "array": 1, "vector": 1}
    dequant_unit = {"array": "vector", "vector": "vector"}  # the vector unit feeds the array

    def unit_for(self, op: Op) -> str:
        return "array" if is_matrix(op) else "vector"

    def compute_unit_for(self, op: Op) -> str:
        return self.unit_for(op)

    # ---- configuration derived from the spec ------------------------------------------------
    @property
    def memory(self) -> MainMemory:
        return main_memory(self.spec.memory)

    def pe_macs(self, dtype: DType) -> int:
        """MACs one PE completes per cycle for ``dtype`` (reduction elements packed per PE)."""
        s = self.spec
        if dtype in s.pe_macs_per_cycle:
            return s.pe_macs_per_cycle[dtype]
        return max(1, round(s.array.flops_per_cycle.get(dtype, 0.0) / (2 * s.array_rows * s.array_cols)))

    def array_config(self) -> ArrayConfig:
        s = self.spec
        clock = s.array.clock_hz
        bufs = [s.onchip_level(b) for b in BUFFERS]
        return ArrayConfig(
            rows=s.array_rows, cols=s.array_cols, cores=s.array.count, dataflow=s.dataflow, trim_edges=s.trim_edges,
            buffer_bytes=tuple(float(b.capacity_bytes) for b in bufs),
            dma_bytes_per_cycle=min(self.memory.read_bytes_per_s, self.memory.write_bytes_per_s) / clock,
            sram_bytes_per_cycle=sum(b.bandwidth_bytes_per_s for b in bufs) / clock,
        )

    def _sram_j_per_byte(self) -> float:
        return sum(self.spec.onchip_level(b).energy_pj_per_byte for b in BUFFERS) / len(BUFFERS) * 1e-12

    # ---- roofline: the NPU's own levels ----------------------------------------------------------
    def level_traffic(self, op: Op) -> list[tuple[str, float, float, float]]:
        """DRAM: the bytes that must cross it, at peak bandwidth; the rest at the aggregate SRAM ports."""
        mem = self.spec.memory
        dram = self.dram_bytes_lower_bound(op)
        out = [("dram", dram, mem.peak_bandwidth_bytes_per_s, mem.energy_pj_per_bit_estimate * 8e-12)]
        rest = op.bytes_total - dram
        if rest > 0:
            bw = self.spec.array.count * sum(self.spec.onchip_level(b).bandwidth_bytes_per_s for b in BUFFERS)
            out.append(("sram", rest, bw, self._sram_j_per_byte()))
        return out

    # ---- cycle-level costs ----------------------------------------------------------------------
    def cycle_cost(self, op: Op) -> Cost:
        if op.kind == OpKind.matmul:
            return self._matmul(op)
        if op.kind == OpKind.attention:
            return self._attention(op)
        return self._vector(op)

    def _gemm(self, op: Op, m: int, n: int, k: int, count: int, a_bytes: float, b_bytes: float,
              what: str) -> tuple[GemmMapping, float]:
        """Map ``count`` GEMMs (m x k, bytes a).(k x n, bytes b); returns the mapping and its seconds."""
        kp = self.pe_macs(op.dtype)
        kk = -(-k // kp)
        in_b = (m * k * a_bytes + k * n * b_bytes) / (m * k + k * n) * kp  # per packed element
        g = map_gemm(self.array_config(), m, n, kk, count, in_b, op.dtype.bytes, what=f"op {op.name} {what}")
        return g, g.total_cycles / self.spec.array.clock_hz

    def _gemm_cost(self, op: Op, g: GemmMapping, seconds: float, flops: float, tag: str = "") -> Cost:
        mem = self.memory
        energy = {"compute": flops * self.spec.array.energy_per_flop_j(op.dtype),
                  "sram": g.sram_bytes * self._sram_j_per_byte(),
                  **mem.energy(g.dram_read_bytes, g.dram_write_bytes)}
        return Cost(
            seconds=seconds, cycles=g.total_cycles, compute_cycles=g.compute_cycles, flops=flops,
            bytes_by_level={"dram": g.dram_read_bytes + g.dram_write_bytes, "sram": g.sram_bytes},
            energy_j=energy, phases=(Phase("array", seconds),), stats={tag + k: v for k, v in g.stats().items()},
        )

    def _matmul(self, op: Op) -> Cost:
        M, K, N, E = (op.dim(d) for d in ("M", "K", "N", "experts"))
        a_b = op.dtype.bytes
        w_b = (op.weight_dtype or op.dtype).bytes if op.attr("weighted", True) else a_b
        rows = max(-(-M // E), op.attr("expert_rows", 0))  # MoE: the busiest expert's rows
        g, seconds = self._gemm(op, rows, N, K, E, a_b, w_b, "matmul")
        bias_flops = op.flops - 2.0 * M * K * N
        c = self._gemm_cost(op, g, seconds, op.flops - bias_flops)
        if bias_flops > 0:  # bias added by the vector unit in the output path, after the array
            c = c + self._vector_compute(op, bias_flops, "array")
        return self._finish(c, op)

    def _attention(self, op: Op) -> Cost:
        B, H, Hkv, Sq, Skv, D = (op.dim(d) for d in ("B", "H", "Hkv", "Sq", "Skv", "D"))
        grp = -(-H // Hkv)
        a_b, kv_b = op.dtype.bytes, (op.kv_dtype or op.dtype).bytes
        score, s_score = self._gemm(op, Sq * grp, Skv, D, B * Hkv, a_b, kv_b, "score Q.K^T")
        ctx, s_ctx = self._gemm(op, Sq * grp, D, Skv, B * Hkv, a_b, kv_b, "context P.V")
        elements = B * H * Sq * Skv
        c = (self._gemm_cost(op, score, s_score, 2.0 * elements * D, "score_")
             + self._vector_compute(op, FLOPS_PER_ELEMENT["softmax"] * elements, "vector")
             + self._gemm_cost(op, ctx, s_ctx, 2.0 * elements * D, "context_"))
        return self._finish(c, op)

    def _vector_compute(self, op: Op, flops: float, unit: str) -> Cost:
        """``flops`` on the vector unit, operands already on chip; held as a phase on ``unit``."""
        vu = self.spec.vector
        seconds = flops / vu.peak_flops_per_s(op.dtype)
        return Cost(seconds=seconds, cycles=seconds * self.spec.array.clock_hz, flops=flops,
                    energy_j={"vector": flops * vu.energy_per_flop_j(op.dtype)}, phases=(Phase(unit, seconds),))

    def _vector(self, op: Op) -> Cost:
        """A streaming vector op: DMA in / out double-buffered against the lanes."""
        vu, mem = self.spec.vector, self.memory
        rd, wr = op.read.total, op.write.total
        t_compute = op.flops / vu.peak_flops_per_s(op.dtype) if op.flops else 0.0
        t_dma = rd / mem.read_bytes_per_s + wr / mem.write_bytes_per_s
        seconds = max(t_compute, t_dma)
        clock = vu.clock_hz
        return Cost(
            seconds=seconds, cycles=math.ceil(seconds * clock), compute_cycles=t_compute * clock, flops=op.flops,
            bytes_by_level={"dram": rd + wr},
            energy_j={"vector": op.flops * vu.energy_per_flop_j(op.dtype), **mem.energy(rd, wr)},
            phases=(Phase("vector", seconds),), stats={"dma_bound": float(t_dma > t_compute)},
        )

    def _finish(self, c: Cost, op: Op) -> Cost:
        """Merge consecutive phases on one unit; add the array utilization."""
        phases: list[Phase] = []
        for p in c.phases:
            if phases and phases[-1].unit == p.unit:
                phases[-1] = Phase(p.unit, phases[-1].seconds + p.seconds)
            else:
                phases.append(p)
        s = self.spec
        peak_macs = s.array_rows * s.array_cols * s.array.count * self.pe_macs(op.dtype)
        util = (op.flops / 2) / (peak_macs * c.cycles) if c.cycles else 0.0
        return Cost(c.seconds, c.cycles, c.compute_cycles, op.flops, c.bytes_by_level, c.energy_j, tuple(phases),
                    {**c.stats, "utilization": min(util, 1.0)})
