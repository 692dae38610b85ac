"""Laws of Mixture-of-Experts lowering: the router's ops, the expected number of experts a batch touches
(uniform and Zipf-skewed routing), the busiest expert's load, and what a decode step reads."""

import pytest

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.config.model import MoESpec
from llmsim.devices.base import build_device
from llmsim.engine import simulate_one_step
from llmsim.engine.simulate import simulate_step
from llmsim.errors import ConfigError
from llmsim.graph.lower import lower_decode, lower_prefill
from llmsim.graph.moe import pick_probabilities, routing
from llmsim.graph.ops import OpKind


def _weights_read(model, batch, skew=0.0):
    g = lower_decode(model, make_scenario({"batch": batch, "moe_skew": skew}), context=64)
    return sum(g.nodes[n]["op"].read.weight for n in g) / 2  # fp16: parameters


@pytest.mark.parametrize("E,k,T", [(8, 2, 1), (8, 2, 3), (8, 2, 64), (64, 8, 5), (60, 4, 17)])
def test_uniform_routing_touches_the_closed_form_number_of_experts(E, k, T):
    r = routing(E, k, T)
    assert r.distinct_experts == pytest.approx(E * (1 - (1 - k / E) ** T))
    assert r.max_expert_rows == pytest.approx(T * k / E)


@pytest.mark.parametrize("skew", [0.0, 0.5, 1.0, 2.0, 4.0])
def test_pick_probabilities_sum_to_top_k_and_never_exceed_one(skew):
    q = pick_probabilities(8, 2, skew)
    assert sum(q) == pytest.approx(2.0) and max(q) <= 1.0 and q == sorted(q, reverse=True)


def test_more_skew_touches_no_more_experts_and_loads_the_busiest_no_less():
    rs = [routing(64, 8, 32, s) for s in (0.0, 0.5, 1.0, 1.5, 3.0)]
    assert all(a.distinct_experts >= b.distinct_experts - 1e-12 for a, b in zip(rs[:-1], rs[1:], strict=True))
    assert all(a.max_expert_rows <= b.max_expert_rows + 1e-12 for a, b in zip(rs[:-1], rs[1:], strict=True))


def test_more_tokens_never_touch_fewer_experts():
    d = [routing(8, 2, t).distinct_experts for t in (1, 2, 4, 8, 16, 64)]
    assert d == sorted(d) and d[-1] <= 8


def test_mixtral_decode_reads_two_experts_at_batch_1_and_nearly_all_at_batch_64():
    m = load_model("mixtral-8x7b")
    dense = m.parameter_count() - m.embedding_params()["tok_embed"]  # all but the gathered embedding table
    one = _weights_read(m, 1)
    assert 12.5e9 < one < 13.0e9  # ~13B: attention, norms, router, 2 of 8 experts per layer, LM head
    assert _weights_read(m, 64) > 0.99 * dense
    assert _weights_read(m, 16, skew=1.0) < _weights_read(m, 16)  # skewed routing concentrates on fewer experts


def test_the_router_is_a_gemm_a_softmax_and_k_argmax_passes():
    m = load_model("mixtral-8x7b")
    g = lower_decode(m, make_scenario({"batch": 3}), context=16)
    ops = {n.split(".", 3)[-1]: g.nodes[n]["op"] for n in g if ".L0." in n}
    assert ops["ffn.router"].dim("N") == 8
    assert ops["ffn.router_softmax"].attr("fn") == "softmax" and ops["ffn.router_softmax"].dim("width") == 8
    assert ops["ffn.router_topk"].dim("rows") == 3 * 2 and ops["ffn.router_topk"].attr("fn") == "max"
    gate = ops["ffn.gate"]
    assert gate.dim("M") == 6 and gate.dim("experts") == round(routing(8, 2, 3).distinct_experts)
    assert gate.kind is OpKind.matmul
    assert list(g.predecessors("decoder.L0.mlp.ffn.gate")) == ["decoder.L0.mlp.ffn.router_topk"]


def test_a_skewed_batch_is_never_faster_where_experts_run_side_by_side():
    m = load_model("olmoe-1b-7b")
    dev = build_device(load_hardware("h100"))
    t = [simulate_step(lower_prefill(m, make_scenario({"prompt": 512, "moe_skew": s})), dev).latency_s
         for s in (0.0, 1.0)]
    assert t[1] >= t[0]


@pytest.mark.parametrize("hw", ["h100", "npu-ws-128", "xeon-gold-6154", "pim"])
def test_moe_is_costed_on_every_device_kind(hw):
    m = load_model("llama-68m").model_copy(update={"moe": MoESpec(experts=4, top_k=2)})
    r, _ = simulate_one_step(load_hardware(hw), m, make_scenario({"batch": 2}), "decode", 2, context=32)
    assert r.latency_breakdown_s["activation"] > 0 and r.latency_s > 0


def test_negative_moe_skew_is_refused_by_name():
    with pytest.raises(ConfigError, match="moe_skew"):
        make_scenario({"moe_skew": -0.5})
