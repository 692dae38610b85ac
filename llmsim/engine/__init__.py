"""Simulation entry points: a whole generation (:func:`simulate`) or one step."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from llmsim.config.model import ModelSpec
from llmsim.config.quant import stored_weight_bytes
from llmsim.config.scenario import Scenario
from llmsim.devices.base import Device, Fidelity, build_device
from llmsim.devices.quant import refuse_unsupported
from llmsim.engine.result import SimResult, StepResult
from llmsim.engine.simulate import long_run_gc, simulate_step, step_done
from llmsim.graph.lower import decode_contexts, lower_decode, lower_prefill

__all__ = ["SimResult", "StepResult", "make_device", "resolved_config", "simulate", "simulate_step"]


def resolved_config(hw: Any, model: ModelSpec, scenario: Scenario, fidelity: str) -> dict[str, Any]:
    from llmsim import __version__

    return {
        "hw": hw.model_dump(mode="json"), "model": model.model_dump(mode="json"),
        "scenario": scenario.model_dump(mode="json"), "fidelity": fidelity, "llmsim_version": __version__,
    }


def make_device(hw: Any, model: ModelSpec, scenario: Scenario, fidelity: Fidelity = "cycle",
                context: int | None = None) -> Device:
    """Build the device and refuse a model + KV cache that does not fit its memory."""
    dev = build_device(hw, fidelity=fidelity, mode=scenario.mode)
    ctx = context if context is not None else scenario.prompt + scenario.gen
    kv = scenario.batch * ctx * model.kv_bytes_per_token(scenario.kv_dtype.bytes)
    if model.arch == "encoder-decoder":
        kv += scenario.batch * scenario.prompt * model.kv_bytes_per_token(scenario.kv_dtype.bytes)
    weights = stored_weight_bytes(model, scenario)
    dev.check_fits(weights, kv)
    dev.hold_kv(weights, model.kv_bytes_per_token(scenario.kv_dtype.bytes))
    # every op kind, one line; at the scenario's batch, so the costs it computes are the run's own
    # (cached on the device), not a batch-1 graph's costed only for this check
    refuse_unsupported(dev, lower_decode(model, scenario, context=2))
    return dev


def simulate(hw: Any, model: ModelSpec, scenario: Scenario, fidelity: Fidelity = "cycle",
             progress: Callable[[int, int], None] | None = None, exact: bool = False) -> SimResult:
    """Prefill then ``gen - 1`` decode steps.

    The decode steps go through the bulk path (:mod:`llmsim.engine.bulk`: one lowered template,
    replayed schedules) when its preconditions hold; ``exact=True``, or a failed precondition,
    lowers and simulates every step on its own (the reference the bulk path is tested against)."""
    from llmsim.engine.footprint import memory_footprint
    from llmsim.graph.lower import check_generation

    check_generation(model, scenario)
    steps = []
    memory: dict[str, Any] = {}
    with long_run_gc():
        dev = make_device(hw, model, scenario, fidelity)
        step_done()  # the device's modules and caches outlive the run
        tpl = _prefill_template(model, scenario)
        memory = memory_footprint(hw, model, scenario, tpl.graph)
        if exact:
            steps.append(simulate_step(lower_prefill(model, scenario), dev))
        else:
            from llmsim.engine.bulk import simulate_graph

            steps.append(simulate_graph(_for_device(tpl, dev), dev))
        step_done()
        if progress:
            progress(1, scenario.gen)
        todo = decode_contexts(model, scenario)
        bulk = None if exact else _bulk_decode(model, scenario, dev, todo)
        if bulk is not None:
            steps.extend(bulk)
            step_done()
            if progress:
                progress(scenario.gen, scenario.gen)
        else:
            for k, ctx in todo:
                steps.append(simulate_step(lower_decode(model, scenario, context=ctx, step=k), dev))
                step_done()
                if progress:
                    progress(k + 1, scenario.gen)
    return SimResult(tuple(steps), resolved_config(hw, model, scenario, fidelity), scenario.batch * scenario.gen,
                     memory)


# Step graphs depend on the model and the scenario, never on the hardware: a sweep over hardware
# lowers them once per worker. The engine never mutates a graph, so sharing one is safe.
@functools.lru_cache(maxsize=8)
def _prefill_template(model: ModelSpec, scenario: Scenario):
    from llmsim.engine.template import StepTemplate

    g = lower_prefill(model, scenario)
    return StepTemplate(g, g.graph["seq_len"], [], [])


@functools.lru_cache(maxsize=8)
def _decode_template(model: ModelSpec, scenario: Scenario, first: int, last: int):
    from llmsim.engine.template import build_template

    return build_template(lambda c: lower_decode(model, scenario, context=c), first, last)


def _bulk_decode(model: ModelSpec, scenario: Scenario, dev: Device, todo: list[tuple[int, int]]
                 ) -> list[StepResult] | None:
    from llmsim.engine.bulk import simulate_decode

    if len(todo) < 3:
        return None
    ctxs = [c for _, c in todo]
    if ctxs != list(range(ctxs[0], ctxs[0] + len(ctxs))):
        return None
    tpl = _decode_template(model, scenario, ctxs[0], ctxs[-1])
    if tpl is None:
        return None
    return simulate_decode(_for_device(tpl, dev), dev, ctxs, [k for k, _ in todo])


def _for_device(tpl, dev: Device):
    """The template with the device's step-graph rewrite (:meth:`Device.step_graph`) applied to the ops
    that do not move with context; cached on the template per rewritten graph (the bulk path keeps its
    plans on the template)."""
    keep = frozenset(v for grp in tpl.groups for v in grp)
    g = dev.step_graph(tpl.graph, keep)
    if g is tpl.graph:
        return tpl
    from llmsim.engine.template import StepTemplate

    cache = tpl.__dict__.setdefault("_for_device", {})
    if g not in cache:  # by identity: a device keeps its rewrite of a graph (Device.step_graph)
        cache[g] = StepTemplate(g, tpl.context0, tpl.groups, tpl._plans)
    return cache[g]


def simulate_one_step(hw: Any, model: ModelSpec, scenario: Scenario, phase: str, batch: int,
                      seq: int | None = None, context: int | None = None,
                      fidelity: Fidelity = "cycle") -> tuple[StepResult, dict[str, Any]]:
    if phase == "prefill":
        g = lower_prefill(model, scenario, batch=batch, seq=seq)
        dev = make_device(hw, model, scenario, fidelity, context=g.graph["seq_len"])
    else:
        g = lower_decode(model, scenario, context=context or scenario.prompt, batch=batch)
        dev = make_device(hw, model, scenario, fidelity, context=g.graph["context_len"])
    return simulate_step(g, dev), resolved_config(hw, model, scenario, fidelity)
