"""Early exit / layer skipping, costed with the step simulator.

``--exit depth=L``: every token runs the first L layers. ``--exit min=A,max=B``: SkipDecode's
schedule (Del Corro et al. 2023, arXiv 2307.02628): the depth falls linearly with the position,
from B at the first decode step to A at the last, the same for every sequence of the batch (so
batching keeps working). ``--exit dist=L1:p1/L2:p2/...``: each token exits at layer Li with
probability pi independently; a batch runs until its deepest token exits, so a step runs depth d
with probability F(d)^B − F(d−1)^B (F: the cumulative distribution), and its expected cost is
that mixture of the simulated steps. Skipped layers still write the token's K and V
(:func:`llmsim.graph.lower.lower_decode_exit`). Prefill runs every layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.devices.base import Fidelity
from llmsim.engine import SimResult, make_device, resolved_config, simulate
from llmsim.engine.simulate import simulate_step
from llmsim.errors import ConfigError
from llmsim.graph.lower import lower_decode_exit

OPTION = "--exit"


@dataclass(frozen=True)
class ExitSchedule:
    """Per-token exit depths: fixed (``depth``), SkipDecode's linear schedule (``min``..``max``)
    or a distribution (``dist``: (depth, probability) pairs)."""

    depth: int | None = None
    min: int | None = None
    max: int | None = None
    dist: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        kinds = (self.depth is not None) + (self.min is not None or self.max is not None) + bool(self.dist)
        if kinds != 1:
            raise ConfigError(f"{OPTION}: give one of depth=L, min=A,max=B or dist=L1:p1/L2:p2")
        if (self.min is None) != (self.max is None):
            raise ConfigError(f"{OPTION}: SkipDecode's schedule needs both min= and max=")
        if self.min is not None and self.min > self.max:
            raise ConfigError(f"{OPTION} min={self.min} > max={self.max}")
        if self.dist:
            if any(p < 0 for _, p in self.dist) or abs(sum(p for _, p in self.dist) - 1.0) > 1e-6:
                raise ConfigError(f"{OPTION} dist: probabilities must be >= 0 and sum to 1")

    def check(self, n_layers: int) -> None:
        for d in [self.depth, self.min, self.max, *(d for d, _ in self.dist)]:
            if d is not None and not 1 <= d <= n_layers:
                raise ConfigError(f"{OPTION}: depth {d} is outside 1..{n_layers}")

    def step_depths(self, k: int, n_steps: int, batch: int) -> list[tuple[int, float]]:
        """(depth, probability) of decode step ``k`` (1-based) of ``n_steps`` for a batch."""
        if self.depth is not None:
            return [(self.depth, 1.0)]
        if self.min is not None:
            frac = (k - 1) / (n_steps - 1) if n_steps > 1 else 0.0
            return [(round(self.max - (self.max - self.min) * frac), 1.0)]
        out, cum_prev = [], 0.0
        for d, p in sorted(self.dist):
            cum = cum_prev + p
            w = min(cum, 1.0) ** batch - cum_prev ** batch
            if w > 0:
                out.append((d, w))
            cum_prev = cum
        return out


def parse_exit(text: str) -> ExitSchedule:
    fields: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, val = part.partition("=")
        if not sep or key not in ("depth", "min", "max", "dist"):
            raise ConfigError(f"{OPTION} '{text}': expected depth=L, min=A,max=B or dist=L1:p1/L2:p2; got '{part}'")
        try:
            if key == "dist":
                fields[key] = tuple((int(d), float(p)) for d, p in (x.split(":") for x in val.split("/")))
            else:
                fields[key] = int(val)
        except ValueError:
            raise ConfigError(f"{OPTION} {key}='{val}': not a number (dist: L1:p1/L2:p2)") from None
    return ExitSchedule(**fields)


@dataclass(frozen=True)
class ExitResult:
    """Early exit against running every layer, same target, scenario and device."""

    schedule: ExitSchedule
    layers_run: tuple[float, ...]  # expected layers run per decode step
    mean_layers: float
    ttft_s: float
    tpot_s: float
    energy_per_token_j: float
    baseline_tpot_s: float
    baseline_energy_per_token_j: float
    config: dict[str, Any]

    @property
    def speedup(self) -> float:
        return self.baseline_tpot_s / self.tpot_s

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("schedule", "config")}
        return d | {"schedule": asdict(self.schedule), "speedup": self.speedup, "config": self.config}


def simulate_early_exit(hw: Any, model: ModelSpec, sc: Scenario, schedule: ExitSchedule,
                        fidelity: Fidelity = "cycle", baseline: SimResult | None = None) -> ExitResult:
    """Cost a generation whose decode steps exit early; ``baseline``: the same run with every layer,
    when already simulated."""
    schedule.check(model.n_layers)
    if sc.gen < 2:
        raise ConfigError(f"{OPTION}: needs gen >= 2 (decode steps exit early; prefill runs every layer)")
    dev = make_device(hw, model, sc, fidelity)
    base = baseline or simulate(hw, model, sc, fidelity)
    n = sc.gen - 1
    layers, decode_s, decode_j = [], 0.0, 0.0
    for k in range(1, sc.gen):
        ctx = sc.prompt + k
        mix = schedule.step_depths(k, n, sc.batch)
        layers.append(sum(d * w for d, w in mix))
        for d, w in mix:
            r = simulate_step(lower_decode_exit(model, sc, context=ctx, depth=d, step=k), dev)
            decode_s += w * r.latency_s
            decode_j += w * r.energy_j
    tokens = sc.batch * sc.gen
    return ExitResult(
        schedule=schedule, layers_run=tuple(layers), mean_layers=sum(layers) / n, ttft_s=base.ttft_s,
        tpot_s=decode_s / n, energy_per_token_j=(base.steps[0].energy_j + decode_j) / tokens,
        baseline_tpot_s=base.tpot_s, baseline_energy_per_token_j=base.energy_j / tokens,
        config=resolved_config(hw, model, sc, fidelity) | {"exit": asdict(schedule)},
    )
