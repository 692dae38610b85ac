"""How a GPU's kernel libraries map ops onto SMs (cuBLAS-, FlashAttention-like behaviour).

These are *device-level* facts of the software stack a GPU runs, kept apart from the chip's
physics in :class:`~llmsim.config.hardware.GpuSpec`: the CTA tiles a GEMM library chooses
from, how much of the tensor-core peak a tile's main loop reaches, which decode-attention
kernel is used, and the host's per-op dispatch costs in eager mode. Efficiencies are fitted
on microbenchmarks (``benchmarks/calibrate_gpu.py``); each preset says so in ``source:``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from llmsim.config.base import Spec


class GemmTileSpec(Spec):
    """A thread-block (CTA) tile of the output, ``m × n``, with ``ctas_per_sm`` resident at once."""

    m: int = Field(gt=0)
    n: int = Field(gt=0)
    ctas_per_sm: int = Field(default=1, gt=0)


def _default_tiles() -> list[GemmTileSpec]:
    return [GemmTileSpec(m=m, n=n) for m, n in ((64, 64), (64, 128), (128, 64), (128, 128), (128, 256), (256, 128))]


class AttentionKernelSpec(Spec):
    """FlashAttention-style kernels.

    ``prefill``: ``flash`` (one CTA per batch × head × ``block_q`` queries, looping over
    ``block_kv`` keys). ``decode``: ``flash`` parallelises only over batch × heads (FA-2);
    ``split`` also splits the context into chunks of ``split_kv_tokens`` across CTAs and
    merges partial softmaxes in a second kernel (FlashDecoding / LeanAttention). The three
    kernels of the LeanAttention study (:mod:`llmsim.devices.gpu_decode`): ``fa2`` (FlashAttention-2
    as written: no split, the single query padded to ``block_q`` MMA rows), ``flashdecoding``
    (FA-2's split-KV kernel, ``decode_block_q`` rows, its split count from FA-2's
    ``num_splits_heuristic``, a combine kernel) and ``lean`` (stream-K: the KV blocks of every
    head spread evenly over all CTA slots, partials merged inside the kernel).
    """

    prefill: Literal["flash"] = "flash"
    decode: Literal["split", "flash", "fa2", "flashdecoding", "lean"] = "split"
    decode_block_q: int = Field(default=64, gt=0, description="query rows of the split-KV decode kernels' MMA "
                                "tile (FA-2 Flash_fwd_kernel_traits kBlockM for split-KV); a single query is padded "
                                "to it")
    max_splits: int = Field(default=128, gt=0, description="most KV splits FA-2's num_splits_heuristic tries")
    block_q: int = Field(default=128, gt=0)
    block_kv: int = Field(default=128, gt=0)
    ctas_per_sm: int = Field(default=2, gt=0)
    split_kv_tokens: int = Field(default=256, gt=0)
    efficiency: dict[int, float] = Field(
        default_factory=lambda: {64: 0.5}, min_length=1,
        description="tensor-core fraction a CTA's block loop reaches, by head dim (nearest key is used)")

    @field_validator("efficiency")
    @classmethod
    def _fractions(cls, v: dict[int, float]) -> dict[int, float]:
        for hd, e in v.items():
            if not 0 < e <= 1:
                raise ValueError(f"efficiency.{hd} must be in (0, 1], got {e}")
        return v

    def efficiency_for(self, head_dim: int) -> float:
        return self.efficiency[min(self.efficiency, key=lambda k: (abs(math.log(k / head_dim)), k))]


class GpuKernelSpec(Spec):
    """Kernel-library behaviour of a GPU (see module docstring). Times in s, bandwidths in B/s."""

    gemm_tiles: list[GemmTileSpec] = Field(default_factory=_default_tiles, min_length=1)
    tile_efficiency: float = Field(default=0.8, gt=0, le=1,
                                   description="fraction of the SM's tensor peak a GEMM tile's main loop reaches")
    gemv_max_rows: int = Field(default=1, ge=0, description="GEMMs with M <= this run as CUDA-core GEMV kernels")
    operand_multicast: int = Field(default=1, gt=0, description="CTAs of a cluster sharing one L2 read of an "
                                   "operand tile (Hopper TMA multicast; 1 = none)")
    split_k_max: int = Field(default=8, gt=0, description="largest split-K factor the GEMM library uses")
    split_k_min_k: int = Field(default=512, gt=0, description="smallest K slice per split")
    alignment_bytes: int = Field(default=16, gt=0, description="K and N row pitch a fast (TMA/vectorised) path needs")
    unaligned_compute_efficiency: float = Field(default=1.0, gt=0, le=1)
    unaligned_memory_efficiency: float = Field(default=1.0, gt=0, le=1)
    sm_bandwidth_bytes_per_s: float = Field(
        gt=0, description="most one SM streams to/from L2 and DRAM (Little's law: bytes in flight / latency)")
    elementwise_bytes_per_cta: int = Field(default=16384, gt=0, description="bytes one CTA of a pointwise kernel moves")
    attention: AttentionKernelSpec = AttentionKernelSpec()
    # Latency chain of a kernel (what a short kernel costs beyond its bytes / bandwidth): the
    # launch of its CTAs plus the dependent memory round trips on its critical path. Zero (the
    # default) leaves only the throughput terms (a preset that has not measured them).
    launch_latency_s: float = Field(default=0.0, ge=0, description="device time from a kernel's start to its "
                                    "CTAs running plus its completion, paid once per kernel")
    memory_latency_s: float = Field(default=0.0, ge=0, description="one dependent load-use round trip to memory "
                                    "(a step of a kernel's critical path that no other work hides)")
    gemm_latency_rounds: int = Field(default=2, ge=0, description="dependent memory rounds of a GEMM/GEMV kernel "
                                     "that no wave hides: the main loop's pipeline fill and the epilogue store")
    pointwise_latency_rounds: int = Field(default=1, ge=0, description="dependent memory rounds of a pointwise "
                                          "kernel (load, then store)")
    reduction_bytes_per_round: int = Field(default=1024, gt=0, description="bytes of its row one reduction CTA "
                                           "(a norm) loads per dependent round: threads x vector width")
    reduction_extra_rounds: int = Field(default=2, ge=0, description="rounds a row reduction pays after its "
                                        "reduction loop (the block-wide statistic, then scale/shift and store)")
    reduction_ctas_per_sm: int = Field(default=8, gt=0, description="row-reduction CTAs resident on one SM")
    eager_dispatch_extra_s: dict[str, float] = Field(
        default_factory=dict, description="extra eager host time per op kind over framework.eager_dispatch_s")
