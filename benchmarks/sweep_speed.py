"""Sweep throughput: a 200-point PIM design space on gpt2-xl, points per second per backend.

    PYTHONPATH=. python benchmarks/sweep_speed.py [--workers 1,2] [--backend local|ray] [--fidelity cycle]

Every run starts from an empty store (a temporary folder), so all points are simulated.
Prints one table row per (backend, workers): points, seconds, points/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from llmsim.sweep import SweepSpec, run_sweep

SPACE = {
    "hw": "pim", "model": "gpt2-xl",
    "scenario": {"batch": 1, "prompt": 64, "gen": 8, "weight_dtype": "bf16", "act_dtype": "bf16",
                 "kv_dtype": "bf16"},
    "axes": {
        "hw.memory.channels": {"logrange": [8, 64], "factor": 2},             # 4
        "hw.memory.banks_per_group": [2, 4],                                   # 2
        "hw.mac_lanes_per_bank": {"logrange": [16, 256], "factor": 2},         # 5 (>= one bf16 burst)
        "hw.asic.clock_hz": {"logrange": [5.0e8, 2.0e9], "num": 5},           # 5  -> 200 points
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default=str(os.cpu_count() or 1), help="comma-separated worker counts")
    ap.add_argument("--backend", choices=["local", "ray"], default="local")
    ap.add_argument("--fidelity", choices=["cycle", "analytic"], default="cycle")
    args = ap.parse_args()
    spec = SweepSpec.from_dict(SPACE | {"fidelity": args.fidelity}, source="benchmarks/sweep_speed.py")
    t0 = time.perf_counter()
    n_points = len(spec.points()[0])
    resolve_s = time.perf_counter() - t0
    print(f"PIM sweep on gpt2-xl, {n_points} points, fidelity {args.fidelity}, {os.cpu_count()} cores "
          f"(resolving + validating all points: {resolve_s:.2f} s)")
    print(f"{'backend':<8} {'workers':>7} {'points':>7} {'failed':>7} {'seconds':>8} {'points/s':>9}")
    for w in (int(x) for x in args.workers.split(",")):
        with tempfile.TemporaryDirectory(prefix="llmsim-sweep-bench-") as out:
            res = run_sweep(spec, out, backend=args.backend, workers=w)
        print(f"{args.backend:<8} {w:>7} {res.ran:>7} {res.errors:>7} {res.seconds:>8.2f} {res.points_per_s:>9.2f}")


if __name__ == "__main__":
    main()
