"""Compare llmsim's NPU compute cycles with SCALE-Sim v3 on GEMMs from real LLMs.

Usage::

    python benchmarks/npu_vs_scalesim.py [--json out.json] [--scalesim-budget-s 150]

llmsim's side goes through the NPU device exactly as ``llmsim op --hw npu-ws-128 --kind matmul
--shape M,K,N --set hw.array_rows=R --set hw.array_cols=C --set hw.dataflow=DF`` does: the
preset is loaded with those overrides, the device maps the matmul op (``llmsim.devices.npu_map``)
and the benchmark reads the cost's ``compute_cycles`` (array busy cycles, no DMA stalls -- the
quantity SCALE-Sim's "Total Cycles" reports with ``InterfaceBandwidth: CALC``). The device's total
cycles with DMA stalls from the DRAM model are printed too.

SCALE-Sim runs in its own interpreter (it needs ``numpy<2``): ``$SCALESIM_PYTHON``, default
``/work/scalesim-venv/bin/python``; without it only llmsim's numbers are printed. SCALE-Sim
builds per-cycle demand matrices, so its run time grows with cycles x (rows + cols), about one
second per million on one core. The benchmark estimates that cost from llmsim's cycle count and
runs SCALE-Sim on the cheapest cases first until the budget (default 150 s) is spent; the others
show "skipped". ``--scalesim-budget-s 0`` skips SCALE-Sim, a large value runs every case.
SCALE-Sim is run with ``InterfaceBandwidth: CALC``, so its "Total Cycles" has no memory stalls.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmsim.config.base import DType
from llmsim.config.loader import load_hardware
from llmsim.devices.base import build_device
from llmsim.graph.factory import single_op

PRESET = "npu-ws-128"
# Operand buffers large enough that no GEMM below is cut into chunks: SCALE-Sim's compute cycles
# (CALC interface bandwidth) do not depend on buffer sizes, so neither may llmsim's in this comparison.
BUFFER_BYTES = 16 << 20

DEFAULT_SCALESIM_PYTHON = "/work/scalesim-venv/bin/python"
ARRAYS = (32, 128, 256)
DATAFLOWS = ("ws", "os", "is")

# (label, M, N, K): ofmap M x N = ifmap M x K . filter K x N. Model dims from the HF configs:
# GPT-2 small d=768 ff=3072, medium d=1024 ff=4096, XL d=1600 ff=6400, head dim 64; OPT-1.3B
# d=2048 ff=8192; TinyLlama-1.1B d=2048 ff=5632, 4 KV heads x 64 (GQA). Prefill M = tokens,
# decode M = batch (1..8); attention GEMMs are per head (score: Q.K^T, context: P.V).
SHAPES = [
    ("gpt2-s qkv prefill128", 128, 2304, 768),
    ("gpt2-s attn_out prefill128", 128, 768, 768),
    ("gpt2-s fc1 prefill128", 128, 3072, 768),
    ("gpt2-s fc2 prefill128", 128, 768, 3072),
    ("gpt2-s score prefill128", 128, 128, 64),
    ("gpt2-s context prefill128", 128, 64, 128),
    ("gpt2-s qkv decode b1", 1, 2304, 768),
    ("gpt2-s score decode ctx512", 1, 512, 64),
    ("gpt2-s context decode ctx512", 1, 64, 512),
    ("gpt2-m qkv prefill512", 512, 3072, 1024),
    ("gpt2-m fc1 decode b4", 4, 4096, 1024),
    ("gpt2-m score prefill512", 512, 512, 64),
    ("gpt2-xl attn_out decode b8", 8, 1600, 1600),
    ("gpt2-xl fc2 decode b1", 1, 1600, 6400),
    ("gpt2-xl context prefill512", 512, 64, 512),
    ("opt-1.3b qkv decode b1", 1, 6144, 2048),
    ("opt-1.3b fc1 prefill128", 128, 8192, 2048),
    ("opt-1.3b out_proj decode b8", 8, 2048, 2048),
    ("tinyllama q_proj decode b1", 1, 2048, 2048),
    ("tinyllama kv_proj prefill128", 128, 256, 2048),
    ("tinyllama gate_up decode b2", 2, 5632, 2048),
    ("tinyllama down decode b1", 1, 2048, 5632),
    ("tinyllama score decode ctx1024", 1, 1024, 64),
]

# Runs inside SCALE-Sim's interpreter: reads a JSON job list on stdin, prints one
# "RESULT {json}" line per job with SCALE-Sim's "Total Cycles" and its wall time.
_DRIVER = r"""
import json, sys, tempfile, time, os, contextlib, io
from scalesim.scale_sim import scalesim
CFG = '''[general]
run_name = r
[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 4096
FilterSramSzkB: 4096
OfmapSramSzkB: 4096
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10
Dataflow: {df}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32
[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2
[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40
[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
'''
for job in json.load(sys.stdin):
    with tempfile.TemporaryDirectory() as d:
        open(d + '/c.cfg', 'w').write(CFG.format(**job))
        open(d + '/t.csv', 'w').write('Layer, M, N, K,\nl0, {m}, {n}, {k},\n'.format(**job))
        open(d + '/l.csv', 'w').write('Layer name,\n')
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            s = scalesim(save_disk_space=True, verbose=False, config=d + '/c.cfg',
                         topology=d + '/t.csv', layout=d + '/l.csv', input_type_gemm=True)
            s.run_scale(top_path=d + '/out')
        wall = time.perf_counter() - t0
        row = open(d + '/out/r/COMPUTE_REPORT.csv').read().splitlines()[1].split(',')
        job.update(scalesim_cycles=int(row[2]), scalesim_stalls=int(row[3]), scalesim_wall_s=wall)
    print('RESULT ' + json.dumps(job), flush=True)
"""


def _llmsim_case(m: int, n: int, k: int, size: int, df: str) -> tuple[int, int, float]:
    """Device compute cycles, total cycles and the mean wall time of one fresh device costing, s."""
    spec = load_hardware(PRESET, [(["array_rows"], size), (["array_cols"], size), (["dataflow"], df)]
                         + [(["onchip", str(i), "capacity_bytes"], BUFFER_BYTES) for i in range(3)])
    op = single_op("matmul", [m, k, n], DType.fp16)
    cost = build_device(spec).cost(op)  # JIT and DRAM-stream warm-up are not part of the per-call time
    reps = 10
    t0 = time.perf_counter()
    for _ in range(reps):
        cost = build_device(spec).cost(op)  # a fresh device: no cost-cache hit
    if cost.stats["chunks"] != 1:
        sys.exit(f"{m}x{n}x{k} on {size}x{size} {df}: chunked ({cost.stats['chunks']:g}); raise BUFFER_BYTES")
    return int(cost.compute_cycles), int(cost.cycles), (time.perf_counter() - t0) / reps


def _run_scalesim(python: str, jobs: list[dict]) -> dict[tuple, dict]:
    """Run SCALE-Sim on ``jobs`` in its own interpreter; results keyed by (label, size, df)."""
    if not jobs:
        return {}
    proc = subprocess.run(
        [python, "-c", _DRIVER], check=False, input=json.dumps(jobs), capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"SCALE-Sim failed ({python}):\n{proc.stderr[-2000:]}")
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            j = json.loads(line[7:])
            out[(j["label"], j["rows"], j["df"])] = j
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the raw results here")
    ap.add_argument("--scalesim-budget-s", type=float, default=150.0,
                    help="estimated SCALE-Sim seconds to spend, cheapest cases first")
    args = ap.parse_args()
    print(f"llmsim: NPU device from preset {PRESET} with array_rows/array_cols/dataflow overrides")

    cases = []
    for label, m, n, k in SHAPES:
        for size in ARRAYS:
            for df in DATAFLOWS:
                cycles, total, wall = _llmsim_case(m, n, k, size, df)
                cases.append({"label": label, "m": m, "n": n, "k": k, "rows": size, "cols": size,
                              "df": df, "llmsim_cycles": cycles, "llmsim_total_cycles": total,
                              "llmsim_wall_s": wall,
                              "est_scalesim_s": 0.3 + cycles * 2 * size / 1e6})

    python = os.environ.get("SCALESIM_PYTHON", DEFAULT_SCALESIM_PYTHON)
    jobs, spent = [], 0.0
    if not Path(python).exists():
        print(f"SCALE-Sim skipped: no interpreter at {python} (set SCALESIM_PYTHON)")
    elif subprocess.run([python, "-c", "import scalesim"], check=False, capture_output=True).returncode:
        print(f"SCALE-Sim skipped: `import scalesim` fails under {python}")
    else:
        for c in sorted(cases, key=lambda c: c["est_scalesim_s"]):
            if spent + c["est_scalesim_s"] > args.scalesim_budget_s:
                break
            spent += c["est_scalesim_s"]
            jobs.append({key: c[key] for key in ("label", "m", "n", "k", "rows", "cols", "df")})
    t0 = time.perf_counter()
    results = _run_scalesim(python, jobs)
    scalesim_total_s = time.perf_counter() - t0

    hdr = (f"{'shape (M x N x K)':<48}{'array':>8}{'df':>4}{'llmsim cyc':>12}{'SCALE-Sim':>12}"
           f"{'err %':>8}{'llmsim s':>10}{'SCALE-Sim s':>12}{'+DMA cyc':>12}")
    print(hdr)
    print("-" * len(hdr))
    errors = []
    for c in cases:
        r = results.get((c["label"], c["rows"], c["df"]))
        shape = f"{c['label']} ({c['m']}x{c['n']}x{c['k']})"
        arr = f"{c['rows']}x{c['cols']}"
        if r is None:
            ss = err = ss_wall = "skipped"
        else:
            c.update(scalesim_cycles=r["scalesim_cycles"], scalesim_wall_s=r["scalesim_wall_s"])
            e = 100.0 * (c["llmsim_cycles"] - r["scalesim_cycles"]) / r["scalesim_cycles"]
            c["error_pct"] = e
            errors.append(abs(e))
            ss, err, ss_wall = r["scalesim_cycles"], f"{e:.4f}", f"{r['scalesim_wall_s']:.2f}"
        print(f"{shape:<48}{arr:>8}{c['df']:>4}{c['llmsim_cycles']:>12}{ss:>12}{err:>8}"
              f"{c['llmsim_wall_s'] * 1e6:>8.1f}us{ss_wall:>12}{c['llmsim_total_cycles']:>12}")
    if errors:
        print(f"\n{len(errors)} of {len(cases)} cases compared with SCALE-Sim in "
              f"{scalesim_total_s:.0f} s; max |error| {max(errors):.4f} %, "
              f"mean {sum(errors) / len(errors):.4f} %")
    if args.json:
        args.json.write_text(json.dumps({"cases": cases, "scalesim_python": python,
                                         "scalesim_total_s": scalesim_total_s}, indent=1))


if __name__ == "__main__":
    main()
