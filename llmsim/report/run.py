"""The report of one simulated generation (the JSON of ``llmsim run --json``).

Reads only the saved result: totals, breakdowns and the per-op traces kept for the prefill
and the first and last decode steps. Where a chart needs a split the totals do not carry
(energy by component *and* op kind), it apportions each phase's exact component energy by
the op-kind shares seen in that phase's kept traces, and says so on the chart.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from llmsim.report.page import Page, fmt_s, fmt_si

KIND_COLORS = {"matmul": "#4c78a8", "attention": "#f58518", "norm": "#54a24b", "activation": "#e45756",
               "elementwise": "#72b7b2", "embedding": "#b279a2", "kv_write": "#eeca3b", "idle": "#bab0ac"}


def _color(kind: str) -> str:
    return KIND_COLORS.get(kind, "#9d755d")


def _layer_key(name: str) -> tuple:
    m = re.match(r"(.*)\.L(\d+)$", name)
    return (0, m.group(1), int(m.group(2))) if m else (1, name, 0)


def _step_label(s: dict[str, Any]) -> str:
    if s["phase"] == "prefill":
        return f"prefill (seq {s.get('seq_len')})"
    return f"decode step {s.get('step', s.get('index'))} (context {s.get('context_len')})"


def _hw_spec(d: dict[str, Any]) -> Any | None:
    """The validated hardware spec of the run, or None when the saved config no longer validates."""
    try:
        from llmsim.config.loader import HW_ADAPTER

        return HW_ADAPTER.validate_python(d["config"]["hw"])
    except Exception:
        return None


def latency_by_kind(d: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    phases = sorted(d["latency_by_phase_s"], key=lambda p: (p != "prefill", p))
    kinds = sorted({k for v in d["latency_by_phase_s"].values() for k in v}, key=lambda k: (k == "idle", k))
    for k in kinds:
        fig.add_bar(name=k, x=phases, y=[d["latency_by_phase_s"][p].get(k, 0.0) * 1e3 for p in phases],
                    marker_color=_color(k), hovertemplate=f"{k}<br>%{{x}}: %{{y:.4g}} ms<extra></extra>")
    fig.update_layout(barmode="stack", yaxis_title="time (ms)", legend_title="op kind")
    return fig


def latency_by_layer(d: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for s in d["step_details"]:
        if s["phase"] == "decode" and s is not d["step_details"][-1]:
            continue  # prefill and the last decode step
        layers = sorted(s["latency_by_layer_s"], key=_layer_key)
        fig.add_bar(name=_step_label(s), x=layers, y=[s["latency_by_layer_s"][k] * 1e6 for k in layers],
                    hovertemplate="%{x}: %{y:.4g} µs<extra></extra>")
    fig.update_layout(barmode="group", yaxis_title="time per step (µs)", yaxis_type="log")
    return fig


def energy_sunburst(d: dict[str, Any]) -> go.Figure:
    comp_by_phase = d["energy_by_phase_j"]
    shares: dict[str, dict[str, dict[str, float]]] = {}
    for s in d["step_details"]:
        acc = shares.setdefault(s["phase"], defaultdict(lambda: defaultdict(float)))
        for r in s.get("trace", []):
            for comp, j in r["energy_j"].items():
                acc[comp][r["kind"]] += j
    ids, labels, parents, values = [], [], [], []
    for comp, total in sorted(d["energy_breakdown_j"].items(), key=lambda kv: -kv[1]):
        if total <= 0:
            continue
        split: dict[str, float] = defaultdict(float)
        for phase, comps in comp_by_phase.items():
            e = comps.get(comp, 0.0)
            seen = shares.get(phase, {}).get(comp, {})
            tot = sum(seen.values())
            if tot > 0:
                for kind, j in seen.items():
                    split[kind] += e * j / tot
            elif e > 0:
                split["(whole device)"] += e  # charged per step (static, DRAM background), no op carries it
        ids.append(comp), labels.append(comp), parents.append(""), values.append(0.0)
        for kind, j in sorted(split.items(), key=lambda kv: -kv[1]):
            ids.append(f"{comp}/{kind}"), labels.append(kind), parents.append(comp), values.append(j)
    fig = go.Figure(go.Sunburst(ids=ids, labels=labels, parents=parents, values=values, branchvalues="remainder",
                                hovertemplate="%{id}: %{value:.4g} J (%{percentRoot:.1%})<extra></extra>"))
    return fig


def memory_levels(d: dict[str, Any], spec: Any | None) -> go.Figure:
    levels = sorted(d["bytes_by_level"], key=lambda k: -d["bytes_by_level"][k])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("bytes moved", "achieved vs peak bandwidth"))
    fig.add_bar(x=levels, y=[d["bytes_by_level"][k] for k in levels], name="bytes", row=1, col=1,
                marker_color="#4c78a8", hovertemplate="%{x}: %{y:.4s}B<extra></extra>")
    bw = d.get("achieved_bandwidth_bytes_per_s", {})
    fig.add_bar(x=levels, y=[bw.get(k, 0.0) for k in levels], name="achieved (whole run)", row=1, col=2,
                marker_color="#f58518", hovertemplate="%{x}: %{y:.4s}B/s<extra></extra>")
    if spec is not None:
        peak = {"dram": spec.memory.peak_bandwidth_bytes_per_s} | {lvl.name: lvl.bandwidth_bytes_per_s
                                                                   for lvl in spec.onchip}
        have = [k for k in levels if k in peak]
        fig.add_bar(x=have, y=[peak[k] for k in have], name="peak (spec)", row=1, col=2, marker_color="#bab0ac",
                    hovertemplate="%{x}: %{y:.4s}B/s peak<extra></extra>")
    fig.update_yaxes(type="log", title_text="bytes", row=1, col=1)
    fig.update_yaxes(type="log", title_text="bytes/s", row=1, col=2)
    return fig


def timeline(d: dict[str, Any]) -> go.Figure | None:
    steps = [s for s in d["step_details"] if s.get("trace")]
    if not steps:
        return None
    fig = go.Figure()
    owner: list[int] = []
    for i, s in enumerate(steps):
        by_kind: dict[str, list] = defaultdict(list)
        for r in s["trace"]:
            for seg in r["segments"]:
                by_kind[r["kind"]].append((seg["unit"], seg["start"], seg["end"], r["name"]))
        for kind, segs in sorted(by_kind.items()):
            fig.add_bar(
                orientation="h", name=kind, legendgroup=kind, showlegend=True, visible=i == 0,
                y=[u for u, *_ in segs], base=[a * 1e3 for _, a, _, _ in segs],
                x=[(b - a) * 1e3 for _, a, b, _ in segs], marker_color=_color(kind),
                customdata=[[n, a * 1e3, b * 1e3] for _, a, b, n in segs],
                hovertemplate="%{customdata[0]}<br>%{y}: %{customdata[1]:.4g} → %{customdata[2]:.4g} ms"
                              "<extra></extra>")
            owner.append(i)
    buttons = [{"label": _step_label(s), "method": "update",
                "args": [{"visible": [o == i for o in owner]}]} for i, s in enumerate(steps)]
    fig.update_layout(barmode="overlay", xaxis_title="time in step (ms)", yaxis_title="unit",
                      updatemenus=[{"buttons": buttons, "x": 0, "xanchor": "left", "y": 1.15, "yanchor": "top"}])
    return fig


def roofline(d: dict[str, Any], spec: Any | None) -> go.Figure | None:
    """Ops of the kept steps at (FLOPs per byte of their busiest memory level, achieved FLOP/s
    while busy), under the compute roofs and one bandwidth roof per level the spec gives a peak."""
    pts: dict[tuple[str, str], list] = defaultdict(list)
    for s in d["step_details"]:
        for r in s.get("trace", []):
            if r["flops"] <= 0 or r["busy_s"] <= 0 or not r["bytes_by_level"]:
                continue
            level, nbytes = max(r["bytes_by_level"].items(), key=lambda kv: kv[1])
            if nbytes > 0:
                pts[(r["kind"], level)].append((r["flops"] / nbytes, r["flops"] / r["busy_s"], r["name"], s["phase"]))
    if not pts:
        return None
    fig = go.Figure()
    xs = [p[0] for v in pts.values() for p in v]
    lo, hi = min(xs) / 4, max(xs) * 4
    if spec is not None:
        from llmsim.config.base import DType

        act = DType(d["config"]["scenario"].get("act_dtype", "fp16"))
        peaks = {n: u.peak_flops_per_s(act) for n, u in spec.compute_units().items() if u.peak_flops_per_s(act) > 0}
        top = max(peaks.values(), default=0.0)
        bws = {"dram": spec.memory.peak_bandwidth_bytes_per_s} | {lvl.name: lvl.bandwidth_bytes_per_s
                                                                  for lvl in spec.onchip}
        for name, peak in peaks.items():
            fig.add_scatter(x=[lo, hi], y=[peak, peak], mode="lines", name=f"compute roof: {name}",
                            line={"dash": "dash"}, hovertemplate=f"{name}: {peak:.3g} FLOP/s<extra></extra>")
        for level in sorted({lv for _, lv in pts} & set(bws)):
            bw = bws[level]
            x = [lo, min(hi, top / bw)] if top else [lo, hi]
            fig.add_scatter(x=x, y=[xi * bw for xi in x], mode="lines", name=f"bandwidth roof: {level}",
                            line={"dash": "dot"}, hovertemplate=f"{level}: {bw:.3g} B/s<extra></extra>")
    symbols = ["circle", "diamond", "square", "triangle-up", "cross"]
    levels = sorted({lv for _, lv in pts})
    for (kind, level), v in sorted(pts.items()):
        fig.add_scatter(x=[p[0] for p in v], y=[p[1] for p in v], mode="markers", name=f"{kind} ({level})",
                        marker={"color": _color(kind), "size": 8, "opacity": 0.8,
                                "symbol": symbols[levels.index(level) % len(symbols)]},
                        customdata=[[p[2], p[3]] for p in v],
                        hovertemplate="%{customdata[0]} (%{customdata[1]})<br>%{x:.3g} FLOP/B of " + level +
                                      ", %{y:.3g} FLOP/s<extra></extra>")
    fig.update_layout(xaxis_type="log", yaxis_type="log", yaxis_title="achieved FLOP/s while busy",
                      xaxis_title="arithmetic intensity (FLOP per byte of the op's busiest memory level)")
    return fig


def build(d: dict[str, Any]) -> Page:
    cfg = d.get("config", {})
    hw, model, sc = cfg.get("hw", {}), cfg.get("model", {}), cfg.get("scenario", {})
    page = Page(f"{model.get('name', 'model')} on {hw.get('name', 'hardware')}",
                f"{hw.get('kind', '')} · fidelity {cfg.get('fidelity', '?')} · batch {sc.get('batch')}, prompt "
                f"{sc.get('prompt')}, gen {sc.get('gen')} · weights {sc.get('weight_dtype')} · mode {sc.get('mode')}")
    power = d["energy_j"] / d["total_s"] if d["total_s"] else 0.0
    page.cards([("time to first token", fmt_s(d["ttft_s"])), ("time per output token", fmt_s(d["tpot_s"])),
                ("total", fmt_s(d["total_s"])), ("tokens/s", f"{d['tokens_per_s']:.4g}"),
                ("energy", fmt_si(d["energy_j"], "J")), ("energy per token", fmt_si(d["energy_per_token_j"], "J")),
                ("average power", fmt_si(power, "W"))])
    spec = _hw_spec(d)
    page.chart("Latency by op kind, per phase", latency_by_kind(d),
               "wall-clock time attributed to the ops running at each instant (idle = nothing running)")
    page.chart("Latency by layer, per phase step", latency_by_layer(d), "the prefill step and the last decode step")
    page.chart("Energy: component → op kind", energy_sunburst(d),
               "component totals are exact; their op-kind split is apportioned from the kept step traces", 520)
    page.chart("Memory levels: bytes and bandwidth", memory_levels(d, spec),
               "achieved = bytes / whole-run time; peak from the hardware spec")
    tl = timeline(d)
    if tl is not None:
        page.chart("Timeline of hardware units", tl, "one bar per op segment on a unit; pick a step above", 460)
    rf = roofline(d, spec)
    if rf is not None:
        page.chart("Roofline", rf, "each op against the memory level that moved most of its bytes; roofs: peak "
                                   "compute per unit at the activation dtype, and the peak bandwidth of each level "
                                   "the spec gives one (none for PIM bank-internal traffic)", 480)
    page.table("Top op classes by time", ["op", "time", "share"],
               [[r["op"], fmt_s(r["seconds"]), f"{100 * r['seconds'] / d['total_s']:.1f}%"] for r in d["top_ops"]])
    return page
