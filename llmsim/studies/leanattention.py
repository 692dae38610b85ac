"""LeanAttention (Sanovar et al., arXiv 2405.10480): decode attention, split kernels vs FlashAttention-2.

One decode attention op (one query per sequence, head dim 128, FP16, MHA) on ``h100`` and ``a100``
over context 1 k … 512 k, batch 1 … 8 and heads 8 … 64, with the three kernels of
:mod:`llmsim.devices.gpu_decode` selected through ``kernels.attention.decode``: ``fa2`` (no
split), ``flashdecoding`` (FA-2's split-KV kernel) and ``lean`` (stream-K). The speed-up of each
split kernel over ``fa2`` is set beside the paper's (2.6x average, 8.33x at 512 k, on A100). The
per-SM bandwidth, CTA rate and latency chain are the presets' (fitted on H100 microbenchmarks,
hw_configs/h100.yaml); nothing here is fitted to the paper.
"""

from __future__ import annotations

import plotly.graph_objects as go

from llmsim.config.base import DType
from llmsim.config.loader import load_hardware, split_overrides
from llmsim.devices.base import build_device
from llmsim.graph import factory as f
from llmsim.report.page import Page
from llmsim.studies import Study

PAPER = {"avg_speedup_vs_fa2": 2.6, "speedup_512k": 8.33, "gpu": "A100"}
KERNELS = ("fa2", "flashdecoding", "lean")
HEAD_DIM = 128


def _devices(hw: str):
    return {k: build_device(load_hardware(hw, split_overrides([f"hw.kernels.attention.decode={k}"])["hw"]))
            for k in KERNELS}


def grid(hws, contexts, batches, heads) -> list[dict]:
    rows = []
    for hw in hws:
        devs = _devices(hw)
        n_sm = devs["fa2"].n_sm
        for B in batches:
            for H in heads:
                for C in contexts:
                    op = f.attention("sdpa", B, H, H, 1, C, HEAD_DIM, causal=True, dtype=DType.fp16)
                    c = {k: devs[k].cost(op) for k in KERNELS}
                    r = {"hw": hw, "sms": n_sm, "batch": B, "heads": H, "context": C}
                    for k in KERNELS:
                        r[f"{k}_us"] = c[k].seconds * 1e6
                        r[f"{k}_splits"] = c[k].stats.get("kv_splits", 1)
                    r["fd_speedup"] = c["fa2"].seconds / c["flashdecoding"].seconds
                    r["lean_speedup"] = c["fa2"].seconds / c["lean"].seconds
                    r["lean_vs_fd"] = c["flashdecoding"].seconds / c["lean"].seconds
                    rows.append(r)
    return rows


def summary(rows) -> list[dict]:
    """Per GPU: mean speed-ups, the speed-up at batch 1 and the longest context, and its trend with B·H."""
    out = []
    for hw in dict.fromkeys(r["hw"] for r in rows):
        rs = [r for r in rows if r["hw"] == hw]
        cmax, bmin = max(r["context"] for r in rs), min(r["batch"] for r in rs)
        long1 = [r for r in rs if r["context"] == cmax and r["batch"] == bmin]
        by_bh: dict[int, list[float]] = {}
        for r in rs:
            if r["context"] == cmax:
                by_bh.setdefault(r["batch"] * r["heads"], []).append(r["lean_speedup"])
        out.append({"hw": hw, "mean_fd": sum(r["fd_speedup"] for r in rs) / len(rs),
                    "mean_lean": sum(r["lean_speedup"] for r in rs) / len(rs),
                    "long_context": cmax, "long_b1_lean": max(r["lean_speedup"] for r in long1),
                    "long_b1_fd": max(r["fd_speedup"] for r in long1),
                    "lean_by_bh": {bh: sum(v) / len(v) for bh, v in sorted(by_bh.items())}})
    return out


def markdown(rows, summ) -> str:
    out = ["LeanAttention study: decode attention (Sq = 1, head dim 128, FP16), speed-up over FlashAttention-2", "",
           "| GPU | mean FlashDecoding / FA-2 | mean LeanAttention / FA-2 | batch 1, longest context: FD / Lean | "
           "Lean at longest context by batch x heads | paper (A100) |", "|---|---|---|---|---|---|"]
    for s in summ:
        bh = ", ".join(f"{k}: {v:.2f}x" for k, v in s["lean_by_bh"].items())
        out.append(f"| {s['hw']} | {s['mean_fd']:.2f}x | {s['mean_lean']:.2f}x | {s['long_b1_fd']:.2f}x / "
                   f"{s['long_b1_lean']:.2f}x ({s['long_context'] // 1024} k) | {bh} | "
                   f"{PAPER['avg_speedup_vs_fa2']}x average, {PAPER['speedup_512k']}x at 512 k |")
    out += ["", "| GPU | B | H | context | FA-2 us | FlashDecoding us (splits) | Lean us (CTAs/head) | FD x | Lean x |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["batch"] in (min(x["batch"] for x in rows), max(x["batch"] for x in rows)):
            out.append(f"| {r['hw']} | {r['batch']} | {r['heads']} | {r['context']} | {r['fa2_us']:.1f} | "
                       f"{r['flashdecoding_us']:.1f} ({r['flashdecoding_splits']}) | {r['lean_us']:.1f} "
                       f"({r['lean_splits']}) | {r['fd_speedup']:.2f} | {r['lean_speedup']:.2f} |")
    return "\n".join(out)


def page(rows, summ) -> Page:
    pg = Page("LeanAttention study", "decode attention speed-up over FlashAttention-2; paper: 2.6x average, "
              "8.33x at 512 k (A100)")
    pg.cards([(f"{s['hw']} mean Lean / FA-2", f"{s['mean_lean']:.2f}x") for s in summ]
             + [("paper average (A100)", f"{PAPER['avg_speedup_vs_fa2']}x")])
    for hw in dict.fromkeys(r["hw"] for r in rows):
        fig = go.Figure()
        for B in sorted({r["batch"] for r in rows}):
            for H in sorted({r["heads"] for r in rows}):
                rs = [r for r in rows if r["hw"] == hw and r["batch"] == B and r["heads"] == H]
                fig.add_scatter(x=[r["context"] for r in rs], y=[r["lean_speedup"] for r in rs],
                                mode="lines+markers", name=f"Lean B{B} H{H}")
        b1 = [r for r in rows if r["hw"] == hw and r["batch"] == min(x["batch"] for x in rows)]
        hmax = max(r["heads"] for r in b1)
        fd = [r for r in b1 if r["heads"] == hmax]
        fig.add_scatter(x=[r["context"] for r in fd], y=[r["fd_speedup"] for r in fd], mode="lines",
                        line={"dash": "dot"}, name=f"FlashDecoding B1 H{hmax}")
        fig.add_hline(y=PAPER["avg_speedup_vs_fa2"], line_dash="dash", annotation_text="paper average 2.6x")
        fig.add_scatter(x=[512 * 1024], y=[PAPER["speedup_512k"]], mode="markers", name="paper 512 k (A100)",
                        marker={"symbol": "star", "size": 14, "color": "#e45756"})
        fig.update_xaxes(type="log", title="context (tokens)")
        fig.update_yaxes(title="speed-up over FA-2")
        pg.chart(f"{hw}: speed-up over FlashAttention-2", fig)
    return pg


def run(quick: bool = False) -> Study:
    if quick:
        hws, contexts, batches, heads = ("h100",), (1024, 65536, 524288), (1, 8), (8, 64)
    else:
        hws = ("h100", "a100")
        contexts = tuple(1024 * 2 ** i for i in range(10))  # 1 k .. 512 k
        batches, heads = (1, 2, 4, 8), (8, 16, 32, 64)
    rows = grid(hws, contexts, batches, heads)
    summ = summary(rows)
    return Study("leanattention", {"paper": PAPER, "head_dim": HEAD_DIM, "summary": summ, "rows": rows},
                 markdown(rows, summ), page(rows, summ))
