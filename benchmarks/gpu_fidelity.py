"""End-to-end GPU fidelity: GPT-2 small … XL (fp16) measured with the PyTorch reference vs llmsim.

Two steps, so the table can be re-scored without a GPU:

  measure (needs CUDA):  python benchmarks/gpu_fidelity.py measure --out benchmarks/data/h100_gpt2_fidelity.json
  score (no GPU):        python benchmarks/gpu_fidelity.py score --data benchmarks/data/h100_gpt2_fidelity.json \
                             [--hw h100] [--markdown]

Cases: prefill B=1 with S ∈ {128, 512, 1024} and B=8 with S=512; decode B ∈ {1, 8, 32} with
context ∈ {128, 512, 1024}; graph and eager modes. ``measure`` stores medians, samples and
per-op-class profiles (small JSON); ``score`` re-runs only the simulator and prints measured,
predicted and error per case, MAPE per (phase, mode) and op-class time-share errors. Targets
(issue): MAPE ≤ 15% graph, ≤ 25% eager, for prefill and decode.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

MODELS = ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]
CASES = [("prefill", 1, 128), ("prefill", 1, 512), ("prefill", 1, 1024), ("prefill", 8, 512)] + [
    ("decode", b, c) for b in (1, 8, 32) for c in (128, 512, 1024)]
MODES = ["graph", "eager"]


def measure(out: str, models: list[str], iters: int, warmup: int) -> None:
    import torch

    from llmsim.config.loader import load_model
    from llmsim.reference.timing import Runner

    data = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "host": platform.node(),
            "date": time.strftime("%Y-%m-%d"), "dtype": "fp16", "iters": iters, "warmup": warmup, "rows": []}
    for name in models:
        runner = Runner(load_model(name), device="cuda", dtype="fp16")
        for mode in MODES:
            for phase, b, s in CASES:
                m = runner.time(phase, b, s, mode=mode, warmup=warmup, iters=iters, profile=True)
                row = m.to_dict() | {"model": name}
                data["rows"].append(row)
                print(f"{name:<12} {mode:<6} {phase}:{b}x{s:<6} {m.seconds * 1e3:9.3f} ms", flush=True)
                Path(out).write_text(json.dumps(data, indent=1))  # keep partial results
        del runner
        torch.cuda.empty_cache()
    print(f"wrote {out}")


def score(path: str, hw_name: str, markdown: bool) -> dict:
    from llmsim.config.loader import load_hardware, load_model
    from llmsim.reference.compare import predict, score_row, summarize

    data = json.loads(Path(path).read_text())
    hw = load_hardware(hw_name)
    rows, models = [], {}
    for m in data["rows"]:
        model = models.setdefault(m["model"], load_model(m["model"]))
        r = score_row(m, predict(hw, model, m["phase"], m["batch"], m["seq"], m["mode"], m["dtype"]))
        rows.append(r | {"model": m["model"]})
    summ = summarize(rows)
    if markdown:
        print("| model | case | mode | measured ms | predicted ms | error |\n|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["model"], f"{r['phase']}:{r['batch']}x{r['seq']}", r["mode"], f"{r['measured_s'] * 1e3:.3f}",
                 f"{r['predicted_s'] * 1e3:.3f}", f"{100 * r['error']:+.1f}%"]
        print("| " + " | ".join(cells) + " |" if markdown else "  ".join(f"{c:>12}" for c in cells))
    print(f"\n{data.get('device', '?')} vs llmsim --hw {hw_name}")
    for k, v in sorted(summ["mape"].items()):
        print(f"  MAPE {k:<14} {100 * v:5.1f}%")
    for k, v in sorted(summ["share_mae"].items()):
        print(f"  op-class share error {k:<12} {100 * v:5.1f} pp (mean |predicted - measured| share)")
    worst = max(rows, key=lambda r: abs(r["error"]))
    print(f"  worst case: {worst['model']} {worst['phase']}:{worst['batch']}x{worst['seq']} {worst['mode']} "
          f"{100 * worst['error']:+.1f}%; median |error| {100 * statistics.median(abs(r['error']) for r in rows):.1f}%")
    return {"rows": rows, "summary": summ}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", default="benchmarks/data/h100_gpt2_fidelity.json")
    m.add_argument("--models", default=",".join(MODELS))
    m.add_argument("--iters", type=int, default=20)
    m.add_argument("--warmup", type=int, default=5)
    s = sub.add_parser("score")
    s.add_argument("--data", default="benchmarks/data/h100_gpt2_fidelity.json")
    s.add_argument("--hw", default="h100")
    s.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    if a.cmd == "measure":
        measure(a.out, a.models.split(","), a.iters, a.warmup)
    else:
        score(a.data, a.hw, a.markdown)


if __name__ == "__main__":
    main()
