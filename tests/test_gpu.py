"""GPU device model laws: never below the roofline, monotone in SMs / bandwidth / clock, eager ≥ graph."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llmsim.config.base import DType
from llmsim.config.hardware import GpuSpec
from llmsim.config.loader import load_hardware
from llmsim.devices.base import build_device
from llmsim.graph import factory as f

PRESETS = ["h100", "a100", "t4", "jetson-orin"]
SPECS = {p: load_hardware(p) for p in PRESETS}
dims = st.integers(min_value=1, max_value=8192)


@st.composite
def gpu_ops(draw):
    kind = draw(st.sampled_from(["matmul", "attention", "norm", "activation", "elementwise", "kv_write", "embedding"]))
    dt = draw(st.sampled_from([DType.fp16, DType.bf16, DType.fp32]))
    if kind == "matmul":
        return f.matmul("m", draw(dims), draw(dims), draw(dims), dtype=dt, bias=draw(st.booleans()),
                        experts=draw(st.sampled_from([1, 1, 4])))
    if kind == "attention":
        hkv = draw(st.sampled_from([1, 2, 4, 8]))
        h = hkv * draw(st.sampled_from([1, 2, 4]))
        skv = draw(st.integers(1, 8192))
        sq = draw(st.sampled_from([1, skv, max(1, skv // 3)]))
        return f.attention("a", draw(st.integers(1, 32)), h, hkv, sq, skv, draw(st.sampled_from([32, 64, 80, 128])),
                           dtype=dt, causal=True)
    rows, width = draw(st.integers(1, 16384)), draw(st.integers(1, 16384))
    if kind == "norm":
        return f.norm("n", rows, width, draw(st.sampled_from(["layernorm", "rmsnorm"])), dtype=dt)
    if kind == "activation":
        return f.activation("g", rows, width, draw(st.sampled_from(["gelu", "relu", "silu_mul"])), dtype=dt)
    if kind == "elementwise":
        return f.elementwise("e", rows, width, draw(st.sampled_from(["add", "rope"])), dtype=dt)
    if kind == "kv_write":
        return f.kv_write("k", rows, width, dtype=dt)
    return f.embedding("t", rows, width, n_tables=2, dtype=dt)


def _scaled(spec: GpuSpec, sm: float = 1.0, bw: float = 1.0, clock: float = 1.0) -> GpuSpec:
    d = spec.model_dump()
    for u in ("tensor", "vector"):
        d[u]["count"] = max(1, int(round(d[u]["count"] * sm)))
        d[u]["clock_hz"] *= clock
    d["memory"]["tck_ns"] /= bw
    return GpuSpec.model_validate(d)


@settings(max_examples=150, deadline=None)
@given(op=gpu_ops(), hw=st.sampled_from(PRESETS))
def test_no_gpu_op_beats_its_roofline_bound(op, hw):
    dev = build_device(SPECS[hw], fidelity="cycle")
    assume(dev.supports(op))
    c, b = dev.cycle_cost(op), dev.bound(op)
    assert c.seconds >= b.seconds * (1 - 1e-9), (op.name, op.shape, c.stats)
    assert c.bytes_by_level["dram"] >= dev.dram_bytes_lower_bound(op) * (1 - 1e-9)


@settings(max_examples=60, deadline=None)
@given(op=gpu_ops(), hw=st.sampled_from(PRESETS), k=st.sampled_from([1.1, 1.5, 2.0, 3.0]))
def test_more_sms_bandwidth_or_clock_never_slower(op, hw, k):
    dev = build_device(SPECS[hw])
    assume(dev.supports(op))
    base = dev.cycle_cost(op).seconds
    for kw in ({"sm": k}, {"bw": k}, {"clock": k}):
        faster = build_device(_scaled(SPECS[hw], **kw)).cycle_cost(op).seconds
        assert faster <= base * (1 + 1e-9), (kw, op.shape)


def test_sm_count_edge_one_more_sm_never_slower():
    # wave quantisation edge: 132 tiles on 131, 132 and 133 SMs
    op = f.matmul("m", 128 * 12, 4096, 128 * 11, dtype=DType.fp16)
    t = [build_device(_scaled(SPECS["h100"], sm=n / 132)).cycle_cost(op).seconds for n in (131, 132, 133)]
    assert t[0] >= t[1] >= t[2]


def test_eager_is_never_faster_than_graph():
    from llmsim.config.loader import load_model, make_scenario
    from llmsim.engine import simulate_one_step

    m = load_model("gpt2", [(["n_layers"], 2)])
    for phase, kw in (("prefill", {"seq": 64}), ("decode", {"context": 128})):
        t = {}
        for mode in ("graph", "eager"):
            sc = make_scenario({"batch": 1, "prompt": 64, "gen": 2, "mode": mode})
            t[mode] = simulate_one_step(SPECS["h100"], m, sc, phase, 1, **kw)[0].latency_s
        assert t["eager"] >= t["graph"]


def test_wave_tail_and_split_k_show_in_stats():
    dev = build_device(SPECS["h100"])
    skinny = dev.cycle_cost(f.matmul("m", 1, 6400, 1600, dtype=DType.fp16))
    big = dev.cycle_cost(f.matmul("m", 8192, 4096, 4096, dtype=DType.fp16))
    assert big.stats["waves"] > 1 and "tile_m" in big.stats
    assert skinny.stats.get("gemv") == 1.0 or skinny.stats["split_k"] >= 1


def test_split_decode_attention_beats_unsplit_at_batch_one():
    op = f.attention("a", 1, 25, 25, 1, 8192, 64, dtype=DType.fp16)
    d = SPECS["h100"].model_dump()
    t = {}
    for kernel in ("split", "flash"):
        d["kernels"]["attention"]["decode"] = kernel
        t[kernel] = build_device(GpuSpec.model_validate(d)).cycle_cost(op).seconds
    assert t["split"] < t["flash"]


def test_unknown_eager_dispatch_kind_is_refused():
    from llmsim.errors import ConfigError

    d = SPECS["h100"].model_dump()
    d["kernels"]["eager_dispatch_extra_s"] = {"gemm": 1e-6}
    with pytest.raises(ConfigError, match="eager_dispatch_extra_s.gemm"):
        build_device(GpuSpec.model_validate(d))


def test_eager_host_time_counts_every_framework_call():
    from llmsim.errors import ConfigError

    spec = SPECS["h100"]
    fw = spec.framework
    kv = f.kv_write("w", 1, 768, dtype=DType.fp16)
    graph, eager = build_device(spec, mode="graph"), build_device(spec, mode="eager")
    c = fw.calls("kv_write")
    assert c.kernels == 2 and c.host_calls > 0
    want = (c.kernels * fw.eager_dispatch_s + c.host_calls * fw.eager_host_call_s
            + (c.kernels + c.host_calls) * fw.eager_python_call_s)
    assert eager.host_seconds(kv) == pytest.approx(want)
    # every kernel the op launches pays the device-side fixed cost, in graph mode too
    assert graph.cost(kv).seconds == pytest.approx(graph.cycle_cost(kv).seconds + 2 * fw.kernel_overhead_s)
    d = spec.model_dump()
    d["framework"]["calls_per_op"] = {"gemm": {"kernels": 1}}
    with pytest.raises(ConfigError, match="calls_per_op.gemm"):
        build_device(GpuSpec.model_validate(d))


def test_h100_microbenchmark_fit_stays_within_15_percent():
    """The preset against the measured H100 microbenchmarks (device-level check, see docs/validation.md)."""
    import importlib.util
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("calibrate_gpu", root / "benchmarks" / "calibrate_gpu.py")
    cal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cal)
    cs = cal.cases(json.loads((root / "benchmarks" / "data" / "h100_microbench.json").read_text()))
    assert cal.score(cs, cal.start_params()) < 0.15
