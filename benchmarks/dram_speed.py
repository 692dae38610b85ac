"""Speed of the jitted DRAM scheduler: DRAM commands simulated per second.

Usage: PYTHONPATH=. python benchmarks/dram_speed.py
"Cold" includes loading the Numba cache (or compiling, on a fresh checkout); "warm" is a second run of
the same stream with the lru_cache of DramModel.stream bypassed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import yaml

from llmsim.config.memory import DramSpec
from llmsim.memory import kernels as K
from llmsim.memory.dram import DramModel

ROOT = Path(__file__).resolve().parents[1]
N_BYTES = 64 << 20


def simulate(model: DramModel, pattern: str):
    n = N_BYTES // model.spec.burst_bytes
    empty = np.zeros(0, dtype=np.int64)
    gen = K.GEN_SEQUENTIAL if pattern == "sequential" else K.GEN_RANDOM
    return model._simulate(empty, empty, empty, empty, n, gen, 0, K.OP_READ, True, 0)


def main() -> None:
    print(f"{'preset':10s} {'pattern':10s} {'commands':>10s} {'cold s':>8s} {'warm s':>8s} "
          f"{'Mcmd/s warm':>12s} {'BW % peak':>9s}")
    for name in ("gddr6", "hbm3", "ddr4"):
        spec = DramSpec.model_validate(yaml.safe_load((ROOT / "hw_configs" / "memory" / f"{name}.yaml").read_text()))
        model = DramModel(spec)
        for pattern in ("sequential", "random"):
            t0 = time.perf_counter()
            simulate(model, pattern)
            t1 = time.perf_counter()
            st = simulate(model, pattern)
            t2 = time.perf_counter()
            n_cmd = sum(st.commands.values())
            eff = 100 * st.bandwidth_bytes_per_s / spec.peak_bandwidth_bytes_per_s
            print(f"{name:10s} {pattern:10s} {n_cmd:10d} {t1 - t0:8.3f} {t2 - t1:8.3f} "
                  f"{n_cmd / (t2 - t1) / 1e6:12.2f} {eff:9.1f}")


if __name__ == "__main__":
    main()
