"""The serve report: one self-contained HTML page from a saved ``llmsim serve --json`` result.

Latency CDFs (TTFT, TPOT, E2E) per rate, batch size and KV-block use over time, the rate curve
(throughput and p99 latencies against offered rate, with the SLO lines) and a metrics table.
It reads the saved records only; nothing is simulated here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from llmsim.report.page import Page, fmt_s, fmt_si

MAX_POINTS = 4000  # per time-series trace (every k-th iteration beyond that)


def _label(run: dict[str, Any]) -> str:
    return f"{run['rate_per_s']:g}/s" if run["rate_per_s"] is not None else "trace"


def _latencies(run: dict[str, Any]) -> dict[str, np.ndarray]:
    r = run["requests"]
    arr = np.array([x["arrival_s"] for x in r])
    first = np.array([x["first_token_s"] for x in r])
    fin = np.array([x["finish_s"] for x in r])
    out = np.array([x["output_tokens"] for x in r])
    many = out > 1
    return {"ttft": first - arr, "tpot": (fin[many] - first[many]) / (out[many] - 1), "e2e": fin - arr}


def build(d: dict[str, Any]) -> Page:
    runs = d["runs"]
    cfg = d["config"]
    slo = runs[0]["metrics"]["slo"]
    system = cfg.get("system")
    where = cfg["hw"]["name"] if system is None else (
        f"{system['spec']['name']} (tp {system['tp']}, pp {system['pp']}, ep {system['ep']}, dp {system['dp']})")
    page = Page(f"llmsim serve — {cfg['model']['name']} on {where} x{d['replicas']}",
                f"scheduler {d['scheduler']}, seed {d['seed']}, fidelity {cfg['fidelity']}, "
                f"KV cache {runs[0]['kv']['blocks']} blocks of {cfg['serve']['block_size']} tokens")
    m = runs[-1]["metrics"]
    per = runs[-1]["config"].get("per_device")
    footprint = [] if per is None else [
        ("per device", f"weights {per['weight_bytes'] / 1e9:.2f} GB, KV {per['kv_bytes'] / 1e9:.2f} GB")]
    page.cards(footprint + [("rate", _label(runs[-1])), ("requests", str(m["requests"])),
                ("throughput", f"{m['throughput_requests_per_s']:.3g} req/s"),
                ("tokens/s", f"{m['throughput_tokens_per_s']:.4g}"),
                ("goodput", f"{m['goodput_requests_per_s']:.3g} req/s" if slo else "no --slo"),
                ("TTFT p99", fmt_s(m["ttft_s"]["p99"])), ("TPOT p99", fmt_s(m["tpot_s"]["p99"])),
                ("preemptions", str(m["preemptions"])), ("energy / token", fmt_si(m["energy_per_token_j"], "J"))])
    lat = [_latencies(r) for r in runs]
    for key, title in (("ttft", "Time to first token"), ("tpot", "Time per output token"),
                       ("e2e", "End-to-end latency")):
        fig = go.Figure()
        for run, x in zip(runs, lat, strict=True):
            v = np.sort(x[key])
            fig.add_trace(go.Scatter(x=v, y=np.arange(1, v.size + 1) / max(v.size, 1), mode="lines",
                                     name=_label(run)))
        if key in slo:
            fig.add_vline(x=slo[key], line_dash="dash", line_color="red", annotation_text="SLO")
        fig.update_layout(xaxis_title="seconds", yaxis_title="fraction of requests")
        page.chart(f"{title} (CDF)", fig, height=340)
    for col, title, scale in (("seqs", "Batch size over time (sequences per iteration)", 1.0),
                              ("kv_blocks_used", "KV-cache use over time (share of blocks)", None)):
        fig = go.Figure()
        for run in runs:
            it = run["iterations"]
            k = max(1, len(it["start_s"]) // MAX_POINTS)
            y = np.array(it[col][::k], dtype=float)
            y = y * scale if scale else y / max(run["kv"]["blocks"], 1)
            fig.add_trace(go.Scatter(x=it["start_s"][::k], y=y, mode="lines", name=_label(run)))
        fig.update_layout(xaxis_title="time (s)")
        page.chart(title, fig, height=320, note="every iteration" if all(
            len(r["iterations"]["start_s"]) <= MAX_POINTS for r in runs) else f"at most {MAX_POINTS} points a run")
    if len(runs) > 1:
        rates = [r["rate_per_s"] for r in runs]
        ms = [r["metrics"] for r in runs]
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=rates, y=[x["throughput_requests_per_s"] for x in ms], name="throughput",
                                 mode="lines+markers"))
        if slo:
            fig.add_trace(go.Scatter(x=rates, y=[x["goodput_requests_per_s"] for x in ms], name="goodput",
                                     mode="lines+markers"))
        fig.update_layout(xaxis_title="offered rate (requests/s)", yaxis_title="requests/s")
        page.chart("Rate curve: throughput and goodput", fig, height=340)
        fig = go.Figure()
        for key in ("ttft", "tpot"):
            fig.add_trace(go.Scatter(x=rates, y=[x[f"{key}_s"]["p99"] for x in ms], name=f"{key.upper()} p99",
                                     mode="lines+markers"))
            if key in slo:
                fig.add_hline(y=slo[key], line_dash="dash", annotation_text=f"{key.upper()} SLO")
        fig.update_layout(xaxis_title="offered rate (requests/s)", yaxis_title="seconds", yaxis_type="log")
        page.chart("Rate curve: p99 latency", fig, height=340)
    rows = [[_label(r), r["metrics"]["requests"], f"{r['metrics']['throughput_requests_per_s']:.3f}",
             f"{r['metrics']['goodput_requests_per_s']:.3f}", fmt_s(r["metrics"]["ttft_s"]["p50"]),
             fmt_s(r["metrics"]["ttft_s"]["p99"]), fmt_s(r["metrics"]["tpot_s"]["p50"]),
             fmt_s(r["metrics"]["tpot_s"]["p99"]), fmt_s(r["metrics"]["e2e_s"]["mean"]),
             f"{r['metrics']['batch_size_mean']:.1f}", r["metrics"]["preemptions"],
             fmt_si(r["metrics"]["energy_per_request_j"], "J")] for r in runs]
    page.table("Metrics per rate", ["rate", "requests", "req/s", "goodput", "TTFT p50", "TTFT p99", "TPOT p50",
                                    "TPOT p99", "E2E mean", "batch", "preemptions", "J / request"], rows)
    return page
