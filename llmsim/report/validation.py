"""The report of a validation (measured vs predicted). Expected input (extra keys are ignored)::

    {
      "hw": "h100", "model": "gpt2", "device": "NVIDIA H100 ...", "mode": "graph",   # optional labels
      "cases":      [{"name": "prefill b1 s128", "phase": "prefill",                 # phase optional
                      "measured_s": 1.2e-3, "predicted_s": 1.1e-3}, ...],
      "op_classes": [{"kind": "matmul", "measured_s": 8e-4, "predicted_s": 7.5e-4}, ...]   # optional
    }

Aliases accepted: ``measured``/``meas_s`` for ``measured_s``; ``predicted``/``pred_s``/``simulated_s``
for ``predicted_s``; ``op_class``/``class``/``name`` for ``kind``; ``case`` for ``name``. Without
``op_classes``, the per-class errors are grouped from the cases by their ``kind`` (or ``phase``).
Error = (predicted − measured) / measured.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

import plotly.graph_objects as go

from llmsim.errors import LlmsimError
from llmsim.report.page import Page, fmt_s

_MEAS = ("measured_s", "measured", "meas_s")
_PRED = ("predicted_s", "predicted", "pred_s", "simulated_s")


def _get(d: dict[str, Any], keys: tuple[str, ...], where: str) -> float:
    for k in keys:
        if d.get(k) is not None:
            return float(d[k])
    raise LlmsimError(f"validation report: {where} has none of {', '.join(keys)}")


def normalise(data: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Cases and op classes as ``{name, group, measured_s, predicted_s, error}`` records."""
    cases = []
    for i, c in enumerate(data.get("cases") or []):
        m, p = _get(c, _MEAS, f"cases[{i}]"), _get(c, _PRED, f"cases[{i}]")
        if m <= 0:
            raise LlmsimError(f"validation report: cases[{i}]: measured time must be > 0, got {m}")
        cases.append({"name": str(c.get("name", c.get("case", f"case {i}"))),
                      "group": str(c.get("kind", c.get("phase", "all"))), "phase": str(c.get("phase", "")),
                      "measured_s": m, "predicted_s": p, "error": (p - m) / m})
    classes = []
    for i, c in enumerate(data.get("op_classes") or []):
        m, p = _get(c, _MEAS, f"op_classes[{i}]"), _get(c, _PRED, f"op_classes[{i}]")
        name = next((str(c[k]) for k in ("kind", "op_class", "class", "name") if k in c), f"class {i}")
        classes.append({"name": name, "measured_s": m, "predicted_s": p, "error": (p - m) / m if m > 0 else 0.0})
    if not classes:
        groups: dict[str, list[dict]] = defaultdict(list)
        for c in cases:
            groups[c["group"]].append(c)
        for g, cs in groups.items():
            m, p = sum(c["measured_s"] for c in cs), sum(c["predicted_s"] for c in cs)
            classes.append({"name": g, "measured_s": m, "predicted_s": p, "error": (p - m) / m})
    if not cases and not classes:
        raise LlmsimError("validation report: no cases and no op_classes")
    return cases, classes


def parity(cases: list[dict]) -> go.Figure:
    fig = go.Figure()
    by_phase: dict[str, list[dict]] = defaultdict(list)
    for c in cases:
        by_phase[c["phase"] or "cases"].append(c)
    vals = [v for c in cases for v in (c["measured_s"], c["predicted_s"]) if v > 0]
    lo, hi = min(vals) / 1.5, max(vals) * 1.5
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", line={"color": "#444", "dash": "dash"},
                    hoverinfo="skip")
    fig.add_scatter(x=[lo, hi], y=[lo * 1.2, hi * 1.2], mode="lines", name="±20%", line={"color": "#bbb"},
                    hoverinfo="skip", legendgroup="band")
    fig.add_scatter(x=[lo, hi], y=[lo * 0.8, hi * 0.8], mode="lines", showlegend=False, line={"color": "#bbb"},
                    hoverinfo="skip", legendgroup="band")
    for phase, cs in sorted(by_phase.items()):
        fig.add_scatter(x=[c["measured_s"] for c in cs], y=[c["predicted_s"] for c in cs], mode="markers",
                        name=phase, marker={"size": 9},
                        customdata=[[c["name"], 100 * c["error"]] for c in cs],
                        hovertemplate="%{customdata[0]}<br>measured %{x:.4g} s, predicted %{y:.4g} s "
                                      "(%{customdata[1]:+.1f}%)<extra></extra>")
    fig.update_layout(xaxis_type="log", yaxis_type="log", xaxis_title="measured (s)", yaxis_title="predicted (s)")
    return fig


def class_errors(classes: list[dict]) -> go.Figure:
    cs = sorted(classes, key=lambda c: -c["measured_s"])
    fig = go.Figure(go.Bar(x=[c["name"] for c in cs], y=[100 * c["error"] for c in cs],
                           marker_color=["#e45756" if c["error"] > 0 else "#4c78a8" for c in cs],
                           customdata=[[c["measured_s"], c["predicted_s"]] for c in cs],
                           hovertemplate="%{x}: %{y:+.1f}%<br>measured %{customdata[0]:.4g} s, predicted "
                                         "%{customdata[1]:.4g} s<extra></extra>"))
    fig.update_layout(yaxis_title="error (predicted − measured) / measured, %")
    return fig


def build(data: dict[str, Any]) -> Page:
    cases, classes = normalise(data)
    labels = [str(data[k]) for k in ("model", "hw", "device", "mode") if data.get(k)]
    page = Page("Validation: measured vs predicted", " · ".join(labels))
    errs = [abs(c["error"]) for c in cases]
    if errs:
        page.cards([("cases", str(len(cases))), ("mean |error|", f"{100 * statistics.fmean(errs):.1f}%"),
                    ("median |error|", f"{100 * statistics.median(errs):.1f}%"),
                    ("worst |error|", f"{100 * max(errs):.1f}%"),
                    ("within ±20%", f"{sum(e <= 0.2 for e in errs)}/{len(errs)}")])
        page.chart("Measured vs predicted", parity(cases), "each point one case; dashed y = x, grey ±20%", 520)
    if classes:
        page.chart("Error per op class", class_errors(classes), "positive = simulator slower than measured")
    page.table("Cases", ["case", "phase", "measured", "predicted", "error"],
               [[c["name"], c["phase"], fmt_s(c["measured_s"]), fmt_s(c["predicted_s"]),
                 f"{100 * c['error']:+.1f}%"] for c in cases])
    return page
