"""GPU kernel latency chain, graph gaps and eager host costs: the laws, the H200 delta preset and the
H100 development set (``shared/data/h100_gpt2_dev.json``, copied to ``benchmarks/data/``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsim.config.base import DType
from llmsim.config.hardware import GpuSpec
from llmsim.config.loader import load_hardware, load_model
from llmsim.devices.base import build_device
from llmsim.graph import factory as f

H100 = load_hardware("h100")
DEV_SET = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "h100_gpt2_dev.json"
FP16 = DType.fp16


def _with(spec: GpuSpec, **paths: float) -> GpuSpec:
    d = spec.model_dump()
    for path, v in paths.items():
        node = d
        *head, last = path.split("__")
        for k in head:
            node = node[k]
        node[last] = v
    return GpuSpec.model_validate(d)


OPS = [
    f.matmul("gemv", 1, 1600, 4800, dtype=FP16, weighted=True, bias=True),
    f.matmul("gemm", 512, 1600, 6400, dtype=FP16, weighted=True),
    f.matmul("skinny", 8, 6400, 1600, dtype=FP16, weighted=True),
    f.norm("ln1", 1, 1600, "layernorm", dtype=FP16),
    f.norm("ln4k", 4096, 1024, "layernorm", dtype=FP16),
    f.elementwise("add", 1, 1600, "add", dtype=FP16),
    f.activation("gelu", 512, 6400, "gelu", dtype=FP16),
    f.attention("dec", 1, 25, 25, 1, 1024, 64, dtype=FP16, causal=True),
    f.attention("pre", 1, 12, 12, 1024, 1024, 64, dtype=FP16, causal=True),
]


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(OPS), field=st.sampled_from(["kernels__launch_latency_s", "kernels__memory_latency_s",
                                                       "framework__kernel_overhead_s"]),
       k=st.sampled_from([1.5, 2.0, 4.0]))
def test_longer_latencies_never_make_an_op_faster(op, field, k):
    """Latency fields are costs: raising one never shortens an op (the converse of the resource laws)."""
    head, last = field.split("__")
    base = getattr(getattr(H100, head), last)
    fast = build_device(H100, fidelity="cycle").cost(op).seconds
    slow = build_device(_with(H100, **{field: base * k}), fidelity="cycle").cost(op).seconds
    assert slow >= fast * (1 - 1e-12)


@pytest.mark.parametrize("field", ["gemm_latency_rounds", "pointwise_latency_rounds", "reduction_extra_rounds"])
def test_one_more_dependent_round_never_makes_an_op_faster(field):
    base = build_device(H100, fidelity="cycle")
    more = build_device(_with(H100, **{f"kernels__{field}": getattr(H100.kernels, field) + 1}), fidelity="cycle")
    for op in OPS:
        assert more.cost(op).seconds >= base.cost(op).seconds * (1 - 1e-12), op.name


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_more_resident_reduction_ctas_or_wider_rounds_never_slower(op):
    """More row-reduction CTAs per SM and more bytes per dependent round are resources."""
    dev = build_device(H100, fidelity="cycle")
    more = build_device(_with(H100, kernels__reduction_ctas_per_sm=2 * H100.kernels.reduction_ctas_per_sm,
                              kernels__reduction_bytes_per_round=2 * H100.kernels.reduction_bytes_per_round))
    assert more.cycle_cost(op).seconds <= dev.cycle_cost(op).seconds * (1 + 1e-12)


def test_one_row_layernorm_is_a_latency_chain_of_row_rounds():
    """A one-CTA LayerNorm costs launch + (⌈row bytes / bytes per round⌉ + extra rounds) × memory latency
    (plus its tiny streaming time): the step lands exactly one round past a multiple of the round size."""
    ks = H100.kernels
    dev = build_device(H100, fidelity="cycle")
    per_round = ks.reduction_bytes_per_round // FP16.bytes
    t = {w: dev.cycle_cost(f.norm("n", 1, w, "layernorm", dtype=FP16)).seconds for w in (per_round, per_round + 1)}
    assert t[per_round + 1] - t[per_round] == pytest.approx(ks.memory_latency_s, rel=0.05)
    chain = ks.launch_latency_s + (1 + ks.reduction_extra_rounds) * ks.memory_latency_s
    assert chain <= t[per_round] <= chain * 1.05


def test_split_k_pays_a_second_kernel():
    """A split-K GEMM's partials are reduced by a dependent kernel: its gap and latency are in the time."""
    dev = build_device(H100, fidelity="cycle")
    op = f.matmul("down", 32, 6400, 1600, dtype=FP16, weighted=True)
    c = dev.cycle_cost(op)
    if c.stats.get("split_k", 1) > 1:
        ks = H100.kernels
        assert c.seconds >= (2 * ks.launch_latency_s + H100.framework.kernel_overhead_s
                             + (ks.gemm_latency_rounds + ks.pointwise_latency_rounds) * ks.memory_latency_s)
    nosplit = build_device(_with(H100, kernels__split_k_max=1), fidelity="cycle").cycle_cost(op)
    assert c.seconds <= nosplit.seconds  # the library still picks the cheaper mapping


def test_eager_python_per_call_cost_counts_every_call_and_only_in_eager():
    fw = H100.framework
    op = f.attention("a", 1, 12, 12, 1, 128, 64, dtype=FP16, causal=True)
    calls = fw.calls("attention")
    extra = 3e-6
    spec = _with(H100, framework__eager_python_call_s=fw.eager_python_call_s + extra)
    for mode, want in (("eager", (calls.kernels + calls.host_calls) * extra), ("graph", 0.0)):
        base = build_device(H100, mode=mode).host_seconds(op)
        assert build_device(spec, mode=mode).host_seconds(op) - base == pytest.approx(want, abs=1e-15)


def test_h200_changes_only_the_datasheet_memory():
    h200 = load_hardware("h200")
    assert h200.memory.peak_bandwidth_bytes_per_s == pytest.approx(4.8e12, rel=0.01)
    assert h200.memory.capacity_bytes == pytest.approx(141e9, rel=0.01)
    for field in ("tensor", "vector", "kernels", "framework", "onchip", "memory_efficiency", "static_power_w"):
        assert getattr(h200, field) == getattr(H100, field), field
    decode = f.matmul("gemv", 1, 4096, 4096, dtype=FP16, weighted=True)
    assert build_device(h200).cost(decode).seconds < build_device(H100).cost(decode).seconds


def test_graph_step_is_the_sum_of_its_ops_device_time():
    """The development-set scorer's fast path equals the event engine in CUDA-graph mode."""
    from llmsim.calibrate.gpu_devset import case_ops, graph_step_seconds, predict_case

    model = load_model("gpt2")
    for case in ({"phase": "decode", "batch": 2, "context": 64}, {"phase": "prefill", "batch": 1, "seq": 32}):
        engine = predict_case(H100, model, case, "graph")["seconds"]
        dev = build_device(H100, mode="graph")
        assert graph_step_seconds(dev, case_ops(model, case)) == pytest.approx(engine, rel=1e-9)


def test_h100_development_set_graph_mape_within_10_percent_per_phase():
    """The H100 preset against 32 measured CUDA-graph GPT-2 steps (docs/validation.md)."""
    from llmsim.calibrate.gpu_devset import case_ops, graph_step_seconds

    data = json.loads(DEV_SET.read_text())
    dev = build_device(H100, mode="graph")
    models: dict = {}
    errs: dict[str, list[float]] = {}
    for c in data["results"]:
        model = models.setdefault(c["model"], load_model(c["model"]))
        e = graph_step_seconds(dev, case_ops(model, c)) / c["graph_s"] - 1
        errs.setdefault(c["phase"], []).append(abs(e))
    for phase, v in errs.items():
        assert sum(v) / len(v) <= 0.10, (phase, v)
        assert max(v) < 0.25, (phase, v)
