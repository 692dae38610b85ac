"""Memory of a 10,000-point PIM sweep: peak RSS of all its processes together (driver + workers).

    PYTHONPATH=. python benchmarks/sweep_memory.py [--points 10000] [--workers 2] [--fidelity analytic]
                                                   [--tasks-per-child N]   # 0: never recycle (for comparison)

Runs ``llmsim sweep`` in a subprocess on a fresh folder and samples, every 0.2 s, the summed
resident memory (``/proc/<pid>/status`` VmRSS) of the driver and every descendant (pool
workers, the forkserver). Prints the points, seconds, peak total RSS and the RSS at the 10 %
and 90 % marks of the sweep (a worker that grew with the number of points would show as a
rising line). Linux only (reads /proc). Issue 16's bar: under 1 GiB in total.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree_rss_bytes(root: int) -> int:
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
        todo += _children(pid)
    return total


def spec_yaml(points: int, fidelity: str) -> str:
    """A grid of about ``points`` PIM design points on gpt2 (channels x ASIC clock x batch)."""
    n_clock = max(1, math.ceil(points / (4 * 4)))
    return (f"hw: pim\nmodel: gpt2\nscenario: {{prompt: 8, gen: 2}}\nfidelity: {fidelity}\naxes:\n"
            f"  hw.memory.channels: [4, 8, 16, 32]\n  scenario.batch: [1, 2, 3, 4]\n"
            f"  hw.asic.clock_hz: {{logrange: [1.0e+8, 2.0e+9], num: {n_clock}}}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fidelity", choices=["cycle", "analytic"], default="analytic")
    ap.add_argument("--tasks-per-child", type=int, default=None,
                    help="override llmsim.sweep.runner.MAX_TASKS_PER_CHILD (0: workers are never replaced)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(spec_yaml(args.points, args.fidelity))
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        patch = ("import sys, llmsim.sweep.runner as r; n = int(sys.argv[1]); "
                 "r.MAX_TASKS_PER_CHILD = (n or None) if n >= 0 else r.MAX_TASKS_PER_CHILD; "
                 "from llmsim.cli import main; main(sys.argv[2:])")
        per_child = -1 if args.tasks_per_child is None else args.tasks_per_child
        cmd = [sys.executable, "-c", patch, str(per_child), "sweep", str(spec), "--out", str(Path(tmp) / "out"),
               "--workers", str(args.workers), "--max-points", str(2 * args.points)]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        samples: list[tuple[float, int, int]] = []  # (t, rss, rows stored)
        results = Path(tmp) / "out" / "results.jsonl"
        while p.poll() is None:
            rows = results.read_bytes().count(b"\n") if results.exists() else 0
            samples.append((time.perf_counter() - t0, tree_rss_bytes(p.pid), rows))
            time.sleep(0.2)
        out = p.stdout.read()
        secs = time.perf_counter() - t0
    if p.returncode:
        sys.exit(f"sweep failed ({p.returncode}):\n{out}")
    total = max(r for _, _, r in samples) or 1

    def at(frac: float) -> int:
        return max((s for _, s, r in samples if r <= frac * total), default=0)

    peak = max(s for _, s, _ in samples)
    print(next((ln for ln in out.splitlines() if " points (" in ln), out.strip().splitlines()[-1]))
    recycle = "default" if args.tasks_per_child is None else (args.tasks_per_child or "never")
    print(f"points {total}, workers {args.workers}, {args.fidelity}, worker recycling {recycle}: {secs:.0f} s; "
          f"peak RSS of all processes "
          f"{peak / 2**20:.0f} MiB (at 10% of points {at(0.1) / 2**20:.0f} MiB, at 90% {at(0.9) / 2**20:.0f} MiB); "
          f"{'under' if peak < 2**30 else 'OVER'} 1 GiB")


if __name__ == "__main__":
    main()
