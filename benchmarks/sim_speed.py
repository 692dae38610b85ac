"""Simulator speed, in one run: seconds per decode step, tokens simulated per second, and how a
generation's cost grows with its length.

For each preset (h100, pim, npu-ws-128, xeon-gold-6154) it times, as fresh processes with a warm
Numba cache, ``llmsim run --model gpt2-xl --prompt 128 --gen 128`` and ``--gen 896`` and prints:
wall seconds of each, their ratio (the done-when of issue 11 asks for <= 2), the marginal seconds
per decode step ((t896 - t128) / 768), and tokens simulated per second of the 896-token run. It
then times, in-process, decode steps on the bulk path (one template, replayed schedules) against
the step-by-step path (``simulate(..., exact=True)``: every step lowered and simulated by simpy),
and the cold start: ``import llmsim`` and an analytic ``llmsim run``.

    PYTHONPATH=. python benchmarks/sim_speed.py [--presets h100,pim] [--numba-cold]

``--numba-cold`` also times the first run with an empty Numba cache (every jitted function
compiles: tens of seconds). The machine may be shared: the load average is printed, and the
ratios in one run are the stable numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ["h100", "pim", "npu-ws-128", "xeon-gold-6154"]


def timed_cli(args: list[str], cache_dir: str | None = None) -> float:
    """Wall seconds of ``python -m llmsim.cli ARGS`` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "llmsim.cli", *args], env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    return time.perf_counter() - t


def run_args(hw: str, gen: int, *extra: str) -> list[str]:
    return ["run", "--hw", hw, "--model", "gpt2-xl", "--prompt", "128", "--gen", str(gen), *extra]


def in_process_steps(hw: str) -> tuple[float, float]:
    """(s per decode step on the bulk path, on the step-by-step path): the difference between a
    4-token generation and a longer one (400 more steps on the bulk path, 8 more step by step)
    from a 512-token prompt, over the extra steps, after a warm-up run (prefill costs cached)."""
    from llmsim.config.loader import load_hardware, load_model, make_scenario
    from llmsim.engine import simulate

    spec, m = load_hardware(hw), load_model("gpt2-xl")
    short = make_scenario({"prompt": 512, "gen": 4})
    simulate(spec, m, short)
    out = []
    for exact, n in ((False, 400), (True, 8)):
        t = time.perf_counter()
        simulate(spec, m, short, exact=exact)
        t1 = time.perf_counter()
        simulate(spec, m, make_scenario({"prompt": 512, "gen": 4 + n}), exact=exact)
        t2 = time.perf_counter()
        out.append(((t2 - t1) - (t1 - t)) / n)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--numba-cold", action="store_true", help="also time a run with an empty Numba cache")
    a = ap.parse_args()
    presets = a.presets.split(",")
    print(f"gpt2-xl, prompt 128 ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}: "
          "a loaded machine inflates every time)")
    if a.numba_cold:
        with tempfile.TemporaryDirectory() as cache:
            print(f"  empty Numba cache, pim --gen 128: {timed_cli(run_args('pim', 128), cache):.2f} s")
    timed_cli(run_args(presets[0], 8))  # warm the OS file cache and the Numba cache
    print(f"{'preset':<16} {'gen 128 s':>9} {'gen 896 s':>9} {'896/128':>8} {'ms/decode step':>15} {'tokens/s':>9}")
    for hw in presets:
        t128, t896 = timed_cli(run_args(hw, 128)), timed_cli(run_args(hw, 896))
        step = (t896 - t128) / (896 - 128)
        print(f"{hw:<16} {t128:>9.2f} {t896:>9.2f} {t896 / t128:>8.2f} {step * 1e3:>15.3f} {896 / t896:>9.0f}")
    print("in-process, per decode step at context ~520 (bulk path vs every step lowered and run by simpy):")
    for hw in presets:
        bulk, exact = in_process_steps(hw)
        print(f"  {hw:<16} bulk {bulk * 1e3:8.3f} ms   step-by-step {exact * 1e3:8.2f} ms   "
              f"x{exact / max(bulk, 1e-9):.0f}")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import llmsim"], env=env, check=True)
    t_import = time.perf_counter() - t
    t_analytic = timed_cli(run_args("h100", 128, "--fidelity", "analytic"))
    print(f"cold start: import llmsim {t_import:.2f} s (interpreter included); "
          f"analytic run (h100, gen 128) {t_analytic:.2f} s")


if __name__ == "__main__":
    main()
