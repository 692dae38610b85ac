"""The inference scenario: how many sequences, how long, in which number formats."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llmsim.config.base import DType, Spec


class Scenario(Spec):
    """One generation request shape.

    ``prompt`` tokens are processed in the prefill step (for encoder-decoder models they are
    the encoder input and the decoder starts from one token); ``gen`` tokens are generated:
    the first by prefill, the remaining ``gen - 1`` by decode steps. ``mode`` is the
    execution mode of framework-hosted devices: ``eager`` pays a host dispatch cost per
    kernel, ``graph`` replays a captured graph (CUDA graphs).

    Quantisation (:mod:`llmsim.config.quant` names the usual combinations): GEMM weights are
    stored in ``weight_dtype``; below 16 bits each group of ``group_size`` weights along K
    (0: each output column) carries a ``scale_dtype`` scale and, with ``zero_point``, a zero
    point in ``weight_dtype``. ``gemm_dtype`` is what the GEMM inputs are quantised to before
    a weighted matmul (W8A8: int8, FP8: fp8; None: ``act_dtype``, so W4A16 / W8A16 dequantise
    the weights and multiply at the activation dtype's rate). Norm scales and embedding tables
    of a quantised model stay at ``act_dtype``.
    """

    batch: int = Field(default=1, gt=0)
    prompt: int = Field(default=128, gt=0)
    gen: int = Field(default=32, gt=0)
    weight_dtype: DType = DType.fp16
    act_dtype: DType = DType.fp16
    kv_dtype: DType = DType.fp16
    gemm_dtype: DType | None = None
    group_size: int = Field(default=0, ge=0, description="weights per scale along K; 0: one scale per output column")
    scale_dtype: DType = DType.fp16
    zero_point: bool = False
    moe_skew: float = Field(default=0.0, ge=0, description="Zipf exponent of MoE expert popularity (0: uniform "
                            "routing); see llmsim.graph.moe")
    mode: Literal["graph", "eager"] = "graph"

    @model_validator(mode="after")
    def _formats(self) -> Scenario:
        if not self.scale_dtype.is_float:
            raise ValueError(f"scale_dtype must be a float format, got {self.scale_dtype.value}")
        if self.gemm_dtype is not None and self.gemm_dtype.bits < 8:
            raise ValueError(f"gemm_dtype {self.gemm_dtype.value}: GEMM inputs narrower than 8 bits are not modelled")
        return self

    @property
    def weights_quantised(self) -> bool:
        """GEMM weights below 16 bits carry scales (and zero points)."""
        return self.weight_dtype.bits < 16

    @property
    def matmul_dtype(self) -> DType:
        return self.gemm_dtype or self.act_dtype
