"""Speed-up and energy per token of each inference optimisation over its knob, against plain inference.

    PYTHONPATH=. python examples/optimisations.py --out OUT_DIR [--quick]

Writes ``OUT_DIR/optimisations.json`` (every point) and ``OUT_DIR/optimisations.html`` (one chart per
optimisation, with the seed papers' reported speed-ups drawn as reference bands where the papers give one;
docs/validation.md explains the differences). Everything is simulated here; nothing is hand-entered except
the papers' figures in ``PAPERS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import plotly.graph_objects as go

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.config.quant import quant_fields
from llmsim.engine import simulate, simulate_one_step
from llmsim.engine.early_exit import ExitSchedule, simulate_early_exit
from llmsim.engine.ragged import simulate_ragged
from llmsim.engine.speculative import Speculation, simulate_speculative
from llmsim.graph.lower import lower_decode

# speed-ups the seed papers report (issue 12): (low, high) over plain decoding
PAPERS = {
    "Medusa-1 (> 2.2x)": (2.2, 2.2),
    "Medusa-2 (2.3-2.8x)": (2.3, 2.8),
    "Chimera (2.7x avg)": (2.7, 2.7),
    "SkipDecode on OPT-1.3B/6.7B (2-5x)": (2.0, 5.0),
}


def quantisation(hw, quick: bool) -> list[dict]:
    m = load_model("llama-2-7b")
    rows, base = [], None
    grid = [("w16a16", 0), ("w8a16", 0), ("w8a8", 0), ("fp8", 0)] + [("w4a16", g) for g in (32, 64, 128, 0)]
    for q, g in grid[:5] if quick else grid:
        f = quant_fields(q) | ({"group_size": g} if q == "w4a16" else {})
        sc = make_scenario(f)
        r, _ = simulate_one_step(hw, m, sc, "decode", 1, context=512)
        wb = sum(lower_decode(m, sc, context=16).nodes[n]["op"].read.weight for n in lower_decode(m, sc, context=16))
        base = base or r
        rows.append({"scheme": q, "group_size": g, "decode_s": r.latency_s, "energy_j": r.energy_j,
                     "weight_bytes": wb, "speedup": base.latency_s / r.latency_s})
    return rows


def speculative(hw, quick: bool) -> list[dict]:
    tgt, draft = load_model("llama-2-7b"), load_model("llama-68m")
    sc = make_scenario({"gen": 6})
    base = simulate(hw, tgt, sc)
    rows = []
    accepts = (0.2, 0.5, 0.8) if quick else (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    for label, ks, mk in (("draft llama-68m", (2, 4) if quick else (1, 2, 4, 8),
                           lambda k, a: Speculation(k=k, accept=a, draft="llama-68m")),
                          ("Medusa, 5 heads", (4,), lambda k, a: Speculation(k=k, accept=a, heads=5))):
        for k in ks:
            for a in accepts:
                sp = mk(k, a)
                r = simulate_speculative(hw, tgt, sc, sp, draft=draft if sp.draft else None, baseline=base)
                rows.append({"drafter": label, "k": k, "accept": a, "speedup": r.speedup,
                             "tokens_per_iteration": r.tokens_per_iteration, "tpot_s": r.tpot_s,
                             "energy_per_token_j": r.energy_per_token_j,
                             "baseline_energy_per_token_j": r.baseline_energy_per_token_j})
    return rows


def moe(hw, quick: bool) -> list[dict]:
    m = load_model("mixtral-8x7b")
    rows = []
    for skew in (0.0, 1.0):
        for b in (1, 4, 16, 64) if quick else (1, 2, 4, 8, 16, 32, 64):
            sc = make_scenario(quant_fields("w8a16") | {"moe_skew": skew})
            g = lower_decode(m, make_scenario({"moe_skew": skew}), context=256, batch=b)  # fp16: 2 bytes a parameter
            params = sum(g.nodes[n]["op"].read.weight for n in g) / 2
            r, _ = simulate_one_step(hw, m, sc, "decode", b, context=256)
            rows.append({"skew": skew, "batch": b, "params_read": params, "decode_s": r.latency_s,
                         "energy_per_token_j": r.energy_j / b})
    return rows


def early_exit(hw, quick: bool) -> list[dict]:
    m = load_model("opt-1.3b")
    sc = make_scenario({"gen": 6})
    base = simulate(hw, m, sc)
    rows = []
    for d in (6, 12, 18, 24) if quick else (3, 6, 9, 12, 15, 18, 21, 24):
        r = simulate_early_exit(hw, m, sc, ExitSchedule(depth=d), baseline=base)
        rows.append({"schedule": f"depth={d}", "mean_layers": r.mean_layers, "speedup": r.speedup,
                     "energy_per_token_j": r.energy_per_token_j,
                     "baseline_energy_per_token_j": r.baseline_energy_per_token_j})
    r = simulate_early_exit(hw, m, sc, ExitSchedule(min=6, max=24), baseline=base)
    rows.append({"schedule": "skipdecode 24->6", "mean_layers": r.mean_layers, "speedup": r.speedup,
                 "energy_per_token_j": r.energy_per_token_j,
                 "baseline_energy_per_token_j": r.baseline_energy_per_token_j})
    return rows


def ragged(hw, quick: bool) -> list[dict]:
    m = load_model("tinyllama-1.1b")
    rows = []
    for lens in ([512] * 4, [256, 512, 768, 1024], [64, 128, 256, 1536], [32, 32, 32, 1536]):
        r = simulate_ragged(hw, m, make_scenario({"gen": 4}), lens)
        rows.append({"prompts": lens, "padding_tokens": r.padding_token_fraction,
                     "padding_time": r.padding_time_fraction, "padded_ttft_s": r.padded.ttft_s,
                     "packed_ttft_s": r.packed.ttft_s, "prefill_speedup": r.padded.ttft_s / r.packed.ttft_s})
    return rows


def _bands(fig: go.Figure, names: list[str]) -> None:
    for name in names:
        lo, hi = PAPERS[name]
        if hi > lo:
            fig.add_hrect(y0=lo, y1=hi, opacity=0.15, line_width=0, annotation_text=name, fillcolor="green")
        else:
            fig.add_hline(y=lo, line_dash="dot", annotation_text=name)


def html_report(d: dict, hw: str, out: Path) -> None:
    from llmsim.report.page import Page

    p = Page("Inference optimisations", f"llama-2-7b, mixtral-8x7b, opt-1.3b, tinyllama-1.1b on {hw} (simulated)")
    q = d["quantisation"]
    fig = go.Figure(go.Bar(x=[f"{r['scheme']} g{r['group_size']}" for r in q], y=[r["speedup"] for r in q]))
    fig.update_layout(yaxis_title="decode speed-up over w16a16")
    p.chart("Quantisation: llama-2-7b decode step, batch 1, context 512", fig)
    fig = go.Figure()
    for (label, k) in sorted({(r["drafter"], r["k"]) for r in d["speculative"]}):
        pts = [r for r in d["speculative"] if r["drafter"] == label and r["k"] == k]
        fig.add_scatter(x=[r["accept"] for r in pts], y=[r["speedup"] for r in pts], name=f"{label}, K={k}")
    fig.add_hline(y=1.0, line_color="gray")
    _bands(fig, ["Medusa-1 (> 2.2x)", "Medusa-2 (2.3-2.8x)", "Chimera (2.7x avg)"])
    fig.update_layout(xaxis_title="acceptance rate A", yaxis_title="speed-up over plain decoding")
    p.chart("Speculative decoding: llama-2-7b target, batch 1", fig)
    fig = go.Figure()
    for skew in (0.0, 1.0):
        pts = [r for r in d["moe"] if r["skew"] == skew]
        fig.add_scatter(x=[r["batch"] for r in pts], y=[r["params_read"] / 1e9 for r in pts],
                        name=f"skew {skew}")
    fig.update_layout(xaxis_title="batch", yaxis_title="parameters read per decode step (B)", xaxis_type="log")
    p.chart("MoE: mixtral-8x7b experts touched", fig)
    fig = go.Figure(go.Scatter(x=[r["mean_layers"] for r in d["early_exit"]], y=[r["speedup"] for r in d["early_exit"]],
                               mode="markers+lines", text=[r["schedule"] for r in d["early_exit"]]))
    _bands(fig, ["SkipDecode on OPT-1.3B/6.7B (2-5x)"])
    fig.update_layout(xaxis_title="mean layers run of 24", yaxis_title="decode speed-up")
    p.chart("Early exit: opt-1.3b", fig)
    rows = [["quantisation", f"{r['scheme']} g{r['group_size']}", f"{r['speedup']:.2f}x",
             f"{r['energy_j'] / q[0]['energy_j']:.2f}"] for r in q]
    rows += [["speculative", f"{r['drafter']}, K={r['k']}, A={r['accept']}", f"{r['speedup']:.2f}x",
              f"{r['energy_per_token_j'] / r['baseline_energy_per_token_j']:.2f}"]
             for r in d["speculative"] if r["accept"] in (0.2, 0.5, 0.8)]
    rows += [["early exit", r["schedule"], f"{r['speedup']:.2f}x",
              f"{r['energy_per_token_j'] / r['baseline_energy_per_token_j']:.2f}"] for r in d["early_exit"]]
    p.table("Energy per token against the plain baseline", ["optimisation", "setting", "speed-up",
                                                             "energy per token / baseline"], rows,
            note="energy includes static and DRAM background power over the (shorter or longer) run")
    p.table("Ragged batches: tinyllama-1.1b, 4 requests", ["prompts", "padding tokens", "time saved by packing",
                                                            "prefill speed-up"],
            [[r["prompts"], f"{100 * r['padding_tokens']:.0f}%", f"{100 * r['padding_time']:.0f}%",
              f"{r['prefill_speedup']:.2f}x"] for r in d["ragged"]])
    out.write_text(p.render())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for optimisations.json and .html")
    ap.add_argument("--hw", default="h100")
    ap.add_argument("--quick", action="store_true", help="fewer points")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hw = load_hardware(args.hw)
    d = {}
    for name, fn in (("quantisation", quantisation), ("speculative", speculative), ("moe", moe),
                     ("early_exit", early_exit), ("ragged", ragged)):
        d[name] = fn(hw, args.quick)
        print(f"{name}: {len(d[name])} points", flush=True)
    (out / "optimisations.json").write_text(json.dumps(d, indent=1))
    html_report(d, args.hw, out / "optimisations.html")
    print(f"wrote {out / 'optimisations.json'} and {out / 'optimisations.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
