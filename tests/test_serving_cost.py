"""Laws of iteration costing: extrapolating one and two layers to the model's depth equals the full
step graph; the cached canonical mix (decodes at their mean context, on the KV block grid) stays within
1% of the exact mix's engine cost."""

from __future__ import annotations

import random

import pytest

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.serving.config import ServeConfig
from llmsim.serving.simulate import make_coster

SC = make_scenario({})


@pytest.mark.parametrize("hw,model", [("h100", "llama-2-7b"), ("xeon-gold-6154", "opt-125m")])
def test_layer_extrapolation_equals_the_full_step_graph(hw, model):
    c = make_coster(load_hardware(hw), load_model(model), SC, ServeConfig())
    assert c.layered
    mix = [(200, 350), (1, 90), (1, 700), (37, 37)]
    full, ext = c.exact(mix), c._layered([q for q, _ in mix], [k for _, k in mix])
    assert ext.latency_s == pytest.approx(full.latency_s, rel=1e-9)
    assert ext.energy_j == pytest.approx(full.energy_j, rel=1e-9)


def test_the_canonical_mix_costs_within_1_percent_of_the_exact_mix():
    c = make_coster(load_hardware("h100"), load_model("llama-2-7b"), SC, ServeConfig())
    rng = random.Random(3)
    for _ in range(6):
        n = rng.randint(2, 48)
        mix = [(1, rng.randint(20, 1500)) for _ in range(n)]
        if rng.random() < 0.5:
            p = rng.randint(16, 900)
            mix.append((p, p))
        got, exact = c(mix), c.exact(mix)
        assert got.latency_s == pytest.approx(exact.latency_s, rel=0.01), mix
        assert got.energy_j == pytest.approx(exact.energy_j, rel=0.01), mix


def test_repeated_mixes_are_served_from_the_cache():
    c = make_coster(load_hardware("h100"), load_model("opt-125m"), SC, ServeConfig(), "analytic")
    c([(1, 100), (1, 130)])
    c([(1, 110), (1, 120)])  # same count, same mean context
    assert c.misses == 1 and len(c.cache) == 1
