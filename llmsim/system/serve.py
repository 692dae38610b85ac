"""``llmsim serve`` on a system: every serving iteration costed through the system's graph transforms.

:class:`SystemServe` stands where :func:`llmsim.serving.simulate.simulate_serving` takes a device
spec when ``--hw`` names a system. The scheduler forms each iteration's mix as it does on one
device (prefill chunks and decodes, ``(new tokens, keys)`` per sequence); its step is the ragged
lowering of the tensor-parallel *shard model* (:func:`llmsim.system.parallel.shard_model`), with
the same transforms ``llmsim run`` applies (expert parallel, the TP collectives, placement, the
pipeline), simulated on the same :class:`~llmsim.system.device.SystemDevice` (collectives on link
units). The iteration cost cache (:class:`~llmsim.serving.cost.IterationCoster`) keys on the
parallel layout as well as the mix.

Dealing a mix over ranks: with ``micro`` micro-batches or ``ep`` expert-parallel ranks (attention
data-parallel) the sequences, heaviest first (new tokens, then keys), are dealt round-robin to the
micro-batches (at most one per sequence), and within a micro-batch to the EP ranks; rank 0 takes
the heaviest of every ``ep`` and is the simulated rank (the busiest, as in ``run``). ``dp`` data-
parallel replicas are serving replicas (requests dealt round-robin, as ``--replicas``), each
``tp x pp x ep`` devices.

KV cache: vLLM's rule (:mod:`llmsim.serving.kv`) on one device of the group the system places
``kv_write`` on: its memory × utilisation − what else lives there (the busiest rank's weights from
:func:`llmsim.system.run.memory_plan`, the peak activation of one rank's step of the token budget)
− the reserve, over the bytes one block takes on that device: ``block_size`` tokens × the shard's K
and V bytes per token per layer (KV heads / tp) × the layers its stage holds. Under EP every rank
holds its own sequences' cache, so the scheduler's pool is ``ep`` times one device's blocks.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import networkx as nx

from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.errors import CapacityError, ConfigError
from llmsim.graph.ops import OpKind
from llmsim.graph.ragged import lower_ragged
from llmsim.serving.config import ServeConfig
from llmsim.serving.cost import IterationCoster
from llmsim.serving.kv import KvSizing, peak_activation_bytes
from llmsim.system.device import SystemDevice, check_ranks
from llmsim.system.parallel import (
    check_ep,
    expert_parallel,
    pipeline,
    place,
    shard_model,
    stage_of_layers,
    tensor_parallel,
)
from llmsim.system.run import hold_kv, memory_plan
from llmsim.system.spec import SystemSpec, check_layout_flags, load_group_device_spec


class SystemServe:
    """A model served on ``system`` at a parallel layout (see the module docstring)."""

    def __init__(self, system: SystemSpec, model: ModelSpec, sc: Scenario, tp: int = 1, pp: int = 1, ep: int = 1,
                 dp: int = 1, micro: int = 1, fidelity: str = "cycle"):
        check_layout_flags(system.name, True, tp=tp, pp=pp, ep=ep, dp=dp, micro=micro)
        if model.arch != "decoder":
            raise ConfigError(f"serving needs a decoder-only model, {model.name} is {model.arch}")
        stage_of_layers(model.n_layers, pp)
        check_ep(model, ep, ep)  # the model side; iterations deal their sequences unevenly (module docstring)
        check_ranks(system, tp, pp, ep, dp)
        self.system, self.model, self.sc = system, model, sc
        self.tp, self.pp, self.ep, self.dp, self.micro = tp, pp, ep, dp, micro
        self.name, self.kind = system.name, "system"
        self.shard = shard_model(model, tp)
        self.specs = {g: load_group_device_spec(system, g) for g in system.devices}
        # weights (and one token's activations) against every group's memory: "needs at least N devices"
        sc1 = sc.model_copy(update={"batch": ep, "prompt": 1, "gen": 1})
        self.plan = memory_plan(system, self.specs, model, sc1, tp, pp, context=0, ep=ep)
        # one replica's devices: dp replicas are serving replicas, each costing its own iterations
        self.device = SystemDevice(system, self.specs, tp=tp, pp=pp, fidelity=fidelity, mode=sc.mode, ep=ep)
        hold_kv(self.device, self.plan, system, model, sc, tp, pp)  # an iteration's ops hold their own sequences
        self.layout = (("tp", tp), ("pp", pp), ("ep", ep), ("micro", micro))
        self.kv: KvSizing | None = None

    # ---- the step of one iteration ------------------------------------------------------------------
    def _deal(self, q: list[int], k: list[int]) -> list[tuple[list[tuple[int, int]], int, int]]:
        """Per micro-batch: the simulated rank's (new tokens, keys), the micro-batch's tokens, its rank's."""
        seqs = list(zip(q, k, strict=True))
        m = min(self.micro, len(seqs))
        if m == 1 and self.ep == 1:
            return [(seqs, sum(q), sum(q))]
        seqs.sort(key=lambda s: (-s[0], -s[1]))
        out = []
        for j in range(m):
            mb = seqs[j::m]
            mine = mb[0::self.ep]
            out.append((mine, sum(a for a, _ in mb), sum(a for a, _ in mine)))
        return out

    def lower(self, m: ModelSpec, q: list[int], k: list[int]) -> nx.DiGraph:
        """The system step graph of the mix ``(q, k)`` for model ``m`` (the served model or its
        two-layer copy)."""
        shard = shard_model(m, self.tp)
        phase = "prefill" if max(q) > 1 else "decode"
        parts = []
        for mine, tokens, local in self._deal(q, k):
            g = lower_ragged(shard, self.sc, [a for a, _ in mine], [b for _, b in mine], phase)
            g = expert_parallel(g, shard, self.ep, tokens, self.sc.moe_skew, local=local)
            parts.append(place(tensor_parallel(g, self.tp), self.system.placement, self.system.main_group))
        g = pipeline(parts, self.pp, m.n_layers)
        g.graph["batch"] = len(q)
        for v in g.nodes:  # a stage boundary's send is no part of a layer: not copied with one
            op = g.nodes[v]["op"]
            if op.kind == OpKind.collective and op.attr("port") == "pp":
                g.nodes[v]["op"] = replace(op, layer=-1)
        return g

    def coster(self, cfg: ServeConfig) -> IterationCoster:
        """An empty iteration-cost cache on this layout (layers extrapolated per pipeline stage where
        the coster's check against the full graph holds)."""
        per = stage_of_layers(self.model.n_layers, self.pp)
        return IterationCoster(self.device, self.model, self.sc, cfg.block_size, lower=self.lower,
                               layout=self.layout, stages=tuple(per.count(s) for s in range(self.pp)))

    # ---- memory -------------------------------------------------------------------------------------
    def size_kv_cache(self, cfg: ServeConfig, profile_tokens: int) -> KvSizing:
        """Blocks of the scheduler's pool (see the module docstring); refuses a device with no room for one."""
        main, kv_group = self.system.main_group, self.plan["kv_group"]
        cap = self.specs[kv_group].memory.capacity_bytes
        weights = self.plan["weight_bytes"] if self.plan["weight_group"] == kv_group else 0.0
        act = peak_activation_bytes(self.shard, self.sc, profile_tokens)
        act_here = act if kv_group == main else 0.0
        per_stage = max(stage_of_layers(self.model.n_layers, self.pp).count(s) for s in range(self.pp))
        block = cfg.block_size * self.shard.kv_bytes_per_token(self.sc.kv_dtype.bytes) / self.shard.n_layers \
            * per_stage
        usable = cap * cfg.gpu_memory_utilization
        free = usable - weights - act_here - cfg.runtime_reserve_bytes
        per_device = max(0, math.floor(free / block))
        if cfg.kv_blocks is None and per_device < 1:
            raise CapacityError(f"no room for a KV cache on a '{kv_group}' device of {self.system.name} at --tp "
                                f"{self.tp} --pp {self.pp}: {cap / 1e9:.2f} GB x utilisation "
                                f"{cfg.gpu_memory_utilization} - weights {weights / 1e9:.2f} GB - activations "
                                f"{act_here / 1e9:.2f} GB - reserve {cfg.runtime_reserve_bytes / 1e9:.2f} GB leaves "
                                f"{free / 1e9:.3f} GB, less than one {cfg.block_size}-token block (raise --tp or --pp)")
        blocks = cfg.kv_blocks if cfg.kv_blocks is not None else per_device * self.ep
        self.kv = KvSizing(cap, usable, weights, act_here, float(cfg.runtime_reserve_bytes), block, blocks,
                           pool_devices=self.ep)
        self.plan = self.plan | {"kv_bytes": blocks / self.ep * block, "activation_bytes": act}
        return self.kv

    def config(self) -> dict[str, Any]:
        """What the serve JSON records of the system (as ``run``'s ``config.system``)."""
        return {"spec": self.system.model_dump(mode="json"), "tp": self.tp, "pp": self.pp, "ep": self.ep,
                "dp": self.dp, "micro_batches": self.micro, "per_device": self.plan}

    @property
    def main_spec(self) -> Any:
        return self.specs[self.system.main_group]


def serve_target(hw: Any, model: ModelSpec, sc: Scenario, replicas: int = 1, *, tp: int | None = None,
                 pp: int | None = None, ep: int | None = None, dp: int | None = None, micro: int | None = None,
                 fidelity: str = "cycle") -> tuple[Any, Any, int]:
    """What ``llmsim serve`` and a sweep's serve point serve on: ``(target, device spec, replicas)``.

    ``hw`` a device spec: itself, itself, ``replicas`` (a layout flag is refused). A
    :class:`SystemSpec`: a :class:`SystemServe` at the layout (unset flags: 1), its main group's device
    spec (what the results' config records), and ``replicas`` x ``dp`` serving replicas."""
    system = isinstance(hw, SystemSpec)
    check_layout_flags(hw.name, system, tp=tp, pp=pp, ep=ep, dp=dp, micro=micro)
    if not system:
        return hw, hw, replicas
    target = SystemServe(hw, model, sc, tp=tp or 1, pp=pp or 1, ep=ep or 1, dp=dp or 1, micro=micro or 1,
                         fidelity=fidelity)
    return target, target.main_spec, replicas * target.dp
