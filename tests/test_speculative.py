"""Laws of speculative decoding: expected tokens per iteration follow Leviathan et al.; a 68M draft with
A = 0.8, K = 4 speeds a 7B target up 1.5-3.5x at batch 1 on h100 and slows it down when A is small; a higher
acceptance rate is never slower; every device kind costs it; bad --speculative input is refused by name."""

import pytest

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.engine.speculative import Speculation, parse_speculative, simulate_speculative
from llmsim.errors import ConfigError
from llmsim.graph.lower import lower_verify
from llmsim.graph.ops import OpKind


def _run(hw="h100", target="llama-2-7b", text="draft=llama-68m,k=4,accept=0.8", gen=6, batch=1):
    sp = parse_speculative(text)
    return simulate_speculative(load_hardware(hw), load_model(target), make_scenario({"gen": gen, "batch": batch}),
                                sp, draft=load_model(sp.draft) if sp.draft else None)


@pytest.mark.parametrize("a,k", [(0.0, 4), (0.5, 1), (0.8, 4), (0.95, 8), (1.0, 3)])
def test_expected_tokens_per_iteration_equal_the_sum_of_acceptance_probabilities(a, k):
    # E = sum_{i=0..k} a^i: the i-th draft is reached only if all earlier ones were accepted
    assert Speculation(k=k, accept=a, draft="d").tokens_per_iteration == pytest.approx(sum(a**i for i in range(k + 1)))


def test_a_68m_draft_at_a08_k4_speeds_a_7b_target_up_within_the_seeds_range():
    r = _run()
    assert 1.5 <= r.speedup <= 3.5
    assert r.tpot_s == pytest.approx((r.draft_s_per_iteration + r.verify_s_per_iteration) / r.tokens_per_iteration)


def test_a_small_acceptance_rate_makes_speculation_slower_than_plain_decoding():
    assert _run(text="draft=llama-68m,k=4,accept=0.02").speedup < 1.0


def test_a_higher_acceptance_rate_is_never_slower():
    tpot = [_run(text=f"draft=llama-68m,k=3,accept={a}", gen=4).tpot_s for a in (0.0, 0.3, 0.6, 0.9, 1.0)]
    assert tpot == sorted(tpot, reverse=True)


def test_verification_reads_the_weights_once_for_all_k_plus_1_tokens():
    m, sc = load_model("llama-2-7b"), make_scenario({})
    g = lower_verify(m, sc, context=200, tokens=5)
    ops = [g.nodes[n]["op"] for n in g]
    mm = [o for o in ops if o.kind is OpKind.matmul]
    assert all(o.dim("M") == 5 for o in mm)
    att = next(o for o in ops if o.kind is OpKind.attention)
    assert att.dim("Sq") == 5 and att.dim("Skv") == 200
    heads = lower_verify(m, sc, context=200, tokens=5, heads=3)
    extra = [heads.nodes[n]["op"] for n in heads if n.startswith("medusa.")]
    assert sum(o.read.weight for o in extra) == 3 * (m.d_model * m.d_model + m.d_model
                                                     + m.d_model * m.vocab_size) * sc.weight_dtype.bytes


def test_medusa_heads_report_iterations_and_speed_up():
    r = _run(text="heads=4,k=3,accept=0.7", gen=5)
    assert r.draft_s_per_iteration == 0 and r.iterations == pytest.approx(4 / r.tokens_per_iteration)
    assert r.speedup > 1.0 and set(r.to_dict()) >= {"iterations", "tokens_per_iteration", "tpot_s", "speedup"}


@pytest.mark.parametrize("hw", ["h100", "npu-ws-128", "xeon-gold-6154", "pim"])
def test_speculation_is_costed_on_every_device_kind(hw):
    r = _run(hw=hw, target="tinyllama-1.1b", text="draft=llama-68m,k=2,accept=0.7", gen=3)
    assert r.tpot_s > 0 and r.verify_s_per_iteration > 0 and r.draft_s_per_iteration > 0


@pytest.mark.parametrize("text,match", [
    ("draft=llama-68m,k=4", "missing accept"),
    ("draft=llama-68m,k=0,accept=0.5", "k=0"),
    ("draft=llama-68m,k=4,accept=1.5", "accept=1.5"),
    ("heads=2,k=4,accept=0.5", "2 heads"),
    ("draft=llama-68m,heads=2,k=1,accept=0.5", "exactly one"),
    ("draft=llama-68m,k=two,accept=0.5", "k='two'"),
    ("draft=llama-68m,k=2,accept=0.5,tree=2", "tree=2"),
    ("drift=llama-68m,k=2,accept=0.5", "drift"),
])
def test_bad_speculative_input_is_refused_naming_the_option(text, match):
    with pytest.raises(ConfigError, match="--speculative") as e:
        parse_speculative(text)
    assert match in str(e.value)


def test_speculative_cli_reports_speed_up_and_bad_input_in_one_line(run_cli):
    p = run_cli("run", "--hw", "h100", "--model", "tinyllama-1.1b", "--gen", "3", "--speculative",
                "draft=llama-68m,k=2,accept=0.8")
    assert p.returncode == 0 and "speed-up" in p.stdout and "tokens/iteration" in p.stdout, p.stderr
    p = run_cli("run", "--hw", "h100", "--model", "tinyllama-1.1b", "--speculative", "draft=llama-68m,k=2")
    assert p.returncode == 2 and "--speculative" in p.stderr and len(p.stderr.strip().splitlines()) == 1
