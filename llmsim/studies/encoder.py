"""Return of the Encoder (Elfeki et al., arXiv 2501.16273): encoder-decoder vs decoder-only small models at the edge.

Equal-parameter pairs at ~100 M, ~300 M and ~800 M: the decoder-only model is a zoo model (gpt2,
gpt2-medium, gpt2-large); its encoder-decoder twin keeps the width, heads, FFN, norms and
vocabulary and splits the layers the paper's way, two thirds into the encoder, the rest into
decoder layers (each also carrying cross-attention), with as many decoder layers as keep the
parameter count closest to the decoder-only model's. Batch 1, prompt 64 … 1024, output 16 … 256,
on an edge GPU (``jetson-orin``), CPU (``rpi5``) and NPU (``hexagon-npu``), FP16, graph mode. Both
models' learned position tables are widened to the longest prompt + output (gpt2's holds 1,024).

First-token latency = the prefill step (decoder-only: the prompt through every layer; encoder-
decoder: the prompt through the encoder, the cross-attention K/V of every decoder layer, then the
first token through the decoder). Decode throughput = generated tokens / decode time. One run per
(pair, device, prompt, architecture) with the longest output; shorter outputs are its first steps.
The paper's figures (47% lower first-token latency, 4.7x throughput) are set beside the ratios.
"""

from __future__ import annotations

import plotly.graph_objects as go

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.config.model import ModelSpec
from llmsim.engine import simulate
from llmsim.report.page import Page
from llmsim.studies import Study

PAPER = {"first_token_latency_reduction": 0.47, "throughput_ratio": 4.7}
PAIRS = {"~100M": "gpt2", "~300M": "gpt2-medium", "~800M": "gpt2-large"}
DEVICES = ("jetson-orin", "rpi5", "hexagon-npu")
ENCODER_SHARE = 2 / 3  # the paper's split of layers (parameters) between encoder and decoder


def encoder_decoder_twin(dec: ModelSpec) -> ModelSpec:
    """The encoder-decoder model with ``dec``'s layer shape and (nearly) its parameter count."""
    n_enc = round(ENCODER_SHARE * dec.n_layers)
    base = dec.model_dump() | {"name": f"{dec.name}-encdec", "arch": "encoder-decoder", "n_encoder_layers": n_enc,
                               "source": f"llmsim study 'encoder': {dec.name} with {n_enc} of its layers as encoder "
                               f"layers (the paper's 2/3 split), decoder layers chosen to match its parameters"}
    best = None
    for n_dec in range(1, dec.n_layers + 1):
        m = ModelSpec(**(base | {"n_layers": n_dec}))
        gap = abs(m.parameter_count() - dec.parameter_count())
        if best is None or gap < best[0]:
            best = (gap, m)
    return best[1]


def _decode_weight_ratio(dec: ModelSpec, enc: ModelSpec) -> float:
    """Parameters a decode step reads, decoder-only over encoder-decoder (the encoder is not read)."""
    return dec.parameter_count() / (enc.parameter_count() - enc.n_encoder_layers * enc.encoder_layer_params())


def _run(hw: str, model: ModelSpec, prompt: int, gen: int):
    sc = make_scenario({"batch": 1, "prompt": prompt, "gen": gen})
    r = simulate(load_hardware(hw), model, sc)
    return r.steps[0].latency_s, [s.latency_s for s in r.steps[1:]]


def grid(pairs: dict[str, str], devices, prompts, outputs) -> list[dict]:
    rows = []
    for size, name in pairs.items():
        # room for the longest prompt + output in the learned position table (both models alike)
        dec = load_model(name)
        dec = dec.model_copy(update={"max_positions": max(dec.max_positions, max(prompts) + max(outputs))})
        enc = encoder_decoder_twin(dec)
        for hw in devices:
            for p in prompts:
                (t_d, steps_d), (t_e, steps_e) = (_run(hw, m, p, max(outputs)) for m in (dec, enc))
                for n in outputs:
                    tp_d, tp_e = (n - 1) / sum(steps_d[:n - 1]), (n - 1) / sum(steps_e[:n - 1])
                    rows.append({"weight_ratio": _decode_weight_ratio(dec, enc),
                                 "size": size, "decoder": name, "decoder_params": dec.parameter_count(),
                                 "encdec_params": enc.parameter_count(), "encdec_layers":
                                 f"{enc.n_encoder_layers}+{enc.n_layers}", "hw": hw, "prompt": p, "output": n,
                                 "ttft_dec_s": t_d, "ttft_encdec_s": t_e, "ttft_reduction": 1 - t_e / t_d,
                                 "tps_dec": tp_d, "tps_encdec": tp_e, "throughput_ratio": tp_e / tp_d})
    return rows


def summary(rows) -> list[dict]:
    out = []
    for hw in dict.fromkeys(r["hw"] for r in rows):
        rs = [r for r in rows if r["hw"] == hw]
        out.append({"hw": hw, "mean_ttft_reduction": sum(r["ttft_reduction"] for r in rs) / len(rs),
                    "mean_throughput_ratio": sum(r["throughput_ratio"] for r in rs) / len(rs),
                    "max_throughput_ratio": max(r["throughput_ratio"] for r in rs),
                    "weight_ratio": sum(r["weight_ratio"] for r in rs) / len(rs)})
    return out


REASONS = ("Why llmsim differs. First token: the encoder-decoder still reads every weight once in its prefill "
           "(the encoder over the prompt, then the cross-attention K/V of every decoder layer and the first token "
           "through the decoder), so where a short prompt's prefill is bound by weight bytes (the edge devices at "
           "batch 1) both models take about as long; the saving grows with the prompt, as the prompt's compute "
           "through the decoder third is skipped. The paper's 47% implies prefill dominated by per-layer work over "
           "the prompt that llmsim does not see at these sizes. Decode: each token reads the decoder's weights only "
           "(last column) and a self-attention KV cache over generated tokens only; batch-1 decode on these devices "
           "is weight-bandwidth bound, so the throughput ratio follows the weight ratio and grows with the prompt "
           "(the decoder-only model's KV cache). The paper's 4.7x also reflects its own implementation and "
           "KV-cache handling, which llmsim does not model.")


def markdown(rows, summ) -> str:
    out = ["Return of the Encoder: encoder-decoder vs decoder-only, batch 1, FP16", "",
           "| device | mean first-token latency reduction | paper | mean decode throughput ratio (max) | paper | "
           "weights read per decode step, dec-only / enc-dec |", "|---|---|---|---|---|---|"]
    out += [f"| {s['hw']} | {100 * s['mean_ttft_reduction']:.0f}% | 47% | {s['mean_throughput_ratio']:.2f}x "
            f"({s['max_throughput_ratio']:.2f}x) | 4.7x | {s['weight_ratio']:.2f}x |" for s in summ]
    out += ["", "| size | pair (params) | device | prompt | output | TTFT dec / enc-dec ms | reduction | "
            "tok/s dec / enc-dec | ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['size']} | {r['decoder']} {r['decoder_params'] / 1e6:.0f}M / enc-dec "
                   f"{r['encdec_layers']} {r['encdec_params'] / 1e6:.0f}M | {r['hw']} | {r['prompt']} | {r['output']} "
                   f"| {r['ttft_dec_s'] * 1e3:.2f} / {r['ttft_encdec_s'] * 1e3:.2f} | {100 * r['ttft_reduction']:.0f}% "
                   f"| {r['tps_dec']:.1f} / {r['tps_encdec']:.1f} | {r['throughput_ratio']:.2f}x |")
    return "\n".join(out + ["", REASONS])


def page(rows, summ) -> Page:
    pg = Page("Return of the Encoder", "encoder-decoder vs decoder-only at equal parameters; paper: 47% lower "
              "first-token latency, 4.7x throughput")
    pg.cards([(f"{s['hw']}: TTFT reduction / throughput", f"{100 * s['mean_ttft_reduction']:.0f}% / "
               f"{s['mean_throughput_ratio']:.2f}x") for s in summ])
    omax = max(r["output"] for r in rows)
    for key, title, paper in (("ttft_reduction", "First-token latency reduction", 0.47),
                              ("throughput_ratio", f"Decode throughput ratio (output {omax})", 4.7)):
        fig = go.Figure()
        for hw in dict.fromkeys(r["hw"] for r in rows):
            for size in dict.fromkeys(r["size"] for r in rows):
                rs = [r for r in rows if r["hw"] == hw and r["size"] == size and r["output"] == omax]
                fig.add_scatter(x=[r["prompt"] for r in rs], y=[r[key] for r in rs], mode="lines+markers",
                                name=f"{hw} {size}")
        fig.add_hline(y=paper, line_dash="dash", annotation_text=f"paper {paper}")
        fig.update_xaxes(type="log", title="prompt tokens")
        pg.chart(title, fig)
    return pg


def run(quick: bool = False) -> Study:
    if quick:
        pairs, devices, prompts, outputs = {"~100M": "gpt2"}, DEVICES, (64,), (4, 8)
    else:
        pairs, devices, prompts, outputs = PAIRS, DEVICES, (64, 256, 1024), (16, 64, 256)
    rows = grid(pairs, devices, prompts, outputs)
    summ = summary(rows)
    return Study("encoder", {"paper": PAPER, "encoder_share": ENCODER_SHARE, "summary": summ, "rows": rows},
                 markdown(rows, summ), page(rows, summ))
