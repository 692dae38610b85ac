"""Map profiler names (CUDA kernel names and ATen ops) to llmsim op kinds.

The first pattern that matches wins; the order puts the specific before the generic
(``flash_fwd_splitkv_kernel`` is attention, not a generic kernel; ``layer_norm`` is a norm,
not an elementwise op). Names that launch no real work (views, reshapes) map to None.
"""

from __future__ import annotations

import re

_RULES: list[tuple[str, str]] = [
    (r"flash|fmha|attention|sdpa|softmax|_efficient_attention|bmm", "attention"),
    (r"gemm|gemv|cutlass|xmma|sm\d+_|cublas|addmm|aten::mm\b|aten::linear|aten::matmul|splitk|reduce_kernel.*gemm",
     "matmul"),
    (r"layer_norm|layernorm|rms_norm|rmsnorm|native_layer_norm", "norm"),
    (r"gelu|silu|relu|tanh|sigmoid|activation", "activation"),
    (r"embedding|index_select|indexselect|gather", "embedding"),
    (r"index_put|index_copy|copy_|copy_kernel|slice_scatter|direct_copy", "kv_write"),
    (r"add|mul|sub|div|cat|neg|elementwise|vectorized|unrolled|cos|sin|pow|rsqrt|mean", "elementwise"),
]
_COMPILED = [(re.compile(p, re.IGNORECASE), k) for p, k in _RULES]
_VIEWS = re.compile(r"^aten::(view|reshape|_reshape_alias|transpose|split|split_with_sizes|slice|select|t|expand|"
                    r"as_strided|unsqueeze|squeeze|alias|chunk|unflatten|permute|_unsafe_view|detach|"
                    r"resolve_conj|resolve_neg|empty|empty_strided|empty_like|result_type|lift_fresh)$")
_IGNORE = re.compile(r"^aten::(view|reshape|transpose|split|split_with_sizes|slice|select|t|expand|as_strided|"
                     r"unsqueeze|squeeze|contiguous|empty|empty_like|zeros|detach|to|_to_copy|arange|resolve_conj|"
                     r"alias|chunk|unflatten|permute|clone|_unsafe_view|lift_fresh|scalar_tensor|item|"
                     r"_local_scalar_dense|result_type|fill_|zero_|normal_|random_)$")


def is_view_op(name: str) -> bool:
    """ATen ops that only make a view or bookkeeping on the host (no kernel of their own)."""
    return bool(_VIEWS.match(name))


def op_class(name: str) -> str | None:
    """The llmsim op kind a profiler event belongs to, or None for bookkeeping ops."""
    if _IGNORE.match(name):
        return None
    for pat, kind in _COMPILED:
        if pat.search(name):
            return kind
    return "elementwise" if "kernel" in name.lower() else None
