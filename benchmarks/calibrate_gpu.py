"""Fit the H100 preset's device-level GPU fields on measured microbenchmarks and report the error.

Reads ``benchmarks/data/h100_microbench.json`` (a copy of the project's ``shared/data`` file:
GEMM, elementwise add, LayerNorm, SDPA; FP16,
PyTorch 2.11, one H100 SXM; each figure a median of CUDA-event-timed eager calls) and
compares every entry with the GPU device model (``llmsim/devices/gpu.py``).

Measurement model (how an isolated eager call shows up between two CUDA events): the host
dispatch of the call and the kernel overlap, so ``measured = max(floor_kind, L + device)``,
where ``floor_kind`` is the eager floor of that op kind (the smallest measured time, dominated
by host dispatch), ``L`` the idle-stream launch latency and ``device`` the model's kernel time
(cycle cost + per-kernel overhead). ``floor_kind - floor_add`` is the per-kind eager
dispatch extra the preset carries; entries within 15% of their floor say nothing about the
device and are excluded from the fit (but shown). The prefill SDPA at S=128 (385 us, 20x
its neighbours) is a first-call outlier and is excluded.

Fit: coordinate descent over a grid on each field, minimising the mean |log(pred/meas)| over
the informative entries. Run:  python benchmarks/calibrate_gpu.py [--json PATH] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from llmsim.config.base import DType
from llmsim.config.hardware import GpuSpec
from llmsim.config.loader import load_hardware
from llmsim.devices.base import build_device
from llmsim.graph import factory as f

DEFAULT_JSON = Path(__file__).resolve().parent / "data" / "h100_microbench.json"  # copy of shared/data/
FP16 = DType.fp16
FIELDS = {  # field path -> grid
    "memory_efficiency": [0.80 + 0.01 * i for i in range(21)],
    "kernels.tile_efficiency": [0.60 + 0.02 * i for i in range(21)],
    "kernels.sm_bandwidth_bytes_per_s": [v * 1e9 for v in (15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200)],
    "kernels.unaligned_compute_efficiency": [0.08 + 0.01 * i for i in range(15)],
    "kernels.unaligned_memory_efficiency": [0.50 + 0.025 * i for i in range(21)],
    "kernels.attention.efficiency.64": [0.10 + 0.025 * i for i in range(25)],
    "kernels.attention.efficiency.128": [0.10 + 0.025 * i for i in range(33)],
    "idle_stream_latency_s": [v * 1e-6 for v in range(2, 15)],
}
# kernel latency chain and graph gap: hidden under the eager floors of the microbenchmarks, so only the
# development set's CUDA-graph steps (--dev) determine them
DEV_FIELDS = {
    "kernels.launch_latency_s": [v * 1e-7 for v in (2, 4, 6, 7, 8, 9, 10, 12)],
    "kernels.memory_latency_s": [v * 1e-7 for v in (5, 6, 6.5, 7, 7.5, 8, 9, 10)],
    "kernels.gemm_latency_rounds": [1, 2, 3, 4, 5, 6],
    "framework.kernel_overhead_s": [v * 1e-7 for v in (3, 4, 5, 6, 7, 8, 9, 10, 11)],
}


def cases(data: dict) -> list[dict]:
    """One record per microbenchmark entry: op, measured seconds, op kind for the floor."""
    out = []
    for r in data["gemm_fp16"]:
        out.append(dict(name=f"gemm {r['M']}x{r['K']}x{r['N']}", kind="matmul", s=r["s"],
                        op=f.matmul("g", r["M"], r["K"], r["N"], dtype=FP16, weighted=True)))
    for r in data["add_fp16"]:
        n = r["elements"]
        out.append(dict(name=f"add {n}", kind="elementwise", s=r["s"], op=f.elementwise("a", 1, n, "add", dtype=FP16)))
    for r in data["layernorm_fp16"]:
        out.append(dict(name=f"layernorm {r['rows']}x{r['d']}", kind="norm", s=r["s"],
                        op=f.norm("n", r["rows"], r["d"], "layernorm", dtype=FP16)))
    for r in data["sdpa_fp16"]:
        if r["kind"] == "prefill_causal":
            op = f.attention("p", r["B"], r["H"], r["H"], r["S"], r["S"], r["hd"], dtype=FP16, causal=True)
            name = f"sdpa prefill B{r['B']} H{r['H']} S{r['S']} hd{r['hd']}"
        else:
            op = f.attention("d", r["B"], r["H"], r["H"], 1, r["C"], r["hd"], dtype=FP16, causal=True)
            name = f"sdpa decode B{r['B']} H{r['H']} C{r['C']} hd{r['hd']}"
        # prefill and decode SDPA are different host paths (their own eager floors)
        kind = "attention_prefill" if r["kind"] == "prefill_causal" else "attention"
        out.append(dict(name=name, kind=kind, s=r["s"], op=op, outlier=r["kind"] == "prefill_causal"
                        and r["S"] <= 128))
    floors = {}
    for c in out:
        if not c.get("outlier"):
            floors[c["kind"]] = min(floors.get(c["kind"], math.inf), c["s"])
    for c in out:
        c["floor"] = floors[c["kind"]]
        c["informative"] = c["s"] > 1.15 * c["floor"] and not c.get("outlier", False)
    return out


def build(params: dict[str, float], hw: str = "h100"):
    """The device with ``params`` (dotted field paths; dict keys such as head dims as digits)."""
    d = load_hardware(hw).model_dump()
    for path, v in params.items():
        if path == "idle_stream_latency_s":
            continue
        node = d
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = v
    return build_device(GpuSpec.model_validate(d), fidelity="cycle", mode="graph")


def predict(cs: list[dict], params: dict[str, float]) -> list[float]:
    dev = build(params)
    L = params["idle_stream_latency_s"]
    return [max(c["floor"], L + dev.cost(c["op"]).device_seconds) for c in cs]


def dev_cases(path: str) -> list[tuple[dict, list]]:
    """The development set's CUDA-graph steps, each with its ops (``llmsim.calibrate.gpu_devset``)."""
    from llmsim.calibrate.gpu_devset import case_ops
    from llmsim.config.loader import load_model

    models: dict = {}
    out = []
    for c in json.loads(Path(path).read_text())["results"]:
        model = models.setdefault(c["model"], load_model(c["model"]))
        out.append((c, case_ops(model, c)))
    return out


def dev_errors(dev: list[tuple[dict, list]], params: dict[str, float]) -> list[tuple[dict, float]]:
    """(case, predicted / measured - 1) of every development-set graph step."""
    from llmsim.calibrate.gpu_devset import graph_step_seconds

    device = build(params)
    return [(c, graph_step_seconds(device, ops) / c["graph_s"] - 1.0) for c, ops in dev]


def score(cs: list[dict], params: dict[str, float], dev: list | None = None) -> float:
    """Mean |log error| over the informative microbenchmarks, plus (with ``dev``) the same over the
    development set's graph steps, prefill and decode weighted alike."""
    pred = predict(cs, params)
    errs = [abs(math.log(p / c["s"])) for p, c in zip(pred, cs, strict=True) if c["informative"]]
    total = sum(errs) / len(errs)
    if dev:
        by_phase: dict[str, list[float]] = {}
        for c, e in dev_errors(dev, params):
            by_phase.setdefault(c["phase"], []).append(abs(math.log1p(e)))
        total += sum(statistics.mean(v) for v in by_phase.values()) / len(by_phase)
    return total


def fit(cs: list[dict], start: dict[str, float], rounds: int = 3, dev: list | None = None) -> dict[str, float]:
    params = dict(start)
    fields = FIELDS | (DEV_FIELDS if dev else {})
    for _ in range(rounds):
        for path, grid in fields.items():
            grid = grid[::2] if dev and path in FIELDS and len(grid) > 13 else grid  # coarser when slow
            best = min(grid, key=lambda v: score(cs, params | {path: v}, dev))
            params[path] = best
    return params


def start_params() -> dict[str, float]:
    hw = load_hardware("h100")
    p = {"memory_efficiency": hw.memory_efficiency, "idle_stream_latency_s": 12e-6}  # fitted (measurement model only)
    for path in FIELDS | DEV_FIELDS:
        if path.startswith(("kernels.", "framework.")):
            obj = hw
            for k in path.split("."):
                obj = obj[int(k)] if isinstance(obj, dict) else getattr(obj, k)
            p[path] = obj
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=str(DEFAULT_JSON))
    ap.add_argument("--no-fit", action="store_true", help="score the preset as it is")
    ap.add_argument("--markdown", action="store_true", help="print the per-entry table as Markdown")
    ap.add_argument("--dev", metavar="PATH", help="also fit on the development set's CUDA-graph steps "
                    "(shared/data/h100_gpt2_dev.json), which alone determine the kernel latency chain and graph gap")
    ap.add_argument("--rounds", type=int, default=3, help="coordinate-descent rounds")
    a = ap.parse_args()
    data = json.loads(Path(a.json).read_text())
    cs = cases(data)
    dev = dev_cases(a.dev) if a.dev else None
    params = start_params()
    if not a.no_fit:
        params = fit(cs, params, a.rounds, dev)
    floors = {c["kind"]: c["floor"] for c in cs}
    print("fitted device-level fields:" if not a.no_fit else "preset fields:")
    for k, v in params.items():
        print(f"  {k:<40} {v:.4g}")
    print("eager floors (s) and eager_dispatch_extra_s = floor - floor(elementwise):")
    for k, v in floors.items():
        print(f"  {k:<12} floor {v * 1e6:6.2f} us   extra {(v - floors['elementwise']) * 1e6:5.2f} us")
    pred = predict(cs, params)
    sep = "|" if a.markdown else " "
    if a.markdown:
        print("\n| microbenchmark | measured us | predicted us | error | used in fit |\n|---|---|---|---|---|")
    errs = []
    for c, p in zip(cs, pred, strict=True):
        e = p / c["s"] - 1
        if c["informative"]:
            errs.append(abs(e))
        used = "yes" if c["informative"] else "no"
        row = [c["name"], f"{c['s'] * 1e6:.1f}", f"{p * 1e6:.1f}", f"{100 * e:+.1f}%", used]
        print((f"| {' | '.join(row)} |") if a.markdown else sep.join(f"{x:<34}" if i == 0 else f"{x:>10}"
                                                                         for i, x in enumerate(row)))
    print(f"\ninformative entries: {len(errs)}, MAPE {100 * statistics.mean(errs):.1f}%, "
          f"median APE {100 * statistics.median(errs):.1f}%, max APE {100 * max(errs):.1f}%")
    if dev:
        by_phase: dict[str, list[float]] = {}
        for c, e in dev_errors(dev, params):
            by_phase.setdefault(c["phase"], []).append(abs(e))
        print("development set, CUDA-graph steps: " + ", ".join(
            f"{ph} MAPE {100 * statistics.mean(v):.1f}% (max {100 * max(v):.1f}%)" for ph, v in by_phase.items()))


if __name__ == "__main__":
    main()
