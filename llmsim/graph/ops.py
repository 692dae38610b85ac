"""The op vocabulary: a small fixed set of kinds and frozen op records.

An :class:`Op` says *what* is computed — kind, named shape, dtypes, FLOPs and bytes read
and written by tensor class — never *where* or *how fast*. Devices read ops; they never
mutate them (analyses annotate the graph instead, as torch.fx passes write ``node.meta``).

FLOP conventions (per element where not a matmul): a multiply-accumulate is 2 FLOPs;
softmax 5 (max, subtract, exp, sum, divide); LayerNorm 7, RMSNorm 4; GELU (tanh form) 8,
ReLU 1, SiLU 5, a max-reduction pass 1, SiLU·mul and GELU·mul (gated FFNs) 6; a residual add 1;
RoPE 3 per element of q and k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from llmsim.config.base import DType


class OpKind(str, Enum):
    embedding = "embedding"
    norm = "norm"
    matmul = "matmul"
    attention = "attention"
    activation = "activation"
    elementwise = "elementwise"
    kv_write = "kv_write"
    collective = "collective"  # data over links between devices (llmsim.system); no device costs it


class TensorClass(str, Enum):
    weight = "weight"
    activation = "activation"
    kv = "kv"


@dataclass(frozen=True, slots=True)
class TensorBytes:
    """Bytes by tensor class."""

    weight: float = 0.0
    activation: float = 0.0
    kv: float = 0.0

    @property
    def total(self) -> float:
        return self.weight + self.activation + self.kv

    def __add__(self, o: TensorBytes) -> TensorBytes:
        return TensorBytes(self.weight + o.weight, self.activation + o.activation, self.kv + o.kv)

    def as_dict(self) -> dict[str, float]:
        return {"weight": self.weight, "activation": self.activation, "kv": self.kv}


FLOPS_PER_ELEMENT = {
    "softmax": 5,
    "layernorm": 7,
    "rmsnorm": 4,
    "gelu": 8,
    "relu": 1,
    "silu_mul": 6,
    "silu": 5,
    "max": 1,
    "gelu_mul": 6,
    "add": 1,
    "rope": 3,
}


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a phase step.

    ``shape`` is an ordered tuple of (dimension name, size):
      matmul: M, K, N, experts (weights K×N per expert; ``weighted`` attr False for act×act)
      attention: B, H, Hkv, Sq, Skv, D (Skv = keys seen by the last query)
      norm / activation / elementwise / embedding / kv_write: rows, width
    ``attrs`` holds small extra facts (``fn``, ``causal``, ``pairs``, ``weights``: names of
    the weight tensors read).
    """

    name: str
    kind: OpKind
    shape: tuple[tuple[str, int], ...]
    dtype: DType
    flops: float
    read: TensorBytes
    write: TensorBytes
    weight_dtype: DType | None = None
    kv_dtype: DType | None = None
    layer: int = -1
    stack: str = ""
    attrs: tuple[tuple[str, Any], ...] = field(default=())
    _sig: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        attrs = tuple((k, v) for k, v in self.attrs if k != "weights")
        object.__setattr__(self, "_sig", (self.kind, self.shape, self.dtype, self.weight_dtype, self.kv_dtype, attrs))

    def dim(self, key: str) -> int:
        for k, v in self.shape:
            if k == key:
                return v
        raise KeyError(f"op {self.name} ({self.kind.value}) has no dimension '{key}'")

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def bytes_total(self) -> float:
        return self.read.total + self.write.total

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte moved."""
        return self.flops / self.bytes_total if self.bytes_total else float("inf")

    @property
    def signature(self) -> tuple:
        """Everything that determines cost, nothing that names the op (for the cost cache)."""
        return self._sig

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "shape": dict(self.shape),
            "dtype": self.dtype.value,
            "flops": self.flops,
            "read": self.read.as_dict(),
            "write": self.write.as_dict(),
            "layer": self.layer,
            "stack": self.stack,
        }
