"""The DRAM controller kernel of a git revision against the working tree's, in one process.

Usage: PYTHONPATH=. python benchmarks/dram_kernel_ab.py [--base REV] [--only hbm2,ddr4] [--streams a,b] [--repeat K]

Loads ``llmsim/memory/kernels.py`` as it is at ``--base`` (default HEAD) as a second module (its own
Numba cache, in a temporary folder) beside the working tree's, feeds both the same calls of
``simulate`` for the streams of ``benchmarks/dram_vs_dramsim3.py`` (524,288 requests each), and
prints, per stream: whether both give the same cycles, command counts, row hits and a digest of
the first 200,000 trace rows (a kernel change meant to be a pure speed-up must say ``same``), and
each kernel's least and median CPU seconds over ``--repeat`` runs, the two alternating so that both
sample the same stretch of the machine's time (this is how docs/memory.md's A/B ratios were
measured). The base kernel is compiled afresh (about a minute). A kernel whose ``simulate``
signature differs from the working tree's cannot be compared.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from dram_vs_dramsim3 import STREAMS, stream  # noqa: E402

from llmsim.config.loader import load_yaml  # noqa: E402
from llmsim.config.memory import DramSpec  # noqa: E402
from llmsim.memory import kernels as K  # noqa: E402
from llmsim.memory.dram import DramModel, Requests  # noqa: E402


def load_base(rev: str, folder: Path):
    """``llmsim/memory/kernels.py`` at ``rev`` as a module of its own."""
    src = subprocess.run(["git", "show", f"{rev}:llmsim/memory/kernels.py"], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    if src.returncode != 0:
        raise SystemExit(f"--base {rev}: {src.stderr.strip()}")
    path = folder / "kernels_base.py"
    path.write_text(src.stdout)
    spec = importlib.util.spec_from_file_location("kernels_base", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def call_args(spec: DramSpec, name: str) -> list:
    """The arguments DramModel.run passes to ``simulate`` for stream ``name`` (a 200,000-row trace)."""
    idx, write = stream(name, 524_288, spec)
    m = DramModel(spec)
    r = m.map_bursts(idx)
    req = Requests(write, r.channel, r.bank_group, r.bank, r.row, r.rank)
    seen = {}
    orig = K.simulate

    def record(*a):
        seen["args"] = a
        return orig(*a)

    K.simulate = record
    try:
        m.run(req, trace=200_000)
    finally:
        K.simulate = orig
    return list(seen["args"])


def outcome(mod, args: list) -> tuple:
    trace = np.zeros_like(args[-1])
    res = mod.simulate(*args[:-1], trace)
    digest = hashlib.md5(trace.tobytes()).hexdigest()
    return int(res[0]), tuple(int(x) for x in res[1]), int(res[2]), int(res[3]), digest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD", help="git revision of the kernel to compare with")
    ap.add_argument("--only", default="hbm2,ddr4")
    ap.add_argument("--streams", default=",".join(STREAMS))
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    if a.repeat < 1:
        ap.error(f"--repeat must be >= 1, not {a.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        base = load_base(a.base, Path(tmp))
        print(f"kernel at {a.base} (base) vs the working tree's (new); CPU ms, least / median of {a.repeat}, "
              "alternating")
        print(f"{'memory':6} {'stream':12} {'result':>6} {'base':>15} {'new':>15} {'new/base':>9}")
        for mem in a.only.split(","):
            spec = DramSpec.model_validate(load_yaml(ROOT / "hw_configs" / "memory" / f"{mem}.yaml", "hw_configs"))
            for name in a.streams.split(","):
                args = call_args(spec, name)
                same = outcome(base, args) == outcome(K, args)
                args[-1] = np.zeros((0, 4), np.int64)
                tb, tn = [], []
                for _ in range(a.repeat):
                    for mod, acc in ((base, tb), (K, tn)):
                        c = time.process_time()
                        mod.simulate(*args)
                        acc.append(time.process_time() - c)
                mb, mn = statistics.median(tb), statistics.median(tn)
                print(f"{mem:6} {name:12} {'same' if same else 'DIFF':>6} {min(tb) * 1e3:7.1f} / {mb * 1e3:5.1f} "
                      f"{min(tn) * 1e3:7.1f} / {mn * 1e3:5.1f} {min(tn) / min(tb):9.3f}")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
