"""Laws of the model features today's checkpoints need: a sliding window limits the keys attended,
QKV bias and q/k norms are lowered, every dense weight of the new models is read once per decode step."""

from collections import Counter

import pytest

from llmsim.config.loader import load_model, make_scenario
from llmsim.graph import factory as f
from llmsim.graph.lower import lower_decode, lower_prefill
from llmsim.graph.ops import OpKind


def _ops(g, kind=None):
    return [g.nodes[n]["op"] for n in g if kind is None or g.nodes[n]["op"].kind == kind]


@pytest.mark.parametrize("Sq,Skv,W", [(1, 10, 4), (1, 3, 4), (6, 6, 4), (5, 12, 4), (7, 7, 7), (7, 7, 1), (3, 9, 20)])
def test_windowed_pairs_equal_brute_force(Sq, Skv, W):
    brute = sum(min(Skv - Sq + i + 1, W) for i in range(Sq))
    assert f.windowed_pairs(Sq, Skv, W) == brute


def test_sliding_window_limits_decode_context_and_kv_bytes():
    m = load_model("mistral-7b")
    sc = make_scenario({"batch": 2})
    W = m.sliding_window
    att = lambda C: [o for o in _ops(lower_decode(m, sc, context=C), OpKind.attention)][0]  # noqa: E731
    inside, at, beyond = att(W // 2), att(W), att(2 * W)
    assert inside.dim("Skv") == W // 2 and at.dim("Skv") == W and beyond.dim("Skv") == W
    assert beyond.read.kv == at.read.kv > inside.read.kv
    assert beyond.flops == at.flops
    unwindowed = m.model_copy(update={"sliding_window": None})
    assert [o for o in _ops(lower_decode(unwindowed, sc, context=2 * W), OpKind.attention)][0].read.kv \
        == 2 * beyond.read.kv


def test_sliding_window_prefill_counts_only_pairs_inside_the_window():
    m = load_model("phi-3-mini")  # window 2047, 4096 positions
    S = 4000
    sc = make_scenario({"prompt": S})
    a = [o for o in _ops(lower_prefill(m, sc), OpKind.attention)][0]
    W = m.sliding_window
    assert a.attr("pairs") == sum(min(i + 1, W) for i in range(S)) < S * (S + 1) // 2


def test_qwen2_biases_qkv_but_not_the_output_or_mlp():
    m = load_model("qwen2-7b")
    g = lower_decode(m, make_scenario({"batch": 1}), context=8)
    mm = {o.name.split(".", 2)[-1]: o for o in _ops(g, OpKind.matmul) if o.layer == 0}
    assert mm["self.attn.qkv"].attr("bias") and not mm["self.attn.out"].attr("bias")
    assert not any(o.attr("bias") for k, o in mm.items() if k.startswith("mlp"))


@pytest.mark.parametrize("name", ["llama-2-7b", "llama-3-8b", "mistral-7b", "qwen2-7b", "phi-3-mini", "opt-6.7b"])
def test_decode_step_of_a_new_model_reads_every_dense_weight_exactly_once(name):
    m = load_model(name)
    sc = make_scenario({"batch": 2})
    dense = [o for o in _ops(lower_decode(m, sc, context=40)) if o.kind in (OpKind.matmul, OpKind.norm)]
    names = Counter(w for o in dense for w in o.attr("weights"))
    assert max(names.values()) == 1
    emb = m.embedding_params()
    unread = emb.get("pos_embed", 0) + (0 if m.tied_embeddings else emb["tok_embed"])
    assert sum(o.read.weight for o in dense) == (m.parameter_count() - unread) * sc.weight_dtype.bytes


def test_olmoe_lowers_its_q_and_k_norms():
    m = load_model("olmoe-1b-7b")
    g = lower_decode(m, make_scenario({"batch": 1}), context=8)
    qk = [o for o in _ops(g, OpKind.norm) if o.name.endswith("qk_norm")]
    assert len(qk) == m.n_layers and qk[0].read.weight == m.qk_norm_params() * 2
