"""Iteration costs: each engine step's batch mix costed by the device model, cached.

An iteration is a ragged step (:func:`llmsim.graph.ragged.lower_ragged`): every sequence adds
its new tokens (a prefill chunk or one decode token) and attends its own number of keys. It is
costed by the engine (:func:`llmsim.engine.simulate.simulate_step`) on a graph of two layers;
the model's ``L`` layers add ``L − 2`` copies of the second layer (the time between the two
layers' ends, its ops' energy and the step power over that time), which is what the engine itself
does with identical layer segments. That is checked on the full graph of a reference mix
when the coster is built; a model whose layers differ (or a device whose host runs ahead across
layers) fails the check and every key is costed on the full graph.

Cache key (the *canonical mix*): prefill chunks exactly, ``(new tokens, keys)`` each; decodes as
their count, their longest context and the mean of the others, both rounded to the KV block size,
so the canonical decodes keep the count, the longest and (to the rounding) the total keys of the
real ones — what a device costs from an attention op's shape (batch, longest) and its bytes (the
sum). ``tests/test_serving_cost.py`` holds the canonical cost within 1% of the exact mix's on
random mixes, on every device kind. The key starts with the coster's ``layout`` (a system's
``tp``, ``pp``, ``ep``, micro-batches; empty for one device), so a cache never answers for another
parallel layout.

On a system (:mod:`llmsim.system.serve`) ``lower`` builds the step through the system's graph
transforms (the TP shard, expert and pipeline parallelism, placement) instead of the plain ragged
lowering. With ``pp`` pipeline stages (``stages``: the layers each holds) the short graph has two
layers per stage and each stage adds its ``n_s − 2`` copies of its second layer; the same check
against the full graph decides (micro-batches overlapping across stages fail it: full graphs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.devices.base import Device
from llmsim.engine.simulate import simulate_step
from llmsim.graph.ragged import lower_ragged


@dataclass(frozen=True, slots=True)
class IterCost:
    latency_s: float
    energy_j: float


def canonical(mix: list[tuple[int, int]], bucket: int) -> tuple:
    """``mix``: (new tokens, keys) per sequence → the cache key described in the module docstring."""
    pre = tuple(sorted(m for m in mix if m[0] > 1))
    dec = [k for q, k in mix if q == 1]
    if not dec:
        return pre, 0, 0, 0
    top = max(dec)
    rest = (sum(dec) - top) / (len(dec) - 1) if len(dec) > 1 else 0
    grid = lambda x: max(bucket, bucket * round(x / bucket))  # noqa: E731
    return pre, len(dec), grid(rest) if len(dec) > 1 else 0, grid(top)


Lower = Callable[[ModelSpec, list[int], list[int]], Any]


class IterationCoster:
    """``lower(model, new_tokens, keys)``: the step graph of a mix (default: the ragged lowering);
    ``layout``: the first part of every cache key; ``stages``: the layers of each pipeline stage
    (default: one stage of all layers), which ``lower`` maps two layers of the short graph to each."""

    def __init__(self, dev: Device, model: ModelSpec, sc: Scenario, bucket: int, check: bool = True,
                 lower: Lower | None = None, layout: tuple = (), stages: tuple[int, ...] = ()):
        self.dev, self.model, self.sc, self.bucket, self.layout = dev, model, sc, bucket, layout
        self.lower = lower or (lambda m, q, k: lower_ragged(m, self.sc, q, k, "prefill" if max(q) > 1 else
                                                            "decode"))
        self.stages = stages or (model.n_layers,)
        self._two = model.model_copy(update={"n_layers": 2 * len(self.stages)})
        self.cache: dict[tuple, IterCost] = {}
        self.misses = 0
        self.layered = not check or self._layers_extrapolate()

    def _step(self, model: ModelSpec, q: list[int], k: list[int]):
        return simulate_step(self.lower(model, q, k), self.dev)

    def exact(self, mix: list[tuple[int, int]]) -> IterCost:
        """The engine's cost of the full step graph of exactly ``mix`` (no key, no extrapolation)."""
        r = self._step(self.model, [q for q, _ in mix], [k for _, k in mix])
        return IterCost(r.latency_s, r.energy_j)

    def _layered(self, q: list[int], k: list[int]) -> IterCost:
        """The two-layer step plus ``L − 2`` copies of its second layer: the time between the ends of
        the two layers, and that layer's op energy plus the step power over that time (per stage:
        two layers each, and ``n_s − 2`` copies of the stage's second layer)."""
        r = self._step(self._two, q, k)
        n_short = 2 * len(self.stages)
        end = [0.0] * n_short
        e = [0.0] * n_short
        for rec in r.records:
            if 0 <= rec.layer < n_short:
                end[rec.layer] = max(end[rec.layer], rec.end)
                e[rec.layer] += sum(rec.energy_j.values())
        power = self.dev.spec.static_power_w + sum(self.dev.background_power_w().values())
        t, energy = r.latency_s, r.energy_j
        for s, n_s in enumerate(self.stages):
            span, n = end[2 * s + 1] - end[2 * s], n_s - 2
            t, energy = t + n * span, energy + n * (e[2 * s + 1] + power * span)
        return IterCost(t, energy)

    def _layers_extrapolate(self) -> bool:
        q, k = [64, 1, 1], [64, 100, 300]
        if min(self.stages) < 2:
            return False
        full, ext = self.exact(list(zip(q, k, strict=True))), self._layered(q, k)
        return abs(full.latency_s - ext.latency_s) <= 1e-9 * full.latency_s + 1e-15

    def __call__(self, mix: list[tuple[int, int]]) -> IterCost:
        key = (self.layout, *canonical(mix, self.bucket))
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        self.misses += 1
        _, pre, n_dec, rest, top = key
        q = [a for a, _ in pre] + [1] * n_dec
        k = [b for _, b in pre] + [rest] * (n_dec - 1) + [top] * min(n_dec, 1)
        c = self._layered(q, k) if self.layered else self.exact(list(zip(q, k, strict=True)))
        self.cache[key] = c
        return c
