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
        self.rows.extend(_pass_rows(units, unit_bursts, units_per_row))
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


def _score_groups(H: int, D: int, g: Geometry, vectors: int) -> list[tuple[int, int]]:
    """(heads, tokens per row) of each head group of :func:`score_programs` (checking the shape fits)."""
    hpr = max(1, g.row_elems // g.pad(D))
    if g.pad(D) > g.row_elems or D > g.gb_elems:
        raise ConfigError(f"attention head dim {D} wider than a DRAM row / global buffer")
    if vectors > 1 and min(hpr, H) * D * vectors > g.gb_elems:
        raise ConfigError(f"global_buffer_bytes holds {g.gb_elems} elements, fewer than bank_mac_vectors_per_burst "
                          f"({vectors}) x {min(hpr, H)} query heads x head dim {D}")
    # a group filling at most half a row shares its rows among tokens
    return [(min(hpr, H - h0), max(1, hpr // min(hpr, H - h0))) for h0 in range(0, H, hpr)]


def score_programs(H: int, Skv: int, D: int, g: Geometry, progs: list[Program], vectors: int = 1) -> None:
    """q . K^T for H heads over Skv tokens: head groups that fill a row, tokens over all banks.
    ``vectors``: query vectors each burst of K feeds (GQA heads sharing the K rows; the GB holds them all)."""
    groups = _score_groups(H, D, g, vectors)
    busiest, total = spread(Skv, g)
    for hg, per_row in groups:
        for c, p in enumerate(progs):
            p.add_pass(int(busiest[c]), hg * g.bursts(D), per_row, hg * D * vectors, int(total[c]) * hg * vectors)


def _context_tiles(Skv: int, g: Geometry, vectors: int) -> list[int]:
    """Skv tiles of :func:`context_programs`: the GB holds one tile of each of ``vectors`` vectors."""
    return k_tiles(Skv, g if vectors == 1 else Geometry(g.channels, g.banks, g.row_elems, g.burst_elems,
                                                        g.gb_elems // vectors))


def context_programs(H: int, Skv: int, D: int, g: Geometry, progs: list[Program], vectors: int = 1) -> int:
    """P . V for H heads: head h on channel h % C, its D columns (one reserved row each) over
    the channel's banks, Skv tiled by the GB. Returns the ASIC partial-sum additions.
    ``vectors``: probability vectors each burst of V feeds (the GB holds one tile of each)."""
    tiles = _context_tiles(Skv, g, vectors)
    rows_per_bank = -(-D // g.banks)
    for h in range(H):
        p = progs[h % g.channels]
        for t in tiles:
            p.add_pass(rows_per_bank, g.bursts(t), 1, t * vectors, D * vectors)
    return H * D * vectors * (len(tiles) - 1)


@dataclass(frozen=True)
class ProgramClass:
    """``count`` channels running the same program (``rows``, GB and readout elements, passes):
    what :func:`score_classes` and :func:`context_classes` give in place of one :class:`Program`
    per channel. Classes come in the order of their first channel, as grouping the per-channel
    programs by :meth:`Program.key` gives them."""

    rows: tuple[int, ...]
    gb_elems: int
    out_elems: int
    passes: int
    count: int

    def key(self) -> tuple:
        return (self.rows, self.gb_elems, self.out_elems, self.passes)


def program_classes(progs: list[Program]) -> list[ProgramClass]:
    """Per-channel programs grouped into classes of equal programs (first-occurrence order)."""
    return _merge([ProgramClass(*p.key(), count=1) for p in progs])


def _merge(classes: list[ProgramClass]) -> list[ProgramClass]:
    """Classes with equal programs merged, in first-occurrence order; classes of no channel dropped."""
    out: dict[tuple, list] = {}
    for c in classes:
        if c.count:
            out.setdefault(c.key(), [0])[0] += c.count
    return [ProgramClass(*k, count=n) for k, (n,) in out.items()]


def _pass_rows(units: int, unit_bursts: int, units_per_row: int) -> list[int]:
    """Rows :meth:`Program.add_pass` appends for one pass."""
    if units <= 0:
        return []
    full, rest = divmod(units, units_per_row)
    return [units_per_row * unit_bursts] * full + ([rest * unit_bursts] if rest else [])


def score_classes(H: int, Skv: int, D: int, g: Geometry, vectors: int = 1) -> list[ProgramClass]:
    """The channel programs :func:`score_programs` builds, as classes, in closed form: a channel's
    program depends only on its busiest bank's tokens (``base`` or ``base + 1``) and its total
    tokens, and channels come in runs of equal (busiest, total) (:func:`spread` is monotone in
    the channel)."""
    groups = _score_groups(H, D, g, vectors)
    slots = g.channels * g.banks
    base, extra = divmod(Skv, slots)
    ub = g.bursts(D)
    classes = []
    # channel c < extra holds in_extra(c) = ceil((extra - c) / C) of the extra tokens, 1..banks
    c = 0
    while c < g.channels:
        in_extra = (extra - c + g.channels - 1) // g.channels if c < extra else 0
        if in_extra:  # the last channel holding in_extra extra tokens
            last = min(g.channels - 1, extra - 1 - (in_extra - 1) * g.channels)
        else:
            last = g.channels - 1
        busiest, total = base + (in_extra > 0), base * g.banks + in_extra
        rows: list[int] = []
        gb = out = passes = 0
        if busiest > 0:
            for hg, per_row in groups:
                rows += _pass_rows(busiest, hg * ub, per_row)
                gb += hg * D * vectors
                out += total * hg * vectors
                passes += 1
        classes.append(ProgramClass(tuple(rows), gb, out, passes, last - c + 1))
        c = last + 1
    return _merge(classes)


def context_classes(H: int, Skv: int, D: int, g: Geometry, vectors: int = 1) -> tuple[list[ProgramClass], int]:
    """The channel programs :func:`context_programs` builds, as classes, and its ASIC partial-sum
    additions, in closed form: channel c runs the per-head passes once per head it holds
    (``H // C``, one more for c < ``H % C``)."""
    tiles = _context_tiles(Skv, g, vectors)
    rows_per_bank = -(-D // g.banks)
    head: list[int] = []
    for t in tiles:
        head += _pass_rows(rows_per_bank, g.bursts(t), 1)
    per_head = (sum(tiles) * vectors, len(tiles) * D * vectors, len(tiles))  # D >= 1: every pass adds rows
    q, r = divmod(H, g.channels)
    classes = [ProgramClass(tuple(head * n), per_head[0] * n, per_head[1] * n, per_head[2] * n, k)
               for n, k in ((q + 1, r), (q, g.channels - r))]
    return _merge(classes), H * D * vectors * (len(tiles) - 1)


def mac_requests(rows: list[int] | tuple[int, ...], n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(op, row) arrays of the MAC_AB requests of one program: row r gets ``rows[r]`` bursts;
    row indices wrap at the bank's ``n_rows``."""
    r = np.asarray(rows, dtype=np.int64)
    row_ids = np.repeat(np.arange(len(r), dtype=np.int64) % n_rows, r)
    return np.full(len(row_ids), 2, dtype=np.int64), row_ids


__all__ = ["Geometry", "Program", "ProgramClass", "context_classes", "context_programs", "k_tiles", "mac_requests",
           "program_classes", "score_classes", "score_programs", "spread", "vmm_programs"]
