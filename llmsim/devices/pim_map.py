"""PIM-GPT workload mapping: which DRAM rows every channel's banks MAC, in which order.

A *channel program* is what one channel does for an op: a sequence of DRAM rows, each opened
in all banks at once (ACT_AB) and read by ``bursts`` all-bank MACs (MAC_AB), plus the bytes
that cross the channel bus -- the input vector written into the channel's global buffer (GB)
and the results read back to the ASIC. Banks of a channel run in lock-step and share the GB,
so a channel's banks always work on the same input vector; a program's row needs the burst
count of its *busiest* bank.

Mapping (PIM-GPT, Wu et al. 2023, Sec. "Mapping"; docs/pim.md):
  * weight matrices (K x N, the dot product of output n is column n, stored along a row) are
    split into K-tiles no wider than a row and the GB; the N output columns of a tile are
    spread round-robin over all channels x banks so every bank works; columns shorter than
    half a row share a row (the GB then holds the input once per column slot);
  * K is stored row-major with the heads of one token concatenated to fill a row (the GB holds
    the matching query heads); tokens are spread over all banks; rows are reserved ahead for
    future tokens, so a row holds one token -- or, when a token's heads fill at most half a row
    (few heads per device), as many tokens as fit;
  * V is stored column-major: column (head, d) over the tokens is one reserved row; heads are
    spread over channels (a channel's banks share one GB, which holds that head's
    probabilities), the D columns of a head over the channel's banks;
  * inputs wider than the GB / rows longer than a row are tiled; partial sums go to the ASIC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmsim.errors import ConfigError


@dataclass(frozen=True)
class Geometry:
    """What the mapping needs from the hardware, in elements of the operand dtype."""

    channels: int
    banks: int
    row_elems: int
    burst_elems: int
    gb_elems: int

    def pad(self, n: int) -> int:
        """Elements rounded up to whole bursts."""
        return -(-n // self.burst_elems) * self.burst_elems

    def bursts(self, n: int) -> int:
        return -(-n // self.burst_elems)


@dataclass
class Program:
    """One channel's work: ``rows`` (bursts per opened row, in order), GB and readout elements,
    and the number of passes (GB loads)."""

    rows: list[int] = field(default_factory=list)
    gb_elems: int = 0
    out_elems: int = 0
    passes: int = 0

    def add_pass(self, units: int, unit_bursts: int, units_per_row: int, gb_elems: int, out_elems: int) -> None:
        """``units`` row-slot units of ``unit_bursts`` bursts on the busiest bank, packed
        ``units_per_row`` to a row."""
        if units <= 0:
            return
        full, rest = divmod(units, units_per_row)
        self.rows.extend([units_per_row * unit_bursts] * full)
        if rest:
            self.rows.append(rest * unit_bursts)
        self.gb_elems += gb_elems
        self.out_elems += out_elems
        self.passes += 1

    def key(self) -> tuple:
        return (tuple(self.rows), self.gb_elems, self.out_elems, self.passes)


def spread(n_units: int, g: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Round-robin ``n_units`` over channel x bank slots (slot i -> channel i % C): per channel,
    the units of its busiest bank and its total units."""
    slots = g.channels * g.banks
    base, extra = divmod(n_units, slots)
    c = np.arange(g.channels)
    in_extra = np.where(c < extra, (extra - c + g.channels - 1) // g.channels, 0)
    busiest = base + (in_extra > 0)
    return busiest.astype(np.int64), (base * g.banks + in_extra).astype(np.int64)


def k_tiles(K: int, g: Geometry) -> list[int]:
    """Widths of the K-tiles of a dot product: at most a row and at most the GB."""
    w = min(g.row_elems, g.gb_elems)
    w -= w % g.burst_elems
    if w <= 0:
        raise ConfigError(f"global_buffer_bytes holds less than one burst ({g.gb_elems} < {g.burst_elems} elements)")
    n = -(-K // w)
    return [w] * (n - 1) + [K - w * (n - 1)]


def vmm_programs(K: int, N: int, g: Geometry, progs: list[Program]) -> int:
    """Append one vector x (K x N) matrix product to every channel's program. Returns the
    number of partial-sum additions the ASIC must do (N per extra K-tile)."""
    tiles = k_tiles(K, g)
    for kt in tiles:
        per_row = max(1, g.row_elems // g.pad(kt))
        busiest, total = spread(N, g)
        rows_busy = busiest  # units = output columns; a bank packs per_row of them to a row
        for c, p in enumerate(progs):
            p.add_pass(int(rows_busy[c]), g.bursts(kt), per_row, min(per_row, max(1, int(total[c]))) * kt,
                       int(total[c]))
    return N * (len(tiles) - 1)


def score_programs(H: int, Skv: int, D: int, g: Geometry, progs: list[Program], vectors: int = 1) -> None:
    """q . K^T for H heads over Skv tokens: head groups that fill a row, tokens over all banks.
    ``vectors``: query vectors each burst of K feeds (GQA heads sharing the K rows; the GB holds them all)."""
    hpr = max(1, g.row_elems // g.pad(D))
    if g.pad(D) > g.row_elems or D > g.gb_elems:
        raise ConfigError(f"attention head dim {D} wider than a DRAM row / global buffer")
    if vectors > 1 and min(hpr, H) * D * vectors > g.gb_elems:
        raise ConfigError(f"global_buffer_bytes holds {g.gb_elems} elements, fewer than bank_mac_vectors_per_burst "
                          f"({vectors}) x {min(hpr, H)} query heads x head dim {D}")
    busiest, total = spread(Skv, g)
    for h0 in range(0, H, hpr):
        hg = min(hpr, H - h0)
        per_row = max(1, hpr // hg)  # a group filling at most half a row shares its rows among tokens
        for c, p in enumerate(progs):
            p.add_pass(int(busiest[c]), hg * g.bursts(D), per_row, hg * D * vectors, int(total[c]) * hg * vectors)


def context_programs(H: int, Skv: int, D: int, g: Geometry, progs: list[Program], vectors: int = 1) -> int:
    """P . V for H heads: head h on channel h % C, its D columns (one reserved row each) over
    the channel's banks, Skv tiled by the GB. Returns the ASIC partial-sum additions.
    ``vectors``: probability vectors each burst of V feeds (the GB holds one tile of each)."""
    tiles = k_tiles(Skv, g if vectors == 1 else Geometry(g.channels, g.banks, g.row_elems, g.burst_elems,
                                                          g.gb_elems // vectors))
    rows_per_bank = -(-D // g.banks)
    for h in range(H):
        p = progs[h % g.channels]
        for t in tiles:
            p.add_pass(rows_per_bank, g.bursts(t), 1, t * vectors, D * vectors)
    return H * D * vectors * (len(tiles) - 1)


def mac_requests(rows: list[int] | tuple[int, ...], n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(op, row) arrays of the MAC_AB requests of one program: row r gets ``rows[r]`` bursts;
    row indices wrap at the bank's ``n_rows``."""
    r = np.asarray(rows, dtype=np.int64)
    row_ids = np.repeat(np.arange(len(r), dtype=np.int64) % n_rows, r)
    return np.full(len(row_ids), 2, dtype=np.int64), row_ids


__all__ = ["Geometry", "Program", "context_programs", "k_tiles", "mac_requests", "score_programs", "spread",
           "vmm_programs"]
