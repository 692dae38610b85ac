"""Pareto fronts over result rows.

An objective is a metric name, minimised unless written ``max:name``. A row is on the front
when no other row is at least as good in every objective and strictly better in one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmsim.errors import LlmsimError

DEFAULT_OBJECTIVES = ("total_s", "energy_per_token_j")
#: a serve sweep's Pareto objectives when its spec names none
SERVE_OBJECTIVES = ("max:goodput_rps", "energy_per_token_j")


def parse_objective(obj: str) -> tuple[str, float]:
    """``"max:tokens_per_s"`` -> ``("tokens_per_s", -1.0)``; ``"total_s"`` -> ``("total_s", 1.0)``."""
    if obj.startswith("max:"):
        return obj[4:], -1.0
    return obj.removeprefix("min:"), 1.0


def default_objectives(rows: list[dict[str, Any]]) -> list[str]:
    """Latency and energy per token, plus area and cost when every row has them."""
    objs = list(DEFAULT_OBJECTIVES)
    for extra in ("area_mm2", "cost_usd"):
        if rows and all(r.get(extra) is not None for r in rows):
            objs.append(extra)
    return objs


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Non-dominated rows of an ``(n, k)`` array, all objectives minimised."""
    n = values.shape[0]
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if not mask[i]:
            continue
        le = np.all(values <= values[i], axis=1)
        lt = np.any(values < values[i], axis=1)
        if np.any(le & lt):
            mask[i] = False
    return mask


def pareto_front(rows: list[dict[str, Any]], objectives: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows (``status == ok`` and feasible) on the Pareto front of ``objectives``."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("feasible", True)]
    if not ok:
        return []
    objectives = objectives or default_objectives(ok)
    cols = []
    for obj in objectives:
        name, sign = parse_objective(obj)
        missing = [r["key"] for r in ok if r.get(name) is None]
        if missing:
            raise LlmsimError(f"objective '{name}': missing in {len(missing)} row(s), e.g. {missing[0]}")
        cols.append([sign * float(r[name]) for r in ok])
    mask = pareto_mask(np.array(cols).T)
    front = [r for r, m in zip(ok, mask, strict=False) if m]
    first = parse_objective(objectives[0])[0]
    return sorted(front, key=lambda r: r[first])
