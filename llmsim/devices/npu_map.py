"""Mapping a GEMM onto an NPU's systolic cores: the small search a compiler does.

A *mapping* fixes (1) how many cores work and how the work is split between them -- over the
batch of independent GEMMs (attention heads, MoE experts), over N (output columns) or over M
(rows); (2) the sub-array each fold uses, when the hardware bypasses idle PEs
(``trim_edges``): the full ``R x C`` array or a power-of-two fraction ``R/2^i x C/2^j`` of it;
(3) the temporal chunks: ``ws`` streams M, ``is`` N and ``os`` K through the array; when one
fold's streamed tile does not fit half of its double-buffered SRAM the stream is cut into the
fewest equal chunks that fit, each costed as an independent GEMM (for ``os`` a conservative
approximation: every K chunk pays its own drain and output write-back). A tile that does not
fit even for a stream of one element is refused with :class:`~llmsim.errors.CapacityError`.

Every candidate is costed by :func:`llmsim.kernels.systolic.simulate_tiled_gemm` (fold by fold,
DMA-fed double buffering) and the cheapest wins. Because the result is a minimum over a
candidate set, the mapping is monotone by construction wherever one configuration's candidates
contain another's: more cores (the split may use fewer cores), more DMA bandwidth (every
candidate's cost is a max-plus function of the DMA time) and, with ``trim_edges``, arrays
scaled by powers of two (``2R`` can use ``R`` as a sub-array). Candidates are visited in order
of a lower bound (their closed-form compute cycles) and skipped once that bound reaches the
best total, so the search is exact but cheap.

Approximations (stated in ``docs/validation.md``): the cores share the DMA bandwidth equally;
consecutive GEMMs / chunks on a core do not overlap their pipelines; traffic of cores holding a
ceil-rounded share is scaled to the real work; SRAM ports cap the array through an aggregate
bytes-per-cycle floor on the op, not fold by fold.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.errors import CapacityError
from llmsim.kernels.systolic import (
    CYCLES,
    FILTER_READS,
    FOLDS,
    IFMAP_READS,
    OFMAP_READS,
    OFMAP_WRITES,
    dataflow_code,
    simulate_tiled_gemm,
    systolic_closed_form,
    tile_bytes,
)

BUFFERS = ("ifmap", "filter", "ofmap")


@dataclass(frozen=True)
class ArrayConfig:
    """What the mapper needs of one NPU: per-core array and buffers, shared DMA (array clocks)."""

    rows: int
    cols: int
    cores: int
    dataflow: str
    trim_edges: bool
    buffer_bytes: tuple[float, float, float]  # ifmap, filter, ofmap SRAM of one core, bytes
    dma_bytes_per_cycle: float  # main memory -> SRAM, all cores together, bytes per array clock
    sram_bytes_per_cycle: float  # array-side SRAM ports of one core, bytes per array clock


@dataclass(frozen=True)
class GemmMapping:
    """Cost of ``count`` independent ``(m x k).(k x n)`` GEMMs under the chosen mapping.

    Cycles are those of the slowest core (array clocks); bytes are summed over all cores.
    """

    total_cycles: float
    compute_cycles: float
    stall_cycles: float
    dram_read_bytes: float
    dram_write_bytes: float
    sram_bytes: float
    folds: int
    cores_used: int
    split: str
    rows: int
    cols: int
    chunks: int

    def stats(self) -> dict[str, float]:
        return {"folds": self.folds, "stall_cycles": self.stall_cycles, "cores_used": self.cores_used,
                "sub_rows": self.rows, "sub_cols": self.cols, "chunks": self.chunks}


def _ladder(n: int, trim: bool) -> list[int]:
    """Sub-array sizes the mapper may use along one array dimension: n, n/2, n/4, ... (trim)."""
    out = [n]
    while trim and out[-1] > 1:
        out.append(out[-1] // 2)
    return out


def _chunks(cfg: ArrayConfig, m: int, n: int, k: int, r: int, c: int, in_b: float, out_b: float,
            what: str) -> list[tuple[int, int, int, int]]:
    """``[(times, m, n, k)]``: the chunk shapes of one GEMM whose tiles fit half of each buffer.

    Each buffer's tile is affine in the streamed extent T (``ws``: M, ``is``: N, ``os``: K):
    need(T) = a + b*T. Raises :class:`CapacityError` naming the buffer when even T = 1 does not fit.
    """
    df = cfg.dataflow
    t_full = {"ws": m, "is": n, "os": k}[df]

    def need(t: int) -> dict[str, float]:
        mm, nn, kk = {"ws": (t, n, k), "is": (m, t, k), "os": (m, n, t)}[df]
        return tile_bytes(df, mm, nn, kk, r, c, in_b, out_b)

    n1, n2 = need(1), need(2)
    t_max = t_full
    for buf, cap in zip(BUFFERS, cfg.buffer_bytes, strict=False):
        b = n2[buf] - n1[buf]
        a = n1[buf] - b
        half = cap / 2
        first = a + b
        if first > half:
            raise CapacityError(
                f"{what}: {buf} SRAM: one fold's {buf} tile needs {first:g} B but each half of the "
                f"double-buffered {cap:g} B {buf} buffer holds {half:g} B ({m}x{k}.{k}x{n} GEMM, "
                f"{r}x{c} array, dataflow {df})")
        if b > 0:
            t_max = min(t_max, int((half - a) // b))
    n_ch = -(-t_full // t_max)
    q, rem = divmod(t_full, n_ch)
    out = []
    for times, t in ((rem, q + 1), (n_ch - rem, q)):
        if times and t:
            out.append((times, *{"ws": (t, n, k), "is": (m, t, k), "os": (m, n, t)}[df]))
    return out


def _core_cost(cfg: ArrayConfig, chunks, r: int, c: int, g: int, bpc: float, in_b: float, out_b: float):
    """Cost on one core of ``g`` GEMMs made of ``chunks``, run back to back on an r x c sub-array."""
    df = dataflow_code(cfg.dataflow)
    v = [0.0] * 7  # total, compute, stall, rd, wr, sram, folds
    for times, mm, nn, kk in chunks:
        res = simulate_tiled_gemm(mm, nn, kk, r, c, df, *cfg.buffer_bytes, bpc, in_b, out_b, cfg.trim_edges)
        ops = systolic_closed_form(df, mm, nn, kk, r, c, cfg.trim_edges)
        sram = ((ops[IFMAP_READS] + ops[FILTER_READS]) * in_b + (ops[OFMAP_READS] + ops[OFMAP_WRITES]) * out_b
                + res.dram_read_bytes + res.dram_write_bytes)
        for i, x in enumerate((res.total_cycles, res.compute_cycles, res.stall_cycles, res.dram_read_bytes,
                               res.dram_write_bytes, sram, ops[FOLDS])):
            v[i] += g * times * float(x)
    port_floor = v[5] / cfg.sram_bytes_per_cycle  # the array cannot outrun its SRAM ports
    if port_floor > v[0]:
        v[2] += port_floor - v[0]
        v[0] = port_floor
    return v


def map_gemm(cfg: ArrayConfig, m: int, n: int, k: int, count: int = 1, in_bytes: float = 2.0,
             out_bytes: float = 2.0, what: str = "gemm") -> GemmMapping:
    """Cheapest mapping of ``count`` independent ``(m x k).(k x n)`` GEMMs (see module doc).

    ``in_bytes``/``out_bytes``: bytes per input / output element; ``what`` names the op in errors.
    """
    cands = []  # (lower bound, p, split, g, shape, r, c, chunks, work fraction)
    first_error: CapacityError | None = None
    df = dataflow_code(cfg.dataflow)
    for p in range(1, cfg.cores + 1):
        splits = [("none", count, (m, n, k))] if p == 1 else []
        if p > 1 and count >= p:
            splits.append(("batch", -(-count // p), (m, n, k)))
        if p > 1 and n >= p:
            splits.append(("N", count, (m, -(-n // p), k)))
        if p > 1 and m >= p:
            splits.append(("M", count, (-(-m // p), n, k)))
        for split, g, (mm, nn, kk) in splits:
            work = count * m * n / (p * g * mm * nn)  # real work / work of p ceil-rounded shares
            for r in _ladder(cfg.rows, cfg.trim_edges):
                for c in _ladder(cfg.cols, cfg.trim_edges):
                    try:
                        ch = _chunks(cfg, mm, nn, kk, r, c, in_bytes, out_bytes, what)
                    except CapacityError as e:
                        if r == cfg.rows and c == cfg.cols and first_error is None:
                            first_error = e
                        continue
                    lb = g * sum(t * float(systolic_closed_form(df, a, b, d, r, c, cfg.trim_edges)[CYCLES])
                                 for t, a, b, d in ch)
                    cands.append((lb, p, split, g, r, c, ch, work))
    if not cands:
        raise first_error or CapacityError(f"{what}: no mapping fits the SRAM buffers")
    cands.sort(key=lambda x: x[0])
    best = None
    for lb, p, split, g, r, c, ch, work in cands:
        if best is not None and lb >= best[0][0]:
            break
        v = _core_cost(cfg, ch, r, c, g, cfg.dma_bytes_per_cycle / p, in_bytes, out_bytes)
        if best is None or v[0] < best[0][0]:
            best = (v, p, split, r, c, sum(t for t, *_ in ch), work)
    v, p, split, r, c, n_ch, work = best
    scale = p * work  # per-core traffic -> all cores
    return GemmMapping(v[0], v[1], v[2], v[3] * scale, v[4] * scale, v[5] * scale, round(v[6] * scale),
                       p, split, r, c, n_ch)
