"""Laws of serving: Little's law, throughput rises and saturates, percentiles are ordered, goodput never
exceeds throughput, a bigger KV cache never preempts more, static batching never beats continuous
batching on TTFT p99, a faster device never serves slower; streams are reproducible to the byte."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.serving.arrivals import parse_dist, poisson_stream
from llmsim.serving.config import ServeConfig
from llmsim.serving.kv import size_kv_cache
from llmsim.serving.metrics import summarise
from llmsim.serving.simulate import make_coster, simulate_serving

SC = make_scenario({})


@pytest.fixture(scope="module")
def opt():
    return load_model("opt-125m")


@pytest.fixture(scope="module")
def h100_coster(opt):
    return make_coster(load_hardware("h100"), opt, SC, ServeConfig(), "analytic")


def _stream(rate, n, prompt="uniform:32,256", output="uniform:8,64", seed=1, model=None):
    return poisson_stream(rate, n, parse_dist(prompt, "p", "prompt"), parse_dist(output, "o", "output"), seed,
                          model.max_positions if model else 2048)


def _serve(opt, reqs, coster=None, hw="h100", **kw):
    return simulate_serving(load_hardware(hw), opt, SC, reqs, fidelity="analytic", coster=coster, **kw)


def test_littles_law_holds_within_5_percent_on_a_long_stable_run(opt, h100_coster):
    res = _serve(opt, _stream(300.0, 3000, model=opt), h100_coster)
    m = summarise(res)
    assert 0.2 < m["busy_fraction"] < 0.95  # loaded but stable
    lam_w = m["arrival_rate_per_s"] * m["e2e_s"]["mean"]
    assert m["mean_in_system"] == pytest.approx(lam_w, rel=0.05)


def test_throughput_rises_with_rate_and_saturates_at_the_batch_capacity(opt):
    cfg = ServeConfig(max_num_seqs=4)
    hw = load_hardware("h100")
    coster = make_coster(hw, opt, SC, cfg, "analytic")
    tput = []
    for rate in (20.0, 80.0, 2000.0, 4000.0):
        res = simulate_serving(hw, opt, SC, _stream(rate, 400, output="fixed:32", model=opt), cfg=cfg,
                               fidelity="analytic", coster=coster)
        tput.append(summarise(res)["throughput_tokens_per_s"])
        assert max(res.iterations, key=lambda r: r[3])[3] <= 4
    assert tput[0] < tput[1] < tput[2]
    assert tput[3] == pytest.approx(tput[2], rel=0.05)  # saturated
    full = coster([(1, 200)] * 4).latency_s  # four decodes: the most one iteration can carry
    assert tput[3] <= 4 / full * 1.001


@pytest.mark.parametrize("scheduler", ["vllm", "sarathi", "static"])
def test_percentiles_are_ordered_and_goodput_never_exceeds_throughput(opt, h100_coster, scheduler):
    res = _serve(opt, _stream(500.0, 300, model=opt), h100_coster, scheduler=scheduler)
    m = summarise(res, {"ttft": 0.01, "tpot": 1e-3})
    for k in ("ttft_s", "tpot_s", "e2e_s", "queueing_s"):
        assert m[k]["p99"] >= m[k]["p90"] >= m[k]["p50"] >= 0
    assert m["goodput_requests_per_s"] <= m["throughput_requests_per_s"]
    assert m["energy_per_request_with_idle_j"] >= m["energy_per_request_j"] > 0
    assert sum(r["energy_j"] for r in res.requests) == pytest.approx(m["energy_j"], rel=1e-9)
    assert all(r["finish_s"] >= r["first_token_s"] >= r["first_scheduled_s"] >= r["arrival_s"]
               for r in res.requests)


@pytest.mark.parametrize("rate", [300.0, 3000.0])
def test_a_bigger_kv_cache_never_causes_more_preemptions(opt, h100_coster, rate):
    reqs = _stream(rate, 200, prompt="uniform:64,400", output="uniform:32,200", model=opt)
    counts = [_serve(opt, reqs, h100_coster, cfg=ServeConfig(kv_blocks=b)).preemptions for b in (40, 80, 160, 320)]
    assert counts[0] > 0
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False)), counts


def test_static_batching_is_never_better_than_vllm_on_ttft_p99(opt, h100_coster):
    for rate in (100.0, 1000.0):
        reqs = _stream(rate, 300, model=opt)
        p99 = {s: summarise(_serve(opt, reqs, h100_coster, scheduler=s))["ttft_s"]["p99"] for s in ("vllm", "static")}
        assert p99["static"] >= p99["vllm"], (rate, p99)


def test_a_device_faster_per_step_is_never_slower_per_request(opt):
    reqs = _stream(200.0, 300, model=opt)
    a100, h100 = load_hardware("a100"), load_hardware("h100")
    ca, ch = (make_coster(hw, opt, SC, ServeConfig(), "analytic") for hw in (a100, h100))
    for mix in ([(200, 200)], [(1, 300)] * 8, [(100, 100)] + [(1, 50)] * 3):
        assert ch(mix).latency_s <= ca(mix).latency_s
    ma, mh = (summarise(_serve(opt, reqs, c, hw=n)) for c, n in ((ca, "a100"), (ch, "h100")))
    for k in ("ttft_s", "tpot_s", "e2e_s"):
        for p in ("mean", "p50", "p99"):
            assert mh[k][p] <= ma[k][p] * (1 + 1e-9), (k, p)


def test_schedulers_respect_budgets_and_the_kv_cache(opt, h100_coster):
    reqs = _stream(2000.0, 200, model=opt)
    cfg = ServeConfig(max_num_seqs=16, chunk_tokens=128, kv_blocks=200)
    for s in ("vllm", "sarathi", "static"):
        res = _serve(opt, reqs, h100_coster, scheduler=s, cfg=cfg)
        rows = np.array(res.iterations)
        assert rows[:, 3].max() <= 16 and rows[:, 6].max() <= 200
        if s == "sarathi":
            assert rows[:, 4].max() <= 128
        assert all(r["finish_s"] is not None for r in res.requests)


def test_kv_blocks_follow_vllms_memory_rule(opt):
    hw = load_hardware("h100")
    k = size_kv_cache(hw.memory.capacity_bytes, opt, SC, ServeConfig(), 2048)
    free = hw.memory.capacity_bytes * 0.9 - k.weight_bytes - k.peak_activation_bytes
    assert k.blocks == int(free // (16 * opt.kv_bytes_per_token(2)))
    assert k.weight_bytes == pytest.approx(2 * opt.parameter_count(), rel=0.01)
    more = size_kv_cache(hw.memory.capacity_bytes, opt, SC, ServeConfig(gpu_memory_utilization=0.95), 2048)
    less = size_kv_cache(hw.memory.capacity_bytes, opt, SC, ServeConfig(runtime_reserve_bytes=10**9), 2048)
    assert less.blocks < k.blocks < more.blocks


def test_poisson_streams_are_seeded_and_have_the_asked_rate(opt):
    a, b, c = (_stream(5.0, 4000, prompt="lognormal:300,0.8", seed=s, model=opt) for s in (7, 7, 8))
    assert a == b and a != c
    gaps = np.diff([0.0] + [r.arrival_s for r in a])
    assert gaps.mean() == pytest.approx(0.2, rel=0.05)
    assert np.median([r.prompt for r in a]) == pytest.approx(300, rel=0.05)
    assert all(r.prompt + r.output <= opt.max_positions for r in a)
