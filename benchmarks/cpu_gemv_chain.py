"""CPU decode-B1 GEMV: one large weight (the old calibration) vs a decode step's chain of weights, and the BLAS
paths a model's linear layers take, timed interleaved in one process (ratios survive a loaded host better than
absolute rates). fp32, PyTorch CPU.

    python benchmarks/cpu_gemv_chain.py [--threads 2] [--d 768] [--layers 12] [--repeats 3]

Prints GB/s (best of repeats / median) for: ``x @ W`` on one 4096² weight (what ``llmsim calibrate`` used to
measure), the step's 4 linear layers × ``--layers`` as ``F.linear`` on a ``[1, 1, d]`` input with bias (GPT-2
shapes, distinct weights), the tied LM head as ``F.linear(x, wte)`` and ``x @ wte.T``, and per GPT-2 shape the
four ways to multiply by a weight (``x @ W``, ``F.linear`` 3-D + bias, ``F.linear`` 2-D, ``x @ W.T``).
"""

from __future__ import annotations

import argparse
import statistics
import time


def _times(fn, n: int) -> tuple[float, float]:
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts), statistics.median(ts)


def main() -> None:
    import torch
    import torch.nn.functional as F

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d", type=int, default=768, help="model width (768 = gpt2)")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = a.d
    side = 4096
    w_one, x_one, out_one = torch.rand(side, side), torch.rand(1, side), torch.empty(1, side)
    shapes = [(3 * d, d), (d, d), (4 * d, d), (d, 4 * d)]  # nn.Linear layout [out, in]: qkv, out, fc, proj
    layers = [[(torch.rand(o, i), torch.rand(o)) for o, i in shapes] for _ in range(a.layers)]
    wte = torch.rand(a.vocab, d)
    h = {i: torch.rand(1, 1, i) for i in {i for _, i in shapes}}

    def step() -> None:
        for lay in layers:
            for w, b in lay:
                F.linear(h[w.shape[1]], w, b)

    chain_bytes = 4.0 * sum(w.numel() for lay in layers for w, _ in lay)
    head_bytes = 4.0 * wte.numel()
    x = torch.rand(1, d)
    for _ in range(a.repeats):
        cells = {
            f"one {side}² weight x @ W": (4.0 * side * side,
                                          _times(lambda: torch.matmul(x_one, w_one, out=out_one), 9)),
            f"{4 * a.layers} layer F.linear chain": (chain_bytes, _times(step, 5)),
            "tied head F.linear(x, wte)": (head_bytes, _times(lambda: F.linear(x, wte), 7)),
            "tied head x @ wte.T": (head_bytes, _times(lambda: x @ wte.T, 7)),
        }
        print(" | ".join(f"{k} {b / t[0] / 1e9:5.1f}/{b / t[1] / 1e9:5.1f}" for k, (b, t) in cells.items()),
              "GB/s (best/median)", flush=True)
    for o, i in shapes:
        wn, wt, bias = torch.rand(i, o), torch.rand(o, i), torch.rand(o)
        x2, x3, out = torch.rand(1, i), torch.rand(1, 1, i), torch.empty(1, o)
        ways = {"x @ W": lambda x2=x2, wn=wn, out=out: torch.matmul(x2, wn, out=out),
                "F.linear 3-D + bias": lambda x3=x3, wt=wt, bias=bias: F.linear(x3, wt, bias),
                "F.linear 2-D": lambda x2=x2, wt=wt: F.linear(x2, wt), "x @ W.T": lambda x2=x2, wt=wt: x2 @ wt.T}
        best = {k: min(_times(fn, 9)[0] for _ in range(a.repeats)) for k, fn in ways.items()}
        print(f"{i}x{o}: " + ", ".join(f"{k} {4.0 * i * o / t / 1e9:5.1f} GB/s ({t / best['x @ W']:.2f}x)"
                                       for k, t in best.items()), flush=True)


if __name__ == "__main__":
    main()
