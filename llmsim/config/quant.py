"""``--quant`` presets: the usual quantisation schemes as deltas of :class:`Scenario` fields.

Each scheme sets the GEMM weight format, the format GEMM inputs are quantised to and the
weight scales' granularity; ``--set scenario.*`` then overrides any single part.

* ``w16a16``: no quantisation (the fp16 baseline).
* ``w8a16``: int8 weights, one fp16 scale per output column, dequantised to fp16 in the GEMM
  (LLM.int8()-style weight-only; FineQuant, arXiv 2308.09723).
* ``w4a16``: int4 weights, groups of 128 along K with an fp16 scale and an int4 zero point each
  (GPTQ arXiv 2210.17323 / AWQ arXiv 2306.00978 defaults), dequantised to fp16 in the GEMM.
* ``w8a8``: int8 weights (per column) and int8 activations (per token), int8 tensor-core GEMMs
  (SmoothQuant, arXiv 2211.10438).
* ``fp8``: fp8 (E4M3) weights and activations, fp8 tensor-core GEMMs (per-column weight scales).
"""

from __future__ import annotations

from typing import Any

from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.errors import ConfigError

QUANT_PRESETS: dict[str, dict[str, Any]] = {
    "w16a16": {"weight_dtype": "fp16", "gemm_dtype": None, "group_size": 0, "zero_point": False},
    "w8a16": {"weight_dtype": "int8", "gemm_dtype": None, "group_size": 0, "zero_point": False},
    "w4a16": {"weight_dtype": "int4", "gemm_dtype": None, "group_size": 128, "zero_point": True},
    "w8a8": {"weight_dtype": "int8", "gemm_dtype": "int8", "group_size": 0, "zero_point": False},
    "fp8": {"weight_dtype": "fp8", "gemm_dtype": "fp8", "group_size": 0, "zero_point": False},
}


def stored_weight_bytes(model: ModelSpec, sc: Scenario) -> float:
    """Bytes the model's weights occupy: GEMM weights with their scales and zero points; biases,
    embedding tables and norm scales at the activation dtype when the GEMM weights are quantised."""
    if not sc.weights_quantised:
        return model.parameter_count() * sc.weight_dtype.bytes
    per_scale = sc.scale_dtype.bytes + (sc.weight_dtype.bytes if sc.zero_point else 0.0)
    g = sc.group_size
    gemm = scales = 0.0
    for K, N, count in model.gemm_shapes():
        gemm += count * K * N
        scales += count * N * (-(-K // g) if g else 1)
    return gemm * sc.weight_dtype.bytes + scales * per_scale + (model.parameter_count() - gemm) * sc.act_dtype.bytes


def quant_fields(name: str) -> dict[str, Any]:
    """Scenario fields of ``--quant NAME``."""
    try:
        return dict(QUANT_PRESETS[name])
    except KeyError:
        raise ConfigError(f"--quant '{name}': one of {', '.join(QUANT_PRESETS)}") from None
