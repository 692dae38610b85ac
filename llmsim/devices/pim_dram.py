"""The bank side of PIM-GPT: channel programs on the cycle-level DRAM model.

A channel program is the sequence of rows its busiest bank opens (bursts per row, in order) and
the global-buffer and readout elements it moves (:mod:`llmsim.devices.pim_map`). Its DRAM stats
come from :class:`~llmsim.memory.DramModel`, cached per memory spec and row sequence; a program
repeating one pattern many times (a prefill matmul: one pattern per prompt token) is costed in
closed form past eight refresh intervals, as long streams are (:mod:`llmsim.memory.stream`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from llmsim.config.base import DType
from llmsim.config.memory import DramSpec
from llmsim.devices.pim_map import (
    Geometry,
    Program,
    ProgramClass,
    context_classes,
    context_programs,
    mac_requests,
    program_classes,
    score_classes,
    score_programs,
)
from llmsim.memory import DramModel, DramStats, Requests


@functools.lru_cache(maxsize=16)
def _dram_model(spec: DramSpec) -> DramModel:
    return DramModel(spec)


def _program_stats_exact(spec: DramSpec, rows: tuple[int, ...]) -> DramStats:
    """Every DRAM command of one channel program, on a one-channel copy of the memory: the model
    refreshes every channel it has, busy or idle, and the caller scales this one channel by the
    channel count."""
    op, row = mac_requests(rows, spec.rows)
    zeros = np.zeros(len(op), np.int64)
    return _dram_model(spec.model_copy(update={"channels": 1})).run(Requests(op, zeros, zeros, zeros, row))


PERIODIC_MIN_REPS = 8  # a program repeating one pattern at least this often may be extrapolated


def _period(rows: tuple[int, ...]) -> int:
    """Length of the shortest pattern ``rows`` is a whole number of repeats of."""
    n = len(rows)
    for p in range(1, n // 2 + 1):
        if n % p == 0 and rows[:n - p] == rows[p:]:
            return p
    return n


@functools.lru_cache(maxsize=4096)
def _program_stats(spec: DramSpec, rows: tuple[int, ...]) -> DramStats:
    """DRAM stats of one channel program (cached per memory spec and row sequence).

    A program that repeats one pattern ``reps`` times (a prefill matmul: one pattern per prompt
    token) is costed in closed form, as a long stream is (:mod:`llmsim.memory.stream`): the
    simulated ``m0`` and ``2·m0`` repeats, with ``m0`` repeats lasting at least eight refresh
    intervals so refresh is sampled fairly, extrapolated at the measured rate per repeat.
    ``tests/test_pim_program.py`` checks it against the full simulation."""
    p = _period(rows)
    reps = len(rows) // p
    if reps >= PERIODIC_MIN_REPS:
        unit = rows[:p]
        one = _program_stats_exact(spec, unit)
        m0 = max(1, math.ceil(8 * spec.timing.tREFI * spec.tck_s / one.seconds)) if one.seconds else 1
        if 2 * m0 < reps:
            a = _program_stats_exact(spec, unit * m0)
            b = _program_stats_exact(spec, unit * (2 * m0))
            return _extrapolate(a, b, m0, reps)
    return _program_stats_exact(spec, rows)


def _extrapolate(a: DramStats, b: DramStats, m0: int, reps: int) -> DramStats:
    """Stats of ``reps`` repeats from those of ``m0`` (a) and ``2·m0`` (b)."""
    x = (reps - 2 * m0) / m0

    def lin(u, v):
        return v + x * (v - u)

    return DramStats(
        cycles=round(lin(a.cycles, b.cycles)), seconds=lin(a.seconds, b.seconds), bytes=round(lin(a.bytes, b.bytes)),
        commands={k: round(lin(a.commands.get(k, 0), v)) for k, v in b.commands.items()},
        row_hits=round(lin(a.row_hits, b.row_hits)), row_misses=round(lin(a.row_misses, b.row_misses)),
        energy_j={k: lin(a.energy_j.get(k, 0.0), v) for k, v in b.energy_j.items()})


@functools.lru_cache(maxsize=256)
def _kv_write_stats(m: DramSpec, rows: int, width: int, kb: int, row_elems: int) -> DramStats:
    """DRAM stats of appending ``rows`` K/V vectors of ``width`` elements (``kb`` bursts of K each)."""
    v = np.arange(width, dtype=np.int64)
    ch, bank, vrow = v % m.channels, (v // m.channels) % m.banks, v // (m.channels * m.banks)
    parts = []
    for r in range(rows):
        kr = np.arange(kb, dtype=np.int64)
        parts.append((kr % m.channels, np.zeros(kb, np.int64), (r + kr // (m.channels * row_elems)) % m.rows))
        parts.append((ch, bank, (1 + rows + vrow) % m.rows))
    c = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    rw = np.concatenate([p[2] for p in parts])
    return _dram_model(m).run(Requests(np.ones(len(c), np.int64), c, b // m.banks_per_group % m.bank_groups,
                                     b % m.banks_per_group, rw))


def _run_programs(mem: DramSpec, progs: list[Program], dtype: DType, out_bytes: float
                  ) -> tuple[float, DramStats, float]:
    """(seconds of the slowest channel, all channels' DRAM stats, channel-bus bytes) of one program per channel."""
    return _run_classes(mem, program_classes(progs), dtype, out_bytes)


def _run_classes(mem: DramSpec, classes: list[ProgramClass], dtype: DType, out_bytes: float
                 ) -> tuple[float, DramStats, float]:
    """:func:`_run_programs` of channel programs given as classes of equal programs."""
    worst, total, bus = 0.0, None, 0.0
    for p in classes:
        k = p.count
        s = _program_stats(mem, p.rows) if p.rows else None
        nbytes = p.gb_elems * dtype.bytes + p.out_elems * out_bytes
        worst = max(worst, (s.seconds if s else 0.0) + nbytes / mem.channel_bandwidth_bytes_per_s)
        bus += k * nbytes
        if s:
            total = _scale(s, k) if total is None else total + _scale(s, k)
    return worst, total, bus


@functools.lru_cache(maxsize=8192)
def _attention_banks(mem: DramSpec, g: Geometry, H: int, skv: int, D: int, dtype: DType, vectors: int = 1) -> tuple:
    """Bank side of one query over ``skv`` keys: (scores run, context run, ASIC partial-sum adds),
    each run as :func:`_run_programs` returns it (cached: it depends on the memory and the shape only).
    ``H``: head passes over the K/V rows, each feeding ``vectors`` query vectors. The channel
    programs come as classes in closed form (:func:`~llmsim.devices.pim_map.score_classes`);
    :func:`_attention_banks_programs` builds them one per channel and gives the same result
    (``tests/test_pim_attention.py``)."""
    ctx, adds = context_classes(H, skv, D, g, vectors)
    return (_run_classes(mem, score_classes(H, skv, D, g, vectors), dtype, dtype.bytes),
            _run_classes(mem, ctx, dtype, dtype.bytes), adds)


def _attention_banks_programs(mem: DramSpec, g: Geometry, H: int, skv: int, D: int, dtype: DType,
                              vectors: int = 1) -> tuple:
    """:func:`_attention_banks` from one :class:`Program` per channel (the reference it is tested against)."""
    ps = [Program() for _ in range(g.channels)]
    score_programs(H, skv, D, g, ps, vectors)
    pc = [Program() for _ in range(g.channels)]
    adds = context_programs(H, skv, D, g, pc, vectors)
    return _run_programs(mem, ps, dtype, dtype.bytes), _run_programs(mem, pc, dtype, dtype.bytes), adds


def _scale(s: DramStats, k: int) -> DramStats:
    return DramStats(s.cycles, s.seconds, s.bytes * k, {n: v * k for n, v in s.commands.items()}, s.row_hits * k,
                     s.row_misses * k, {n: v * k for n, v in s.energy_j.items()})
