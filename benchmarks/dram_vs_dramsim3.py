"""llmsim's DRAM controller side by side with DRAMsim3 on the same request streams.

Usage: PYTHONPATH=. python benchmarks/dram_vs_dramsim3.py [--src DIR] [--n REQUESTS] [--only hbm2,ddr4] [--repeat K]

DRAMsim3 (github.com/umd-memsys/DRAMsim3) is not part of llmsim: point ``--src`` or the
``DRAMSIM3_SRC`` environment variable at a checkout of its source. It is built there with cmake
(``build/``, its bundled dependencies only) and driven by ``benchmarks/dramsim3_driver.cc``, a
saturating driver that hands every channel's controller its requests as fast as it accepts them
(DRAMsim3's own trace front end accepts one request per cycle, a quarter of HBM2's peak, and never
drains the last <= 8 buffered writes). Skipped, with a message, when the source, cmake or a C++
compiler is missing.

Both tools get the same burst-address streams (HBM2 and DDR4, the DRAMsim3 configurations the
llmsim presets cite): sequential read, sequential write, uniform random reads over 1 GiB, a 4 KiB
stride, and sequential addresses read, read, written (2:1). Printed per stream: bandwidth (both at
llmsim's tCK, so cycles are compared), row-hit rate, cycles, energy per bit (llmsim without its
I/O term, which DRAMsim3 lacks, and with it), and each tool's CPU and wall seconds for the
simulation alone (llmsim warm: after one untimed run; DRAMsim3's clock loop, not its config
parsing), each the least of ``--repeat`` runs (default 1), the two tools' runs alternating so that
both sample the same stretch of the machine's time. CPU seconds are the speed comparison (wall
seconds swing with the machine's load; on a shared machine the least of several runs is the steadier
figure); the ratio is printed for the least runs and for the medians, because a 0.1 s llmsim run can fall
inside or outside a slow spell of a shared machine while a 1-7 s DRAMsim3 run averages over it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from llmsim.config.loader import load_yaml
from llmsim.config.memory import DramSpec
from llmsim.memory.dram import DramModel, Requests, _hash31

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"hbm2": "HBM2_8Gb_x128.ini", "ddr4": "DDR4_8Gb_x8_3200.ini"}
STREAMS = ("seq_read", "seq_write", "random_1GiB", "stride_4KiB", "mix_2r1w")


def build(src: Path) -> Path | None:
    """Build libdramsim3 and the driver under ``src/build``; the driver's path, or None (message printed)."""
    if not (src / "src" / "controller.h").is_file():
        print(f"SKIP: no DRAMsim3 source at {src} (set DRAMSIM3_SRC or --src)")
        return None
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not cxx or not shutil.which("cmake"):
        print("SKIP: DRAMsim3 needs cmake and a C++ compiler")
        return None
    out = src / "build"
    out.mkdir(exist_ok=True)
    lib = src / "libdramsim3.so"
    if not lib.exists():
        for cmd in (["cmake", "..", "-DCMAKE_BUILD_TYPE=Release"], ["make", "-j2", "dramsim3"]):
            subprocess.run(cmd, cwd=out, check=True, capture_output=True)
    drv = out / "llmsim_driver"
    here = ROOT / "benchmarks" / "dramsim3_driver.cc"
    if not drv.exists() or drv.stat().st_mtime < here.stat().st_mtime:
        subprocess.run([cxx, "-O3", "-std=c++14", f"-I{src}/src", f"-I{src}/ext/headers", f"-I{src}/ext/fmt/include",
                        "-DFMT_HEADER_ONLY=1", str(here), "-o", str(drv), f"-L{src}", "-ldramsim3",
                        f"-Wl,-rpath,{src}"], check=True, capture_output=True)
    return drv


def stream(name: str, n: int, spec: DramSpec) -> tuple[np.ndarray, np.ndarray]:
    """(burst indices, is-write) of one named stream of ``n`` requests."""
    i = np.arange(n, dtype=np.int64)
    write = np.zeros(n, dtype=np.int64)
    if name == "seq_read":
        idx = i
    elif name == "seq_write":
        idx, write = i, np.ones(n, dtype=np.int64)
    elif name == "random_1GiB":
        idx = (_hash31(i, 0, 1) * 2147483648 + _hash31(i, 0, 2)) % ((1 << 30) // spec.burst_bytes)
    elif name == "stride_4KiB":
        idx = i * (4096 // spec.burst_bytes) % (spec.capacity_bytes // spec.burst_bytes)
    else:
        idx, write = i, (i % 3 == 2).astype(np.int64)
    return idx, write


def llmsim_prepare(spec: DramSpec, idx: np.ndarray, write: np.ndarray) -> tuple[DramModel, Requests]:
    """The model and requests of one stream, run once untimed (the Numba cache loaded)."""
    m = DramModel(spec)
    r = m.map_bursts(idx)
    req = Requests(write, r.channel, r.bank_group, r.bank, r.row, r.rank)
    m.run(req)
    return m, req


def llmsim_run(m: DramModel, req: Requests) -> tuple[dict, float]:
    """Results of one timed llmsim run (wall seconds in it) and its CPU seconds."""
    t, c = time.perf_counter(), time.process_time()
    st = m.run(req)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    bits = st.bytes * 8
    e = st.energy_j
    return {"cycles": st.cycles, "hit": st.row_hit_rate, "bw": st.bytes / st.seconds,
            "pj_bit": (st.energy_total_j - e["io"]) * 1e12 / bits, "pj_bit_io": st.energy_total_j * 1e12 / bits,
            "wall": wall}, cpu


def dramsim3_run(drv: Path, ini: Path, spec: DramSpec, f: Path) -> tuple[dict, float]:
    """Results of one DRAMsim3 run of the stream file ``f`` (wall seconds in it) and its CPU seconds."""
    res = subprocess.run([str(drv), str(ini), str(f)], capture_output=True, text=True, check=True, cwd=f.parent)
    d = json.loads(res.stdout.strip().splitlines()[-1])
    n_rw = d["num_read_cmds"] + d["num_write_cmds"]
    nbytes = n_rw * spec.burst_bytes
    return {"cycles": d["cycles"], "hit": (d["num_read_row_hits"] + d["num_write_row_hits"]) / n_rw,
            "bw": nbytes / (d["cycles"] * spec.tck_s), "pj_bit": sum(d["energy_pj"].values()) / (nbytes * 8),
            "wall": d["wall_s"]}, d["cpu_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=os.environ.get("DRAMSIM3_SRC", str(ROOT.parent / "dramsim3-src")))
    ap.add_argument("--n", type=int, default=524_288, help="requests per stream")
    ap.add_argument("--only", default="hbm2,ddr4")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each tool per stream; the least CPU seconds count")
    a = ap.parse_args()
    if a.repeat < 1:
        ap.error(f"--repeat must be >= 1, not {a.repeat}")
    src = Path(a.src)
    drv = build(src)
    if drv is None:
        return 0
    print(f"{a.n} requests per stream; bandwidth at llmsim's tCK; energy pJ/bit (llmsim without I/O | with I/O); "
          f"seconds: least of {a.repeat} run(s); x: DRAMsim3's CPU s / llmsim's, of the least runs and of the medians "
          "(a short run's least dodges a slow spell of a shared machine, a long run averages over it)")
    print(f"{'memory':6} {'stream':12} {'GB/s llm':>9} {'dsim3':>7} {'d%':>6} {'hit llm':>8} {'dsim3':>6} "
          f"{'cycles llm':>11} {'dsim3':>9} {'pJ/b llm':>9} {'+io':>5} {'dsim3':>6} {'cpu llm':>8} {'dsim3':>6} "
          f"{'x':>4} {'x med':>5} {'wall llm':>8} {'dsim3':>6}")
    worst = {"bw": 0.0, "hit": 0.0, "speed": float("inf"), "speed_med": float("inf")}
    for mem in a.only.split(","):
        spec = DramSpec.model_validate(load_yaml(ROOT / "hw_configs" / "memory" / f"{mem}.yaml", "hw_configs"))
        for name in STREAMS:
            idx, write = stream(name, a.n, spec)
            m, req = llmsim_prepare(spec, idx, write)
            c_ours, c_ref, w_ours, w_ref = [], [], [], []
            with tempfile.TemporaryDirectory() as tmp:
                f = Path(tmp) / "stream.bin"
                np.stack([idx, write], axis=1).astype(np.int64).tofile(f)
                for _ in range(a.repeat):  # alternately, so both tools' runs sample the same spells of the machine
                    ours, c = llmsim_run(m, req)
                    c_ours.append(c)
                    w_ours.append(ours["wall"])
                    ref, c = dramsim3_run(drv, src / "configs" / CONFIGS[mem], spec, f)
                    c_ref.append(c)
                    w_ref.append(ref["wall"])
            ours["wall"], ref["wall"] = min(w_ours), min(w_ref)
            w_ours, w_ref = min(c_ours), min(c_ref)
            x_med = statistics.median(c_ref) / statistics.median(c_ours)
            d_bw = 100 * (ours["bw"] / ref["bw"] - 1)
            worst["bw"] = max(worst["bw"], abs(d_bw))
            worst["hit"] = max(worst["hit"], 100 * abs(ours["hit"] - ref["hit"]))
            worst["speed"] = min(worst["speed"], w_ref / w_ours)
            worst["speed_med"] = min(worst["speed_med"], x_med)
            print(f"{mem:6} {name:12} {ours['bw'] / 1e9:9.2f} {ref['bw'] / 1e9:7.2f} {d_bw:+6.1f} {ours['hit']:8.3f} "
                  f"{ref['hit']:6.3f} {ours['cycles']:11d} {ref['cycles']:9d} {ours['pj_bit']:9.2f} "
                  f"{ours['pj_bit_io']:5.1f} {ref['pj_bit']:6.2f} {w_ours:8.3f} {w_ref:6.2f} {w_ref / w_ours:4.0f} "
                  f"{x_med:5.0f} {ours['wall']:8.3f} {ref['wall']:6.2f}")
            sys.stdout.flush()
    print(f"worst: bandwidth {worst['bw']:.1f}%, row-hit rate {worst['hit']:.1f} points, "
          f"llmsim >= {worst['speed']:.0f}x DRAMsim3's speed (CPU seconds, least runs; {worst['speed_med']:.0f}x "
          "of the medians)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
