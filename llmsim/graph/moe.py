"""Mixture-of-Experts routing statistics: which experts a batch touches and how loaded the busiest is.

Each of ``tokens`` tokens is routed to ``top_k`` distinct experts of ``experts``. Expert e's
popularity follows a Zipf law p_e ∝ (e + 1)^−s (``skew`` s = 0: uniform routing, the balance a
load-balancing loss aims for; s ≈ 1: the imbalance seen in trained routers, e.g. OpenMoE's
analysis, arXiv 2402.01739). A token picks expert e with probability q_e = min(1, c·p_e), c
chosen so that Σ q_e = top_k (k distinct picks per token). Tokens route independently, so

* expected distinct experts touched = Σ_e 1 − (1 − q_e)^tokens, and
* the busiest expert's expected load = tokens · max_e q_e rows

(expected values: the random spread of loads around them is not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.errors import ConfigError


@dataclass(frozen=True)
class Routing:
    distinct_experts: float
    max_expert_rows: float
    pick_probability: tuple[float, ...]


def pick_probabilities(experts: int, top_k: int, skew: float = 0.0) -> list[float]:
    """q_e: probability one token routes to expert e (Σ q_e = top_k, each ≤ 1)."""
    if skew < 0:
        raise ConfigError(f"scenario.moe_skew must be >= 0, got {skew}")
    w = [(e + 1) ** -skew for e in range(experts)]
    # water-filling: the most popular experts saturate at 1, the rest share what is left
    capped, q = 0, [0.0] * experts
    while True:
        rest = sum(w[capped:])
        c = (top_k - capped) / rest
        if capped < experts and c * w[capped] > 1.0:
            capped += 1
            continue
        for e in range(experts):
            q[e] = 1.0 if e < capped else c * w[e]
        return q


def routing(experts: int, top_k: int, tokens: int, skew: float = 0.0) -> Routing:
    q = pick_probabilities(experts, top_k, skew)
    distinct = sum(1.0 - (1.0 - x) ** tokens for x in q)
    return Routing(distinct, tokens * max(q), tuple(q))
