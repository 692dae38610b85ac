"""How well can ANY host-cost model fit the development set's eager steps? (no GPU, no torch)

    python benchmarks/eager_floor.py [--data ../shared/data/h100_gpt2_dev.json] [--hw h100]

An eager step is host-bound when the Python/framework issue time exceeds the GPU's work. Every host cost
model llmsim could carry is a function of the calls the step makes (kernels and host-only calls, from
``framework.calls_per_op``, weighted per op kind or not) — and GPT-2's calls per layer do not depend on the
model size, the batch or the context. So for each eager case this prints the measured eager and graph
times, the calls per step and the per-layer eager time, and then the lowest MAPE any prediction of the form

* ``max(graph_measured, k · calls)`` (host and device overlap; the device side taken as measured), or
* ``graph_measured + k · calls`` (no overlap)

reaches with the best ``k`` (one for all cases, one per phase, one per (model, phase)) — a floor on what a
host model proportional to the calls can do on this data, whatever its constants. The spread of the per-layer
time among cases with identical call sequences is the data's own noise.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def step_calls(hw, model, case: dict) -> tuple[int, int]:
    """(kernel launches, host-only calls) of one eager step, as llmsim counts them."""
    from llmsim.config.loader import make_scenario
    from llmsim.graph.lower import lower_decode, lower_prefill

    phase, b = case["phase"], int(case["batch"])
    s = int(case["seq"] if phase == "prefill" else case["context"])
    sc = make_scenario({"batch": b, "prompt": s, "gen": 2, "mode": "eager", "weight_dtype": "fp16",
                        "act_dtype": "fp16", "kv_dtype": "fp16"})
    g = lower_prefill(model, sc, batch=b, seq=s) if phase == "prefill" else lower_decode(model, sc, context=s, batch=b)
    k = h = 0
    for n in g.nodes:
        op = g.nodes[n]["op"]
        c = hw.framework.calls(op.kind.value, op.attr("fn"))
        k, h = k + c.kernels, h + c.host_calls
    return k, h


def best_mape(rows: list[dict], form: str) -> tuple[float, float]:
    """(lowest MAPE, its k in seconds per call) over a fine log grid of k."""
    best = (float("inf"), 0.0)
    for i in range(1200):
        k = 1e-7 * 10 ** (i / 400)  # 0.1 µs .. 100 µs per call
        errs = []
        for r in rows:
            pred = max(r["graph_s"], k * r["calls"]) if form == "max" else r["graph_s"] + k * r["calls"]
            errs.append(abs(pred / r["eager_s"] - 1))
        m = statistics.mean(errs)
        if m < best[0]:
            best = (m, k)
    return best


def lomo(data: dict, hw_name: str, grid_us: list[float]) -> dict[str, dict[str, float]]:
    """Leave one model out for the one eager-fitted field, ``framework.eager_python_call_s``: for each
    held-out model, the grid value minimising the larger phase MAPE on the other models, scored on it."""
    from llmsim.calibrate.gpu_devset import predict_case
    from llmsim.config.loader import load_hardware, load_model, parse_set

    models = {c["model"]: load_model(c["model"]) for c in data["results"]}
    err: dict[float, list[tuple[str, str, float]]] = {}
    for v in grid_us:
        hw = load_hardware(hw_name, parse_set([f"framework.eager_python_call_s={v * 1e-6}"]))
        err[v] = [(c["model"], c["phase"],
                   predict_case(hw, models[c["model"]], c, "eager")["seconds"] / c["eager_s"] - 1)
                  for c in data["results"]]

    def mape(rows, phase):
        e = [abs(x) for _, ph, x in rows if ph == phase]
        return statistics.mean(e) if e else 0.0

    out = {}
    for held in models:
        best = min(grid_us, key=lambda v: max(mape([r for r in err[v] if r[0] != held], ph)
                                              for ph in ("prefill", "decode")))
        test = [r for r in err[best] if r[0] == held]
        out[held] = {"eager_python_call_us": best, "prefill": mape(test, "prefill"), "decode": mape(test, "decode")}
        print(f"held out {held:12s}: fitted {best:4.1f} us/call -> prefill {out[held]['prefill']:.1%}, "
              f"decode {out[held]['decode']:.1%}")
    allp = statistics.mean(o["prefill"] for o in out.values())
    alld = statistics.mean(o["decode"] for o in out.values())
    print(f"leave-one-model-out mean: prefill {allp:.1%}, decode {alld:.1%}")
    return out


def main(argv: list[str] | None = None) -> int:
    from llmsim.config.loader import load_hardware, load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parent / "data" / "h100_gpt2_dev.json"))
    ap.add_argument("--hw", default="h100")
    ap.add_argument("--json", help="write the table and floors here")
    ap.add_argument("--lomo", action="store_true", help="also leave one model out for eager_python_call_s")
    a = ap.parse_args(argv)
    hw = load_hardware(a.hw)
    data = json.loads(Path(a.data).read_text())
    rows = []
    models = {}
    for c in data["results"]:
        m = models.setdefault(c["model"], load_model(c["model"]))
        k, h = step_calls(hw, m, c)
        size = c.get("seq", c.get("context"))
        rows.append({"model": c["model"], "phase": c["phase"], "case": f"{c['phase']}:{c['batch']}x{size}",
                     "layers": m.n_layers, "eager_s": c["eager_s"], "graph_s": c["graph_s"], "calls": k + h,
                     "per_layer_ms": c["eager_s"] / m.n_layers * 1e3})
    print(f"{'model':12s} {'case':16s} {'eager':>9s} {'graph':>9s} {'calls':>6s} {'eager/layer':>12s} {'us/call':>8s}")
    for r in rows:
        print(f"{r['model']:12s} {r['case']:16s} {r['eager_s'] * 1e3:7.3f}ms {r['graph_s'] * 1e3:7.3f}ms "
              f"{r['calls']:6d} {r['per_layer_ms']:10.3f}ms {r['eager_s'] / r['calls'] * 1e6:8.2f}")
    host_bound = [r for r in rows if r["eager_s"] > 2 * r["graph_s"]]
    per_call = [r["eager_s"] / r["calls"] * 1e6 for r in host_bound]
    lo, hi = min(per_call), max(per_call)
    print(f"\nhost-bound cases (eager > 2 x graph): {len(host_bound)}; eager time per call {lo:.2f} .. {hi:.2f} us "
          f"(median {statistics.median(per_call):.2f}, max/min {hi / lo:.2f})")
    floors = {}
    for form in ("max", "sum"):
        groups: dict[str, dict[str, list[dict]]] = {"one k": {"all": rows}, "k per phase": defaultdict(list),
                                                    "k per (model, phase)": defaultdict(list)}
        for r in rows:
            groups["k per phase"][r["phase"]].append(r)
            groups["k per (model, phase)"][f"{r['model']}/{r['phase']}"].append(r)
        for label, gs in groups.items():
            per_phase = defaultdict(list)
            for rs in gs.values():
                _, k = best_mape(rs, form)
                for r in rs:
                    pred = max(r["graph_s"], k * r["calls"]) if form == "max" else r["graph_s"] + k * r["calls"]
                    per_phase[r["phase"]].append(abs(pred / r["eager_s"] - 1))
            f = {ph: statistics.mean(v) for ph, v in per_phase.items()}
            floors[f"{form} / {label}"] = f
            shape = "max(graph, k*calls)" if form == "max" else "graph + k*calls"
            print(f"floor {shape:20s} {label:22s} prefill {f['prefill']:.1%}  decode {f['decode']:.1%}")
    held = lomo(data, a.hw, [x / 2 for x in range(8, 21)]) if a.lomo else {}
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "floors": floors, "lomo": held}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
