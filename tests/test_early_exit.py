"""Laws of early exit: fewer layers run is never slower; skipped layers still write K and V; SkipDecode's
depth falls with the position; a batch runs until its deepest token exits; bad --exit input is refused."""

import pytest

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.engine.early_exit import ExitSchedule, parse_exit, simulate_early_exit
from llmsim.errors import ConfigError
from llmsim.graph.lower import lower_decode, lower_decode_exit
from llmsim.graph.ops import OpKind


def _ops(g, kind=None):
    return [g.nodes[n]["op"] for n in g if kind is None or g.nodes[n]["op"].kind == kind]


def test_skipped_layers_still_write_their_kv_and_run_no_attention_or_mlp():
    m, sc = load_model("tinyllama-1.1b"), make_scenario({"batch": 2})
    g = lower_decode_exit(m, sc, context=40, depth=8)
    full = lower_decode(m, sc, context=40)
    assert len(_ops(g, OpKind.kv_write)) == len(_ops(full, OpKind.kv_write)) == m.n_layers
    assert len(_ops(g, OpKind.attention)) == 8
    assert sum(o.write.kv for o in _ops(g)) == sum(o.write.kv for o in _ops(full))
    assert sum(o.flops for o in _ops(g)) < sum(o.flops for o in _ops(full))
    assert g.graph["layers_run"] == 8
    assert sum(o.flops for o in _ops(lower_decode_exit(m, sc, context=40, depth=m.n_layers))) == \
        sum(o.flops for o in _ops(full))


def test_fewer_layers_run_is_never_slower():
    hw, m, sc = load_hardware("h100"), load_model("opt-125m"), make_scenario({"gen": 3})
    t = [simulate_early_exit(hw, m, sc, ExitSchedule(depth=d)).tpot_s for d in (2, 6, 9, 12)]
    assert t == sorted(t)


def test_skipdecode_depth_falls_linearly_with_the_position():
    s = parse_exit("min=4,max=12")
    depths = [s.step_depths(k, 5, batch=8)[0][0] for k in range(1, 6)]
    assert depths == [12, 10, 8, 6, 4]


def test_a_batch_runs_until_its_deepest_token_exits():
    s = parse_exit("dist=4:0.5/12:0.5")
    one = dict(s.step_depths(1, 3, batch=1))
    eight = dict(s.step_depths(1, 3, batch=8))
    assert one == {4: 0.5, 12: 0.5}
    assert eight[4] == pytest.approx(0.5**8) and eight[12] == pytest.approx(1 - 0.5**8)


def test_full_depth_exit_costs_what_plain_decoding_costs():
    r = simulate_early_exit(load_hardware("h100"), load_model("opt-125m"), make_scenario({"gen": 3}),
                            ExitSchedule(depth=12))
    assert r.tpot_s == pytest.approx(r.baseline_tpot_s, rel=1e-9) and r.mean_layers == 12


@pytest.mark.parametrize("hw", ["h100", "npu-ws-128", "xeon-gold-6154", "pim"])
def test_early_exit_is_costed_on_every_device_kind(hw):
    r = simulate_early_exit(load_hardware(hw), load_model("opt-125m"), make_scenario({"gen": 3, "prompt": 16}),
                            parse_exit("depth=6"))
    assert 0 < r.tpot_s < r.baseline_tpot_s


@pytest.mark.parametrize("text,match", [
    ("depth=0", "outside 1..12"), ("depth=13", "outside 1..12"), ("min=8", "both min= and max="),
    ("min=9,max=3", "min=9 > max=3"), ("dist=4:0.5/8:0.4", "sum to 1"), ("depth=4,min=2,max=3", "one of"),
    ("deep=4", "deep=4"), ("depth=x", "depth='x'"),
])
def test_bad_exit_input_is_refused_naming_the_option(text, match):
    with pytest.raises(ConfigError, match="--exit") as e:
        simulate_early_exit(load_hardware("h100"), load_model("opt-125m"), make_scenario({"gen": 3}),
                            parse_exit(text))
    assert match in str(e.value)


def test_exit_cli_reports_layers_run(run_cli):
    p = run_cli("run", "--hw", "h100", "--model", "opt-125m", "--gen", "3", "--exit", "min=4,max=10")
    assert p.returncode == 0 and "layers run" in p.stdout and "speed-up" in p.stdout, p.stderr
    p = run_cli("run", "--hw", "h100", "--model", "opt-125m", "--exit", "depth=99")
    assert p.returncode == 2 and "--exit" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_encoder_decoder_models_are_refused_for_early_exit_speculation_and_ragged_batches():
    from llmsim.engine.ragged import simulate_ragged
    from llmsim.engine.speculative import Speculation, simulate_speculative

    hw, m, sc = load_hardware("h100"), load_model("flan-t5-small"), make_scenario({"gen": 3, "prompt": 16})
    with pytest.raises(ConfigError, match="decoder-only"):
        simulate_early_exit(hw, m, sc, ExitSchedule(depth=2))
    with pytest.raises(ConfigError, match="decoder-only"):
        simulate_speculative(hw, m, sc, Speculation(k=2, accept=0.5, heads=2))
    with pytest.raises(ConfigError, match="decoder-only"):
        simulate_ragged(hw, m, sc, [8, 16])
