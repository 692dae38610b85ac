"""Fold-by-fold cycle and traffic model of an R x C systolic array running one GEMM.

The GEMM is ``ofmap (M x N) = ifmap (M x K) . filter (K x N)``; the names follow SCALE-Sim
(Samajdar et al., "A Systematic Methodology for Characterizing Scalability of DNN Accelerators
using SCALE-Sim", ISPASS 2020; SCALE-Sim v3, arXiv 2504.15377). Each dataflow maps two GEMM
dimensions onto the array and streams the third through it in time:

========  ==================  ==================  ============  ===========================
dataflow  array rows (Sr)     array cols (Sc)     time (T)      stationary in the PEs
========  ==================  ==================  ============  ===========================
``ws``    K (reduction)       N (filters)         M (tokens)    filter tile ``r x c``
``os``    M (tokens)          N (filters)         K             ofmap tile ``r x c``
``is``    K (reduction)       M (tokens)          N             ifmap tile ``r x c``
========  ==================  ==================  ============  ===========================

The work is cut into ``ceil(Sr/R) * ceil(Sc/C)`` folds, visited column-fold outer, row-fold inner
(SCALE-Sim's order). An edge fold uses ``r = Sr mod R`` rows or ``c = Sc mod C`` columns. One fold
costs, in array cycles:

* fill   -- preloading the stationary operand, one array row per cycle: ``R`` (``ws``, ``is``),
  0 for ``os`` whose stationary partial sums start at zero;
* steady -- ``T`` operand vectors entering the array, one per cycle;
* drain  -- the skewed wavefront crossing the array so the last vector's result leaves it:
  ``R + C - 2``.

By default an edge fold pays the full ``R`` and ``C`` (data crosses idle PEs, as in SCALE-Sim);
``trim_edges=True`` models an array that bypasses idle PEs, paying ``r`` and ``c`` instead.
SCALE-Sim's "Total Cycles" is this count minus one (it reports the index of the last output cycle).

SRAM accesses are counted in elements per operand as SCALE-Sim counts them, plus the partial-sum
read-backs that a K split across row folds needs (``ws``, ``is``; SCALE-Sim does not count them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from llmsim.errors import CapacityError, ConfigError

WS, OS, IS = 0, 1, 2
DATAFLOWS: dict[str, int] = {"ws": WS, "os": OS, "is": IS}

# Indices of the int64 vector returned by systolic_fold_loop / systolic_closed_form.
CYCLES, FILL, STEADY, DRAIN, FOLDS, IFMAP_READS, FILTER_READS, OFMAP_READS, OFMAP_WRITES = range(9)
N_COUNTS = 9


def _py(func):
    """Plain-Python twin of a jitted function (itself when NUMBA_DISABLE_JIT=1)."""
    return getattr(func, "py_func", func)


def dataflow_code(dataflow: str | int) -> int:
    """Map ``"ws" | "os" | "is"`` (or an existing code) to the int code the kernels take."""
    if isinstance(dataflow, str):
        if dataflow.lower() not in DATAFLOWS:
            raise ConfigError(f"dataflow {dataflow!r} is not one of {sorted(DATAFLOWS)}")
        return DATAFLOWS[dataflow.lower()]
    if dataflow not in (WS, OS, IS):
        raise ConfigError(f"dataflow code {dataflow!r} is not one of {sorted(DATAFLOWS.values())}")
    return int(dataflow)


@njit(cache=True)
def _array_dims(dataflow: int, m: int, n: int, k: int) -> tuple[int, int, int]:
    """(Sr, Sc, T): GEMM extents mapped onto array rows, array columns and time."""
    if dataflow == WS:
        return k, n, m
    if dataflow == OS:
        return m, n, k
    return k, m, n


@njit(cache=True)
def _fold_phases(
    dataflow: int, rows: int, cols: int, r: int, c: int, t: int, trim_edges: bool
) -> tuple[int, int, int]:
    """(fill, steady, drain) cycles of one fold using ``r x c`` of an ``rows x cols`` array."""
    rr = r if trim_edges else rows
    cc = c if trim_edges else cols
    fill = 0 if dataflow == OS else rr
    return fill, t, rr + cc - 2


@njit(cache=True)
def systolic_fold_loop(
    dataflow: int, m: int, n: int, k: int, rows: int, cols: int, trim_edges: bool
) -> np.ndarray:
    """Walk the folds of an (m x k).(k x n) GEMM on a rows x cols array, one fold at a time.

    Returns an int64 vector indexed by ``CYCLES, FILL, STEADY, DRAIN, FOLDS, IFMAP_READS,
    FILTER_READS, OFMAP_READS, OFMAP_WRITES`` (cycles in array clocks, accesses in elements).
    Inputs are assumed validated (all positive, dataflow a valid code).
    """
    out = np.zeros(N_COUNTS, dtype=np.int64)
    sr, sc, t = _array_dims(dataflow, m, n, k)
    n_fr = (sr + rows - 1) // rows
    n_fc = (sc + cols - 1) // cols
    for fc in range(n_fc):
        c = min(cols, sc - fc * cols)
        for fr in range(n_fr):
            r = min(rows, sr - fr * rows)
            fill, steady, drain = _fold_phases(dataflow, rows, cols, r, c, t, trim_edges)
            out[FILL] += fill
            out[STEADY] += steady
            out[DRAIN] += drain
            out[FOLDS] += 1
            if dataflow == OS:
                out[IFMAP_READS] += t * r  # a row of ifmap per array row, t elements each
                out[FILTER_READS] += t * c
                out[OFMAP_WRITES] += r * c  # finished outputs leave once
            else:
                stationary = r * c
                streamed = t * r
                if dataflow == WS:
                    out[FILTER_READS] += stationary
                    out[IFMAP_READS] += streamed
                else:
                    out[IFMAP_READS] += stationary
                    out[FILTER_READS] += streamed
                out[OFMAP_WRITES] += t * c
                if fr > 0:  # accumulate onto the partial sums of the previous K slice
                    out[OFMAP_READS] += t * c
    out[CYCLES] = out[FILL] + out[STEADY] + out[DRAIN]
    return out


def systolic_closed_form(
    dataflow: int, m: int, n: int, k: int, rows: int, cols: int, trim_edges: bool
) -> np.ndarray:
    """Closed form of :func:`systolic_fold_loop` (same vector); tests prove the two agree.

    With ``fr = ceil(Sr/R)``, ``fc = ceil(Sc/C)``: the used rows summed over all folds are
    ``fc * Sr`` and the used columns ``fr * Sc``, so e.g. untrimmed ``ws`` costs
    ``fr * fc * (2R + C + M - 2)`` cycles.
    """
    sr, sc, t = _py(_array_dims)(dataflow, m, n, k)
    n_fr, n_fc = -(-sr // rows), -(-sc // cols)
    folds = n_fr * n_fc
    sum_r = n_fc * sr if trim_edges else folds * rows
    sum_c = n_fr * sc if trim_edges else folds * cols
    out = np.zeros(N_COUNTS, dtype=np.int64)
    out[FILL] = 0 if dataflow == OS else sum_r
    out[STEADY] = folds * t
    out[DRAIN] = sum_r + sum_c - 2 * folds
    out[FOLDS] = folds
    if dataflow == OS:
        out[IFMAP_READS], out[FILTER_READS], out[OFMAP_WRITES] = t * n_fc * sr, t * n_fr * sc, sr * sc
    else:
        stationary, streamed = sr * sc, t * n_fc * sr
        if dataflow == WS:
            out[FILTER_READS], out[IFMAP_READS] = stationary, streamed
        else:
            out[IFMAP_READS], out[FILTER_READS] = stationary, streamed
        out[OFMAP_WRITES] = t * n_fr * sc
        out[OFMAP_READS] = t * (n_fr - 1) * sc
    out[CYCLES] = out[FILL] + out[STEADY] + out[DRAIN]
    return out


@dataclass(frozen=True)
class SystolicCounts:
    """Compute-only cost of one GEMM on a systolic array (no memory stalls).

    Cycles are array clock cycles; accesses are SRAM element accesses.
    """

    cycles: int
    fill_cycles: int
    steady_cycles: int
    drain_cycles: int
    folds: int
    ifmap_reads: int
    filter_reads: int
    ofmap_reads: int
    ofmap_writes: int
    utilization: float  # useful MACs / (rows * cols * cycles)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def systolic_gemm(
    m: int, n: int, k: int, rows: int, cols: int, dataflow: str | int = "ws", trim_edges: bool = False
) -> SystolicCounts:
    """Compute cycles and SRAM accesses of ``(m x k) . (k x n)`` on a ``rows x cols`` array."""
    _check_positive(m=m, n=n, k=k, rows=rows, cols=cols)
    v = systolic_fold_loop(dataflow_code(dataflow), m, n, k, rows, cols, bool(trim_edges))
    return SystolicCounts(
        *(int(x) for x in v), utilization=m * n * k / (rows * cols * int(v[CYCLES]))
    )


# ---------------------------------------------------------------- tiled GEMM with DMA --------

@njit(cache=True)
def _dma(dma_free: float, issue: float, nbytes: float, bytes_per_cycle: float) -> float:
    """Finish time of a transfer queued behind ``dma_free`` and issued at ``issue`` (FIFO)."""
    if nbytes <= 0.0:
        return max(dma_free, issue)
    return max(dma_free, issue) + math.ceil(nbytes / bytes_per_cycle)


@njit(cache=True)
def simulate_tiled_gemm_loop(
    dataflow: int, m: int, n: int, k: int, rows: int, cols: int, trim_edges: bool,
    in_bytes: float, out_bytes: float, ifmap_resident: bool, filter_resident: bool,
    dma_bytes_per_cycle: float,
) -> np.ndarray:
    """Fold-by-fold GEMM with double-buffered operand SRAMs fed by one FIFO DMA engine.

    Per fold the operand tiles are (``Sr, Sc, T`` as in the module table):

    * *row tile* -- depends on the row fold only: ``ws`` ifmap ``M x r``, ``is`` filter ``r x N``,
      ``os`` ifmap ``r x K``. Reloaded every fold unless there is one row fold (the tile stays)
      or its whole matrix is resident (loaded during the first column fold only).
    * *column tile* -- ``ws`` filter / ``is`` ifmap ``r x c`` (new every fold, each read from DRAM
      exactly once); ``os`` filter ``K x c``, loaded once per column fold.
    * *output tile* -- ``ws``/``is``: ``T x c`` partial sums accumulated in the ofmap SRAM across
      the row folds and written to DRAM once, after the last row fold; ``os``: ``r x c`` per fold.

    Double buffering: fold i+1's loads start when fold i-1 has finished computing (its buffer
    half is free) and the DMA is idle; fold i computes when fold i-1 is done and its tiles have
    arrived. An output tile's write-back must finish before the same ofmap half is refilled (two
    output tiles later). Write-backs queue on the same DMA in issue order.

    Returns float64 ``[total, compute, stall, dram_read_bytes, dram_write_bytes, sram_reads,
    sram_writes]``: total = compute + stall + final write-back tail; stall = cycles compute waits
    for the DMA; SRAM counts in elements (array-side accesses plus DMA fills and drains).
    """
    sr, sc, t = _array_dims(dataflow, m, n, k)
    n_fr = (sr + rows - 1) // rows
    n_fc = (sc + cols - 1) // cols
    n_folds = n_fr * n_fc
    # Tile geometry of every fold, precomputed so fold i can issue fold i+1's loads.
    load_b = np.zeros(n_folds, dtype=np.float64)
    load_e = np.zeros(n_folds, dtype=np.float64)
    cyc = np.zeros(n_folds, dtype=np.float64)
    wb_b = np.zeros(n_folds, dtype=np.float64)
    new_out = np.zeros(n_folds, dtype=np.bool_)
    i = 0
    for fc in range(n_fc):
        c = min(cols, sc - fc * cols)
        for fr in range(n_fr):
            r = min(rows, sr - fr * rows)
            f, s, d = _fold_phases(dataflow, rows, cols, r, c, t, trim_edges)
            cyc[i] = f + s + d
            row_resident = ifmap_resident if dataflow != IS else filter_resident
            if fc == 0 or (n_fr > 1 and not row_resident):
                load_e[i] += t * r
            if dataflow == OS:
                if fr == 0:  # each filter column tile serves one column fold only
                    load_e[i] += t * c
                wb_b[i] = r * c * out_bytes
                new_out[i] = True
            else:
                load_e[i] += r * c  # each stationary tile is used by exactly one fold
                if fr == n_fr - 1:
                    wb_b[i] = t * c * out_bytes
                new_out[i] = fr == 0
            load_b[i] = load_e[i] * in_bytes
            i += 1

    ops = systolic_fold_loop(dataflow, m, n, k, rows, cols, trim_edges)
    dma_free = 0.0
    load_done = _dma(dma_free, 0.0, load_b[0], dma_bytes_per_cycle)
    dma_free = load_done
    end_prev = 0.0  # compute end of fold i-1
    stall = 0.0
    compute = 0.0
    wb_done_prev = 0.0  # write-back finish of the previous output tile
    wb_done_last = 0.0  # ... and of the most recent one
    dram_rd = load_b[0]
    dram_wr = 0.0
    next_done = 0.0
    for i in range(n_folds):
        ready = max(end_prev, load_done)
        if new_out[i]:
            ready = max(ready, wb_done_prev)  # ofmap half still draining to DRAM
        if i + 1 < n_folds:  # fold i+1's half was freed when fold i-1 finished
            next_done = _dma(dma_free, end_prev, load_b[i + 1], dma_bytes_per_cycle)
            dma_free = next_done
            dram_rd += load_b[i + 1]
        stall += ready - end_prev
        end = ready + cyc[i]
        compute += cyc[i]
        if wb_b[i] > 0.0:
            wb_done_prev = wb_done_last
            wb_done_last = _dma(dma_free, end, wb_b[i], dma_bytes_per_cycle)
            dma_free = wb_done_last
            dram_wr += wb_b[i]
        end_prev = end
        load_done = next_done
    total = max(end_prev, wb_done_last)
    out = np.zeros(7, dtype=np.float64)
    out[0] = total
    out[1] = compute
    out[2] = stall
    out[3] = dram_rd
    out[4] = dram_wr
    out[5] = ops[IFMAP_READS] + ops[FILTER_READS] + ops[OFMAP_READS] + dram_wr / out_bytes
    out[6] = ops[OFMAP_WRITES] + dram_rd / in_bytes
    return out


@dataclass(frozen=True)
class TiledGemmResult:
    """Cost of one GEMM with operands streamed from DRAM through double-buffered SRAMs.

    ``total_cycles = compute_cycles + stall_cycles + final write-back tail`` (array clocks).
    """

    total_cycles: int
    compute_cycles: int
    stall_cycles: int
    dram_read_bytes: float
    dram_write_bytes: float
    sram_reads: int  # elements: array-side reads + DMA drains of outputs
    sram_writes: int  # elements: array-side writes + DMA fills of inputs


def tile_bytes(
    dataflow: str | int, m: int, n: int, k: int, rows: int, cols: int, in_bytes: float, out_bytes: float
) -> dict[str, float]:
    """Largest tile, in bytes, that each buffer (``ifmap``, ``filter``, ``ofmap``) holds for one fold."""
    df = dataflow_code(dataflow)
    sr, sc, t = _py(_array_dims)(df, m, n, k)
    r, c = min(rows, sr), min(cols, sc)
    if df == WS:
        return {"ifmap": t * r * in_bytes, "filter": r * c * in_bytes, "ofmap": t * c * out_bytes}
    if df == OS:
        return {"ifmap": t * r * in_bytes, "filter": t * c * in_bytes, "ofmap": r * c * out_bytes}
    return {"ifmap": r * c * in_bytes, "filter": t * r * in_bytes, "ofmap": t * c * out_bytes}


def simulate_tiled_gemm(
    m: int, n: int, k: int, rows: int, cols: int, dataflow: str | int,
    ifmap_sram_bytes: float, filter_sram_bytes: float, ofmap_sram_bytes: float,
    dma_bytes_per_cycle: float, in_bytes: float = 2.0, out_bytes: float = 2.0,
    trim_edges: bool = False,
) -> TiledGemmResult:
    """Cycles and traffic of ``(m x k) . (k x n)`` with DMA-fed double-buffered operand SRAMs.

    Each SRAM is split in two halves (double buffering); one fold's tile must fit one half, else
    :class:`~llmsim.errors.CapacityError` names the buffer, the tile and both sizes. An input
    matrix that fits its whole SRAM stays resident and is read from DRAM once. ``in_bytes`` and
    ``out_bytes`` are bytes per element of the inputs and of the written outputs;
    ``dma_bytes_per_cycle`` is the DRAM-to-SRAM rate in bytes per array clock. See
    :func:`simulate_tiled_gemm_loop` for the reuse and overlap model.
    """
    _check_positive(m=m, n=n, k=k, rows=rows, cols=cols)
    for name, v in (("dma_bytes_per_cycle", dma_bytes_per_cycle), ("in_bytes", in_bytes),
                    ("out_bytes", out_bytes)):
        if not v > 0:
            raise ConfigError(f"{name} must be > 0, got {v!r}")
    df = dataflow_code(dataflow)
    caps = {"ifmap": ifmap_sram_bytes, "filter": filter_sram_bytes, "ofmap": ofmap_sram_bytes}
    for buf, need in tile_bytes(df, m, n, k, rows, cols, in_bytes, out_bytes).items():
        if need > caps[buf] / 2:
            raise CapacityError(
                f"{buf} SRAM: one fold's {buf} tile needs {need:g} B but each half of the "
                f"double-buffered {caps[buf]:g} B {buf} SRAM holds {caps[buf] / 2:g} B "
                f"({m}x{k}.{k}x{n} GEMM, {rows}x{cols} array, dataflow {df})"
            )
    v = simulate_tiled_gemm_loop(
        df, m, n, k, rows, cols, bool(trim_edges), float(in_bytes), float(out_bytes),
        m * k * in_bytes <= ifmap_sram_bytes, k * n * in_bytes <= filter_sram_bytes,
        float(dma_bytes_per_cycle),
    )
    return TiledGemmResult(int(v[0]), int(v[1]), int(v[2]), float(v[3]), float(v[4]),
                           round(v[5]), round(v[6]))
