"""PIM-GPT (Wu, Wang, Lu, arXiv 2310.09385): the paper's GPT models on `pim`, `t4` and `xeon-gold-6154`.

Runs the simulator (nothing here models hardware): decode ms/token and J/token on each system, the
speed-up and energy-efficiency ratios of PIM over the GPU and the CPU, hardware-bound (``graph``)
and with eager-framework dispatch (``eager``); and for gpt3-xl the paper's trends: the non-VMM
share of decode time, the row-buffer hit rate, latency against channel count and the ASIC at 1 GHz
vs 100 MHz. Each of the six trends is reported as reproduced or not, with the mechanism.
Per-token numbers are decode steps (TPOT, decode energy / decode tokens): PIM-GPT reports token
generation. Models that differ only in name (gpt2 and gpt3-small) are simulated once.
"""

from __future__ import annotations

import plotly.graph_objects as go

from llmsim.config.loader import load_hardware, load_model, make_scenario, split_overrides
from llmsim.engine import simulate
from llmsim.report.page import Page
from llmsim.studies import Study

MODELS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-small", "gpt3-medium", "gpt3-large", "gpt3-xl")
PAPER = {"speedup_gpu": (41, 137), "speedup_cpu": (631, 1074), "eff_gpu": (123, 383), "eff_cpu": (320, 602),
         "non_vmm_share_gpt3_xl": 0.0116, "row_hit_rate": 0.98, "asic_100mhz_max_slowdown": 1.20}
DTYPES = {"pim": "bf16", "t4": "fp16", "xeon-gold-6154": "fp16"}
BASELINES = (("t4", "gpu"), ("xeon-gold-6154", "cpu"))
NON_VMM = ("norm", "activation", "elementwise", "embedding")


def decode_metrics(hw: str, model: str, prompt: int, gen: int, mode: str = "graph", sets: tuple[str, ...] = ()):
    """(s/token, J/token, result) of the decode steps."""
    spec = load_hardware(hw, split_overrides([f"hw.{s}" for s in sets])["hw"])
    dt = DTYPES.get(hw, "fp16")
    sc = make_scenario({"prompt": prompt, "gen": gen, "mode": mode, "weight_dtype": dt, "act_dtype": dt,
                        "kv_dtype": dt})
    r = simulate(spec, load_model(model), sc)
    dec = r.steps[1:]
    return r.tpot_s, sum(s.energy_j for s in dec) / len(dec), r


def _shape_key(model: str) -> str:
    d = load_model(model).model_dump(mode="json")
    return repr(sorted((k, v) for k, v in d.items() if k not in ("name", "source")))


def main_rows(models, prompt: int, gen: int) -> list[dict]:
    rows, seen = [], {}
    for m in models:
        key = _shape_key(m)
        if key in seen:
            rows.append(dict(seen[key], model=m, same_as=seen[key]["model"]))
            continue
        pim_s, pim_j, _ = decode_metrics("pim", m, prompt, gen)
        row = {"model": m, "pim_ms": pim_s * 1e3, "pim_mj": pim_j * 1e3}
        for mode in ("graph", "eager"):
            for hw, tag in BASELINES:
                s, j, _ = decode_metrics(hw, m, prompt, gen, mode)
                row[f"{tag}_{mode}_ms"], row[f"{tag}_{mode}_mj"] = s * 1e3, j * 1e3
                row[f"speedup_{tag}_{mode}"], row[f"eff_{tag}_{mode}"] = s / pim_s, j / pim_j
        seen[key] = row
        rows.append(row)
    return rows


def trends(model: str, prompt: int, gen: int, channels: tuple[int, ...]) -> dict:
    base_s, _, r = decode_metrics("pim", model, prompt, gen)
    dec = r.steps[1:]
    total = sum(s.latency_s for s in dec)
    by_kind: dict[str, float] = {}
    for s in dec:
        for k, v in s.latency_breakdown_s.items():
            by_kind[k] = by_kind.get(k, 0.0) + v
    busy = {u: sum(s.busy_by_unit_s.get(u, 0.0) for s in dec) for u in ("banks", "asic", "link")}
    hits = sum(s.stats.get("row_hits", 0) for s in dec)
    misses = sum(s.stats.get("row_misses", 0) for s in dec)
    c_base = load_hardware("pim").memory.channels
    chans = {c: base_s if c == c_base else decode_metrics("pim", model, prompt, gen, sets=(f"memory.channels={c}",))[0]
             for c in channels}
    sram_bw = load_hardware("pim").onchip_level("asic_sram").bandwidth_bytes_per_s
    slow = decode_metrics("pim", model, prompt, gen, sets=("asic.clock_hz=1e8",
                                                           f"onchip.0.bandwidth_bytes_per_s={sram_bw / 10}"))[0]
    return {"model": model, "tpot_s": base_s,
            "non_vmm_op_share": sum(v for k, v in by_kind.items() if k in NON_VMM) / total,
            "busy_s": busy, "decode_s": total, "overlap_s": busy["banks"] + busy["asic"] + busy["link"] - total,
            "row_hit_rate": hits / (hits + misses),
            "internal_bandwidth_bytes_per_s": sum(s.bytes_by_level.get("dram_internal", 0.0) for s in dec) / total,
            "tpot_by_channels_s": chans, "asic_100mhz_slowdown": slow / base_s}


def _band(rows, key):
    vals = [r[key] for r in rows]
    return min(vals), max(vals)


def verdicts(rows: list[dict], t: dict) -> list[dict]:
    """The six trends: llmsim's value, the paper's, reproduced or not, and the mechanism."""
    p = PAPER
    ch = t["tpot_by_channels_s"]
    c0, c1 = min(ch), max(ch)
    scale, ideal = ch[c0] / ch[c1], c1 / c0
    out = [
        ("non-VMM share of gpt3-xl decode", f"{100 * t['non_vmm_op_share']:.2f}%", "1.16%",
         t["non_vmm_op_share"] <= 2 * p["non_vmm_share_gpt3_xl"],
         "ASIC ops overlap the banks only where the data flow allows (GELU tile j while FFN-up tile j+1 MACs, "
         "partial sums of FFN-down tile j while tile j+1 MACs, softmax while the next query's scores run); norms, "
         "residual adds and the embedding sum still wait for a whole vector. The 64-lane ASIC is an estimate."),
        ("ASIC 1 GHz -> 100 MHz", f"{t['asic_100mhz_slowdown']:.2f}x", "<= 1.20x",
         t["asic_100mhz_slowdown"] <= p["asic_100mhz_max_slowdown"],
         f"the ASIC is busy {100 * t['busy_s']['asic'] / t['decode_s']:.1f}% of decode at 1 GHz; at 100 MHz ten times "
         "that exceeds what the banks can hide, and norms, softmax and residual adds sit on every layer's critical "
         "path (they need a whole vector); the paper's figure implies a wider ASIC than the 64-lane estimate"),
        (f"channels {c0} -> {c1}", f"{scale:.2f}x ({scale / ideal:.0%} of linear)", "near-linear",
         scale >= 0.8 * ideal,
         "Amdahl: the ASIC's per-layer time does not shrink with channels, per-bank work shrinks to partial rows "
         "(the fixed row switch weighs more), and P.V maps one head per channel (idle channels when heads < C)"),
        ("row-buffer hit rate", f"{100 * t['row_hit_rate']:.1f}%", "~98%", abs(t["row_hit_rate"] - 0.98) <= 0.01,
         "a decode VMM streams whole 2 KB rows, 64 MAC_ABs per ACT_AB"),
    ]
    for key, label in (("speedup", "speed-up"), ("eff", "energy efficiency")):
        for tag, name in (("gpu", "T4"), ("cpu", "Xeon")):
            lo, hi = p[f"{key}_{tag}"]
            g, e = _band(rows, f"{key}_{tag}_graph"), _band(rows, f"{key}_{tag}_eager")
            ok = e[1] >= lo and e[0] <= hi
            why = ("the eager band overlaps the paper's: the baseline's static power over its (framework-bound) "
                   "step time dominates its energy per token" if ok else
                   "the baselines are hardware-bound device models plus an estimated per-op dispatch cost; the "
                   "paper's measured baselines run far below their memory rooflines (batch-1 framework cost, FP32 on "
                   "the CPU), which neither preset has measured (docs/validation.md)")
            out.append((f"{label} vs {name} (graph / eager)", f"{g[0]:.0f}-{g[1]:.0f}x / {e[0]:.0f}-{e[1]:.0f}x",
                        f"{lo}-{hi}x", ok, why))
    return [{"trend": a, "llmsim": b, "paper": c, "reproduced": bool(d), "mechanism": e} for a, b, c, d, e in out]


def markdown(rows, t, verdict, prompt, gen) -> str:
    out = [f"PIM-GPT reproduction: decode per token, prompt {prompt}, gen {gen}; dtypes {DTYPES}", "",
           "| model | PIM ms/tok | PIM mJ/tok | T4 ms/tok graph / eager | Xeon ms/tok graph / eager | "
           "speed-up vs T4 graph / eager | speed-up vs Xeon graph / eager | energy eff. vs T4 graph / eager | "
           "energy eff. vs Xeon graph / eager |", "|" + "---|" * 9]
    for r in rows:
        out.append(f"| {r['model']} | {r['pim_ms']:.3f} | {r['pim_mj']:.2f} | {r['gpu_graph_ms']:.3f} / "
                   f"{r['gpu_eager_ms']:.3f} | {r['cpu_graph_ms']:.3f} / {r['cpu_eager_ms']:.3f} | "
                   + " | ".join(f"{r[f'{k}_{tg}_graph']:.1f}x / {r[f'{k}_{tg}_eager']:.1f}x"
                                for k in ("speedup", "eff") for tg in ("gpu", "cpu")) + " |")
    out.append("| **paper** | | | | | " + " | ".join(f"{PAPER[f'{k}_{tg}'][0]}-{PAPER[f'{k}_{tg}'][1]}x"
                                                   for k in ("speedup", "eff") for tg in ("gpu", "cpu")) + " |")
    b = t["busy_s"]
    out += ["", f"{t['model']} on pim: decode {t['decode_s'] * 1e3:.3f} ms over the run; busy banks "
            f"{b['banks'] * 1e3:.3f} ms + asic {b['asic'] * 1e3:.3f} ms + link {b['link'] * 1e3:.3f} ms "
            f"(overlap {t['overlap_s'] * 1e3:.3f} ms); internal bandwidth "
            f"{t['internal_bandwidth_bytes_per_s'] / 1e12:.2f} TB/s", "",
            "| trend | llmsim | paper | reproduced | mechanism |", "|---|---|---|---|---|"]
    out += [f"| {v['trend']} | {v['llmsim']} | {v['paper']} | {'yes' if v['reproduced'] else 'no'} | "
            f"{v['mechanism']} |" for v in verdict]
    return "\n".join(out)


def page(rows, t, verdict) -> Page:
    pg = Page("PIM-GPT reproduction", "decode per token; paper bands as shaded areas")
    for key, title in (("speedup", "Speed-up of PIM"), ("eff", "Energy efficiency of PIM")):
        fig = go.Figure()
        for tag, name in (("gpu", "T4"), ("cpu", "Xeon")):
            for mode in ("graph", "eager"):
                fig.add_scatter(x=[r["model"] for r in rows], y=[r[f"{key}_{tag}_{mode}"] for r in rows],
                                mode="lines+markers", name=f"llmsim vs {name} ({mode})")
            lo, hi = PAPER[f"{key}_{tag}"]
            fig.add_hrect(y0=lo, y1=hi, opacity=0.15, line_width=0, annotation_text=f"paper vs {name}",
                          fillcolor="#e45756" if tag == "gpu" else "#4c78a8")
        fig.update_yaxes(type="log", title="x")
        pg.chart(title, fig)
    ch = t["tpot_by_channels_s"]
    c0 = min(ch)
    fig = go.Figure()
    fig.add_scatter(x=list(ch), y=[ch[c0] / v for v in ch.values()], mode="lines+markers", name="llmsim")
    fig.add_scatter(x=list(ch), y=[c / c0 for c in ch], mode="lines", name="linear (paper: near-linear)",
                    line={"dash": "dash"})
    fig.update_xaxes(type="log", title="channels")
    fig.update_yaxes(title="speed-up over the fewest channels")
    pg.chart(f"{t['model']}: channel scaling", fig)
    pg.table("Trends", ["trend", "llmsim", "paper", "reproduced", "mechanism"],
             [[v["trend"], v["llmsim"], v["paper"], "yes" if v["reproduced"] else "no", v["mechanism"]]
              for v in verdict])
    return pg


def run(quick: bool = False, prompt: int = 128, gen: int | None = None) -> Study:
    gen = gen or (3 if quick else 32)
    models = ("gpt2",) if quick else MODELS
    tmodel = "gpt2" if quick else "gpt3-xl"
    channels = (8, 16) if quick else (8, 16, 32, 64)  # fewer than 8 channels cannot hold gpt3-xl
    rows = main_rows(models, prompt, gen)
    t = trends(tmodel, prompt, gen, channels)
    v = verdicts(rows, t)
    res = {"prompt": prompt, "gen": gen, "rows": rows, "trends": t, "verdicts": v, "paper": PAPER}
    return Study("pim-gpt", res, markdown(rows, t, v, prompt, gen), page(rows, t, v))
