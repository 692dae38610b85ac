"""Laws of ragged batches: equal lengths cost exactly what the padded batch costs; packing never moves more
bytes or does more work than padding; varlen attention counts each sequence's own pairs; bad --prompts input
is refused naming the option."""

import pytest

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.engine.ragged import parse_prompts, simulate_ragged
from llmsim.errors import ConfigError
from llmsim.graph import factory as f
from llmsim.graph.lower import lower_prefill
from llmsim.graph.ops import OpKind
from llmsim.graph.ragged import lower_ragged


def _total(g, attr):
    return sum(getattr(g.nodes[n]["op"], attr) if attr == "flops" else g.nodes[n]["op"].bytes_total for n in g)


def test_varlen_attention_counts_each_sequences_own_pairs_and_kv():
    from llmsim.config.base import DType

    seqs = [(128, 128), (512, 512), (1, 700)]
    v = f.attention_varlen("a", seqs, 12, 4, 64, dtype=DType.fp16)
    parts = [f.attention("p", 1, 12, 4, q, k, 64, dtype=DType.fp16) for q, k in seqs]
    assert v.flops == sum(p.flops for p in parts) and v.read.kv == sum(p.read.kv for p in parts)
    assert v.dim("B") == 3 and v.dim("Sq") == 512 and v.dim("Skv") == 700


@pytest.mark.parametrize("hw", ["h100", "npu-ws-128", "xeon-gold-6154", "pim"])
def test_equal_lengths_cost_exactly_the_padded_batch(hw):
    r = simulate_ragged(load_hardware(hw), load_model("opt-125m"), make_scenario({"gen": 3}), [64, 64, 64])
    assert r.packed == r.padded and r.padding_token_fraction == 0.0


def test_packing_never_does_more_work_or_moves_more_bytes_than_padding():
    m = load_model("tinyllama-1.1b")
    lens = [100, 300, 37, 512]
    sc = make_scenario({"batch": len(lens), "prompt": max(lens)})
    packed, padded = lower_ragged(m, sc, lens, lens, "prefill"), lower_prefill(m, sc)
    assert _total(packed, "flops") < _total(padded, "flops")
    assert _total(packed, "bytes") < _total(padded, "bytes")
    att = [packed.nodes[n]["op"] for n in packed if packed.nodes[n]["op"].kind is OpKind.attention]
    assert len(att) == m.n_layers and att[0].attr("varlen") == tuple(sorted((n, n) for n in lens))


@pytest.mark.parametrize("hw", ["h100", "xeon-gold-6154"])
def test_packed_prefill_is_faster_than_padded_and_the_waste_is_reported(hw):
    r = simulate_ragged(load_hardware(hw), load_model("opt-125m"), make_scenario({"gen": 2}), [128, 512, 900])
    assert r.packed.ttft_s < r.padded.ttft_s and 0 < r.padding_time_fraction < 1
    assert r.padding_token_fraction == pytest.approx(1 - (128 + 512 + 900) / (3 * 900))


def test_prompts_from_a_file(tmp_path):
    p = tmp_path / "lens.txt"
    p.write_text("128\n512, 900\n")
    assert parse_prompts(str(p)) == [128, 512, 900]


@pytest.mark.parametrize("text", ["", "12,x", "0,5", "-3", "nonexistent.txt"])
def test_bad_prompts_are_refused_naming_the_option(text):
    with pytest.raises(ConfigError, match="--prompts"):
        parse_prompts(text)


def test_a_prompt_longer_than_the_model_is_refused():
    with pytest.raises(ConfigError, match="max_positions"):
        simulate_ragged(load_hardware("h100"), load_model("opt-125m"), make_scenario({"gen": 2}), [100, 5000])


def test_ragged_cli_reports_padding_waste_and_refuses_conflicts(run_cli):
    p = run_cli("run", "--hw", "h100", "--model", "opt-125m", "--gen", "2", "--prompts", "128,512")
    assert p.returncode == 0 and "padding waste" in p.stdout, p.stderr
    p = run_cli("run", "--hw", "h100", "--model", "opt-125m", "--prompts", "128,512", "--batch", "3")
    assert p.returncode == 2 and "--prompts" in p.stderr and len(p.stderr.strip().splitlines()) == 1
