"""``llmsim calibrate``: measure the CPU this runs on and write a ``kind: cpu`` preset.

Measured (PyTorch when installed, numpy otherwise). Bandwidths, cache rates and dispatch are the best of
several repeats, as STREAM reports bandwidth (ceilings: on a machine shared with other work the best
repeat is the closest to the uncontended value). The rates a step's time follows directly — GEMM,
GEMV and packing — are medians instead: a step runs at the typical rate, and the validation scores
median steps (on a VM the best repeat ran 7–20% faster than the median):

* GEMM throughput per dtype (square matmuls at a few sizes, the best size) → ``flops_per_cycle``
  = FLOP/s ÷ (threads × clock): the model treats a large GEMM's rate as the core's peak;
* STREAM copy/triad with arrays ≥ 4 × the last-level cache, all threads and one thread →
  ``memory_efficiency`` and ``core_memory_bandwidth_bytes_per_s``;
* read bandwidth of arrays half the size of L2 (dispatch time subtracted); for the shared last level, a
  sweep of working sets up to the OS figure gives the capacity this process can use and its bandwidth
  (:mod:`llmsim.calibrate.llc`);
* per-op dispatch: a 1-element add in a loop → ``framework.eager_dispatch_s``;
* small-batch GEMMs, called as ``nn.Linear`` calls them (``x · wᵀ``, weight stored [out, in]): 1-row
  products over a chain of distinct 8 MiB weights, ≥ 2 × the LLC in all (the access pattern of a decode
  step) → ``gemv_weight_bytes_per_s``; the same bytes as long (8192) and short (512) rows → the
  library's cost per weight row, ``weight_row_s``; 2- to 16-row products over the same chain minus
  their FLOPs at the GEMM rate → ``pack_weight_bytes_per_s_by_rows`` (BLAS packs the weight before a
  multi-row GEMM; that pass streams the weight at its own rate, and the library's path depends on the
  row count); both also on one weight ≥ 4 × the LLC, recorded in ``source:`` only. The chains are timed
  in rounds that run each once in turn (medians per chain): the per-row cost is a difference of two of
  them and the byte rates subtract it, so on a shared machine they must sample the same spells;
* pointwise kernels as the reference model calls them (GELU-tanh, ReLU, SiLU·mul, GELU·mul, add, LayerNorm,
  RMSNorm) on 64 × 1024 fp32, one thread, dispatch subtracted → ``pointwise_cycles_per_element``;
* fork/join: the same add above the parallel grain with all threads vs one → ``parallel_region_s``.

Not measurable from user space and therefore stated as estimates or left out in ``source:``: the
DRAM organisation (the bundled DDR4 timing preset with as many channels as the measured
bandwidth needs), L1 bandwidth (2 vector loads per cycle), energy (no RAPL access assumed).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from math import ceil
from typing import Any

import numpy as np

from llmsim.calibrate.llc import llc_source, measure_llc
from llmsim.calibrate.machine import (
    REGISTER_TILE_BY_ISA,
    VECTOR_BYTES_BY_ISA,
    CalibrationError,
    MachineFacts,
    machine_facts,
)
from llmsim.memory.stream import sequential_bandwidth

Progress = Callable[[str], None]

# The bundled DRAM preset a calibrated CPU's memory extends (channel and rank counts adjusted).
DRAM_PRESET = "memory/ddr4.yaml"
# Wall-clock budget (s) of the timed repeats of one GEMM size; bounds the run on slow dtypes.
GEMM_BUDGET_S = 2.0
# Row counts at which the packed (multi-row) GEMM path is timed.
PACK_ROWS = (2, 4, 8, 16)
# (Beyond 16 rows the FLOPs dominate the time and the residual is noise: on a 2-vCPU VM the 32- to 128-row
# figures moved 4-10x between runs. Packing time per byte is flat from 8 rows on; the model holds the last.)


def _torch():
    try:
        import torch

        return torch
    except ImportError:
        return None


class _Backend:
    """Tensor library used to time ops: ``torch`` (CPU, its thread pool) or ``numpy``."""

    def __init__(self, prefer_torch: bool = True):
        self.torch = _torch() if prefer_torch else None
        self.name = f"torch {self.torch.__version__}" if self.torch else f"numpy {np.__version__}"
        self.threads = self.torch.get_num_threads() if self.torch else 1

    def dtypes(self) -> list[str]:
        return ["fp32", "bf16", "fp16"] if self.torch else ["fp32"]

    def empty(self, n: int, dtype: str = "fp32", shape: tuple[int, ...] | None = None):
        shape = shape or (n,)
        if self.torch:
            dt = {"fp32": self.torch.float32, "bf16": self.torch.bfloat16, "fp16": self.torch.float16}[dtype]
            return self.torch.rand(shape).to(dt)
        return np.random.default_rng(0).random(shape, dtype=np.float32)

    def set_threads(self, n: int) -> None:
        if self.torch:
            self.torch.set_num_threads(n)

    def matmul(self, a, b, out) -> None:
        if self.torch:
            self.torch.matmul(a, b, out=out)
        else:
            np.matmul(a, b, out=out)

    def linear(self, x, w) -> None:
        """``x · wᵀ`` with ``w`` stored [out, in], as ``nn.Linear`` (and so every PyTorch model) calls the BLAS:
        a transposed-weight GEMM/GEMV, a different library path from ``x · w``."""
        if self.torch:
            self.torch.nn.functional.linear(x, w)
        else:
            np.matmul(x, w.T)

    def copy(self, dst, src) -> None:
        if self.torch:
            dst.copy_(src)
        else:
            np.copyto(dst, src)

    def triad(self, a, b, c) -> None:
        if self.torch:
            self.torch.add(b, c, alpha=3.0, out=a)
        else:
            np.multiply(c, 3.0, out=a)
            np.add(a, b, out=a)

    def add(self, out, x, y) -> None:
        if self.torch:
            self.torch.add(x, y, out=out)
        else:
            np.add(x, y, out=out)

    def sum(self, x) -> None:
        x.sum()


def _time(fn: Callable[[], None], reps: int, inner: int = 1) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter() - t0) / inner)
    return out


def _median_rounds(fns: dict[str, Callable[[], None]], reps: int) -> dict[str, float]:
    """Median seconds of each function, timed in ``reps`` rounds that run each once in turn: timings that
    are subtracted from each other (or compared) then sample the same stretch of the machine's time, so a
    slow spell of a shared machine moves all of them in one round, not one of them in all rounds."""
    for fn in fns.values():
        fn()  # warm-up
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in out.items()}


def measure(quick: bool = False, progress: Progress | None = None, prefer_torch: bool = True) -> dict[str, Any]:
    """Run every benchmark; returns the raw measurements (SI units) and the machine facts."""
    say = progress or (lambda _s: None)
    facts = machine_facts()
    be = _Backend(prefer_torch)
    reps = 3 if quick else 7
    llc = facts.caches[-1].size_bytes
    res: dict[str, Any] = {"facts": facts, "backend": be.name, "threads": be.threads, "quick": quick,
                           "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}

    say("GEMM throughput")
    sizes = (128, 256) if quick else (512, 1024, 2048)
    gemm: dict[str, float] = {}
    for dt in be.dtypes():
        best = 0.0
        for n in sizes:
            a, b, c = be.empty(0, dt, (n, n)), be.empty(0, dt, (n, n)), be.empty(0, dt, (n, n))
            t0 = time.perf_counter()
            be.matmul(a, b, c)
            once = time.perf_counter() - t0
            # a slow path (e.g. fp16 without hardware support) gets fewer repeats and no larger sizes
            # the median repeat: the rate a step's GEMMs typically see (validation scores median steps)
            t = statistics.median(_time(lambda a=a, b=b, c=c: be.matmul(a, b, c),
                                        max(1, min(reps, int(GEMM_BUDGET_S / once)))))
            best = max(best, 2.0 * n**3 / t)
            if once > GEMM_BUDGET_S / 4:
                break
        gemm[dt] = best
        say(f"GEMM {dt}: {best / 1e9:.1f} GFLOP/s")
    res["gemm_flops_per_s"] = gemm

    say("memory bandwidth (STREAM copy/triad)")
    n = max(4 * llc, 1 << 24 if quick else 1 << 27) // 4
    arrays = [be.empty(n) for _ in range(3)]
    copy = 8.0 * n / min(_time(lambda: be.copy(arrays[0], arrays[1]), reps))
    triad = 12.0 * n / min(_time(lambda: be.triad(*arrays), reps))
    be.set_threads(1)
    one = 12.0 * n / min(_time(lambda: be.triad(*arrays), reps))
    be.set_threads(be.threads)
    res.update(copy_bytes_per_s=copy, triad_bytes_per_s=triad, core_triad_bytes_per_s=one)
    far, arrays_n = arrays[0], n  # kept: the main-memory read rate of the last-level-cache sweep
    arrays.clear()
    say(f"triad {triad / 1e9:.1f} GB/s, one core {one / 1e9:.1f} GB/s")

    say("per-op dispatch")
    x, y, z = be.empty(1), be.empty(1), be.empty(1)
    many = 10 if quick else 40  # repeats of short timings: the best of many dodges other processes
    dispatch = min(_time(lambda: be.add(z, x, y), many, 50))
    res["dispatch_s"] = dispatch
    say(f"dispatch {dispatch * 1e6:.2f} us")
    if be.torch:  # each op kind's host time as the PyTorch reference issues it (one thread: the host side)
        from llmsim.calibrate.framework import eager_op_seconds

        be.set_threads(1)
        ops, raw = eager_op_seconds("cpu", repeats=3 if quick else 7, loops=50 if quick else 300)
        be.set_threads(be.threads)
        res["eager_op_s"], res["eager_layer_s"] = ops, raw["layer"]
        say(f"eager op host time: a layer {raw['layer'] * 1e6:.0f} us, attention {ops['attention'] * 1e6:.1f} us")

    say("cache read bandwidth")

    def read_rate(n_bytes: int, reps: int = many) -> float:
        m = max(1024, n_bytes // 4)
        arr = be.empty(m)
        t = min(_time(lambda: be.sum(arr), reps))
        return 4.0 * m / max(t - dispatch, t * 0.05)

    be.set_threads(1)
    memory_read = 4.0 * arrays_n / min(_time(lambda: be.sum(far), reps))  # main memory, one thread
    be.set_threads(be.threads)
    for lvl in facts.caches[1:-1] if len(facts.caches) > 2 else facts.caches[1:]:
        floored: list[str] = []
        res[f"l{lvl.level}_read_bytes_per_s"] = _cache_rate(
            lambda r, lvl=lvl: read_rate(lvl.size_bytes // 2, r), f"l{lvl.level}", memory_read, many,
            strict=not quick, say=lambda msg, floored=floored: (say(msg), floored.append(msg)))
        if floored:  # said in the preset's source: the value is a floor, not a measurement
            res.setdefault("onchip_notes", []).append(floored[0].removeprefix("WARNING: "))
    if len(facts.caches) > 2:  # the shared last level: the capacity this process can use, swept on one thread
        last, inner = facts.caches[-1], facts.caches[-2]
        be.set_threads(1)
        sweep = measure_llc(lambda b: read_rate(b, reps), 2 * inner.size_bytes // max(1, inner.sharers),
                            last.size_bytes, memory_read)
        be.set_threads(be.threads)
        at = sweep["bandwidth_at_bytes"]
        bw = max(memory_read, read_rate(at) if at else 4.0 * arrays_n / min(_time(lambda: be.sum(far), reps)))
        res[f"l{last.level}_read_bytes_per_s"] = bw
        res.update(llc_capacity_bytes=sweep["capacity_bytes"], llc_sweep=sweep["sweep"],
                   memory_read_bytes_per_s=memory_read)
        say(f"last-level cache: {last.size_bytes / 2**20:.0f} MiB reported, {sweep['capacity_bytes'] / 2**20:.1f} MiB "
            f"usable, read at {bw / 1e9:.1f} GB/s (main memory {memory_read / 1e9:.1f} GB/s, one thread)")
    far = None  # free the main-memory array

    say("weight streaming of small-batch GEMMs (GEMV, packed GEMM), as nn.Linear calls them")
    # x · wᵀ over weights stored [out, in]: the path every PyTorch linear layer takes (x · w with w [in, out] is
    # another BLAS kernel, measured up to 25% faster for one row). Medians, not the best repeat: a step streams
    # its weights at the typical rate, and the validation scores median steps.
    side = 1024 if quick else max(2048, int((4 * llc / 4) ** 0.5))  # fp32 weight >= 4 x LLC
    w = be.empty(0, "fp32", (side, side))
    w_bytes = 4.0 * side * side
    rates = {}
    for rows in (1, 8):
        a = be.empty(0, "fp32", (rows, side))
        rates[rows] = statistics.median(_time(lambda a=a: be.linear(a, w), reps))
    # a decode step streams a chain of distinct weights, each far smaller than the last-level cache and
    # together larger: every GEMV of the chain starts cold (thread wake-up, prefetch ramp), which one
    # large weight hides. Time the chain, as the step runs it.
    # weights the size of a GPT-2-class layer's (8 MiB fp32), together >= 2 x the LLC (at most 64 of them)
    side_w = 512 if quick else 1448
    n_w = 4 if quick else min(64, max(4, ceil(2 * llc / (4 * side_w**2))))
    chain = [be.empty(0, "fp32", (side_w, side_w)) for _ in range(n_w)]

    def run_chain(a, weights=chain) -> None:
        for wi in weights:
            be.linear(a, wi)

    # the library's cost per weight row (one output column): the same bytes as rows of 8192 and of 512
    # elements; the time grows with the row count (~70 ns a row, 2 threads, on an EPYC VM with MKL)
    elems = 1 << (18 if quick else 21)  # 8 MiB of fp32 (1 MiB quick)
    k_long, k_short = (2048, 128) if quick else (8192, 512)
    n_long, n_short = elems // k_long, elems // k_short
    # every chain below is timed in the same rounds (one run of each in turn, medians): the per-row cost is
    # a difference of two of them and the byte rates subtract it, so they must see the same machine
    chains: dict[str, Callable[[], None]] = {}
    for k, n_rows in ((k_long, n_long), (k_short, n_short)):
        shaped = [be.empty(0, "fp32", (n_rows, k)) for _ in range(n_w)]
        x = be.empty(0, "fp32", (1, k))
        chains[f"k{k}"] = lambda x=x, shaped=shaped: run_chain(x, shaped)
    one_row = be.empty(0, "fp32", (1, side_w))
    chains["gemv"] = lambda: run_chain(one_row)
    for rows in PACK_ROWS:
        a = be.empty(0, "fp32", (rows, side_w))
        chains[f"pack{rows}"] = lambda a=a: run_chain(a)
    t_chain = _median_rounds(chains, reps)
    chains.clear()  # free the shaped weights
    row_s = max(0.0, (t_chain[f"k{k_short}"] - t_chain[f"k{k_long}"]) / n_w / (n_short - n_long))
    res["weight_row_s"] = row_s
    res["weight_row_shapes"] = f"{n_long} x {k_long} and {n_short} x {k_short}"

    chain_bytes = 4.0 * side_w * side_w * len(chain)
    rows_s = row_s * side_w * len(chain)  # the chain's per-row time, taken out of the byte rates
    t1 = t_chain["gemv"]
    res["gemv_weight_bytes_per_s"] = chain_bytes / max(t1 - rows_s, 0.05 * t1)
    res["gemv_one_weight_bytes_per_s"] = w_bytes / rates[1]
    res["gemv_chain_side"] = side_w
    # packing: an M-row time minus its FLOPs at the GEMM rate and its per-row time, on the same chain (a
    # prefill or batched decode step packs the same sequence of distinct weights). The library takes other
    # paths for few rows (on MKL a 2- or 4-row product costs more than an 8-row one), so the rate is measured
    # per row count; the model interpolates between them and holds the last beyond. The one-weight figure goes to
    # source:.
    pack = {}
    for rows in PACK_ROWS:
        t = t_chain[f"pack{rows}"]
        compute = 2.0 * rows * chain_bytes / 4.0 / gemm["fp32"]
        pack[rows] = chain_bytes / max(t - compute - rows_s, 0.05 * t)
    res["pack_weight_bytes_per_s_by_rows"] = pack
    res["pack_weight_bytes_per_s"] = pack[8]
    compute_8 = 2.0 * 8 * side * side / gemm["fp32"]
    res["pack_one_weight_bytes_per_s"] = w_bytes / max(rates[8] - compute_8, 0.05 * rates[8])
    say(f"GEMV {res['gemv_weight_bytes_per_s'] / 1e9:.1f} GB/s + {row_s * 1e9:.0f} ns a weight row over a chain "
        "of weights "
        f"({res['gemv_one_weight_bytes_per_s'] / 1e9:.1f} GB/s on one large weight), pack "
        + ", ".join(f"{r} rows {v / 1e9:.1f}" for r, v in pack.items())
        + f" GB/s ({res['pack_one_weight_bytes_per_s'] / 1e9:.1f} on one weight, 8 rows)")

    if be.torch:
        say("pointwise kernels (one thread, in cache)")
        res["pointwise_s_per_element"] = _pointwise(be, dispatch, many)

    res["parallel_region_s"] = 0.0
    if be.torch and be.threads > 1:
        say("parallel fork/join")
        m = 2 * 32768 * be.threads
        x, y, z = be.empty(m), be.empty(m), be.empty(m)
        t_multi = min(_time(lambda: be.add(z, x, y), many))
        be.set_threads(1)
        t_single = min(_time(lambda: be.add(z, x, y), many))
        be.set_threads(be.threads)
        res["parallel_region_s"] = max(0.0, t_multi - dispatch - (t_single - dispatch) / be.threads)
    return res


def _load_note(load: float | None) -> str:
    """The 1-minute load average at the start of the calibration, for the preset's ``source:``: a
    reader of a calibrated preset should know whether the machine was quiet."""
    return "" if load is None else f", load average {load:.2f} at start"


def _cache_rate(rate: Callable[[int], float], level: str, memory_read: float, reps: int, tries: int = 3,
                strict: bool = True, say: Progress | None = None) -> float:
    """A cache level's read rate, checked against physics: an on-chip level that reads slower than main
    memory (one thread) is a measurement disturbed by other processes (a multi-threaded reduction waits
    for a descheduled thread), not the hardware. Re-measured with more repeats; after ``tries`` a full
    calibration stops with the field named rather than writing a preset 1000x off. ``strict=False``
    (``--quick``, a smoke run) takes main memory's rate as the floor instead and says so."""
    got = 0.0
    for attempt in range(tries):
        got = rate(reps * (attempt + 1))
        if got >= memory_read:
            return got
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    msg = (f"{level} read bandwidth measured {got / 1e9:.3g} GB/s, below main memory's {memory_read / 1e9:.3g} GB/s "
           f"after {tries} tries: the machine is busy (load average {load:.1f} on {os.cpu_count()} CPUs)")
    if strict:
        raise CalibrationError(msg + "; calibrate on a quiet machine")
    if say:
        say(f"WARNING: {msg}; --quick takes main memory's rate for it")
    return memory_read


def _pointwise(be: _Backend, dispatch: float, reps: int) -> dict[str, float]:
    """Seconds per element of the framework's pointwise kernels as llmsim's reference model calls them
    (one thread, 64 x 1024 fp32 in cache, one dispatch subtracted)."""
    torch, F = be.torch, be.torch.nn.functional
    rows, width = 64, 1024
    x, y = torch.rand(rows, width), torch.rand(rows, width)
    w, b = torch.ones(width), torch.zeros(width)
    kernels = {
        "gelu": lambda: F.gelu(x, approximate="tanh"),
        "relu": lambda: F.relu(x),
        "silu_mul": lambda: F.silu(x) * y,
        "gelu_mul": lambda: F.gelu(x, approximate="tanh") * y,
        "add": lambda: x + y,
        "layernorm": lambda: F.layer_norm(x, (width,), w, b, 1e-5),
        "rmsnorm": lambda: F.rms_norm(x, (width,), w, 1e-5),
    }
    be.set_threads(1)
    try:
        return {k: max(0.0, min(_time(fn, reps)) - dispatch) / (rows * width) for k, fn in kernels.items()}
    finally:
        be.set_threads(be.threads)


def _dram_base():
    """The bundled DRAM preset (one channel, one rank) as a spec and as its YAML dict."""
    from llmsim.config.loader import bundled_dir, load_yaml
    from llmsim.config.memory import DramSpec

    data = load_yaml(bundled_dir("hw_configs") / DRAM_PRESET, "hw_configs")
    one = dict(data, channels=1, ranks=1)
    return DramSpec.model_validate(one), data


def build_preset(res: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The ``kind: cpu`` preset (a plain dict, ready for YAML) from :func:`measure`'s result."""
    f: MachineFacts = res["facts"]
    threads = min(res["threads"], f.cores)
    fpc = {dt: round(r / (threads * f.clock_hz), 3) for dt, r in res["gemm_flops_per_s"].items() if r > 0}
    if "fp32" not in fpc:
        raise CalibrationError("GEMM benchmark gave no fp32 rate")
    dram, _ = _dram_base()
    rate1 = sequential_bandwidth(dram)  # one channel's simulated sequential rate (cycle-level DRAM model)
    channels = max(1, ceil(res["triad_bytes_per_s"] / rate1))
    ranks = max(1, ceil(f.memory_bytes / (channels * dram.capacity_bytes))) if f.memory_bytes else 1
    l1, rest = f.caches[0], f.caches[1:]
    vec = VECTOR_BYTES_BY_ISA[f.isa]
    onchip = [{"name": "l1", "capacity_bytes": l1.size_bytes // max(1, l1.sharers),
               "bandwidth_bytes_per_s": float(f"{2 * vec * f.clock_hz:.4g}")}]
    private = ["l1"]
    for c in rest:
        bw = res.get(f"l{c.level}_read_bytes_per_s", 0.0)
        shared = c.sharers >= f.cores and f.cores > 1
        cap = c.size_bytes if shared else c.size_bytes // c.sharers
        if c is f.caches[-1] and "llc_capacity_bytes" in res:
            cap = min(cap, res["llc_capacity_bytes"])
        entry = {"name": f"l{c.level}", "capacity_bytes": cap,
                 "bandwidth_bytes_per_s": float(f"{(bw if shared else bw / threads):.4g}")}
        onchip.append(entry)
        if not shared:
            private.append(entry["name"])
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host = socket.gethostname()
    gflops = ", ".join(f"{dt} {r / 1e9:.1f}" for dt, r in res["gemm_flops_per_s"].items())
    quick = " (--quick: small sizes, few repeats)" if res["quick"] else ""

    def gb(x: float) -> str:
        return f"{x / 1e9:.2f}"

    return {
        "name": name or f"calibrated-{host}",
        "kind": "cpu",
        "description": f"{f.model_name}, {f.cores} cores, {f.isa} (measured by llmsim calibrate)",
        "source": {
            "measured": f"llmsim calibrate on {host} ({f.model_name}, {platform.machine()}), {when}, with "
                        f"{res['backend']}, {threads} threads{quick}{_load_note(res.get('load_average'))}",
            "compute": f"cores = CPUs in this process's affinity set; clock {f.clock_hz / 1e9:.3f} GHz from "
                       f"{f.clock_how}; flops_per_cycle = best size's median square-matmul rate ({gflops} GFLOP/s) "
                       "/ (threads x clock): the achieved large-GEMM rate, used as the peak",
            "register_tile": f"BLIS sgemm micro-kernel for {f.isa} (not measured)",
            "memory": f"STREAM triad {gb(res['triad_bytes_per_s'])} GB/s (copy {gb(res['copy_bytes_per_s'])}), one "
                      f"thread {gb(res['core_triad_bytes_per_s'])} GB/s. The DRAM organisation is not visible from "
                      f"user space: bundled {dram.standard} preset ({DRAM_PRESET}) with {channels} channel(s), the "
                      f"fewest whose simulated sequential rate covers the measured bandwidth, {ranks} rank(s) to hold "
                      f"{f.memory_bytes / 1e9:.1f} GB; "
                      "memory_efficiency = triad / the cycle-level DRAM model's sequential rate",
            "onchip": "capacities from the OS (per core for private levels); L2 bandwidth = read (sum) of half "
                      "the level, dispatch subtracted, per core for private levels; L1 bandwidth NOT measured: "
                      f"2 x {vec} B vector loads per cycle x clock (estimate)"
                      + "".join(f"; NOT MEASURED: {n}" for n in res.get("onchip_notes", []))
                      + llc_source(res, f.caches[-1].size_bytes),
            "pointwise": "pointwise_cycles_per_element = (best-of-repeats time of the function on 64 x 1024 "
                         "fp32, one thread, minus one dispatch) x clock / elements, as the reference model calls it",
            "blas": "all as nn.Linear calls the BLAS (x . w^T, weight stored [out, in]), median of repeats, the "
                    "chains below timed in the same rounds (each once in turn); "
                    "weight_row_s = (time of 1-row products over a chain of 8 MiB weights shaped "
                    f"{res.get('weight_row_shapes', '?')}) difference / row-count difference: the library's cost "
                    "per weight row (output column), taken out of the rates below; "
                    "gemv_weight_bytes_per_s = fp32 weight bytes / (time of 1-row products over a chain of distinct "
                    f"{res.get('gemv_chain_side', '?')} x {res.get('gemv_chain_side', '?')} weights "
                    "(8 MiB each, >= 2 x the LLC in all, at most 64: a decode step's access pattern) minus its "
                    "rows' time; one large square weight streams at "
                    f"{gb(res.get('gemv_one_weight_bytes_per_s', 0.0))} GB/s); "
                    "pack_weight_bytes_per_s_by_rows = the same chain's bytes / (time of M-row "
                    "products over it minus their FLOPs at the measured GEMM rate and their rows' time), M = "
                    f"{', '.join(str(r) for r in PACK_ROWS)}: the library's packing of a DRAM-resident weight, which "
                    "precedes each multi-row GEMM (pack_weight_bytes_per_s: the 8-row figure; on one large weight: "
                    f"{gb(res.get('pack_one_weight_bytes_per_s', 0.0))} GB/s)",
            "framework": f"eager_dispatch_s = best-of-repeats 1-element add in a loop ({res['backend']}); "
                         "parallel_region_s = all-thread minus one-thread time of an add above the parallel grain"
                         + ("; eager_op_s = each op kind's block of the PyTorch reference on tiny tensors, one "
                            "thread, scaled to one whole layer issued back to back "
                            "(llmsim.calibrate.framework.eager_op_seconds)" if "eager_op_s" in res else ""),
            "power": "not measured (no RAPL access assumed): no energy_pj_per_flop / energy_pj_per_byte, static 0 W",
        },
        "memory": {"extends": DRAM_PRESET, "channels": channels, "ranks": ranks},
        "memory_efficiency": round(min(1.0, res["triad_bytes_per_s"] / (channels * rate1)), 4),
        "cores": {"count": f.cores, "clock_hz": float(f"{f.clock_hz:.6g}"), "flops_per_cycle": fpc},
        "threads": threads,
        "isa": f.isa,
        "onchip": onchip,
        "private_levels": private,
        "register_tile": list(REGISTER_TILE_BY_ISA[f.isa]),
        "core_memory_bandwidth_bytes_per_s": float(f"{res['core_triad_bytes_per_s']:.4g}"),
        **{k: float(f"{res[k]:.4g}") for k in ("gemv_weight_bytes_per_s", "pack_weight_bytes_per_s", "weight_row_s")
           if k in res},
        **({"pack_weight_bytes_per_s_by_rows": {r: float(f"{v:.4g}")
                                                for r, v in res["pack_weight_bytes_per_s_by_rows"].items()}}
           if "pack_weight_bytes_per_s_by_rows" in res else {}),
        **({"pointwise_cycles_per_element": {k: float(f"{v * f.clock_hz:.4g}")
                                             for k, v in res["pointwise_s_per_element"].items()}}
           if "pointwise_s_per_element" in res else {}),
        "parallel_region_s": float(f"{res['parallel_region_s']:.3g}"),
        "framework": {"eager_dispatch_s": float(f"{res['dispatch_s']:.3g}"), "synchronous": True,
                      **({"eager_op_s": {k: float(f"{v:.3g}") for k, v in res["eager_op_s"].items()}}
                         if "eager_op_s" in res else {})},
    }


def calibrate_cpu(quick: bool = False, name: str | None = None, progress: Progress | None = None,
                  prefer_torch: bool = True) -> dict[str, Any]:
    """Measure this machine and return a validated preset dict (it loads as a ``CpuSpec``)."""
    from llmsim.config.hardware import CpuSpec
    from llmsim.config.loader import deep_merge

    preset = build_preset(measure(quick, progress, prefer_torch), name)
    _, mem = _dram_base()
    full = dict(preset, memory=deep_merge(mem, {k: v for k, v in preset["memory"].items() if k != "extends"}))
    try:
        CpuSpec.model_validate(full)
    except Exception as e:  # a measurement produced an impossible value: say which
        raise CalibrationError(f"calibrated preset does not validate: {e}") from None
    return preset
