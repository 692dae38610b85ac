"""The bulk decode path (one template, replayed schedules) equals simulating every step on its own."""

import dataclasses
import pickle

import numpy as np
import pytest

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.engine import simulate
from llmsim.engine.replay import Schedule, replay
from llmsim.engine.result import LazyRecords
from llmsim.engine.template import build_template
from llmsim.graph.lower import lower_decode


def _compare(fast, exact, rel):
    assert all(isinstance(s.records, LazyRecords) for s in fast.steps[1:])  # the bulk path ran
    assert fast.ttft_s == pytest.approx(exact.ttft_s, rel=rel)
    assert fast.tpot_s == pytest.approx(exact.tpot_s, rel=rel)
    assert fast.energy_j == pytest.approx(exact.energy_j, rel=rel)
    for a, b in zip(fast.steps, exact.steps, strict=True):
        assert (a.step, a.context_len) == (b.step, b.context_len)
        assert a.latency_s == pytest.approx(b.latency_s, rel=rel)
        assert a.energy_j == pytest.approx(b.energy_j, rel=rel)
        for attr in ("latency_breakdown_s", "latency_by_layer_s", "energy_breakdown_j", "bytes_by_level",
                     "busy_by_unit_s", "time_by_op_class_s"):
            x, y = getattr(a, attr), getattr(b, attr)
            assert set(x) == set(y), attr
            assert x == pytest.approx(y, rel=rel, abs=1e-15), attr


@pytest.mark.parametrize("hw_name", ["h100", "pim", "npu-ws-128", "xeon-gold-6154"])
def test_bulk_decode_equals_step_by_step_simpy(hw_name):
    hw, m, sc = load_hardware(hw_name), load_model("gpt2"), make_scenario({"prompt": 40, "gen": 24})
    _compare(simulate(hw, m, sc), simulate(hw, m, sc, exact=True), rel=1e-9)  # issue 11 asks <= 0.5%


def test_bulk_decode_replays_eager_host_run_ahead_exactly():
    hw, m, sc = load_hardware("h100"), load_model("gpt2"), make_scenario({"prompt": 16, "gen": 12, "mode": "eager"})
    fast, exact = simulate(hw, m, sc), simulate(hw, m, sc, exact=True)
    _compare(fast, exact, rel=1e-9)
    last_f, last_e = fast.steps[-1].records, exact.steps[-1].records
    assert [(r.name, r.start, r.end, r.shape) for r in last_f] == [(r.name, r.start, r.end, r.shape) for r in last_e]


def test_bulk_results_pickle_with_their_records():
    hw, m, sc = load_hardware("xeon-gold-6154"), load_model("gpt2"), make_scenario({"prompt": 8, "gen": 5})
    res = simulate(hw, m, sc)
    back = pickle.loads(pickle.dumps(res))
    assert [r.name for r in back.steps[-1].records] == [r.name for r in res.steps[-1].records]
    assert back.to_json() == res.to_json()


def test_bulk_decode_of_encoder_decoder_equals_step_by_step():
    hw, m, sc = load_hardware("pim"), load_model("flan-t5-small"), make_scenario({"prompt": 12, "gen": 6})
    _compare(simulate(hw, m, sc), simulate(hw, m, sc, exact=True), rel=1e-9)


def test_template_groups_only_context_dependent_ops():
    m, sc = load_model("gpt2"), make_scenario({"prompt": 8, "gen": 4})
    tpl = build_template(lambda c: lower_decode(m, sc, context=c), 9, 40)
    assert tpl is not None
    assert [len(g) for g in tpl.groups] == [m.n_layers]  # one attention per layer, one shared cost
    exact = lower_decode(m, sc, context=23).nodes[tpl.groups[0][0]]["op"]
    assert tpl.op_at(0, 23) == exact


def test_template_refuses_a_lowering_not_affine_in_context():
    m, sc = load_model("gpt2"), make_scenario({"prompt": 8, "gen": 4})

    def windowed(c):  # a sliding window of 16 keys: attention stops growing at context 16
        return lower_decode(m, sc, context=min(c, 16))
    assert build_template(windowed, 9, 40) is None


def _chain_schedule():
    # op 0 (unit a) -> op 1 (unit a); op 2 (unit b) -> op 3 (unit a), granted 0, 2, 1, 3
    return Schedule(n_ops=4, preds=[[], [0], [], [2]], units=[["a"], ["a"], ["b"], ["a"]], n_issue=[0] * 4,
                    any_issue=False, grants=[(0, 0), (2, 0), (1, 0), (3, 0)])


def test_replay_is_the_max_plus_recurrence_of_the_recorded_order():
    s = _chain_schedule()
    sec = [[np.array([1.0])], [np.array([2.0])], [np.array([1.5])], [np.array([1.0])]]
    start, end, _, ok = replay(s, sec, 1)
    assert ok[0]
    assert end[:, 0].tolist() == [1.0, 1.5, 3.0, 4.0]  # op 3, requested at 1.5, waits for op 1 (FIFO)


def test_replay_flags_steps_where_simpy_would_grant_in_another_order():
    s = dataclasses.replace(_chain_schedule(), recorded_req=np.array([0.0, 0.0, 1.0, 1.5]))
    # op 2 lasting 3.0 keeps op 1's request (1.0) first; 0.5 puts op 3's first; 1.0 is a tie the
    # recorded run did not have (simpy would break it by event order)
    sec = [[np.full(3, 1.0)], [np.full(3, 2.0)], [np.array([3.0, 0.5, 1.0])], [np.full(3, 1.0)]]
    _, _, _, ok = replay(s, sec, 3)
    assert ok.tolist() == [True, False, False]


@pytest.mark.parametrize("hw_name,mode", [("pim", "graph"), ("h100", "eager")])
def test_simpy_runs_do_not_grow_with_generated_tokens(hw_name, mode, monkeypatch):
    """Decode steps replay recorded schedules: simpy runs per distinct segment and variant, not per step."""
    import llmsim.engine.bulk as bulk

    runs = []
    inner = bulk._run_segment
    monkeypatch.setattr(bulk, "_run_segment", lambda *a, **k: runs.append(1) or inner(*a, **k))
    hw, m = load_hardware(hw_name), load_model("gpt2")
    counts = []
    for gen in (8, 40):
        runs.clear()
        simulate(hw, m, make_scenario({"prompt": 16, "gen": gen, "mode": mode}))
        counts.append(len(runs))
    assert counts[0] == counts[1]


def test_vectorised_attribution_equals_the_sweep_and_flags_reordered_edges():
    from llmsim.engine.replay import attribution
    from llmsim.engine.result import Segment
    from llmsim.engine.simulate import _attribute

    s = _chain_schedule()
    # op 2 (unit b) overlaps ops 0 and 1 (unit a): recorded with op 2 ending inside op 1
    sec = [[np.array([1.0, 1.0, 1.0])], [np.array([2.0, 2.0, 0.1])], [np.array([1.5, 2.5, 1.5])],
           [np.array([1.0, 1.0, 1.0])]]
    start, end, _, ok = replay(s, sec, 3)
    recorded = list(zip(start[:, 0].tolist(), end[:, 0].tolist(), strict=True))
    share, idle, in_order = attribution(s, recorded, start, end)
    assert ok.all() and in_order.tolist() == [True, True, False]  # step 2: op 1 now ends before op 2
    for i in (0, 1):
        segs = [[] for _ in range(4)]
        for gi, (v, _) in enumerate(s.grants):
            segs[v].append(Segment("u", start[gi, i], end[gi, i]))
        want, want_idle = _attribute(segs, end[:, i].max())
        assert share[:, i].tolist() == pytest.approx(want)
        assert idle[i] == pytest.approx(want_idle)
