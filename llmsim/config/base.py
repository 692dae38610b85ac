"""Shared pydantic base and the data types every spec uses.

Every spec is frozen and refuses unknown keys (``extra="forbid"``), so a misspelled
YAML key fails with its path instead of being silently ignored. Field names carry
their unit (``clock_hz``, ``tRCD_cycles``, ``energy_pj_per_bit``); values inside are SI
unless the name says otherwise.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict


class Spec(BaseModel):
    """Base of all specs: frozen, strict about unknown keys, validated on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DType(str, Enum):
    """Numeric formats of weights, activations and the KV cache."""

    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    fp8 = "fp8"
    int8 = "int8"
    int4 = "int4"

    @property
    def bytes(self) -> float:
        """Storage size of one element in bytes (int4 packs two per byte)."""
        return _DTYPE_BYTES[self]

    @property
    def bits(self) -> int:
        return int(_DTYPE_BYTES[self] * 8)

    @property
    def is_float(self) -> bool:
        return self in (DType.fp32, DType.fp16, DType.bf16, DType.fp8)


_DTYPE_BYTES = {
    DType.fp32: 4.0,
    DType.fp16: 2.0,
    DType.bf16: 2.0,
    DType.fp8: 1.0,
    DType.int8: 1.0,
    DType.int4: 0.5,
}
