"""Few-row products against weight size: does a multi-row GEMM's cost per weight byte jump past the LLC?

    python benchmarks/cpu_pack_sizes.py [--threads 2] [--rounds 7] [--rows 1,4]

``nn.Linear``-style products (``x · Wᵀ``, weight stored [out, in], fp32, PyTorch CPU) over chains of distinct
weights (>= 160 MiB per chain, so every weight starts cold) of GPT-2-family shapes from 8 to 147 MiB (the
LM head), each row count and shape once per round, medians over the rounds. Prints ms per weight and per MiB.
``llmsim``'s CPU model charges a few-row GEMM the measured packing rate of an 8 MiB-weight chain plus, for a
weight larger than the usable LLC, a packed copy written to memory and read back (``pack_spill_s``); this
shows how the per-byte cost actually moves with size on the host it runs on (docs/validation.md, CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time

SHAPES = {  # name: (out, in)
    "8 MiB square": (1448, 1448),
    "gpt2-medium qkv": (3072, 1024),
    "gpt2-medium fc": (4096, 1024),
    "gpt2-medium fc2": (1024, 4096),
    "16 MiB square": (2048, 2048),
    "gpt2-large fc": (5120, 1280),
    "gpt2-large fc2": (1280, 5120),
    "gpt2-xl fc": (6400, 1600),
    "64 MiB [8192, 2048]": (8192, 2048),
    "gpt2 LM head": (50257, 768),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--rows", default="1,4")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    rows = [int(r) for r in a.rows.split(",")]
    f = torch.nn.functional.linear
    chains = {k: [torch.randn(n, d) for _ in range(max(2, (160 << 20) // (4 * n * d)))] for k, (n, d) in SHAPES.items()}
    xs = {(k, m): torch.randn(m, d) for k, (_, d) in SHAPES.items() for m in rows}
    t: dict[tuple[str, int], list[float]] = {key: [] for key in xs}
    with torch.inference_mode():
        for r in range(a.rounds + 1):  # round 0 warms up
            for k, ws in chains.items():
                for m in rows:
                    t0 = time.perf_counter()
                    for w in ws:
                        f(xs[(k, m)], w)
                    if r:
                        t[(k, m)].append((time.perf_counter() - t0) / len(ws))
    print(f"{a.threads} threads, medians of {a.rounds} rounds; ms per weight (ms per MiB)")
    print(f"{'weight':22s} {'shape':>14s} {'MiB':>6s} " + " ".join(f"{'M=' + str(m):>18s}" for m in rows))
    for k, (n, d) in SHAPES.items():
        mib = 4 * n * d / 2**20
        cells = []
        for m in rows:
            s = statistics.median(t[(k, m)]) * 1e3
            cells.append(f"{s:8.3f} ({s / mib:.4f})")
        print(f"{k:22s} {f'[{n}, {d}]':>14s} {mib:6.1f} " + " ".join(f"{c:>18s}" for c in cells))


if __name__ == "__main__":
    main()
