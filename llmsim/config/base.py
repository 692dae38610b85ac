"""Shared pydantic base and the data types every spec uses.

Every spec is frozen and refuses unknown keys (``extra="forbid"``), so a misspelled
YAML key fails with its path instead of being silently ignored. Field names carry
their unit (``clock_hz``, ``tRCD_cycles``, ``energy_pj_per_bit``); values inside are SI
unless the name says otherwise.
"""

from __future__ import annotations

import math
import re
from enum import Enum

from pydantic import BaseModel, ConfigDict, model_validator

#: Physical bounds by field name (a field's unit is in its name): (pattern, lowest, highest, why).
#: They refuse the impossible, not the unusual: the widest margin that still catches a typo
#: or an attack (``clock_hz: 1e300``, a negative energy). Checked for every field of every
#: spec, values inside mappings and lists included.
BOUNDS: tuple[tuple[str, float, float, str], ...] = (
    (r"_hz$", 0.0, 1e11, "clocks are positive and below 100 GHz"),
    (r"^tck_ns$", 1e-2, 1e6, "a command clock period lies between 10 ps (100 GHz) and 1 ms"),
    (r"(^|_)(energy|pj|mw|w|j|power)(_|$)", 0.0, 1e15, "energies and powers are >= 0"),
    (r"(?<!per)_s$", 0.0, 1e6, "durations are >= 0 and below 1e6 s"),
    (r"(^|_)layers$", 0, 4096, "the deepest published transformers have a few hundred layers; every layer adds "
                               "its ops to every step's graph"),
)
#: no number in a spec is larger than this (integers stay exact in float64; 2**53 ~ 9e15)
MAX_MAGNITUDE = 2.0**53


def _numbers(value: object, where: str):
    """(path, number) for every int/float inside ``value`` (not inside nested specs)."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{where}.{getattr(k, 'value', k)}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{where}[{i}]")


_RULES: dict[type, list[tuple[str, list[tuple[str, float, float, str]]]]] = {}


def _rules(cls: type) -> list[tuple[str, list[tuple[str, float, float, str]]]]:
    """(field name, the BOUNDS rules its name matches) for every field of ``cls``, computed once."""
    if cls not in _RULES:
        _RULES[cls] = [(name, [r for r in BOUNDS if re.search(r[0], name)]) for name in cls.model_fields]
    return _RULES[cls]


class Spec(BaseModel):
    """Base of all specs: frozen, strict about unknown keys, validated on assignment.

    Every number must be finite (``allow_inf_nan=False``), at most :data:`MAX_MAGNITUDE`,
    and inside the :data:`BOUNDS` its field name's unit implies.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _physically_bounded(self):
        for name, rules in _rules(type(self)):
            for where, v in _numbers(getattr(self, name), name):
                if not math.isfinite(v):
                    raise ValueError(f"{where} must be a finite number, got {v}")
                if abs(v) > MAX_MAGNITUDE:
                    raise ValueError(f"{where} = {v:g} is beyond any physical size (> {MAX_MAGNITUDE:g})")
                for _, lo, hi, why in rules:
                    if not lo <= v <= hi:
                        raise ValueError(f"{where} = {v:g} is out of range [{lo:g}, {hi:g}]: {why}")
        return self


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
