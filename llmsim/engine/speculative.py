"""Speculative decoding, costed with the step simulator (Leviathan et al. 2023, arXiv 2211.17192).

An iteration drafts K tokens — K decode steps of a small draft model, or Medusa heads that ran
at the end of the previous verification (Cai et al. 2024, arXiv 2401.10774) — then the target
verifies the last accepted token and the drafts in one step over ``1 + K·tree`` positions. With
an i.i.d. acceptance rate A, an iteration emits (1 − A^(K+1)) / (1 − A) tokens in expectation
(the accepted drafts plus the target's own next token), so ``gen − 1`` decode tokens take that
many fewer iterations. Iteration i starts with ``prompt + i·E`` tokens in the cache; its draft
steps and verification are simulated at those contexts on the same device as the target.
The draft's rejected tokens cost their full time: the draft rolls back its cache, the target
overwrites the rejected positions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from llmsim.config.model import ModelSpec
from llmsim.config.quant import stored_weight_bytes
from llmsim.config.scenario import Scenario
from llmsim.devices.base import Fidelity
from llmsim.devices.quant import refuse_unsupported
from llmsim.engine import SimResult, make_device, resolved_config, simulate
from llmsim.engine.simulate import simulate_step
from llmsim.errors import ConfigError
from llmsim.graph.lower import lower_decode, lower_prefill, lower_verify

OPTION = "--speculative"


@dataclass(frozen=True)
class Speculation:
    """``k`` drafted tokens per iteration accepted each with probability ``accept``; drafted by
    the model ``draft`` or by ``heads`` Medusa heads (``tree`` candidates per position)."""

    k: int
    accept: float
    draft: str | None = None
    heads: int = 0
    tree: int = 1

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"{OPTION} k={self.k}: needs k >= 1")
        if not 0.0 <= self.accept <= 1.0:
            raise ConfigError(f"{OPTION} accept={self.accept}: an acceptance rate is in [0, 1]")
        if (self.draft is None) == (self.heads == 0):
            raise ConfigError(f"{OPTION}: give exactly one of draft=MODEL or heads=N")
        if self.heads and self.k > self.heads:
            raise ConfigError(f"{OPTION} k={self.k}: {self.heads} heads draft at most {self.heads} tokens")
        if self.tree < 1 or (self.tree > 1 and not self.heads):
            raise ConfigError(f"{OPTION} tree={self.tree}: a tree width >= 1, with heads=N only")

    @property
    def tokens_per_iteration(self) -> float:
        """Expected tokens one iteration emits: (1 − A^(K+1)) / (1 − A) (Leviathan et al., eq. 1)."""
        a, k = self.accept, self.k
        return k + 1.0 if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)

    @property
    def verify_tokens(self) -> int:
        return 1 + self.k * self.tree


def parse_speculative(text: str) -> Speculation:
    """``draft=MODEL,k=K,accept=A`` or ``heads=N,k=K,accept=A[,tree=W]``."""
    fields: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, val = part.partition("=")
        if not sep or key not in ("draft", "heads", "k", "accept", "tree"):
            raise ConfigError(f"{OPTION} '{text}': expected draft=MODEL|heads=N, k=K, accept=A[, tree=W]; "
                              f"got '{part}'")
        try:
            fields[key] = val if key == "draft" else float(val) if key == "accept" else int(val)
        except ValueError:
            raise ConfigError(f"{OPTION} {key}='{val}': not a number") from None
    for need in ("k", "accept"):
        if need not in fields:
            raise ConfigError(f"{OPTION} '{text}': missing {need}=")
    return Speculation(**fields)


@dataclass(frozen=True)
class SpecResult:
    """Speculative decoding against plain decoding of the same target, scenario and device."""

    speculation: Speculation
    iterations: float
    tokens_per_iteration: float
    draft_s_per_iteration: float
    verify_s_per_iteration: float
    ttft_s: float
    tpot_s: float
    total_s: float
    energy_per_token_j: float
    baseline_tpot_s: float
    baseline_energy_per_token_j: float
    config: dict[str, Any]

    @property
    def speedup(self) -> float:
        """Plain decoding's TPOT over the effective TPOT."""
        return self.baseline_tpot_s / self.tpot_s

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("speculation", "config")}
        return d | {"speculation": asdict(self.speculation), "speedup": self.speedup, "config": self.config}


def simulate_speculative(hw: Any, target: ModelSpec, sc: Scenario, spec: Speculation,
                         draft: ModelSpec | None = None, fidelity: Fidelity = "cycle",
                         baseline: SimResult | None = None) -> SpecResult:
    """Cost ``gen − 1`` decode tokens of ``target`` drafted by ``draft`` (or Medusa heads).
    ``baseline``: plain decoding of the same target, scenario and device, when already simulated."""
    if (draft is None) != (spec.draft is None):
        raise ConfigError(f"{OPTION}: draft=MODEL needs the draft model's spec (and heads=N none)")
    if sc.gen < 2:
        raise ConfigError(f"{OPTION}: needs gen >= 2 (the first token comes from prefill)")
    horizon = sc.prompt + sc.gen + spec.verify_tokens
    dev = make_device(hw, target, sc, fidelity, context=horizon)
    base = baseline or simulate(hw, target, sc, fidelity)
    draft_prefill = None
    if draft is not None:
        refuse_unsupported(dev, lower_decode(draft, sc, context=2, batch=1))
        per_token = target.kv_bytes_per_token(sc.kv_dtype.bytes) + draft.kv_bytes_per_token(sc.kv_dtype.bytes)
        weights = stored_weight_bytes(target, sc) + stored_weight_bytes(draft, sc)
        dev.check_fits(weights, sc.batch * horizon * per_token)
        dev.hold_kv(weights, per_token)
        draft_prefill = simulate_step(lower_prefill(draft, sc), dev)
    n_tokens = sc.gen - 1
    e = spec.tokens_per_iteration
    iterations = n_tokens / e
    draft_s, verify_s, energy = [], [], 0.0
    for i in range(max(1, math.ceil(iterations))):
        ctx = sc.prompt + round(i * e)
        t = 0.0
        if draft is not None:
            for j in range(spec.k):
                r = simulate_step(lower_decode(draft, sc, context=ctx + j + 1, step=i + 1), dev)
                t += r.latency_s
                energy += r.energy_j
        draft_s.append(t)
        v = simulate_step(lower_verify(target, sc, context=ctx + spec.verify_tokens, tokens=spec.verify_tokens,
                                       heads=spec.heads, step=i + 1), dev)
        verify_s.append(v.latency_s)
        energy += v.energy_j
    n = len(verify_s)
    per_iter = (sum(draft_s) + sum(verify_s)) / n
    ttft = base.ttft_s + (draft_prefill.latency_s if draft_prefill else 0.0)
    prefill_j = base.steps[0].energy_j + (draft_prefill.energy_j if draft_prefill else 0.0)
    decode_s = per_iter * iterations
    tokens = sc.batch * sc.gen
    base_tpot = base.tpot_s
    cfg = resolved_config(hw, target, sc, fidelity) | {
        "speculation": asdict(spec), "draft": draft.model_dump(mode="json") if draft else None}
    return SpecResult(
        speculation=spec, iterations=iterations, tokens_per_iteration=e, draft_s_per_iteration=sum(draft_s) / n,
        verify_s_per_iteration=sum(verify_s) / n, ttft_s=ttft, tpot_s=per_iter / e,
        total_s=ttft + decode_s, energy_per_token_j=(prefill_j + energy / n * iterations) / tokens,
        baseline_tpot_s=base_tpot, baseline_energy_per_token_j=base.energy_j / tokens, config=cfg,
    )
