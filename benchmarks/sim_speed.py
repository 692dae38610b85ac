"""Simulator speed: `llmsim run --hw pim.yaml --model gpt2-xl --prompt 128 --gen 128`.

1. Times the CLI command in a subprocess with a cold Numba cache (a fresh NUMBA_CACHE_DIR:
   every jitted function compiles) and then warm (same directory: cached machine code).
   Reports wall-clock and CPU seconds (the machine may be shared; CPU time is the stable one).
2. In-process, counts the DRAM commands the jitted scheduler issues (every command of every
   unique op shape; repeated shapes are served from the cost cache) and the seconds spent
   inside it: commands simulated per second.

    PYTHONPATH=. python benchmarks/sim_speed.py [--model gpt2-xl] [--prompt 128] [--gen 128]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_cli(args: list[str], cache_dir: str) -> tuple[float, float]:
    """(wall s, CPU s of the child) of ``python -m llmsim.cli ARGS``."""
    path = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=path)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "llmsim.cli", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise SystemExit(p.stderr)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def kernel_rate(model: str, prompt: int, gen: int) -> dict:
    """Run in-process with the DRAM kernel wrapped: commands it issued and its seconds."""
    from llmsim.config.loader import load_hardware, load_model, make_scenario
    from llmsim.engine import simulate
    from llmsim.memory import dram

    inner, acc = dram.K.simulate, {"calls": 0, "commands": 0, "seconds": 0.0}

    def counted(*a):
        t = time.perf_counter()
        out = inner(*a)
        acc["seconds"] += time.perf_counter() - t
        acc["calls"] += 1
        acc["commands"] += int(out[1].sum())
        return out

    dram.K.simulate = counted
    try:
        t, c = time.perf_counter(), time.process_time()
        r = simulate(load_hardware("pim"), load_model(model), make_scenario({"prompt": prompt, "gen": gen}))
        acc["run_wall_s"], acc["run_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    finally:
        dram.K.simulate = inner
    acc["commands_represented"] = int(sum(v for k, v in r.to_dict()["stats"].items() if k.startswith("dram_")))
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gpt2-xl")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--gen", type=int, default=128)
    a = ap.parse_args()
    args = ["run", "--hw", "pim.yaml", "--model", a.model, "--prompt", str(a.prompt), "--gen", str(a.gen)]
    print(f"llmsim {' '.join(args)}  ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    with tempfile.TemporaryDirectory() as cache:
        cold = timed_cli(args, cache)
        warm = timed_cli(args, cache)
    print(f"  cold Numba cache: {cold[0]:6.2f} s wall, {cold[1]:6.2f} s CPU")
    print(f"  warm Numba cache: {warm[0]:6.2f} s wall, {warm[1]:6.2f} s CPU")
    k = kernel_rate(a.model, a.prompt, a.gen)
    print(f"  in-process run: {k['run_wall_s']:.2f} s wall, {k['run_cpu_s']:.2f} s CPU")
    print(f"  jitted DRAM scheduler: {k['calls']} calls, {k['commands']:,} commands simulated in {k['seconds']:.2f} s "
          f"= {k['commands'] / max(k['seconds'], 1e-9) / 1e6:.1f} M commands/s")
    print(f"  DRAM commands represented in the result (repeated shapes reused): {k['commands_represented']:,}")


if __name__ == "__main__":
    main()
