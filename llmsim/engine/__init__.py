"""Simulation entry points: a whole generation (:func:`simulate`) or one step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.devices.base import Device, Fidelity, build_device
from llmsim.engine.result import SimResult, StepResult
from llmsim.engine.simulate import long_run_gc, simulate_step, step_done
from llmsim.graph.lower import lower_decode, lower_prefill, phase_steps

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
    dev.check_fits(model.parameter_count() * scenario.weight_dtype.bytes, kv)
    return dev


def simulate(hw: Any, model: ModelSpec, scenario: Scenario, fidelity: Fidelity = "cycle",
             progress: Callable[[int, int], None] | None = None) -> SimResult:
    """Prefill then ``gen - 1`` decode steps; each step is its own event-driven simulation."""
    from llmsim.engine.footprint import memory_footprint
    from llmsim.graph.lower import check_generation

    check_generation(model, scenario)
    dev = make_device(hw, model, scenario, fidelity)
    steps = []
    memory: dict[str, Any] = {}
    with long_run_gc():
        for i, g in enumerate(phase_steps(model, scenario)):
            if i == 0:
                memory = memory_footprint(hw, model, scenario, g)
            steps.append(simulate_step(g, dev))
            step_done()
            if progress:
                progress(i + 1, scenario.gen)
    return SimResult(tuple(steps), resolved_config(hw, model, scenario, fidelity), scenario.batch * scenario.gen,
                     memory)


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
