"""The report of a sweep folder: the objective scatter with its Pareto front, a
parallel-coordinates view of axes and metrics, and tables of the front and of failures.
Hovering a point shows its axis values and config hash (``configs/<hash>.json``). A serve sweep
(a ``serve:`` block: rows of serving metrics) gets the same page over its own objectives (default
goodput and energy per token) and cards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from llmsim.report.page import Page, fmt_s, fmt_si
from llmsim.sweep.pareto import SERVE_OBJECTIVES, default_objectives, pareto_front, parse_objective

LABELS = {"ttft_s": "TTFT (s)", "tpot_s": "TPOT (s)", "total_s": "total latency (s)", "tokens_per_s": "tokens/s",
          "energy_j": "energy (J)", "energy_per_token_j": "energy per token (J)", "avg_power_w": "avg power (W)",
          "area_mm2": "area (mm²)", "cost_usd": "cost (USD)",
          # serve sweeps
          "throughput_rps": "throughput (requests/s)", "throughput_tokens_per_s": "throughput (tokens/s)",
          "goodput_rps": "goodput (requests/s)", "slo_attained": "SLO attained", "ttft_p50_s": "TTFT p50 (s)",
          "ttft_p99_s": "TTFT p99 (s)", "tpot_p50_s": "TPOT p50 (s)", "tpot_p99_s": "TPOT p99 (s)",
          "e2e_p50_s": "end-to-end p50 (s)", "e2e_p99_s": "end-to-end p99 (s)", "queueing_mean_s": "queueing mean (s)",
          "energy_per_request_j": "energy per request (J)",
          "energy_per_token_with_idle_j": "energy per token with idle (J)"}


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.4g}"


def _hover(r: dict[str, Any], objectives: list[str]) -> str:
    lines = [f"{k} = {v}" for k, v in r["axes"].items()]
    lines += [f"{LABELS.get(parse_objective(o)[0], o)}: {_fmt(r[parse_objective(o)[0]])}" for o in objectives]
    return "<br>".join(lines + [f"config: configs/{r['key']}.json"])


def scatter(ok: list[dict], front: list[dict], objectives: list[str]) -> go.Figure:
    x, y = (parse_objective(o)[0] for o in objectives[:2])
    fkeys = {r["key"] for r in front}
    fig = go.Figure()
    for name, rows, style in (("feasible", [r for r in ok if r.get("feasible", True) and r["key"] not in fkeys],
                               {"color": "#9ecae9", "size": 8}),
                              ("infeasible (constraint)", [r for r in ok if not r.get("feasible", True)],
                               {"color": "#d3d3d3", "size": 7, "symbol": "x"})):
        if rows:
            fig.add_scatter(x=[r[x] for r in rows], y=[r[y] for r in rows], mode="markers", name=name, marker=style,
                            text=[_hover(r, objectives) for r in rows], hovertemplate="%{text}<extra></extra>")
    fr = sorted(front, key=lambda r: r[x])
    fig.add_scatter(x=[r[x] for r in fr], y=[r[y] for r in fr], mode="lines+markers", name="Pareto front",
                    line={"shape": "hv", "color": "#e45756"}, marker={"size": 10, "color": "#e45756"},
                    text=[_hover(r, objectives) for r in fr], hovertemplate="%{text}<extra></extra>")
    fig.update_layout(xaxis_title=LABELS.get(x, x), yaxis_title=LABELS.get(y, y), xaxis_type="log",
                      yaxis_type="log", hovermode="closest")
    return fig


def parallel(ok: list[dict], axes: list[str], objectives: list[str]) -> go.Figure:
    dims = []
    for a in axes:
        vals = [r["axes"].get(a) for r in ok]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            dims.append({"label": a, "values": vals})
        else:  # categorical axis: positions with the values as tick labels
            cats = sorted({str(v) for v in vals})
            dims.append({"label": a, "values": [cats.index(str(v)) for v in vals],
                         "tickvals": list(range(len(cats))), "ticktext": cats})
    for o in objectives:
        name = parse_objective(o)[0]
        dims.append({"label": LABELS.get(name, name), "values": [r[name] for r in ok]})
    color_by = parse_objective(objectives[0])[0]
    fig = go.Figure(go.Parcoords(dimensions=dims, line={"color": [r[color_by] for r in ok], "colorscale": "Viridis",
                                                        "showscale": True,
                                                        "colorbar": {"title": LABELS.get(color_by, color_by)}}))
    fig.update_layout(margin={"l": 80, "r": 80, "t": 60, "b": 30})
    return fig


def build(data: dict[str, Any]) -> Page:
    rows, spec = data["rows"], data.get("spec", {})
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    axes = list(spec.get("axes") or {}) or sorted({k for r in rows for k in r.get("axes", {})})
    serve = "serve" in spec or any("goodput_rps" in r for r in ok)
    objectives = spec.get("objectives") or (list(SERVE_OBJECTIVES) if serve else default_objectives(ok))
    front = pareto_front(rows, objectives)
    hw = Path(str(spec.get("hw", "?"))).stem
    model = Path(str(spec.get("model", "?"))).stem
    page = Page(f"{'Serve sweep' if serve else 'Sweep'}: {model} on {hw}",
                f"{len(axes)} axes ({', '.join(axes)}) · fidelity {spec.get('fidelity', '?')} · {data.get('dir', '')}")
    if serve:
        best = max((r for r in ok if r.get("goodput_rps") is not None), key=lambda r: r["goodput_rps"], default=None)
        headline = ("best goodput", f"{best['goodput_rps']:.4g} requests/s" if best else "–")
    else:
        best = min(ok, key=lambda r: r["total_s"]) if ok else None
        headline = ("fastest total", fmt_s(best["total_s"]) if best else "–")
    per_token = [r["energy_per_token_j"] for r in ok if r.get("energy_per_token_j") is not None]
    page.cards([("points", str(len(rows))), ("simulated", str(len(ok))), ("failed", str(len(failed))),
                ("infeasible", str(sum(not r.get("feasible", True) for r in ok))),
                ("on the Pareto front", str(len(front))), headline,
                ("least energy/token", fmt_si(min(per_token), "J") if per_token else "–")])
    if len(ok) >= 1 and len(objectives) >= 2:
        page.chart(f"{' vs '.join(LABELS.get(parse_objective(o)[0], o) for o in objectives[:2])} with the "
                   "Pareto front", scatter(ok, front, objectives),
                   f"front over {', '.join(objectives)} (feasible points only); hover for each point's config", 520)
    if ok:
        page.chart("Parallel coordinates: axes and metrics", parallel(ok, axes, objectives),
                   "drag along an axis to filter; colour = first objective", 460)
    page.table("Pareto front", [*axes, *(parse_objective(o)[0] for o in objectives), "config"],
               [[r["axes"].get(a) for a in axes] + [_fmt(r[parse_objective(o)[0]]) for o in objectives]
                + [r.get("config_file", r["key"])] for r in front])
    if failed:
        page.table("Failed points", [*axes, "error"], [[r["axes"].get(a) for a in axes] + [r.get("error")]
                                                       for r in failed])
    return page
