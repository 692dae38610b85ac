"""Laws of the engine: deterministic, breakdowns add up, independent ops on different units overlap."""

import networkx as nx
import pytest

from llmsim.config.base import DType
from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.devices.base import build_device
from llmsim.engine import simulate, simulate_step
from llmsim.graph import factory as f


def test_same_inputs_give_byte_identical_json():
    hw, m, sc = load_hardware("h100"), load_model("gpt2"), make_scenario({"prompt": 32, "gen": 3, "mode": "eager"})
    assert simulate(hw, m, sc).to_json() == simulate(hw, m, sc).to_json()


@pytest.mark.parametrize("hw_name", ["pim", "h100", "xeon-gold-6154", "npu-ws-128"])
def test_breakdowns_add_up_to_totals(hw_name):
    d = simulate(load_hardware(hw_name), load_model("gpt2"), make_scenario({"prompt": 32, "gen": 4})).to_dict()
    assert sum(d["energy_breakdown_j"].values()) == pytest.approx(d["energy_j"], rel=1e-3)
    assert sum(d["latency_breakdown_s"].values()) == pytest.approx(d["total_s"], rel=1e-3)
    assert sum(d["latency_by_layer_s"].values()) == pytest.approx(d["total_s"], rel=1e-3)
    assert sum(s["latency_s"] for s in d["steps"]) == pytest.approx(d["total_s"], rel=1e-12)
    for step in d["step_details"]:
        assert sum(r["attributed_s"] for r in step["trace"]) + step["latency_breakdown_s"].get("idle", 0) == \
            pytest.approx(step["latency_s"], rel=1e-6)


def _two_branch_graph():
    dt = dict(dtype=DType.bf16)
    g = nx.DiGraph(phase="decode", batch=1, context_len=1)
    a = f.matmul("a", 1, 1024, 4096, **dt)  # one K-tile: banks only on PIM (no partial-sum phase)
    b = f.norm("b", 64, 4096, "layernorm", **dt)
    g.add_node("a", op=a)
    g.add_node("b", op=b)
    return g


def test_independent_ops_on_different_units_overlap():
    dev = build_device(load_hardware("pim"))
    g = _two_branch_graph()
    ta, tb = dev.cost(g.nodes["a"]["op"]).seconds, dev.cost(g.nodes["b"]["op"]).seconds
    res = simulate_step(g, dev)
    assert res.latency_s == pytest.approx(max(ta, tb))
    g.add_edge("a", "b")
    assert simulate_step(g, dev).latency_s == pytest.approx(ta + tb)


def test_ops_on_one_unit_serialise():
    dev = build_device(load_hardware("h100"))
    g = _two_branch_graph()
    ta, tb = dev.cost(g.nodes["a"]["op"]).device_seconds, dev.cost(g.nodes["b"]["op"]).device_seconds
    assert simulate_step(g, dev).latency_s == pytest.approx(ta + tb)


def test_eager_is_never_faster_than_graph_mode():
    hw, m = load_hardware("h100"), load_model("gpt2")
    for kw in ({"prompt": 8, "gen": 2}, {"prompt": 512, "gen": 2, "batch": 8}):
        g = simulate(hw, m, make_scenario(kw | {"mode": "graph"})).total_s
        e = simulate(hw, m, make_scenario(kw | {"mode": "eager"})).total_s
        assert e >= g


@pytest.mark.parametrize("hw_name", ["h100", "xeon-gold-6154", "npu-ws-128", "pim"])
def test_step_power_is_charged_for_the_whole_step_even_when_the_device_idles(hw_name):
    """Static and DRAM background power x step wall time, whatever the units do: a host-bound eager
    decode step leaves the GPU mostly idle and still pays standby for all of it; no op carries it."""
    hw = load_hardware(hw_name)
    r = simulate(hw, load_model("gpt2"), make_scenario({"prompt": 8, "gen": 2, "mode": "eager"}))
    watts = hw.memory.energy.background_mw * 1e-3 * hw.memory.channels
    for step in r.steps:
        e = step.energy_breakdown_j
        assert e["dram_background"] == pytest.approx(watts * step.latency_s, rel=1e-12)
        assert e["static"] == pytest.approx(hw.static_power_w * step.latency_s, rel=1e-12)
        assert not any(k in rec.energy_j for rec in step.records for k in ("dram_background", "static"))
    if hw_name == "h100":
        dec = r.steps[1]
        device_busy = sum(v for u, v in dec.busy_by_unit_s.items() if u != "host")
        assert device_busy < 0.5 * dec.latency_s  # host-bound: the gaps are charged too


def test_result_reports_ttft_tpot_and_throughput_consistently():
    r = simulate(load_hardware("pim"), load_model("gpt2"), make_scenario({"prompt": 16, "gen": 5, "batch": 2}))
    assert r.ttft_s == r.steps[0].latency_s
    assert r.tpot_s == pytest.approx(sum(s.latency_s for s in r.steps[1:]) / 4)
    assert r.to_dict()["tokens_per_s"] == pytest.approx(10 / r.total_s)


@pytest.mark.parametrize("hw_name,model",
                         [("pim", "gpt2"), ("npu-ws-128", "tinyllama-1.1b"), ("h100", "flan-t5-small")])
def test_segment_reuse_is_exact(hw_name, model):
    from llmsim.graph.lower import lower_decode, lower_prefill

    m, sc = load_model(model), make_scenario({"prompt": 24, "batch": 2})
    dev = build_device(load_hardware(hw_name))
    for g in (lower_prefill(m, sc), lower_decode(m, sc, context=30)):
        a, b = simulate_step(g, dev, reuse=True), simulate_step(g, dev, reuse=False)
        assert a.latency_s == pytest.approx(b.latency_s, rel=1e-12)
        assert a.energy_j == pytest.approx(b.energy_j, rel=1e-12)
        assert [r.name for r in a.records] == [r.name for r in b.records]
        times_b = [t for r in b.records for t in (r.start, r.end)]
        assert [t for r in a.records for t in (r.start, r.end)] == pytest.approx(times_b, rel=1e-9)
        assert a.latency_breakdown_s == pytest.approx(b.latency_breakdown_s, rel=1e-9)


def test_to_dict_without_traces_keeps_every_aggregate():
    """``trace_steps="none"`` (the CLI's text output) drops only the per-op traces."""
    r = simulate(load_hardware("pim"), load_model("gpt2"), make_scenario({"prompt": 16, "gen": 6}), fidelity="analytic")
    full, lean = r.to_dict(), r.to_dict(trace_steps="none")
    assert all("trace" in s for s in full["step_details"]) and not any("trace" in s for s in lean["step_details"])
    for s in full["step_details"]:
        del s["trace"]
    assert lean == full
    with pytest.raises(ValueError, match="trace_steps"):
        r.to_dict(trace_steps="some")
