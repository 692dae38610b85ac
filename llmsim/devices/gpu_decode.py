"""Decode-attention kernels of the LeanAttention study (``kernels.attention.decode``).

One query per sequence (Sq = 1) attends ``Skv`` keys; the KV cache is read in ``block_kv``-key
blocks. What separates the kernels is how those blocks are spread over the SMs:

* ``fa2`` — FlashAttention-2 as written: one CTA per (batch, head) loops over every block. The
  CTA's MMA tile has ``block_q`` query rows, so the single query is padded to them: each block
  costs ``block_q`` rows of tensor work, at the rate one CTA gets of its SM (``ctas_per_sm``
  share the SM only when the grid fills it). With B·H < SMs most SMs idle.
* ``flashdecoding`` — FA-2's split-KV kernel: CTA per (batch, head, split) over
  ⌈blocks / splits⌉ blocks, tile rows ``decode_block_q``; the split count is FA-2's
  ``num_splits_heuristic`` (the smallest split within 85% of the best wave efficiency, none once
  B·H fills 80% of the SMs); partial outputs go through L2 to a combine kernel.
* ``lean`` — LeanAttention (arXiv 2405.10480), stream-K: all B·H·blocks blocks are cut into equal
  contiguous ranges, one per CTA slot (a range may cross heads); a head split across CTAs is
  merged once, inside the kernel, by the CTA that holds its first block (one more memory round).

Time = max(chain of the busiest CTA at its SM share, its KV stream at the per-SM bandwidth, the
DRAM stream, the L2 traffic) + the kernel's latency chain (+ the combine kernel). The per-SM
bandwidth (``sm_bandwidth_bytes_per_s``), the CTA rate (``efficiency`` of the SM's tensor peak)
and the latency chain are the preset's, fitted on H100 microbenchmarks (hw_configs/h100.yaml).
"""

from __future__ import annotations

import math

_PARTIAL_BYTES = 4.0  # partial outputs and softmax statistics are fp32


def _common(gpu, op):
    at = gpu.spec.kernels.attention
    B, H, Hkv, Skv, D = (op.dim(k) for k in ("B", "H", "Hkv", "Skv", "D"))
    kv_el = (op.kv_dtype or op.dtype).bytes
    blocks = math.ceil(Skv / at.block_kv)
    block_bytes = 2.0 * at.block_kv * D * kv_el  # K and V of one block
    return at, B, H, Hkv, Skv, D, blocks, block_bytes


def _block_s(gpu, op, rows: int, D: int, sharing: float) -> float:
    """Tensor time of one KV block for a CTA whose tile has ``rows`` query rows, its SM shared by
    ``sharing`` CTAs (QK^T and PV: 4·rows·block_kv·D FLOPs)."""
    at = gpu.spec.kernels.attention
    rate = gpu._sm_peak("tensor", op) * at.efficiency_for(D) / sharing
    return 4.0 * rows * at.block_kv * D / rate


def _kernel(gpu, op, ctas: int, blocks_per_cta: int, rows: int, extra_l2: float, extra_s: float, stats: dict):
    from llmsim.devices.gpu import _Kernel

    at, B, H, Hkv, Skv, D, blocks, block_bytes = _common(gpu, op)
    group = H // Hkv
    rows_pad = math.ceil(group / rows) * rows  # the KV head's query heads share the tile's rows
    sharing = min(float(at.ctas_per_sm), max(1.0, ctas / gpu.n_sm))
    waves = math.ceil(ctas / (gpu.n_sm * at.ctas_per_sm))
    t_comp = waves * blocks_per_cta * _block_s(gpu, op, rows_pad, D, sharing)
    t_stream = waves * blocks_per_cta * block_bytes / (gpu.spec.kernels.sm_bandwidth_bytes_per_s / sharing)
    dram = gpu._dram_bytes(op)
    l2 = op.bytes_total + extra_l2
    t = max(t_comp, t_stream, gpu.main_memory_seconds(dram), l2 / gpu._l2.bandwidth_bytes_per_s)
    t += gpu._latency_s(gpu.spec.kernels.gemm_latency_rounds) + extra_s
    flops = B * Hkv * blocks * 4.0 * rows_pad * at.block_kv * D
    return _Kernel(t, t_comp, dram, l2, smem_bytes=op.bytes_total, tensor_flops=flops,
                   stats={"ctas": ctas, "kv_blocks_per_cta": blocks_per_cta, **stats})


def fa2(gpu, op):
    at, B, H, Hkv, Skv, D, blocks, _ = _common(gpu, op)
    return _kernel(gpu, op, B * Hkv, blocks, at.block_q, 0.0, 0.0, {"kv_splits": 1})


def num_splits(bh: int, n_sm: int, blocks: int, max_splits: int) -> int:
    """FA-2's ``num_splits_heuristic`` (flash_api.cpp): no split once B·H fills 80% of the SMs; else
    the smallest split whose wave efficiency is within 85% of the best over 1..max_splits (splits
    that leave the per-split block count unchanged are skipped)."""
    if bh >= 0.8 * n_sm:
        return 1
    top = min(max_splits, n_sm, blocks)

    def eff(n):
        waves = bh * n / n_sm
        return waves / math.ceil(waves)

    ok = [n for n in range(1, top + 1) if n == 1 or math.ceil(blocks / n) != math.ceil(blocks / (n - 1))]
    best = max(eff(n) for n in ok)
    return next(n for n in ok if eff(n) >= 0.85 * best)


def flashdecoding(gpu, op):
    at, B, H, Hkv, Skv, D, blocks, _ = _common(gpu, op)
    n = num_splits(B * Hkv, gpu.n_sm, blocks, at.max_splits)
    if n == 1:
        return _kernel(gpu, op, B * Hkv, blocks, at.decode_block_q, 0.0, 0.0, {"kv_splits": 1})
    partial = B * H * n * (D + 2) * _PARTIAL_BYTES
    combine = partial / gpu._l2.bandwidth_bytes_per_s + gpu._second_kernel_s()
    return _kernel(gpu, op, B * Hkv * n, math.ceil(blocks / n), at.decode_block_q, 2.0 * partial, combine,
                   {"kv_splits": n})


def lean(gpu, op):
    at, B, H, Hkv, Skv, D, blocks, _ = _common(gpu, op)
    total = B * Hkv * blocks
    slots = min(total, gpu.n_sm * at.ctas_per_sm)
    per = math.ceil(total / slots)
    ctas = math.ceil(total / per)
    split_heads = per % blocks != 0  # a CTA's range ends inside a head: that head is merged
    partial = 2.0 * ctas * (H // Hkv) * (D + 2) * _PARTIAL_BYTES if split_heads else 0.0
    merge = gpu.spec.kernels.memory_latency_s if split_heads else 0.0  # host CTA reads its peers' partials
    return _kernel(gpu, op, ctas, per, at.decode_block_q, 2.0 * partial, merge,
                   {"kv_splits": max(1, round(ctas / (B * Hkv)))})


KERNELS = {"fa2": fa2, "flashdecoding": flashdecoding, "lean": lean}
