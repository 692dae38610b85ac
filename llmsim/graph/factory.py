"""Constructors of ops: the one place where FLOPs and bytes of each kind are counted.

Both the lowering and ``llmsim op`` build ops through these functions, so a single-op
simulation and the same op inside a model graph are costed identically.
"""

from __future__ import annotations

from llmsim.config.base import DType
from llmsim.errors import ConfigError
from llmsim.graph.ops import FLOPS_PER_ELEMENT, Op, OpKind, TensorBytes


def matmul(
    name: str, M: int, K: int, N: int, *, dtype: DType, weight_dtype: DType | None = None,
    bias: bool = False, experts: int = 1, weighted: bool = True, weights: tuple[str, ...] = (),
    group_size: int = 0, scale_dtype: DType | None = None, zero_point: bool = False, out_dtype: DType | None = None,
    expert_rows: int | None = None, **meta,
) -> Op:
    """(M × K) · (K × N). ``weighted``: the right operand is a stored weight (read from memory
    once per call); otherwise both operands are activations. ``experts``: MoE weight sets
    touched (each K × N); the M rows are spread over them, the busiest expert getting
    ``expert_rows`` (default: an even share) — where experts run side by side, it sets the time.

    Quantised weights (``scale_dtype`` given): every ``group_size`` weights along K (0: every
    column) carry a ``scale_dtype`` scale and, with ``zero_point``, a zero point in the weight
    format; their bytes are read with the weights. ``out_dtype`` (default ``dtype``): the
    format of the output and the bias when the inputs were quantised to ``dtype`` (W8A8)."""
    wdt = weight_dtype or dtype
    odt = out_dtype or dtype
    quant = weighted and scale_dtype is not None
    b_dt = odt if quant else wdt
    w_bytes = experts * K * N * wdt.bytes + (experts * N * b_dt.bytes if bias else 0.0)
    extra: tuple = ()
    if quant:
        groups = experts * N * (-(-K // group_size) if group_size else 1)
        w_bytes += groups * (scale_dtype.bytes + (wdt.bytes if zero_point else 0.0))
        extra = (("group_size", group_size), ("scale_dtype", scale_dtype), ("zero_point", zero_point))
    if odt != dtype:
        extra += (("out_dtype", odt),)
    if expert_rows is not None:
        if not 0 < expert_rows <= M:
            raise ConfigError(f"op {name}: expert_rows ({expert_rows}) must be in 1..M ({M})")
        extra += (("expert_rows", expert_rows),)
    if weighted:
        rd = TensorBytes(weight=w_bytes, activation=M * K * dtype.bytes)
    else:
        rd = TensorBytes(activation=(M * K + experts * K * N) * dtype.bytes)
    flops = 2.0 * M * K * N + (M * N if bias else 0)
    return Op(
        name, OpKind.matmul, (("M", M), ("K", K), ("N", N), ("experts", experts)), dtype, flops, rd,
        TensorBytes(activation=M * N * odt.bytes), weight_dtype=wdt if weighted else None,
        attrs=(("bias", bias), ("weighted", weighted), ("weights", weights)) + extra, **meta,
    )


def causal_pairs(Sq: int, Skv: int) -> int:
    """(query, key) pairs a causal attention evaluates: query i of Sq sees Skv − Sq + i + 1 keys."""
    past = Skv - Sq
    return Sq * past + Sq * (Sq + 1) // 2


def windowed_pairs(Sq: int, Skv: int, window: int) -> int:
    """Causal pairs when each query sees at most ``window`` keys (itself included): query i of Sq
    sees min(Skv − Sq + i + 1, window) keys (sliding-window attention, Mistral)."""
    a, b = Skv - Sq + 1, Skv  # keys seen by the first and the last query without a window
    lo_end = min(b, window)
    below = (a + lo_end) * (lo_end - a + 1) // 2 if lo_end >= a else 0
    hi_start = max(a, window + 1)
    return below + (window * (b - hi_start + 1) if b >= hi_start else 0)


def attention(
    name: str, B: int, H: int, Hkv: int, Sq: int, Skv: int, D: int, *, dtype: DType, kv_dtype: DType | None = None,
    causal: bool = True, window: int | None = None, **meta,
) -> Op:
    """Scaled-dot-product attention of B × H heads: scores Q·Kᵀ, softmax, context P·V.

    K and V (``Skv`` positions of ``Hkv`` heads) are read from the KV cache. The fused node
    carries the counts of all three parts (attrs ``pairs``, ``score_flops``). ``window``
    (sliding-window attention): each query sees at most that many keys, so only the last
    ``window + Sq − 1`` cached positions are read and ``Skv`` is clipped to them."""
    if Skv < Sq and causal:
        raise ConfigError(f"op {name}: causal attention needs Skv ({Skv}) >= Sq ({Sq})")
    if window is not None and not causal:
        raise ConfigError(f"op {name}: a sliding window needs causal attention")
    kvdt = kv_dtype or dtype
    pairs = causal_pairs(Sq, Skv) if causal else Sq * Skv
    extra: tuple = ()
    if window is not None:
        if window < 1:
            raise ConfigError(f"op {name}: sliding window must be >= 1, got {window}")
        pairs = windowed_pairs(Sq, Skv, window)
        Skv = min(Skv, window + Sq - 1)
        extra = (("window", window),)
    bh_pairs = B * H * pairs
    flops = 4.0 * bh_pairs * D + FLOPS_PER_ELEMENT["softmax"] * bh_pairs
    rd = TensorBytes(activation=B * Sq * H * D * dtype.bytes, kv=2.0 * B * Skv * Hkv * D * kvdt.bytes)
    return Op(
        name, OpKind.attention, (("B", B), ("H", H), ("Hkv", Hkv), ("Sq", Sq), ("Skv", Skv), ("D", D)), dtype,
        flops, rd, TensorBytes(activation=B * Sq * H * D * dtype.bytes), kv_dtype=kvdt,
        attrs=(("causal", causal), ("pairs", pairs), ("score_flops", 2.0 * bh_pairs * D)) + extra, **meta,
    )


def attention_varlen(
    name: str, seqs: list[tuple[int, int]], H: int, Hkv: int, D: int, *, dtype: DType, kv_dtype: DType | None = None,
    window: int | None = None, **meta,
) -> Op:
    """Causal attention over sequences of different lengths in one kernel (variable-length
    attention: FlashAttention's varlen API, ByteTransformer). ``seqs``: (Sq, Skv) per sequence.

    FLOPs, pairs and bytes are the exact sums over the sequences; the shape is B = number of
    sequences, Sq and Skv the longest, and attr ``varlen`` lists every (Sq, Skv) (after the
    window) for devices that map sequence by sequence. ``pairs`` is the mean per sequence."""
    parts = [attention(name, 1, H, Hkv, sq, skv, D, dtype=dtype, kv_dtype=kv_dtype, window=window) for sq, skv in seqs]
    B = len(parts)
    pairs = sum(p.attr("pairs") for p in parts)
    kvdt = kv_dtype or dtype
    read = sum((p.read for p in parts), TensorBytes())
    write = sum((p.write for p in parts), TensorBytes())
    shape = (("B", B), ("H", H), ("Hkv", Hkv), ("Sq", max(p.dim("Sq") for p in parts)),
             ("Skv", max(p.dim("Skv") for p in parts)), ("D", D))
    varlen = tuple(sorted((p.dim("Sq"), p.dim("Skv")) for p in parts))
    extra = (("window", window),) if window is not None else ()
    return Op(
        name, OpKind.attention, shape, dtype, sum(p.flops for p in parts), read, write, kv_dtype=kvdt,
        attrs=(("causal", True), ("pairs", pairs / B), ("score_flops", sum(p.attr("score_flops") for p in parts)),
               ("varlen", varlen)) + extra, **meta,
    )


def kv_write(name: str, rows: int, width: int, *, dtype: DType, kv_dtype: DType | None = None, **meta) -> Op:
    """Store K and V (``rows`` tokens × ``width`` each) into the cache."""
    kvdt = kv_dtype or dtype
    return Op(
        name, OpKind.kv_write, (("rows", rows), ("width", width)), dtype, 0.0,
        TensorBytes(activation=2.0 * rows * width * dtype.bytes), TensorBytes(kv=2.0 * rows * width * kvdt.bytes),
        kv_dtype=kvdt, **meta,
    )


def norm(name: str, rows: int, width: int, fn: str, *, dtype: DType, weight_dtype: DType | None = None,
         weights: tuple[str, ...] = (), **meta) -> Op:
    if fn not in ("layernorm", "rmsnorm"):
        raise ConfigError(f"op {name}: unknown norm '{fn}'")
    wdt = weight_dtype or dtype
    n_par = (2 if fn == "layernorm" else 1) * width
    return Op(
        name, OpKind.norm, (("rows", rows), ("width", width)), dtype, FLOPS_PER_ELEMENT[fn] * rows * width,
        TensorBytes(weight=n_par * wdt.bytes, activation=rows * width * dtype.bytes),
        TensorBytes(activation=rows * width * dtype.bytes), weight_dtype=wdt,
        attrs=(("fn", fn), ("weights", weights)), **meta,
    )


def activation(name: str, rows: int, width: int, fn: str, *, dtype: DType, **meta) -> Op:
    """Pointwise non-linearity; gated forms (``silu_mul``, ``gelu_mul``) read two inputs. Row-wise:
    ``softmax`` over each row, ``max`` one arg-max pass over each row (a top-k router runs k)."""
    if fn not in ("gelu", "relu", "silu", "silu_mul", "gelu_mul", "softmax", "max"):
        raise ConfigError(f"op {name}: unknown activation '{fn}'")
    n_in = 2 if fn.endswith("_mul") else 1
    e = rows * width
    return Op(
        name, OpKind.activation, (("rows", rows), ("width", width)), dtype, FLOPS_PER_ELEMENT[fn] * e,
        TensorBytes(activation=n_in * e * dtype.bytes), TensorBytes(activation=e * dtype.bytes),
        attrs=(("fn", fn),), **meta,
    )


def elementwise(name: str, rows: int, width: int, fn: str = "add", *, dtype: DType, **meta) -> Op:
    """Residual add (two inputs) or RoPE (rotate q and k in place: ``width`` = q + k width)."""
    if fn not in ("add", "rope"):
        raise ConfigError(f"op {name}: unknown elementwise '{fn}'")
    e = rows * width
    n_in = 2 if fn == "add" else 1
    return Op(
        name, OpKind.elementwise, (("rows", rows), ("width", width)), dtype, FLOPS_PER_ELEMENT[fn] * e,
        TensorBytes(activation=n_in * e * dtype.bytes), TensorBytes(activation=e * dtype.bytes),
        attrs=(("fn", fn),), **meta,
    )


def embedding(name: str, rows: int, width: int, *, n_tables: int = 1, dtype: DType,
              weight_dtype: DType | None = None, weights: tuple[str, ...] = (), **meta) -> Op:
    """Gather ``rows`` rows of each of ``n_tables`` tables (token, position) and sum them."""
    wdt = weight_dtype or dtype
    return Op(
        name, OpKind.embedding, (("rows", rows), ("width", width)), dtype, (n_tables - 1) * rows * width,
        TensorBytes(weight=n_tables * rows * width * wdt.bytes), TensorBytes(activation=rows * width * dtype.bytes),
        weight_dtype=wdt, attrs=(("tables", n_tables), ("weights", weights),
                                 ("fn", "tokens" if n_tables == 1 else "tokens+positions")), **meta,
    )


def parse_shape(text: str) -> list[int]:
    try:
        dims = [int(x) for x in text.replace("x", ",").split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--shape '{text}': expected comma-separated integers") from None
    if not dims or any(d <= 0 for d in dims):
        raise ConfigError(f"--shape '{text}': dimensions must be positive integers")
    return dims


SHAPE_HELP = {
    "matmul": "M,K,N",
    "attention": "B,H,Sq,Skv,D[,Hkv]",
    "norm": "rows,width",
    "activation": "rows,width",
    "elementwise": "rows,width",
    "embedding": "rows,width",
    "kv_write": "rows,width",
}


def single_op(kind: str, dims: list[int], dtype: DType, fn: str | None = None) -> Op:
    """The op ``llmsim op --kind KIND --shape ...`` simulates."""
    need = len(SHAPE_HELP.get(kind, "").split("[")[0].strip(",").split(","))
    if kind not in SHAPE_HELP:
        raise ConfigError(f"--kind '{kind}': one of {', '.join(SHAPE_HELP)}")
    if len(dims) < need:
        raise ConfigError(f"--shape for {kind} is {SHAPE_HELP[kind]}, got {len(dims)} numbers")
    if kind == "matmul":
        return matmul("op", *dims[:3], dtype=dtype)
    if kind == "attention":
        B, H, Sq, Skv, D = dims[:5]
        Hkv = dims[5] if len(dims) > 5 else H
        return attention("op", B, H, Hkv, Sq, Skv, D, dtype=dtype, causal=Sq > 1)
    rows, width = dims[:2]
    if kind == "norm":
        return norm("op", rows, width, fn or "layernorm", dtype=dtype)
    if kind == "activation":
        return activation("op", rows, width, fn or "gelu", dtype=dtype)
    if kind == "elementwise":
        return elementwise("op", rows, width, fn or "add", dtype=dtype)
    if kind == "embedding":
        return embedding("op", rows, width, dtype=dtype)
    return kv_write("op", rows, width, dtype=dtype)
