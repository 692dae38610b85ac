"""The serving simulation: arrivals → scheduler → the engine costing each iteration → records.

One simpy environment: an arrival process hands each request to a replica (round robin), and
each replica is a process that asks its policy for the next iteration's batch, costs it
(:class:`~llmsim.serving.cost.IterationCoster`), holds for that long and then emits the
iteration's tokens. A replica with nothing to run waits for the next arrival. The result keeps
one record per request and one per iteration; every metric is computed from them
(:mod:`llmsim.serving.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import simpy

from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.devices.base import Fidelity
from llmsim.engine import make_device
from llmsim.errors import CapacityError, ConfigError
from llmsim.serving.arrivals import Request
from llmsim.serving.config import ServeConfig
from llmsim.serving.cost import IterationCoster
from llmsim.serving.kv import BlockManager, KvSizing, size_kv_cache
from llmsim.serving.scheduler import Seq, make_policy

ITER_FIELDS = ("start_s", "end_s", "replica", "seqs", "tokens", "prefill_tokens", "kv_blocks_used", "in_system",
               "energy_j")


@dataclass(frozen=True)
class ServeResult:
    requests: list[dict[str, Any]]      # one record per request
    iterations: list[tuple]             # one row per iteration (ITER_FIELDS)
    kv: KvSizing
    scheduler: str
    replicas: int
    preemptions: int
    cost_cache_entries: int
    config: dict[str, Any]


def _emit(batch: list[tuple[Seq, int]], t: float, energy: float, policy) -> int:
    """Advance the batch's sequences past one iteration ending at ``t``; returns how many finished."""
    total, finished = sum(n for _, n in batch), 0
    for s, n in batch:
        s.computed += n
        s.energy_j += energy * n / total
        if s.pending == 0:
            s.generated += 1
            s.token_times.append(t)
            if s.first_token_s is None:
                s.first_token_s = t
            if s.done:
                s.finish_s = t
                policy.finished(s)
                finished += 1
    return finished


def _system(hw: Any) -> bool:
    from llmsim.system.serve import SystemServe

    return isinstance(hw, SystemServe)


def make_coster(hw: Any, model: ModelSpec, sc: Scenario, cfg: ServeConfig, fidelity: Fidelity = "cycle"
                ) -> IterationCoster:
    """The device (weights checked against its memory) and an empty iteration-cost cache; ``hw`` a
    :class:`~llmsim.system.serve.SystemServe`: its system device and layout (checked when it was built)."""
    if _system(hw):
        return hw.coster(cfg)
    sc1 = sc.model_copy(update={"batch": 1, "prompt": 1, "gen": 1})
    return IterationCoster(make_device(hw, model, sc1, fidelity, context=0), model, sc, cfg.block_size)


def simulate_serving(hw: Any, model: ModelSpec, sc: Scenario, requests: tuple[Request, ...], *,
                     scheduler: str = "vllm", replicas: int = 1, cfg: ServeConfig | None = None,
                     fidelity: Fidelity = "cycle", coster: IterationCoster | None = None) -> ServeResult:
    """Serve ``requests`` on ``replicas`` copies of ``hw`` running ``model``; ``hw`` is a device spec or a
    :class:`~llmsim.system.serve.SystemServe` (a system at a parallel layout: a replica is its ranks)."""
    cfg = cfg or ServeConfig()
    if _system(hw) and model != hw.model:
        raise ConfigError(f"serving {model.name} on a system laid out for {hw.model.name}: pass the SystemServe's "
                          "own model")
    if replicas < 1:
        raise ConfigError(f"--replicas {replicas}: must be at least 1")
    if model.arch != "decoder":
        raise ConfigError(f"serving needs a decoder-only model, {model.name} is {model.arch}")
    longest = max(r.prompt + r.output for r in requests)
    if longest > model.max_positions:
        raise ConfigError(f"a request of {longest} tokens exceeds {model.name}'s max_positions "
                          f"({model.max_positions})")
    chunked = scheduler == "sarathi"
    # vLLM raises the token budget to the longest request when prefills are not chunked
    budget = cfg.chunk_tokens if chunked else max(cfg.max_num_batched_tokens, longest)
    kv = hw.size_kv_cache(cfg, budget) if _system(hw) else size_kv_cache(hw.memory.capacity_bytes, model, sc,
                                                                            cfg, budget)
    need = -(-longest // cfg.block_size)
    if need > kv.blocks:
        raise CapacityError(f"a request of {longest} tokens needs {need} KV blocks; the cache holds {kv.blocks} "
                            f"({cfg.block_size} tokens each)")
    coster = coster or make_coster(hw, model, sc, cfg, fidelity)
    env = simpy.Environment()
    seqs = [Seq(r) for r in requests]
    policies = [make_policy(scheduler, BlockManager(kv.blocks, cfg.block_size), cfg.max_num_seqs, budget)
                for _ in range(replicas)]
    wake = [env.event() for _ in range(replicas)]
    rows: list[tuple] = []
    in_system = [0]
    remaining = [len(seqs)]
    all_done = env.event()

    def arrivals():
        for i, s in enumerate(seqs):
            if s.req.arrival_s > env.now:
                yield env.timeout(s.req.arrival_s - env.now)
            r = i % replicas
            policies[r].waiting.append(s)
            in_system[0] += 1
            if not wake[r].triggered:
                wake[r].succeed()

    def replica(r: int):
        pol = policies[r]
        while True:
            batch = pol.schedule()
            if not batch:
                if pol.running:
                    raise CapacityError(f"replica {r}: {len(pol.running)} running sequences hold every KV block "
                                        "and none can proceed")
                wake[r] = env.event()
                yield wake[r]
                continue
            for s, _ in batch:
                if s.first_scheduled_s is None:
                    s.first_scheduled_s = env.now
            c = coster([(n, s.computed + n) for s, n in batch])
            t0, n_in = env.now, in_system[0]
            prefill = sum(n for s, n in batch if s.generated == 0 or s.pending > 1)
            yield env.timeout(c.latency_s)
            n_done = _emit(batch, env.now, c.energy_j, pol)
            in_system[0] -= n_done
            remaining[0] -= n_done
            rows.append((t0, env.now, r, len(batch), sum(n for _, n in batch), prefill, pol.kv.used, n_in,
                         c.energy_j))
            if remaining[0] == 0:
                all_done.succeed()

    env.process(arrivals())
    for r in range(replicas):
        env.process(replica(r))

    env.run(until=all_done)
    records = [{"id": s.req.id, "arrival_s": s.req.arrival_s, "prompt_tokens": s.req.prompt,
                "output_tokens": s.req.output, "first_scheduled_s": s.first_scheduled_s,
                "first_token_s": s.first_token_s, "finish_s": s.finish_s, "preemptions": s.preemptions,
                "energy_j": s.energy_j} for s in seqs]
    return ServeResult(records, rows, kv, scheduler, replicas, sum(p.preemptions for p in policies),
                       len(coster.cache), {"serve": cfg.model_dump(mode="json"), "token_budget": budget,
                                           "layers_extrapolated": coster.layered,
                                           "idle_power_w": coster.dev.spec.static_power_w
                                           + sum(coster.dev.background_power_w().values())}
                       | ({"per_device": dict(hw.plan)} if _system(hw) else {}))

