"""GPU: SMs with tensor and CUDA cores, L2, HBM/GDDR/LPDDR main memory, framework dispatch.

The cycle-level model maps each op onto CTAs (thread blocks) the way the kernel libraries a
GPU runs do, then counts waves over the SMs:

* **GEMM** (cuBLAS-like): for every candidate CTA tile in ``kernels.gemm_tiles`` and every
  split-K factor, ``waves = ⌈tiles · split / (SMs · CTAs per SM)⌉``; a tile's time is its
  padded main loop at ``tile_efficiency`` of the SM's tensor peak (or its operand loads at the
  SM's streaming bandwidth, whichever is longer) plus its epilogue store. The kernel takes
  the longest of that, DRAM traffic at achievable bandwidth and L2 traffic; the library's
  choice is the cheapest candidate. ``M ≤ gemv_max_rows`` may run as a CUDA-core GEMV. K or
  N rows not ``alignment_bytes``-aligned lose the fast path (``unaligned_*_efficiency``).
* **Attention** (FlashAttention-2 style): prefill has one CTA per batch × head × ``block_q``
  queries looping over ``block_kv`` key blocks (causal blocks skip the future); decode
  either parallelises over batch × KV heads only (``flash``) or also splits the context
  into ``split_kv_tokens`` chunks merged by a second kernel (``split``, FlashDecoding /
  LeanAttention, arXiv 2405.10480), with the split count chosen to minimise time.
* **Norms, activations, elementwise, embedding, KV writes**: bandwidth-bound streaming
  kernels whose CTAs fill the SMs (occupancy) at ``sm_bandwidth_bytes_per_s`` each.
* **Latency chain** (what a short kernel costs beyond bytes / bandwidth): every kernel adds
  ``launch_latency_s`` plus dependent memory round trips of ``memory_latency_s`` that no wave
  hides — ``gemm_latency_rounds`` for GEMM/GEMV/attention, ``pointwise_latency_rounds`` for
  pointwise kernels; a norm (one CTA per row) walks its row in rounds of
  ``reduction_bytes_per_round`` plus ``reduction_extra_rounds``, once per wave of
  ``reduction_ctas_per_sm`` × SMs rows. A split-K reduction or split-KV merge is a dependent
  second kernel: the graph gap (``framework.kernel_overhead_s``) and its own chain. Fitted on
  the H100 development set (``benchmarks/calibrate_gpu.py --dev``; docs/validation.md).

Every time is ``max`` of terms that are each ≥ the matching roofline term, so no op beats
:meth:`Device.bound` (DESIGN law 5), and every term falls (or stays) with more SMs, a
faster clock or more bandwidth (monotonicity). Main memory is reached through
:meth:`Gpu.main_memory_seconds` only, which runs the cycle-level DRAM model (``llmsim.memory.stream``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llmsim.devices.base import Cost, Device, Phase, is_matrix
from llmsim.devices.gpu_decode import KERNELS as DECODE_KERNELS
from llmsim.errors import ConfigError
from llmsim.graph.ops import Op, OpKind
from llmsim.memory.stream import stream_cost

_PARTIAL_BYTES = 4.0  # split-K / split-KV partial results are fp32


@dataclass
class _Kernel:
    """One candidate mapping of an op: its time and what it moves and computes."""

    seconds: float
    compute_s: float
    dram_bytes: float
    l2_bytes: float
    smem_bytes: float = 0.0
    tensor_flops: float = 0.0
    vector_flops: float = 0.0
    stats: dict[str, float] = field(default_factory=dict)


class Gpu(Device):
    kind = "gpu"
    cycle_level = True
    units = {"host": 1, "gpu": 1}
    dequant_unit = {"tensor": "vector", "vector": "vector"}  # CUDA cores convert operands

    def __init__(self, spec, fidelity="cycle", mode="graph"):
        super().__init__(spec, fidelity=fidelity, mode=mode)
        known = {k.value for k in OpKind}
        for k in spec.kernels.eager_dispatch_extra_s:
            if k not in known:
                raise ConfigError(f"{spec.name}: kernels.eager_dispatch_extra_s.{k} is not an op kind "
                                  f"({', '.join(sorted(known))})")
        if not spec.onchip:
            raise ConfigError(f"{spec.name}: a GPU needs an on-chip level (L2) under onchip:")
        self._l2 = max(spec.onchip, key=lambda lvl: lvl.capacity_bytes)  # the level the roofline charges
        self._smem = next((lvl for lvl in spec.onchip if lvl.name == "smem"), None)

    # ---- where an op runs ----------------------------------------------------------------
    def unit_for(self, op: Op) -> str:
        return "gpu"

    def compute_unit_for(self, op: Op) -> str:
        return "tensor" if is_matrix(op) else "vector"

    # ---- resources -------------------------------------------------------------------------
    @property
    def n_sm(self) -> int:
        return self.spec.tensor.count

    def main_memory_seconds(self, n_bytes: float, *, efficiency: float = 1.0) -> float:
        """Seconds to stream ``n_bytes`` through main memory: the cycle-level DRAM model's
        sequential stream (:func:`llmsim.memory.stream.stream_cost`), divided by the residual
        ``memory_efficiency`` (losses outside the DRAM timing: fabric, controller) and ``efficiency``."""
        return stream_cost(self.spec.memory, n_bytes).seconds / (self.spec.memory_efficiency * efficiency)

    def _sm_peak(self, unit: str, op: Op) -> float:
        """FLOP/s of one SM's ``unit`` for the op's dtype (0 when it has no path)."""
        cu = getattr(self.spec, unit)
        return cu.clock_hz * cu.flops_per_cycle.get(op.dtype, 0.0)

    def _stream_s(self, ctas: int, bytes_per_cta: float, ctas_per_sm: int) -> float:
        """Lower envelope of streaming ``ctas`` CTAs of ``bytes_per_cta`` each: the serial chain of
        CTAs one SM slot runs, each sharing the SM's bandwidth with its co-resident CTAs."""
        slots = self.n_sm * ctas_per_sm
        per_cta_bw = self.spec.kernels.sm_bandwidth_bytes_per_s / min(ctas_per_sm, max(1, math.ceil(ctas / self.n_sm)))
        return math.ceil(ctas / slots) * bytes_per_cta / per_cta_bw

    def _latency_s(self, rounds: int) -> float:
        """A kernel's latency chain: its launch plus ``rounds`` dependent memory round trips
        (``kernels.launch_latency_s``, ``kernels.memory_latency_s``). Added to the throughput
        terms: a short kernel is latency-bound, a long one hides all but these rounds."""
        ks = self.spec.kernels
        return ks.launch_latency_s + rounds * ks.memory_latency_s

    def _second_kernel_s(self) -> float:
        """A dependent helper kernel (split-K reduction, split-KV merge): the gap to it in the
        stream (``framework.kernel_overhead_s``) and its own pointwise latency chain."""
        return self.spec.framework.kernel_overhead_s + self._latency_s(self.spec.kernels.pointwise_latency_rounds)

    def _dram_bytes(self, op: Op) -> float:
        """Bytes crossing the DRAM interface: the roofline's compulsory bytes plus re-reads of the
        smaller GEMM operand when both operands together overflow L2."""
        base = self.dram_bytes_lower_bound(op)
        if op.kind is OpKind.matmul:
            a, b = op.read.activation, op.read.weight or 0.0
            cap = self._l2.capacity_bytes
            if a + b > cap and min(a, b) > 0:
                base += min(a, b) * (math.ceil(max(a, b) / cap) - 1)
        return base

    # ---- GEMM --------------------------------------------------------------------------------
    def _gemm(self, op: Op) -> _Kernel:
        ks = self.spec.kernels
        M, K, N, E = op.dim("M"), op.dim("K"), op.dim("N"), op.dim("experts")
        rows = max(math.ceil(M / E), op.attr("expert_rows", 0))  # MoE: the busiest expert's rows
        a_el = op.dtype.bytes
        b_el = (op.weight_dtype or op.dtype).bytes
        aligned = (K * a_el) % ks.alignment_bytes == 0 and (N * b_el) % ks.alignment_bytes == 0
        f_c = 1.0 if aligned else ks.unaligned_compute_efficiency
        f_m = 1.0 if aligned else ks.unaligned_memory_efficiency
        dram = self._dram_bytes(op)
        scale = op.flops / (2.0 * M * K * N)  # bias adds per output element
        best: _Kernel | None = None
        lat = self._latency_s(ks.gemm_latency_rounds)

        vec = self._sm_peak("vector", op)
        if rows <= ks.gemv_max_rows and vec > 0:
            t_comp = op.flops / (vec * self.n_sm)
            ctas = E * math.ceil(N / ks.gemm_tiles[0].n)
            t_stream = self._stream_s(ctas, op.bytes_total / ctas, 1)
            l2 = op.bytes_total
            t = max(t_comp, t_stream, self.main_memory_seconds(dram, efficiency=f_m),
                    l2 / self._l2.bandwidth_bytes_per_s) + lat
            best = _Kernel(t, t_comp, dram, l2, vector_flops=op.flops, stats={"gemv": 1.0, "ctas": ctas})

        rate_sm = self._sm_peak("tensor", op) * ks.tile_efficiency * f_c
        splits = [s for s in (1, 2, 4, 8, 16, 32) if s <= ks.split_k_max and (s == 1 or K / s >= ks.split_k_min_k)]
        for tile in ks.gemm_tiles:
            tiles = E * math.ceil(rows / tile.m) * math.ceil(N / tile.n)
            slots = self.n_sm * tile.ctas_per_sm
            cta_bw = ks.sm_bandwidth_bytes_per_s / tile.ctas_per_sm
            for s in splits:
                k_s = math.ceil(K / s)
                ctas = tiles * s
                waves = math.ceil(ctas / slots)
                t_main = 2.0 * tile.m * tile.n * k_s * scale / (rate_sm / tile.ctas_per_sm)
                t_load = (tile.m * a_el + tile.n * b_el) * k_s / cta_bw
                out_el = _PARTIAL_BYTES if s > 1 else a_el
                t_epi = tile.m * tile.n * out_el / cta_bw
                t_comp = waves * (max(t_main, t_load) + t_epi)
                partial = 2.0 * s * M * N * _PARTIAL_BYTES if s > 1 else 0.0
                # partials stay in L2 when they fit, else they round-trip DRAM
                dram_s = dram + (partial if partial > self._l2.capacity_bytes else 0.0)
                loads = ctas * (tile.m * a_el + tile.n * b_el) * k_s / ks.operand_multicast
                l2 = max(loads + op.write.total + partial, op.bytes_total)
                t = max(t_comp, self.main_memory_seconds(dram_s, efficiency=f_m), l2 / self._l2.bandwidth_bytes_per_s)
                t += lat + (self._second_kernel_s() if s > 1 else 0.0)  # split-K partials reduced by a 2nd kernel
                if best is None or t < best.seconds:
                    best = _Kernel(t, waves * t_main, dram_s, l2, smem_bytes=l2,
                                   tensor_flops=ctas * 2.0 * tile.m * tile.n * k_s * scale,
                                   stats={"tile_m": tile.m, "tile_n": tile.n, "split_k": s, "ctas": ctas,
                                          "waves": waves, "aligned": float(aligned)})
        assert best is not None
        return best

    # ---- attention ---------------------------------------------------------------------------
    def _attention(self, op: Op) -> _Kernel:
        at = self.spec.kernels.attention
        B, H, Hkv, Sq, Skv, D = (op.dim(k) for k in ("B", "H", "Hkv", "Sq", "Skv", "D"))
        dram = self._dram_bytes(op)
        t_dram = self.main_memory_seconds(dram)
        rate_cta = self._sm_peak("tensor", op) * at.efficiency_for(D) / at.ctas_per_sm
        per_pair = op.flops / op.attr("pairs") / (B * H)  # 4·D + softmax FLOPs per (query, key)
        kv_el = (op.kv_dtype or op.dtype).bytes
        if Sq > 1 and op.attr("varlen"):
            return self._flash_varlen(op, H, D, per_pair, rate_cta, dram, t_dram)
        if Sq == 1 and at.decode in DECODE_KERNELS:  # the LeanAttention study's kernels
            return DECODE_KERNELS[at.decode](self, op)
        if Sq > 1 or at.decode == "flash":
            return self._flash(op, B, H, Sq, Skv, D, per_pair, rate_cta, dram, t_dram)
        # decode, split context: CTA per (batch, KV head, chunk); pick the split that is fastest
        group = H // Hkv
        lat = self._latency_s(self.spec.kernels.gemm_latency_rounds)
        best: _Kernel | None = None
        max_chunks = max(1, math.ceil(Skv / at.split_kv_tokens))
        n = 1
        while True:
            chunk = math.ceil(Skv / n)
            ctas = B * Hkv * n
            kv_cta = 2.0 * chunk * D * kv_el
            t_comp = math.ceil(ctas / (self.n_sm * at.ctas_per_sm)) * per_pair * group * Sq * chunk / rate_cta
            partial = B * H * Sq * n * (D + 1) * _PARTIAL_BYTES if n > 1 else 0.0
            merge_s = partial / self._l2.bandwidth_bytes_per_s + self._second_kernel_s()
            t_merge = merge_s if n > 1 else 0.0
            l2 = op.bytes_total + 2.0 * partial
            t = max(t_comp, self._stream_s(ctas, kv_cta, at.ctas_per_sm), t_dram,
                    l2 / self._l2.bandwidth_bytes_per_s) + t_merge + lat
            if best is None or t < best.seconds:
                best = _Kernel(t, t_comp, dram, l2, smem_bytes=op.bytes_total, tensor_flops=op.flops,
                               stats={"kv_splits": n, "ctas": ctas})
            if n >= max_chunks:
                break
            n = min(2 * n, max_chunks)
        assert best is not None
        return best

    def _flash(self, op: Op, B: int, H: int, Sq: int, Skv: int, D: int, per_pair: float, rate_cta: float,
               dram: float, t_dram: float) -> _Kernel:
        """FlashAttention-2 forward: CTA per (batch, head, query block); causal blocks skip the future.

        Makespan over SM slots is the longer of the largest CTA and the total block work spread
        evenly over the slots (whole blocks): a bound every list schedule reaches within one CTA."""
        at = self.spec.kernels.attention
        bq = min(at.block_q, Sq)
        nq = math.ceil(Sq / bq)
        nk = math.ceil(Skv / at.block_kv)
        past = Skv - Sq
        causal = bool(op.attr("causal"))
        blocks = [min(nk, math.ceil((past + min((i + 1) * bq, Sq)) / at.block_kv)) if causal else nk for i in range(nq)]
        slots = self.n_sm * at.ctas_per_sm
        total = B * H * sum(blocks)
        t_block = per_pair * bq * at.block_kv / rate_cta  # a block when ctas_per_sm CTAs share the SM
        # the longest CTA's chain runs at the SM's rate shared by the average number of CTAs resident
        # beside it (a grid smaller than the slots leaves CTAs alone on their SM); the total work is
        # spread over every slot in whole blocks
        sharing = min(float(at.ctas_per_sm), max(1.0, B * H * nq / self.n_sm))
        t_chain = max(blocks) * t_block * sharing / at.ctas_per_sm
        units = math.ceil(total / slots)
        t_comp = max(t_chain, units * t_block)
        kv_el = (op.kv_dtype or op.dtype).bytes
        # each CTA streams its K/V blocks through the SM; re-reads across query blocks hit L2
        kv_reads = B * H * sum(blocks) * 2.0 * at.block_kv * D * kv_el
        l2 = max(kv_reads + op.read.activation + op.write.total, op.bytes_total)
        bytes_cta = kv_reads / (B * H * nq)
        t = max(t_comp, self._stream_s(B * H * nq, bytes_cta, at.ctas_per_sm), t_dram,
                l2 / self._l2.bandwidth_bytes_per_s) + self._latency_s(self.spec.kernels.gemm_latency_rounds)
        return _Kernel(t, t_comp, dram, l2, smem_bytes=l2, tensor_flops=total * per_pair * bq * at.block_kv,
                       stats={"ctas": B * H * nq, "kv_blocks": total, "block_waves": units})

    def _flash_varlen(self, op: Op, H: int, D: int, per_pair: float, rate_cta: float, dram: float,
                      t_dram: float) -> _Kernel:
        """FlashAttention-2's varlen forward: :meth:`_flash`'s causal mapping per sequence (attr
        ``varlen``), every sequence's CTAs in one kernel: the makespan is the longer of the longest
        CTA and the total block work spread over the SM slots."""
        at = self.spec.kernels.attention
        kv_el = (op.kv_dtype or op.dtype).bytes
        longest = work = kv_reads = tflops = 0.0
        n_blocks = ctas = 0
        for sq, skv in op.attr("varlen"):
            bq = min(at.block_q, sq)
            nq, nk, past = math.ceil(sq / bq), math.ceil(skv / at.block_kv), skv - sq
            blocks = [min(nk, math.ceil((past + min((i + 1) * bq, sq)) / at.block_kv)) for i in range(nq)]
            t_block = per_pair * bq * at.block_kv / rate_cta
            longest = max(longest, max(blocks) * t_block)
            work += H * sum(blocks) * t_block
            n_blocks += H * sum(blocks)
            ctas += H * nq
            kv_reads += H * sum(blocks) * 2.0 * at.block_kv * D * kv_el
            tflops += H * sum(blocks) * per_pair * bq * at.block_kv
        slots = self.n_sm * at.ctas_per_sm
        t_comp = max(longest, math.ceil(n_blocks / slots) * work / n_blocks)
        l2 = max(kv_reads + op.read.activation + op.write.total, op.bytes_total)
        t = max(t_comp, self._stream_s(ctas, kv_reads / ctas, at.ctas_per_sm), t_dram,
                l2 / self._l2.bandwidth_bytes_per_s)
        return _Kernel(t, t_comp, dram, l2, smem_bytes=l2, tensor_flops=tflops,
                       stats={"ctas": ctas, "kv_blocks": n_blocks, "varlen": len(op.attr("varlen"))})

    # ---- streaming kernels -------------------------------------------------------------------
    def _streaming(self, op: Op) -> _Kernel:
        ks = self.spec.kernels
        total = op.bytes_total
        if op.kind is OpKind.norm:  # one CTA per row (a row reduction)
            rows = op.dim("rows")
            ctas, per_cta = rows, total / rows
            cps = ks.reduction_ctas_per_sm
            # each CTA walks its row in dependent rounds, then broadcasts the statistic and stores;
            # rows beyond one wave of resident CTAs repeat the chain
            rounds = math.ceil(op.read.activation / rows / ks.reduction_bytes_per_round) + ks.reduction_extra_rounds
            lat = self._latency_s(rounds * math.ceil(rows / (self.n_sm * cps)))
        else:
            ctas = max(1, math.ceil(total / ks.elementwise_bytes_per_cta))
            per_cta = total / ctas
            cps = max(1, self.spec.max_threads_per_sm // 256)  # 256-thread CTAs
            lat = self._latency_s(ks.pointwise_latency_rounds)
        vec = self._sm_peak("vector", op)
        t_comp = op.flops / (vec * self.n_sm) if op.flops else 0.0
        dram = self._dram_bytes(op)
        t = max(t_comp, self._stream_s(ctas, per_cta, cps), self.main_memory_seconds(dram),
                total / self._l2.bandwidth_bytes_per_s) + lat
        occ = min(1.0, ctas / (self.n_sm * cps))
        return _Kernel(t, t_comp, dram, total, vector_flops=op.flops, stats={"ctas": ctas, "occupancy": occ})

    # ---- cost ------------------------------------------------------------------------------------
    def cycle_cost(self, op: Op) -> Cost:
        if op.kind is OpKind.matmul:
            k = self._gemm(op)
        elif op.kind is OpKind.attention:
            k = self._attention(op)
        else:
            k = self._streaming(op)
        t, clk = k.seconds, self.spec.tensor.clock_hz
        mem = self.spec.memory
        energy = {
            "compute": k.tensor_flops * self.spec.tensor.energy_per_flop_j(op.dtype)
            + k.vector_flops * self.spec.vector.energy_per_flop_j(op.dtype),
            "dram": k.dram_bytes * mem.energy_pj_per_bit_estimate * 8e-12,
            self._l2.name: k.l2_bytes * self._l2.energy_pj_per_byte * 1e-12,
        }
        levels = {"dram": k.dram_bytes, self._l2.name: k.l2_bytes}
        if self._smem is not None and k.smem_bytes:
            energy[self._smem.name] = k.smem_bytes * self._smem.energy_pj_per_byte * 1e-12
            levels[self._smem.name] = k.smem_bytes
        return Cost(seconds=t, cycles=t * clk, compute_cycles=k.compute_s * clk, flops=op.flops,
                    bytes_by_level=levels, energy_j=energy, phases=(Phase(self.unit_for(op), t),), stats=k.stats)

    def host_seconds(self, op: Op) -> float:
        """Eager: the framework's calls for the op (:meth:`Device.host_seconds`) plus the op kind's
        extra host time (PyTorch's per-op overhead differs: a cuBLAS GEMM or SDPA call costs more
        than an add) and ``framework.eager_python_call_s`` per call (kernel or view) for the
        model's own Python around it; graph replay: ``graph_dispatch_s`` per kernel."""
        t = super().host_seconds(op)
        fw = self.spec.framework
        if self.mode == "eager" and op.kind.value not in fw.eager_op_s:
            calls = fw.calls(op.kind.value, op.attr("fn"))
            t += self.spec.kernels.eager_dispatch_extra_s.get(op.kind.value, 0.0)
            t += (calls.kernels + calls.host_calls) * fw.eager_python_call_s
        return t
