"""``llmsim serve`` on a system: TP speeds serving up but not 2x, a model too big for one device is
refused until --tp makes it fit, one rank equals the single device, the KV cache is sized per device,
the cost cache keys on the layout, and every bad parallel flag is refused naming it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmsim.cli import main
from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.serving.arrivals import parse_dist, poisson_stream
from llmsim.serving.config import ServeConfig
from llmsim.serving.metrics import summarise
from llmsim.serving.simulate import make_coster, simulate_serving
from llmsim.system import load_system
from llmsim.system.serve import SystemServe

SC = make_scenario({})
CFG = ServeConfig()


def _reqs(model, rate=4.0, n=60, prompt="uniform:64,512", output="fixed:32", seed=0):
    return poisson_stream(rate, n, parse_dist(prompt, "p", "prompt"), parse_dist(output, "o", "output"), seed,
                          model.max_positions)


def _serve(hw, model, reqs, replicas=1, fidelity="cycle", scheduler="vllm"):
    res = simulate_serving(hw, model, SC, reqs, replicas=replicas, cfg=CFG, fidelity=fidelity, scheduler=scheduler)
    return res, summarise(res)


def _cli(*args: str):
    return CliRunner().invoke(main, ["serve", *args])


def test_tp2_lowers_tpot_but_not_by_half():
    m = load_model("llama-2-7b")
    reqs = _reqs(m, n=100)
    tpot = {}
    for tp in (1, 2):
        _, s = _serve(SystemServe(load_system("dgx-h100"), m, SC, tp=tp), m, reqs)
        tpot[tp] = s["tpot_s"]["p50"]
    assert 0.5 * tpot[1] < tpot[2] < tpot[1], tpot


def test_llama_70b_is_refused_on_one_gpu_and_serves_at_tp8(tmp_path):
    base = ["--hw", "dgx-h100", "--model", "llama-2-70b", "--rate", "1", "--requests", "6", "--fidelity",
            "analytic", "--output-dist", "fixed:8"]
    r = _cli(*base)
    assert r.exit_code == 2 and "needs at least 2 devices" in r.output and "--tp" in r.output, r.output
    out = tmp_path / "s.json"
    r = _cli(*base, "--tp", "8", "--json", str(out), "--report", str(tmp_path / "s.html"))
    assert r.exit_code == 0, r.output
    assert "6 requests" in r.output and "per device" in r.output
    d = json.loads(out.read_text())
    sysd = d["config"]["system"]
    assert (sysd["tp"], sysd["pp"], sysd["ep"], sysd["dp"]) == (8, 1, 1, 1)
    per = d["runs"][0]["config"]["per_device"]
    full = load_model("llama-2-70b").parameter_count() * 2  # fp16
    # a rank holds an eighth of the layers' weights (norms and nothing else replicated): < 1/8 + 1%
    assert full / 8 < per["weight_bytes"] < full / 8 * 1.01
    kv = d["runs"][0]["kv"]
    assert per["kv_bytes"] == pytest.approx(kv["blocks"] * kv["block_bytes"])
    assert per["weight_bytes"] + per["kv_bytes"] + per["activation_bytes"] <= kv["usable_bytes"]
    assert "per device" in (tmp_path / "s.html").read_text()


@pytest.mark.parametrize("scheduler", ["vllm", "sarathi"])
def test_one_rank_equals_the_single_device(scheduler):
    m = load_model("llama-2-7b")
    reqs = _reqs(m, n=40)
    one, a = _serve(load_hardware("h100"), m, reqs, scheduler=scheduler)
    sys1, b = _serve(SystemServe(load_system("dgx-h100"), m, SC), m, reqs, scheduler=scheduler)
    assert one.kv.blocks == sys1.kv.blocks and one.kv.block_bytes == sys1.kv.block_bytes
    for k in ("ttft_s", "tpot_s", "e2e_s"):
        for q in ("p50", "p99"):
            assert b[k][q] == pytest.approx(a[k][q], rel=1e-12), (k, q)
    for k in ("energy_j", "idle_energy_j", "iterations"):
        assert b[k] == pytest.approx(a[k], rel=1e-12), k
    # --dp 2 is two serving replicas: as --replicas 2 on the device
    _, a2 = _serve(load_hardware("h100"), m, reqs, replicas=2, scheduler=scheduler)
    _, b2 = _serve(SystemServe(load_system("dgx-h100"), m, SC, dp=2), m, reqs, replicas=2, scheduler=scheduler)
    assert b2["tpot_s"]["p50"] == pytest.approx(a2["tpot_s"]["p50"], rel=1e-12)
    assert b2["energy_j"] == pytest.approx(a2["energy_j"], rel=1e-12)


def test_kv_cache_is_sized_per_device_under_tp_and_pp():
    m = load_model("llama-2-7b")
    kv = {}
    for tp, pp in ((1, 1), (2, 1), (1, 2), (2, 2)):
        s = SystemServe(load_system("dgx-h100"), m, SC, tp=tp, pp=pp, fidelity="analytic")
        kv[tp, pp] = s.size_kv_cache(CFG, 2048), s.plan
    one = kv[1, 1][0]
    for (tp, pp), (k, plan) in kv.items():
        # a block's K and V split over the TP ranks (KV heads / tp) and the stages (layers / pp)
        assert k.block_bytes == pytest.approx(one.block_bytes / (tp * pp))
        assert plan["weight_bytes"] < one.weight_bytes / (tp * pp) * 1.05
        # each device's cache holds its share of every block: less weight per device, more blocks
        assert k.blocks >= one.blocks * tp * pp
        assert plan["kv_bytes"] + plan["weight_bytes"] + plan["activation_bytes"] <= k.usable_bytes
    # the pool: the blocks one device's cache holds (no EP)
    assert all(k.pool_devices == 1 for k, _ in kv.values())


def test_expert_parallel_pools_every_ranks_cache_and_deals_sequences_unevenly():
    m = load_model("olmoe-1b-7b")
    s1 = SystemServe(load_system("dgx-h100"), m, SC, fidelity="analytic")
    s4 = SystemServe(load_system("dgx-h100"), m, SC, ep=4, fidelity="analytic")
    k1, k4 = s1.size_kv_cache(CFG, 2048), s4.size_kv_cache(CFG, 2048)
    assert k4.pool_devices == 4 and k4.blocks % 4 == 0 and k4.blocks > 4 * k1.blocks  # experts / 4 per device
    # 5 sequences over 4 ranks: rank 0 takes the heaviest and the fifth, and the micro-batch's tokens
    [(mine, tokens, local)] = s4._deal([1, 300, 1, 1, 40], [90, 300, 95, 400, 40])
    assert mine == [(300, 300), (1, 90)] and tokens == 343 and local == 301
    reqs = _reqs(m, n=30)
    _, a = _serve(s1, m, reqs, fidelity="analytic")
    _, b = _serve(s4, m, reqs, fidelity="analytic")
    assert b["requests"] == a["requests"] == 30 and b["tpot_s"]["p50"] > 0


def test_the_cost_cache_keys_on_the_layout_and_extrapolates_layers_per_stage():
    m = load_model("llama-2-7b")
    mix = [(200, 350), (1, 90), (1, 700), (37, 37)]
    keys = set()
    # (tp, pp, micro-batches): layers extrapolate per stage (pp 3: 11, 11, 10 layers) unless micro-batches
    # overlap across stages, where the coster's check fails and it costs full graphs
    for tp, pp, micro, layered in ((2, 1, 1, True), (1, 2, 1, True), (2, 3, 1, True), (1, 2, 2, False)):
        c = make_coster(SystemServe(load_system("dgx-h100"), m, SC, tp=tp, pp=pp, micro=micro,
                                    fidelity="analytic"), m, SC, CFG)
        assert c.layered == layered, (tp, pp, micro)
        exact = c.exact(mix)
        if layered:
            ext = c._layered([q for q, _ in mix], [k for _, k in mix])
            assert ext.latency_s == pytest.approx(exact.latency_s, rel=1e-9)
            assert ext.energy_j == pytest.approx(exact.energy_j, rel=1e-9)
        assert c(mix).latency_s == pytest.approx(exact.latency_s, rel=0.01)  # the canonical mix
        (key,) = c.cache
        assert dict(key[0]) == {"tp": tp, "pp": pp, "ep": 1, "micro": micro}
        keys.add(key)
    assert len(keys) == 4
    moe = load_model("olmoe-1b-7b")
    c = make_coster(SystemServe(load_system("dgx-h100"), moe, SC, ep=4, fidelity="analytic"), moe, SC, CFG)
    mix5 = mix + [(1, 50)]
    assert c.layered and c._layered([q for q, _ in mix5], [k for _, k in mix5]).latency_s == pytest.approx(
        c.exact(mix5).latency_s, rel=1e-9)


@pytest.mark.parametrize("args,msg", [
    (["--hw", "h100", "--tp", "2"], "--tp needs a system preset"),
    (["--hw", "dgx-h100", "--tp", "3"], "--tp 3: llama-2-7b has n_heads = 32"),
    (["--hw", "dgx-h100", "--tp", "0"], "--tp must be >= 1"),
    (["--hw", "dgx-h100", "--tp", "8", "--dp", "2"], "--tp 8 x --pp 1 x --ep 1 x --dp 2 needs 16"),
    (["--hw", "dgx-h100", "--ep", "2"], "--ep 2: llama-2-7b has no experts"),
    (["--hw", "dgx-h100", "--pp", "33"], "--pp must be in 1..32"),
    (["--hw", "dgx-h100", "--micro-batches", "0"], "--micro-batches must be >= 1"),
    (["--hw", "dgx-h100", "--dp", "0"], "--dp must be >= 1"),
])
def test_bad_parallel_flags_are_refused_naming_them(args, msg):
    r = _cli(*args, "--model", "llama-2-7b", "--rate", "1", "--requests", "2", "--fidelity", "analytic")
    assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output, r.output


def test_weights_that_leave_no_kv_room_per_device_are_refused():
    r = _cli("--hw", "dgx-h100", "--model", "llama-2-70b", "--tp", "2", "--set", "serve.gpu_memory_utilization=0.8",
             "--rate", "1", "--requests", "2", "--fidelity", "analytic")
    assert r.exit_code == 2 and "no room for a KV cache on a 'gpu' device of dgx-h100 at --tp 2" in r.output
    assert "raise --tp or --pp" in r.output, r.output


def test_dp_replicas_times_replicas_copies_of_the_system(tmp_path):
    out = tmp_path / "dp.json"
    r = _cli("--hw", "dgx-h100", "--model", "llama-2-7b", "--tp", "2", "--dp", "2", "--replicas", "2", "--rate", "8",
             "--requests", "16", "--output-dist", "fixed:4", "--fidelity", "analytic", "--json", str(out))
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["replicas"] == 4 and d["config"]["system"]["dp"] == 2
    assert sorted({x for x in d["runs"][0]["iterations"]["replica"]}) == [0, 1, 2, 3]
