"""llmsim serving beside Vidur (Agrawal et al., MLSys'24), at the iteration level.

Vidur's GitHub source (``fetch github:microsoft/vidur``) ships per-operator profiles of the
token-wise ops of Llama-2-7B measured on real A100/H100 GPUs (``data/profiling/compute/<gpu>/
meta-llama/Llama-2-7b-hf/mlp.csv``: median CUDA time per op per token count) but not the attention
profiles its simulator also needs, and its PyPI package downloads them at run time, which this
machine cannot reach; so the full Vidur simulation does not run here. What can be compared:

1. op by op, per layer, against token count: llmsim's device time of each token-wise op (the
   H100/A100 device model, graph mode) beside Vidur's profiled median;
2. over the batches a serving run forms: the same stream (Llama-2-7B, Poisson at 4/s, 512 in /
   128 out, 1,000 requests) through ``llmsim serve``'s vLLM scheduler; for every iteration the
   token-wise part of the step priced by Vidur's profile (interpolated at the token count rounded up
   to 8, as Vidur's predictor does) and by llmsim.

Usage: ``python benchmarks/serve_vs_vidur.py [--vidur-git DIR] [--gpu h100] [--requests 1000]``
(``DIR``: a Vidur git directory or checkout; default the mirror ``fetch`` creates).
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import time
from pathlib import Path

import numpy as np

# Vidur's mlp.csv op -> llmsim node suffixes of one Llama layer (Vidur fuses gate and up into mlp_up_proj and
# counts one residual add per block)
OPS = {
    "input_layernorm": ["self.norm"], "attn_pre_proj": ["self.attn.qkv"], "attn_rope": ["self.attn.rope"],
    "attn_post_proj": ["self.attn.out"], "post_attention_layernorm": ["mlp.norm"],
    "mlp_up_proj": ["mlp.ffn.gate", "mlp.ffn.up"], "mlp_act": ["mlp.ffn.act"], "mlp_down_proj": ["mlp.ffn.down"],
    "add": ["self.residual"],
}
PROFILE = "data/profiling/compute/{gpu}/meta-llama/Llama-2-7b-hf/mlp.csv"


def read_profile(vidur: Path, gpu: str) -> dict[int, dict[str, float]]:
    """num_tokens -> op -> median seconds (tensor-parallel degree 1)."""
    rel = PROFILE.format(gpu=gpu)
    if (vidur / rel).is_file():
        text = (vidur / rel).read_text()
    else:
        text = subprocess.run(["git", f"--git-dir={vidur}", "show", f"HEAD:{rel}"], capture_output=True, text=True,
                              check=True).stdout
    out: dict[int, dict[str, float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["num_tensor_parallel_workers"] == "1":
            out[int(row["num_tokens"])] = {op: float(row[f"time_stats.{op}.median"]) * 1e-3 for op in OPS}
    return dict(sorted(out.items()))


class LlmsimOps:
    """llmsim's device time of each Vidur op at ``T`` tokens (one layer's token-wise ops)."""

    def __init__(self, hw: str):
        from llmsim.config.loader import load_hardware, load_model, make_scenario
        from llmsim.engine import make_device

        self.model = load_model("llama-2-7b")
        self.sc = make_scenario({})
        self.one = self.model.model_copy(update={"n_layers": 1})
        self.dev = make_device(load_hardware(hw), self.model, self.sc.model_copy(update={"prompt": 1, "gen": 1}),
                               "cycle", context=0)
        self.cache: dict[int, dict[str, float]] = {}

    def __call__(self, T: int) -> dict[str, float]:
        if T not in self.cache:
            from llmsim.graph.ragged import lower_ragged

            g = lower_ragged(self.one, self.sc, [T], [T], "prefill")
            t = {v.removeprefix("decoder.L0."): self.dev.cost(g.nodes[v]["op"]).device_seconds for v in g.nodes}
            self.cache[T] = {op: sum(t[n] for n in names) for op, names in OPS.items()}
        return self.cache[T]


def op_table(prof: dict[int, dict[str, float]], ll: LlmsimOps, tokens: list[int]) -> list[str]:
    lines = [f"{'tokens':>6} {'op':<26} {'Vidur us':>9} {'llmsim us':>9} {'ratio':>6}"]
    for T in tokens:
        v, s = prof[T], ll(T)
        for op in OPS:
            lines.append(f"{T:>6} {op:<26} {v[op] * 1e6:9.1f} {s[op] * 1e6:9.1f} {s[op] / v[op]:6.2f}")
        lines.append(f"{T:>6} {'layer (token-wise ops)':<26} {sum(v.values()) * 1e6:9.1f} "
                     f"{sum(s.values()) * 1e6:9.1f} {sum(s.values()) / sum(v.values()):6.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vidur-git", default="/work/.mirror/microsoft+vidur/repo")
    ap.add_argument("--gpu", default="h100", choices=["h100", "a100"])
    ap.add_argument("--rate", type=float, default=4.0)
    ap.add_argument("--requests", type=int, default=1000)
    a = ap.parse_args()
    prof = read_profile(Path(a.vidur_git), a.gpu)
    ll = LlmsimOps(a.gpu)
    print(f"# {a.gpu}: Vidur profile ({len(prof)} token counts) vs llmsim device model, Llama-2-7B, one layer\n")
    print("\n".join(op_table(prof, ll, [T for T in (1, 8, 64, 256, 512, 1024, 2048, 4096) if T in prof])))

    from llmsim.config.loader import load_hardware
    from llmsim.serving.arrivals import parse_dist, poisson_stream
    from llmsim.serving.metrics import summarise
    from llmsim.serving.simulate import simulate_serving

    reqs = poisson_stream(a.rate, a.requests, parse_dist("fixed:512", "p", "prompt"),
                          parse_dist("fixed:128", "o", "output"), 0, ll.model.max_positions)
    t0 = time.perf_counter()
    res = simulate_serving(load_hardware(a.gpu), ll.model, ll.sc, reqs)
    wall = time.perf_counter() - t0
    m = summarise(res)
    Ts = np.array([r[4] for r in res.iterations])
    grid = np.array(list(prof))
    vid = {op: np.array([prof[T][op] for T in grid]) for op in OPS}
    rounded = np.minimum(-(-Ts // 8) * 8, grid[-1])
    v_iter = sum(np.interp(rounded, grid, vid[op]) for op in OPS) * ll.model.n_layers
    s_iter = np.array([sum(ll(int(T)).values()) for T in Ts]) * ll.model.n_layers
    ratio = s_iter / v_iter
    dec = Ts <= 64
    print(f"\n# serving: Llama-2-7B on {a.gpu}, Poisson {a.rate:g}/s, 512 in / 128 out, {a.requests} requests, vllm")
    print(f"llmsim serve: {len(Ts)} iterations in {wall:.2f} s wall (this machine, loaded); TTFT p50 "
          f"{m['ttft_s']['p50'] * 1e3:.2f} ms p99 {m['ttft_s']['p99'] * 1e3:.2f} ms; TPOT p50 "
          f"{m['tpot_s']['p50'] * 1e3:.2f} ms p99 {m['tpot_s']['p99'] * 1e3:.2f} ms; "
          f"{m['throughput_requests_per_s']:.3f} req/s")
    print(f"token-wise ops over every iteration: Vidur profile {v_iter.sum():.3f} s, llmsim {s_iter.sum():.3f} s "
          f"(ratio {s_iter.sum() / v_iter.sum():.3f})")
    print(f"  decode iterations (<= 64 tokens, {dec.sum()}): per-iteration ratio median "
          f"{np.median(ratio[dec]):.3f}, p10 {np.percentile(ratio[dec], 10):.3f}, p90 "
          f"{np.percentile(ratio[dec], 90):.3f}")
    if (~dec).any():
        print(f"  prefill iterations ({(~dec).sum()}): per-iteration ratio median {np.median(ratio[~dec]):.3f}")
    print("Vidur's own wall time for this stream (reported in issue 13, not measured here): 7.4 s warm, 11.5 min "
          "cold (A100 inputs)")


if __name__ == "__main__":
    main()
