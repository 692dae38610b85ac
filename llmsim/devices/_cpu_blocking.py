"""GEMM blocking over a CPU cache hierarchy: block sizes, traffic per level, compute cycles.

The loop nest is the five-loop GotoBLAS/BLIS one (Goto & van de Geijn, TOMS 2008; Van Zee &
van de Geijn, TOMS 2015)::

    for jc in 0..N step nc:              # B panel kc×nc packed into the last-level cache
      for pc in 0..K step kc:
        pack B[pc:pc+kc, jc:jc+nc]
        for ic in 0..M step mc:          # A block mc×kc packed into L2
          pack A[ic:ic+mc, pc:pc+kc]
          for jr in 0..nc step nr:       # B micro-panel kc×nr held in L1
            for ir in 0..mc step mr:     # micro-kernel: mr×nr register tile, kc rank-1 updates
              C[ir:ir+mr, jr:jr+nr] += A_micro · B_micro

Block sizes follow the analytical rule of Low et al. (TOMS 2016): each block fills a set share
of its cache level. Levels are indexed innermost first (0 = L1, 1 = L2, ...; the last index is
main memory). Moving ``x`` bytes from level ``h`` to the core crosses every level ``0..h`` and
is counted at each of them (fills pass through the inner caches).

:func:`gemm_traffic_loop` walks the loop nest; :func:`gemm_traffic` is its closed form (a test
proves they agree). The threaded compute time assumes the ``ic``/``jr`` loops are split over
``threads`` with a barrier after each ``(jc, pc)`` block, as BLIS does: each block costs
``ceil(tiles / threads)`` micro-kernel calls on the busiest thread (partial-tile imbalance).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil


@dataclass(frozen=True, slots=True)
class Blocking:
    """Register tile ``mr × nr`` and cache blocks ``mc × kc`` (A, L2), ``kc × nc`` (B, last level)."""

    mr: int
    nr: int
    kc: int
    mc: int
    nc: int


@dataclass(frozen=True, slots=True)
class GemmTraffic:
    """Bytes counted at each level (index 0 = L1 ... last = main memory) and busiest-thread cycles."""

    bytes_by_level: tuple[float, ...]
    compute_cycles: float
    tiles: int


def choose_blocking(M: int, K: int, N: int, mr: int, nr: int, elem_bytes: float, l1_bytes: float,
                    l2_bytes: float, last_bytes: float, fill: float) -> Blocking:
    """Block sizes from cache capacities (bytes available to one thread; ``last_bytes``: the level
    that holds the packed B panel). ``mc`` is a multiple of ``mr`` and ``nc`` of ``nr``."""
    kc = max(1, int(fill * l1_bytes / ((mr + nr) * elem_bytes)))
    kc = min(kc, K)
    mc = max(mr, int(fill * l2_bytes / (kc * elem_bytes)) // mr * mr)
    mc = min(mc, ceil(M / mr) * mr)
    nc = max(nr, int(fill * last_bytes / (kc * elem_bytes)) // nr * nr)
    nc = min(nc, ceil(N / nr) * nr)
    return Blocking(mr, nr, kc, mc, nc)


def _cycles_per_tile_k(M: int, blk: Blocking, flops_per_cycle: float) -> float:
    """Cycles of one rank-1 step of one micro-kernel call; a skinny kernel (M < mr) computes M rows."""
    return 2.0 * min(blk.mr, M) * blk.nr / flops_per_cycle


def gemm_traffic(M: int, K: int, N: int, blk: Blocking, a_bytes: float, b_bytes: float, packed_bytes: float,
                 homes: tuple[int, int, int], packed_b_level: int, n_levels: int, threads: int,
                 flops_per_cycle: float) -> GemmTraffic:
    """Closed form of :func:`gemm_traffic_loop`. ``homes`` = levels holding (A, B, C);
    ``a_bytes``/``packed_bytes``: bytes per element of A and C / of the packed copies,
    ``b_bytes``: of B where it lives."""
    a_home, b_home, c_home = homes
    mr, nr, kc, mc, nc = blk.mr, blk.nr, blk.kc, blk.mc, blk.nc
    t = [0.0] * n_levels

    def move(x: float, level: int) -> None:
        for i in range(level + 1):
            t[i] += x

    n_jc, n_pc, n_ic = ceil(N / nc), ceil(K / kc), ceil(M / mc)
    move(K * N * b_bytes, b_home)                              # read B for packing
    move(K * N * packed_bytes, packed_b_level)                 # write the packed B panel
    move(n_jc * M * K * a_bytes, a_home)                       # read A for packing, once per jc
    move(n_jc * M * K * packed_bytes, 1)                       # write packed A into L2
    move(n_ic * K * N * packed_bytes, packed_b_level)          # B micro-panels into L1, once per ic
    move(ceil(N / nr) * M * K * packed_bytes, 1)               # A micro-panels from L2, once per jr
    move(ceil(M / mr) * K * N * packed_bytes, 0)               # B micro-panel re-read from L1 per ir
    move((2 * n_pc - 1) * M * N * a_bytes, c_home)             # C tiles: written every pc, read from the 2nd
    rt = ceil(M / mr)
    full, rem = divmod(N, nc)
    busiest = full * ceil(rt * (nc // nr) / threads) + (ceil(rt * ceil(rem / nr) / threads) if rem else 0)
    cycles = busiest * K * _cycles_per_tile_k(M, blk, flops_per_cycle)
    return GemmTraffic(tuple(t), cycles, rt * ceil(N / nr))


def gemm_traffic_loop(M: int, K: int, N: int, blk: Blocking, a_bytes: float, b_bytes: float, packed_bytes: float,
                      homes: tuple[int, int, int], packed_b_level: int, n_levels: int, threads: int,
                      flops_per_cycle: float) -> GemmTraffic:
    """The loop nest walked iteration by iteration (the reference for :func:`gemm_traffic`;
    cost grows with the number of micro-kernel calls, so use it on small shapes)."""
    a_home, b_home, c_home = homes
    mr, nr, kc, mc, nc = blk.mr, blk.nr, blk.kc, blk.mc, blk.nc
    t = [0.0] * n_levels

    def move(x: float, level: int) -> None:
        for i in range(level + 1):
            t[i] += x

    cycles = 0.0
    tiles_total = 0
    per_k = _cycles_per_tile_k(M, blk, flops_per_cycle)
    for jc in range(0, N, nc):
        nce = min(nc, N - jc)
        for pc in range(0, K, kc):
            kce = min(kc, K - pc)
            move(kce * nce * b_bytes, b_home)
            move(kce * nce * packed_bytes, packed_b_level)
            tiles = 0
            for ic in range(0, M, mc):
                mce = min(mc, M - ic)
                move(mce * kce * a_bytes, a_home)
                move(mce * kce * packed_bytes, 1)
                for jr in range(0, nce, nr):
                    nre = min(nr, nce - jr)
                    move(kce * nre * packed_bytes, packed_b_level)
                    for ir in range(0, mce, mr):
                        mre = min(mr, mce - ir)
                        move(mre * kce * packed_bytes, 1)
                        move(kce * nre * packed_bytes, 0)
                        if pc > 0:
                            move(mre * nre * a_bytes, c_home)
                        move(mre * nre * a_bytes, c_home)
                        tiles += 1
            cycles += ceil(tiles / threads) * kce * per_k
            if pc == 0:
                tiles_total += tiles
    return GemmTraffic(tuple(t), cycles, tiles_total)


def gemv_traffic(K: int, N: int, a_bytes: float, b_bytes: float, homes: tuple[int, int, int],
                 n_levels: int) -> tuple[float, ...]:
    """Bytes per level of a one-row product on the library's GEMV path: no packing, B streams once from
    its home, the input row is read once and the output row written once (both stay in L1 meanwhile)."""
    a_home, b_home, c_home = homes
    t = [0.0] * n_levels
    for x, h in ((K * N * b_bytes, b_home), (K * a_bytes, a_home), (N * a_bytes, c_home)):
        for i in range(h + 1):
            t[i] += x
    return tuple(t)

