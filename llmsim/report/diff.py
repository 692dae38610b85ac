"""Two saved run results side by side (``llmsim diff A.json B.json``): headline metrics, energy
by component, bytes by level, busy time by unit, time by op kind, and the ops that changed most."""

from __future__ import annotations

from typing import Any

from llmsim.errors import LlmsimError

HEADLINE = ("ttft_s", "tpot_s", "total_s", "tokens_per_s", "energy_j", "energy_per_token_j")
TABLES = ("energy_breakdown_j", "bytes_by_level", "busy_by_unit_s", "latency_breakdown_s")


def _ratio(a: float, b: float) -> str:
    if a == b:
        return "="
    if a == 0:
        return "new" if b else "="
    return f"{100 * (b - a) / a:+.1f}%"


def diff_runs(a: dict[str, Any], b: dict[str, Any], top: int = 8) -> dict[str, Any]:
    """Per-field A, B and change; ``top_ops``: op classes by absolute change in time."""
    for name, d in (("A", a), ("B", b)):
        missing = [k for k in HEADLINE + TABLES + ("top_ops",) if k not in d]
        if missing:
            raise LlmsimError(f"diff: {name} is not a run result (lacks {', '.join(missing[:3])}); "
                              "write one with llmsim run --json")
    out: dict[str, Any] = {"headline": {k: {"a": a[k], "b": b[k]} for k in HEADLINE}}
    for t in TABLES:
        keys = sorted(set(a[t]) | set(b[t]))
        out[t] = {k: {"a": a[t].get(k, 0.0), "b": b[t].get(k, 0.0)} for k in keys}
    ops_a = {r["op"]: r["seconds"] for r in a["top_ops"]}
    ops_b = {r["op"]: r["seconds"] for r in b["top_ops"]}
    changed = sorted(set(ops_a) | set(ops_b), key=lambda k: -abs(ops_b.get(k, 0.0) - ops_a.get(k, 0.0)))
    out["top_ops"] = {k: {"a": ops_a.get(k, 0.0), "b": ops_b.get(k, 0.0)} for k in changed[:top]}
    return out


def format_diff(d: dict[str, Any], name_a: str, name_b: str) -> list[str]:
    lines = [f"{'':<30} {'A':>14} {'B':>14} {'change':>9}   A = {name_a}, B = {name_b}"]
    for section, rows in d.items():
        lines.append(f"{section}:")
        for k, v in rows.items():
            lines.append(f"  {k:<28} {v['a']:>14.5g} {v['b']:>14.5g} {_ratio(v['a'], v['b']):>9}")
    return lines
