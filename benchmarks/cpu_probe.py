"""A machine-speed probe for CPU validation runs on shared machines: how fast this host streams weights now.

    python benchmarks/cpu_probe.py OUTDIR LABEL

Times 1-row ``nn.Linear``-style products (``x · Wᵀ``) over a chain of eight distinct 8 MiB fp32 weights
(64 MiB, more than a server LLC's share: a decode step's access pattern, as ``llmsim calibrate`` times its
GEMV chain), 400 runs (about 2 s), and appends the median rate in GB/s with a timestamp to ``OUTDIR/probe.jsonl``.
``cpu_acceptance.sh`` runs it before the calibration and after every validation pass; ``cpu_rescore.py``
prints the series. It is a diagnostic, not an input: a run whose probe moved between the calibration and
a pass measured the machine, not the model (on a 2-vCPU VM the rate moved 1.4x within minutes).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


def probe(runs: int = 400) -> float:
    import torch

    weights = [torch.randn(1448, 1448) for _ in range(8)]
    x = torch.randn(1, 1448)
    f = torch.nn.functional.linear
    times = []
    with torch.inference_mode():
        for w in weights:
            f(x, w)
        for _ in range(runs):
            t0 = time.perf_counter()
            for w in weights:
                f(x, w)
            times.append(time.perf_counter() - t0)
    return 8 * 1448 * 1448 * 4 / statistics.median(times)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    out, label = Path(argv[0]), argv[1]
    rate = probe()
    utc = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rec = {"utc": utc, "label": label, "gemv_gb_per_s": rate / 1e9}
    with (out / "probe.jsonl").open("a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(f"probe {label}: {rate / 1e9:.1f} GB/s (1-row products over a chain of 8 MiB weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
