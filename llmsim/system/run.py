"""Simulating a generation on a system: memory planning, the transformed step graphs, the engine.

The step graphs are the ordinary lowering of the tensor-parallel shard model, rewritten by
:mod:`llmsim.system.parallel` (TP collectives, pipeline stages and micro-batches), and they go
through the same engine entry points as a single device (:func:`llmsim.engine.bulk.simulate_graph`,
:func:`~llmsim.engine.bulk.simulate_decode`: lowered once, replayed where the recorded unit order
holds, else simpy step by step). Collectives are ordinary ops there, on link units of capacity 1,
so the bulk path's preconditions (capacity-1 units, a checked grant order) apply to them unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx

from llmsim.config.model import ModelSpec
from llmsim.config.quant import stored_weight_bytes
from llmsim.config.scenario import Scenario
from llmsim.engine import resolved_config
from llmsim.engine.result import SimResult, StepResult
from llmsim.engine.simulate import long_run_gc, simulate_step, step_done
from llmsim.errors import CapacityError, ConfigError
from llmsim.graph.lower import decode_contexts, lower_decode, lower_prefill
from llmsim.graph.ops import OpKind
from llmsim.system.device import SystemDevice
from llmsim.system.parallel import (
    check_ep,
    expert_parallel,
    micro_batch_sizes,
    pipeline,
    place,
    shard_model,
    stage_of_layers,
    tensor_parallel,
)
from llmsim.system.spec import SystemSpec, load_group_device_spec


def memory_plan(system: SystemSpec, specs: dict[str, Any], model: ModelSpec, sc: Scenario, tp: int, pp: int,
                context: int | None = None, ep: int = 1) -> dict[str, Any]:
    """Per-device footprint of the busiest rank (bytes) and the check that it fits.

    Weights: one layer of the shard model × the most layers any stage holds, plus every weight
    outside the layers (embeddings, final norm, head) on that rank: an upper bound when pp > 1.
    KV cache: batch × context × the shard's KV bytes per token per layer × those layers.
    Activations: the largest working set (inputs + outputs) of one op of the prefill graph.
    Expert parallel: a rank holds ``E/ep`` of each layer's experts (their bytes at the model's
    mean bytes per parameter) and the KV cache of its ``batch/ep`` sequences."""
    shard = shard_model(model, tp)
    per_stage = max(stage_of_layers(model.n_layers, pp).count(s) for s in range(pp))
    one = stored_weight_bytes(shard.model_copy(update={"n_layers": 1}), sc)
    layer_w = stored_weight_bytes(shard.model_copy(update={"n_layers": 2}), sc) - one
    if ep > 1:
        E = shard.moe.experts
        per_param = stored_weight_bytes(shard, sc) / shard.parameter_count()
        expert = (shard.ffn_params() - shard.d_model * E) / E * per_param
        layer_w -= (E - E // ep) * expert
    weights = (one - layer_w) + per_stage * layer_w
    ctx = context if context is not None else sc.prompt + sc.gen
    kv = sc.batch // ep * ctx * shard.kv_bytes_per_token(sc.kv_dtype.bytes) / shard.n_layers * per_stage
    g = lower_prefill(shard, sc)
    act = max(g.nodes[v]["op"].read.activation + g.nodes[v]["op"].write.activation for v in g.nodes)
    main = system.main_group
    kv_group = system.placement.get(OpKind.kv_write.value, main)
    w_group = system.placement.get(OpKind.matmul.value, main)
    need: dict[str, float] = {main: act}
    need[w_group] = need.get(w_group, 0.0) + weights
    need[kv_group] = need.get(kv_group, 0.0) + kv
    for grp, b in need.items():
        cap = specs[grp].memory.capacity_bytes
        if b > cap:
            n = math.ceil(b / cap) * tp * pp
            raise CapacityError(f"{model.name} does not fit {system.name} at --tp {tp} --pp {pp}: a '{grp}' device "
                                f"needs {b / 1e9:.2f} GB > its {cap / 1e9:.2f} GB; needs at least {n} devices "
                                "(raise --tp or --pp)")
    return {"weight_bytes": weights, "kv_bytes": kv, "activation_bytes": act, "kv_group": kv_group,
            "weight_group": w_group,
            "capacity_bytes": {grp: specs[grp].memory.capacity_bytes for grp in specs}, "ranks": tp * pp * ep}


def hold_kv(device: SystemDevice, plan: dict[str, Any], system: SystemSpec, model: ModelSpec, sc: Scenario,
            tp: int, pp: int, sequences: int | None = None) -> None:
    """Tell the device of the group that holds the KV cache what else its memory stores (the
    busiest rank's weights and activations where :func:`memory_plan` put them) and one sequence's KV
    bytes per token over the layers its stage holds, for mappers that place the cache
    (:class:`~llmsim.devices.base.KvResidency`). ``sequences``: the rank's sequences when
    micro-batches share it."""
    grp, main = plan["kv_group"], system.main_group
    other = (plan["weight_bytes"] if plan["weight_group"] == grp else 0.0) \
        + (plan["activation_bytes"] if grp == main else 0.0)
    shard = shard_model(model, tp)
    per_stage = max(stage_of_layers(model.n_layers, pp).count(s) for s in range(pp))
    per_token = shard.kv_bytes_per_token(sc.kv_dtype.bytes) / shard.n_layers * per_stage
    device.devs[grp].hold_kv(other, per_token, sequences)


class SystemRun:
    """A model + scenario on a system at a given parallelism: builds the device and the graphs."""

    def __init__(self, system: SystemSpec, model: ModelSpec, sc: Scenario, tp: int = 1, pp: int = 1,
                 micro: int = 1, fidelity: str = "cycle", context: int | None = None, ep: int = 1, dp: int = 1):
        if model.arch != "decoder":
            raise ConfigError(f"{model.name}: systems run decoder-only models (arch is {model.arch})")
        stage_of_layers(model.n_layers, pp)
        self.sizes = micro_batch_sizes(sc.batch, micro)
        for b in self.sizes:
            check_ep(model, ep, b)
        if dp < 1:
            raise ConfigError(f"--dp must be >= 1, got {dp}")
        self.system, self.model, self.sc, self.tp, self.pp, self.ep, self.dp = system, model, sc, tp, pp, ep, dp
        self.shard = shard_model(model, tp)
        self.specs = {g: load_group_device_spec(system, g) for g in system.devices}
        self.plan = memory_plan(system, self.specs, model, sc, tp, pp, context, ep)
        self.device = SystemDevice(system, self.specs, tp=tp, pp=pp, fidelity=fidelity, mode=sc.mode, ep=ep, dp=dp)
        held = sum(b // ep for b in self.sizes)
        hold_kv(self.device, self.plan, system, model, sc, tp, pp, held if len(self.sizes) > 1 else None)

    def _graph(self, lower) -> nx.DiGraph:
        parts = [place(tensor_parallel(expert_parallel(lower(b // self.ep), self.shard, self.ep, b, self.sc.moe_skew),
                                       self.tp), self.system.placement, self.system.main_group) for b in self.sizes]
        g = pipeline(parts, self.pp, self.model.n_layers)
        g.graph["batch"] = sum(self.sizes)
        return g

    def prefill(self, seq: int | None = None) -> nx.DiGraph:
        return self._graph(lambda b: lower_prefill(self.shard, self.sc, batch=b, seq=seq))

    def decode(self, context: int, step: int = 1) -> nx.DiGraph:
        return self._graph(lambda b: lower_decode(self.shard, self.sc, context=context, batch=b, step=step))

    def config(self, fidelity: str) -> dict[str, Any]:
        cfg = resolved_config(self.specs[self.system.main_group], self.model, self.sc, fidelity)
        cfg["system"] = {"spec": self.system.model_dump(mode="json"), "tp": self.tp, "pp": self.pp, "ep": self.ep,
                         "dp": self.dp, "micro_batches": len(self.sizes), "per_device": self.plan}
        return cfg


def simulate_system(system: SystemSpec, model: ModelSpec, sc: Scenario, tp: int = 1, pp: int = 1, micro: int = 1,
                    fidelity: str = "cycle", exact: bool = False, ep: int = 1, dp: int = 1) -> SimResult:
    """Prefill then ``gen − 1`` decode steps on ``system`` (see the module docstring). ``dp``
    data-parallel replicas each serve ``sc.batch`` sequences: the same step times, ``dp`` times the
    tokens and the energy."""
    from llmsim.engine.bulk import simulate_decode, simulate_graph
    from llmsim.engine.template import StepTemplate, build_template

    r = SystemRun(system, model, sc, tp, pp, micro, fidelity, ep=ep, dp=dp)
    steps: list[StepResult] = []
    with long_run_gc():
        g = r.prefill()
        steps.append(simulate_step(g, r.device) if exact else
                     simulate_graph(StepTemplate(g, g.graph["seq_len"], [], []), r.device))
        step_done()
        todo = decode_contexts(model, sc)
        ctxs = [c for _, c in todo]
        tpl = None
        if not exact and len(todo) >= 3 and ctxs == list(range(ctxs[0], ctxs[0] + len(ctxs))):
            tpl = build_template(lambda c: r.decode(c), ctxs[0], ctxs[-1])
        if tpl is not None:
            steps.extend(simulate_decode(tpl, r.device, ctxs, [k for k, _ in todo]))
        else:
            for k, ctx in todo:
                steps.append(simulate_step(r.decode(ctx, step=k), r.device))
                step_done()
    return SimResult(tuple(steps), r.config(fidelity), sc.batch * sc.gen * dp)


def simulate_system_step(system: SystemSpec, model: ModelSpec, sc: Scenario, phase: str, batch: int,
                         seq: int | None = None, context: int | None = None, tp: int = 1, pp: int = 1,
                         micro: int = 1, fidelity: str = "cycle", ep: int = 1, dp: int = 1
                         ) -> tuple[StepResult, dict[str, Any]]:
    sc = sc.model_copy(update={"batch": batch})
    ctx = seq if phase == "prefill" else (context or sc.prompt)
    r = SystemRun(system, model, sc, tp, pp, micro, fidelity, context=ctx, ep=ep, dp=dp)
    g = r.prefill(seq) if phase == "prefill" else r.decode(ctx)
    return simulate_step(g, r.device), r.config(fidelity)


def bubble_fraction(step: StepResult, pp: int) -> float:
    """Mean idle share of the stages over the step (the pipeline bubble): per stage, the busiest of
    its devices' units stands for the stage's work."""
    busy = []
    for s in range(pp):
        units = [v for k, v in step.busy_by_unit_s.items() if k.startswith(f"s{s}.") and k.count(".") >= 2]
        busy.append(max(units, default=0.0))
    return 1.0 - sum(busy) / (pp * step.latency_s)
