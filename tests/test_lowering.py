"""Laws of lowering: FLOPs and bytes equal hand counts; a decode step reads each weight once; KV grows linearly."""

from collections import Counter

import networkx as nx
import pytest

from llmsim.config.loader import load_model, make_scenario
from llmsim.errors import ConfigError
from llmsim.graph.lower import lower_decode, lower_prefill, phase_steps
from llmsim.graph.ops import OpKind

DECODERS = ["gpt2", "opt-350m", "tinyllama-1.1b", "gpt3-xl"]


def ops(g, kind=None):
    return [g.nodes[n]["op"] for n in g if kind is None or g.nodes[n]["op"].kind == kind]


def test_gpt2_decode_flops_equal_hand_count():
    m, B, C = load_model("gpt2"), 2, 100
    d, L, V, H, hd = 768, 12, 50257, 12, 64
    g = lower_decode(m, make_scenario({"batch": B}), context=C)
    per_layer_mm = 2 * B * (d * 3 * d + d * d + d * 4 * d + 4 * d * d) + B * (3 * d + d + 4 * d + d)
    assert sum(o.flops for o in ops(g, OpKind.matmul)) == L * per_layer_mm + 2 * B * d * V
    assert sum(o.flops for o in ops(g, OpKind.attention)) == L * (4 * B * H * C * hd + 5 * B * H * C)


def test_gpt2_prefill_flops_equal_hand_count():
    m, B, S = load_model("gpt2"), 1, 64
    d, L, V, H, hd = 768, 12, 50257, 12, 64
    g = lower_prefill(m, make_scenario({"batch": B, "prompt": S}))
    T = B * S
    mm = L * (2 * T * 12 * d * d + T * 9 * d) + 2 * B * d * V  # LM head on the last position only
    assert sum(o.flops for o in ops(g, OpKind.matmul)) == mm
    pairs = S * (S + 1) // 2  # causal
    assert sum(o.flops for o in ops(g, OpKind.attention)) == L * B * H * pairs * (4 * hd + 5)


@pytest.mark.parametrize("name", DECODERS)
def test_decode_step_reads_every_dense_weight_exactly_once(name):
    m = load_model(name)
    sc = make_scenario({"batch": 3})
    g = lower_decode(m, sc, context=50)
    dense = [o for o in ops(g) if o.kind in (OpKind.matmul, OpKind.norm)]
    names = Counter(w for o in dense for w in o.attr("weights"))
    assert names and max(names.values()) == 1
    emb = m.embedding_params()
    unread = emb.get("pos_embed", 0) + emb.get("rel_bias", 0) + (0 if m.tied_embeddings else emb["tok_embed"])
    wb = sc.weight_dtype.bytes
    assert sum(o.read.weight for o in dense) == (m.parameter_count() - unread) * wb


@pytest.mark.parametrize("name", DECODERS + ["flan-t5-small"])
def test_kv_bytes_grow_linearly_with_context(name):
    m = load_model(name)
    sc = make_scenario({"batch": 2})
    self_kv = lambda C: sum(o.read.kv for o in ops(lower_decode(m, sc, context=C), OpKind.attention)  # noqa: E731
                            if ".self." in o.name)
    k1, k2, k3 = self_kv(10), self_kv(20), self_kv(30)
    assert k2 - k1 == k3 - k2 > 0
    assert k1 == 2 * m.n_layers * 2 * 10 * m.kv_dim * sc.kv_dtype.bytes


def test_decode_writes_one_token_of_kv_per_layer():
    m = load_model("tinyllama-1.1b")
    sc = make_scenario({"batch": 4})
    g = lower_decode(m, sc, context=77)
    assert sum(o.write.kv for o in ops(g, OpKind.kv_write)) == m.kv_bytes_per_token(sc.kv_dtype.bytes) * 4


def test_lm_head_runs_on_the_last_position_only():
    m = load_model("gpt2")
    g = lower_prefill(m, make_scenario({"batch": 2, "prompt": 300}))
    head = g.nodes["decoder.lm_head"]["op"]
    assert head.dim("M") == 2 and head.dim("N") == m.vocab_size


def test_encoder_decoder_prefill_encodes_once_and_caches_cross_kv():
    m = load_model("flan-t5-small")
    sc = make_scenario({"batch": 1, "prompt": 40, "gen": 3})
    pre = lower_prefill(m, sc)
    enc_layers = {o.layer for o in ops(pre) if o.stack == "encoder" and o.layer >= 0}
    assert enc_layers == set(range(m.n_encoder_layers))
    cross_writes = [o for o in ops(pre, OpKind.kv_write) if ".cross." in o.name]
    assert len(cross_writes) == m.n_layers and all(o.dim("rows") == 40 for o in cross_writes)
    dec = lower_decode(m, sc, context=2)
    assert not [o for o in ops(dec) if o.stack == "encoder"]
    cross = [o for o in ops(dec, OpKind.attention) if ".cross." in o.name]
    assert len(cross) == m.n_layers and all(o.dim("Skv") == 40 and o.dim("Sq") == 1 for o in cross)


def test_graphs_are_dags_and_steps_cover_the_generation():
    m = load_model("gpt2")
    sc = make_scenario({"prompt": 16, "gen": 5})
    steps = list(phase_steps(m, sc))
    assert [s.graph["phase"] for s in steps] == ["prefill"] + ["decode"] * 4
    assert [s.graph.get("context_len") for s in steps[1:]] == [17, 18, 19, 20]
    assert all(nx.is_directed_acyclic_graph(s) for s in steps)


def test_prompt_longer_than_positions_is_refused():
    with pytest.raises(ConfigError, match="exceeds gpt2's max_positions"):
        lower_prefill(load_model("gpt2"), make_scenario({"prompt": 2000}))


def test_gqa_attention_reads_fewer_kv_bytes_than_mha():
    m = load_model("tinyllama-1.1b")
    sc = make_scenario({})
    a = ops(lower_decode(m, sc, context=100), OpKind.attention)[0]
    assert a.read.kv == 2 * 100 * m.kv_heads * m.hd * sc.kv_dtype.bytes
    assert m.kv_heads * 8 == m.n_heads
