"""End-to-end GPU fidelity: GPT-2 small … XL (fp16) measured with the PyTorch reference vs llmsim.

Two steps, so the table can be re-scored without a GPU:

  measure (needs CUDA):  python benchmarks/gpu_fidelity.py measure --out benchmarks/data/h100_gpt2_fidelity.json
  score (no GPU):        python benchmarks/gpu_fidelity.py score --data benchmarks/data/h100_gpt2_fidelity.json \
                             [--hw h100] [--markdown]

Cases: prefill B=1 with S ∈ {128, 512, 1024} and B=8 with S=512; decode B ∈ {1, 8, 32} with
context ∈ {128, 512, 1024}; graph and eager modes. ``measure`` stores medians, samples and
per-op-class profiles (small JSON); ``score`` re-runs only the simulator and prints measured,
predicted and error per case, MAPE per (phase, mode) and op-class time-share errors.

``score`` also reads the development-set format (``shared/data/h100_gpt2_dev.json``, copied to
``benchmarks/data/``: ``results`` with ``graph_s``, ``eager_s`` and ``breakdown_s`` per kernel class) and then
prints kernel time per class and the inter-kernel gap, measured vs predicted (``llmsim.calibrate.gpu_devset``):

    python benchmarks/gpu_fidelity.py score --data benchmarks/data/h100_gpt2_dev.json --hw h100 [--set kernels.x=v]

Targets (issue): MAPE ≤ 10% graph, ≤ 15% eager, for prefill and decode (docs/validation.md).
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


def measure(out: str, models: list[str], iters: int, warmup: int, device: str = "cuda", modes: list[str] = MODES,
            cases: list[tuple[str, int, int]] = CASES, overrides: list | None = None) -> dict:
    """Time every (model, mode, case) on the reference; also count the framework's kernels and
    host-only calls per op kind (annotated profile) and time one host-only call on this host."""
    import torch

    from llmsim.calibrate.framework import host_call_seconds
    from llmsim.config.loader import load_model
    from llmsim.reference.timing import Runner

    dtype = "fp16" if device == "cuda" else "fp32"
    name_of = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    data = {"device": name_of, "torch": torch.__version__, "host": platform.node(), "date": time.strftime("%Y-%m-%d"),
            "dtype": dtype, "iters": iters, "warmup": warmup, "host_call_s": host_call_seconds(device),
            "overrides": overrides or [], "calls": {}, "rows": []}
    print(f"host-only call on {device} tensors: {data['host_call_s'] * 1e6:.2f} us", flush=True)
    for name in models:
        runner = Runner(load_model(name, overrides or []), device=device, dtype=dtype)
        data["calls"][name] = {ph: runner.calls(ph, 1, 128) for ph in ("prefill", "decode")}
        for mode in modes:
            for phase, b, s in cases:
                m = runner.time(phase, b, s, mode=mode, warmup=warmup, iters=iters, profile=True)
                data["rows"].append(m.to_dict() | {"model": name})
                host = f"  host {m.host_s * 1e3:8.3f} ms" if m.host_s is not None else ""
                print(f"{name:<12} {mode:<6} {phase}:{b}x{s:<6} {m.seconds * 1e3:9.3f} ms{host}", flush=True)
                Path(out).write_text(json.dumps(data, indent=1))  # keep partial results
        del runner
        if device == "cuda":
            torch.cuda.empty_cache()
    Path(out).write_text(json.dumps(data, indent=1))
    print(f"wrote {out}")
    return data


def score(path: str, hw_name: str, markdown: bool, overrides: list[str] | None = None) -> dict:
    from llmsim.config.loader import load_hardware, load_model
    from llmsim.reference.compare import predict, score_row, summarize

    data = json.loads(Path(path).read_text())
    if "results" in data:  # the development-set format (shared/data/h100_gpt2_dev.json)
        return score_dev(data, hw_name, markdown, overrides or [])
    hw = load_hardware(hw_name)
    rows, models = [], {}
    for m in data["rows"]:
        if m["model"] not in models:
            models[m["model"]] = load_model(m["model"], [tuple(o) for o in data.get("overrides", [])])
        model = models[m["model"]]
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
    host = [r for r in rows if r["mode"] == "eager" and r.get("measured_host_s")]
    if host:
        ratio = [r["predicted_host_s"] / r["measured_host_s"] for r in host]
        print(f"  eager host issue time predicted/measured: median {statistics.median(ratio):.2f}, "
              f"range {min(ratio):.2f}..{max(ratio):.2f} over {len(ratio)} cases")
    fw = hw.framework
    for name, phases in sorted(data.get("calls", {}).items()):
        for ph, kinds in phases.items():
            seen = {k: int(v["kernels"]) for k, v in kinds.items() if v.get("kernels")}
            print(f"  kernels per step, {name} {ph}: measured {sum(seen.values())} "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(seen.items()))}); preset calls_per_op counts "
                  f"{_preset_kernels(models[name], ph, fw)}")
    worst = max(rows, key=lambda r: abs(r["error"]))
    print(f"  worst case: {worst['model']} {worst['phase']}:{worst['batch']}x{worst['seq']} {worst['mode']} "
          f"{100 * worst['error']:+.1f}%; median |error| {100 * statistics.median(abs(r['error']) for r in rows):.1f}%")
    return {"rows": rows, "summary": summ}


def score_dev(data: dict, hw_name: str, markdown: bool, overrides: list[str]) -> dict:
    """Print the development set: per case measured / predicted / error, MAPE per phase × mode,
    and per kernel class (and the inter-kernel gap) measured vs predicted, summed over cases."""
    from llmsim.calibrate.gpu_devset import score_dev_set
    from llmsim.config.loader import load_hardware, load_model, split_overrides

    hw = load_hardware(hw_name, split_overrides([f"hw.{o}" for o in overrides])["hw"])
    out = score_dev_set(data, hw, load_model)
    head = ["model", "case", "mode", "measured ms", "predicted ms", "error"]
    if markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in out["rows"]:
        cells = [r["model"], f"{r['phase']}:{r['batch']}x{r['size']}", r["mode"], f"{r['measured_s'] * 1e3:.3f}",
                 f"{r['predicted_s'] * 1e3:.3f}", f"{100 * r['error']:+.1f}%"]
        print("| " + " | ".join(cells) + " |" if markdown else "  ".join(f"{c:>12}" for c in cells))
    print(f"\n{data['info'].get('device', '?')} vs llmsim --hw {hw_name} {' '.join(overrides)}")
    for k, v in out["mape"].items():
        print(f"  MAPE {k:<14} {100 * v:5.1f}%")
    print("  kernel time per class in graph replays, summed over cases (gap = step - kernels):")
    print("  (attention is predicted apart: the measured SDPA kernels fall in gemm or elementwise_other)")
    for k, v in sorted(out["by_class"].items()):
        m, p = v["measured_s"], v["predicted_s"]
        mape = f"   per-case MAPE {100 * v['mape']:5.1f}%" if v["mape"] else ""
        err = f"({100 * (p / m - 1):+.1f}%)" if m > 0 else ""
        print(f"    {k:<36} measured {m * 1e3:8.3f} ms  predicted {p * 1e3:8.3f} ms  {err:>8}{mape}")
    return out


def _preset_kernels(model, phase: str, fw) -> int:
    from llmsim.config.loader import make_scenario
    from llmsim.graph.lower import lower_decode, lower_prefill

    sc = make_scenario({"batch": 1, "prompt": 128, "gen": 2})
    g = lower_prefill(model, sc) if phase == "prefill" else lower_decode(model, sc, context=128)
    return sum(fw.calls(g.nodes[n]["op"].kind.value, g.nodes[n]["op"].attr("fn")).kernels for n in g.nodes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", default="benchmarks/data/h100_gpt2_fidelity.json")
    m.add_argument("--models", default=",".join(MODELS))
    m.add_argument("--iters", type=int, default=20)
    m.add_argument("--warmup", type=int, default=5)
    m.add_argument("--device", default="cuda", help="cuda (the measurement) or cpu (a smoke run, eager only)")
    s = sub.add_parser("score")
    s.add_argument("--data", default="benchmarks/data/h100_gpt2_fidelity.json")
    s.add_argument("--hw", default="h100")
    s.add_argument("--markdown", action="store_true")
    s.add_argument("--set", action="append", default=[], metavar="a.b=c", help="hardware override (repeatable)")
    a = ap.parse_args()
    if a.cmd == "measure":
        measure(a.out, a.models.split(","), a.iters, a.warmup, a.device,
                MODES if a.device == "cuda" else ["eager"])
    else:
        score(a.data, a.hw, a.markdown, a.set)


if __name__ == "__main__":
    main()
