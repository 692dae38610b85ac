"""Quantisation work inside an op, costed on the unit that does it.

* **Weight dequantisation** (W4A16, W8A16): a weighted GEMM whose weights are stored narrower
  than its inputs converts every weight element it reads to the input format — convert,
  scale, and subtract the zero point when there is one — then multiplies at the input
  dtype's rate. Fused kernels (Marlin, FineQuant, arXiv 2308.09723) do this in registers as
  weight tiles arrive, so each stored weight is dequantised once per GEMM call.
* **Activation quantisation** (W8A8, FP8): the GEMM input is quantised from the activation
  format (|x| max, scale, round) and the int32/fp32 accumulator scaled back (two scales per
  output element).
* **KV cache** in int8/fp8: K and V are dequantised as attention reads them and quantised as
  they are written.

A device kind says, per compute unit, which of its units does that work
(``Device.dequant_unit``); the work runs at that unit's rate in the op's activation format.
When it is another unit than the op's own it overlaps the op inside the fused kernel (the
op takes the longer of the two); on the same unit it adds. A unit with no dequantiser
(``None``: PIM bank MACs read operands in place from the DRAM rows) refuses the op.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from llmsim.config.base import DType
from llmsim.errors import UnsupportedOpError
from llmsim.graph.ops import Op, OpKind

if TYPE_CHECKING:
    from llmsim.devices.base import Cost, Device

QUANTISE_FLOPS = 3  # per element: |x| running max, multiply by 1/scale, round-and-convert
RESCALE_FLOPS = 2  # per GEMM output of quantised inputs: × activation scale, × weight scale


def dequant_flops_per_weight(op: Op) -> int:
    """Per stored weight: convert (+ scale when it carries scales, + zero point subtract)."""
    if op.attr("scale_dtype") is None:
        return 1
    return 2 + (1 if op.attr("zero_point") else 0)


def quant_work(op: Op) -> tuple[float, DType]:
    """(FLOPs of (de)quantisation the op needs, the dtype they compute in)."""
    if op.kind is OpKind.matmul and op.attr("weighted", True):
        out = op.attr("out_dtype") or op.dtype
        flops = 0.0
        M, K, N, E = (op.dim(d) for d in ("M", "K", "N", "experts"))
        if op.weight_dtype is not None and op.weight_dtype != op.dtype:
            flops += E * K * N * dequant_flops_per_weight(op)
        if out != op.dtype:  # inputs quantised from ``out``; outputs rescaled back to it
            flops += M * K * QUANTISE_FLOPS + M * N * RESCALE_FLOPS
        return flops, out
    if op.kind is OpKind.attention and op.kv_dtype not in (None, op.dtype):
        return op.read.kv / op.kv_dtype.bytes * 2, op.dtype  # convert + scale per K/V element read
    if op.kind is OpKind.kv_write and op.kv_dtype not in (None, op.dtype):
        return op.write.kv / op.kv_dtype.bytes * QUANTISE_FLOPS, op.dtype
    return 0.0, op.dtype


def quant_plan(dev: Device, op: Op) -> tuple[float, DType, str] | None:
    """(FLOPs, dtype, unit) of the op's (de)quantisation on ``dev``; None when it has none.
    Refuses (one line, with the reason) when no unit of the device can do it."""
    flops, dt = quant_work(op)
    if flops <= 0:
        return None
    own = dev.compute_unit_for(op)
    unit = dev.dequant_unit.get(own)
    name = dev.spec.name
    if unit is None:
        raise UnsupportedOpError(
            f"op {op.name} ({op.kind.value}): {name} cannot (de)quantise {_formats(op)}: its '{own}' unit reads "
            "operands in place and no unit sits in its data path to convert them")
    if dev.spec.compute_units()[unit].peak_flops_per_s(dt) <= 0:
        raise UnsupportedOpError(f"op {op.name} ({op.kind.value}): {name} cannot (de)quantise {_formats(op)}: "
                                 f"its '{unit}' unit has no {dt.value} path")
    return flops, dt, unit


def add_quant_work(dev: Device, op: Op, c: Cost, plan: tuple[float, DType, str] | None) -> Cost:
    """``c`` with the op's (de)quantisation work (:func:`quant_plan`) on the device's dequantising unit."""
    if plan is None:
        return c
    flops, dt, unit = plan
    own = dev.compute_unit_for(op)
    cu = dev.spec.compute_units()[unit]
    peak = cu.peak_flops_per_s(dt)
    t = flops / peak
    old = c.device_seconds
    new = max(old, t) if unit != own else old + t
    phases = list(c.phases)
    last = max(i for i, p in enumerate(phases) if not p.issue)
    phases[last] = replace(phases[last], seconds=phases[last].seconds + new - old)
    energy = dict(c.energy_j)
    energy["compute"] = energy.get("compute", 0.0) + flops * cu.energy_per_flop_j(dt)
    clk = cu.clock_hz
    return replace(c, seconds=c.seconds + new - old, cycles=c.cycles + (new - old) * clk, phases=tuple(phases),
                   energy_j=energy, stats=c.stats | {"quant_flops": flops, "quant_s": t})


def _formats(op: Op) -> str:
    if op.kind is OpKind.matmul:
        w = op.weight_dtype.value if op.weight_dtype else op.dtype.value
        return f"{w} weights for {op.dtype.value} GEMMs"
    return f"a {op.kv_dtype.value} KV cache for {op.dtype.value} attention"


def refuse_unsupported(dev: Device, graph) -> None:
    """Cost every distinct op of ``graph``; refuse in one line naming each op kind (and function)
    the device cannot run in the scenario's formats, with the reason, instead of the first one."""
    problems: dict[str, str] = {}
    seen: set[tuple] = set()
    for v in graph:
        op: Op = graph.nodes[v]["op"]
        if op.signature in seen:
            continue
        seen.add(op.signature)
        try:
            dev.cost(op)
        except UnsupportedOpError as e:
            what = op.kind.value + (f" ({op.attr('fn')})" if op.attr("fn") else "")
            problems.setdefault(what, str(e).split(": ", 1)[-1] if ": " in str(e) else str(e))
    if problems:
        listed = "; ".join(f"{k}: {v}" for k, v in problems.items())
        hint = ""
        if any(k.split(" ")[0] != "matmul" for k in problems):
            hint = " (--quant w8a16, w4a16, w8a8 or fp8 quantise the GEMMs and keep the other ops in 16 bits)"
        raise UnsupportedOpError(f"{dev.spec.name} cannot run {len(problems)} op kind(s) in these formats: "
                                 f"{listed}{hint}")
