"""Replaying a recorded simpy schedule with new phase durations, many steps at once.

A simpy run of a segment decides, for every unit, the order in which phases are granted. Every
unit has capacity 1 and grants first-come first-served, so given that order the times follow
from a max-plus recurrence, the same additions and maxima simpy performs:

    request(p) = when p's op may go on (its previous phase ended, or its predecessors were
                 issued / done, exactly as ``simulate._run_segment`` waits)
    start(p)   = max(request(p), end of the phase granted before p on p's unit)
    end(p)     = start(p) + seconds(p)

Phases are visited in the recorded grant order, which is causal (a phase's dependencies were
granted before it), so each step is a handful of NumPy operations per phase over all steps.

The replay is exact only while the order is the one simpy would pick. :func:`replay` therefore
returns, per step, whether on every unit the request times along the recorded order are
non-decreasing, with ties only where the recorded run had the same tie (simpy breaks ties by
event order, which the recorded run fixed). A step that fails is simulated again by simpy.
Schedules whose units have a capacity above 1 are not replayed at all (:func:`replayable`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Schedule:
    """The grant order of one segment's simpy run and what the recurrence needs besides."""

    n_ops: int
    preds: list[list[int]]          # local predecessor indices per op
    units: list[list[str]]          # unit of each phase, per op
    n_issue: list[int]              # leading issue phases per op
    any_issue: bool
    grants: list[tuple[int, int]]   # (op, phase) in grant order
    recorded_req: np.ndarray | None = None  # request times of the recorded run, in grant order


def replayable(units_cap: dict[str, int]) -> bool:
    return all(c == 1 for c in units_cap.values())


def replay(s: Schedule, seconds: list[list[np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                           np.ndarray]:
    """Times of every phase over ``n`` steps. ``seconds[op][phase]``: array (n,) of durations.

    Returns (start, end) of shape (phases in grant order, n), the request times in grant order,
    and a boolean (n,) array: the step's order is the one simpy picks."""
    zero = np.zeros(n)
    issued: list[np.ndarray | None] = [None] * s.n_ops
    done: list[np.ndarray | None] = [None] * s.n_ops
    ends: dict[tuple[int, int], np.ndarray] = {}

    def issue_ready(v: int) -> np.ndarray:
        return _max([issued_t(p) for p in s.preds[v]], zero)

    def done_ready(v: int) -> np.ndarray:
        return _max([done_t(p) for p in s.preds[v]], zero)

    def issued_t(v: int) -> np.ndarray:
        if issued[v] is None:
            issued[v] = ends[(v, s.n_issue[v] - 1)] if s.n_issue[v] else issue_ready(v)
        return issued[v]

    def done_t(v: int) -> np.ndarray:
        if done[v] is None:
            k = len(s.units[v])
            if k > s.n_issue[v]:
                done[v] = ends[(v, k - 1)]
            else:
                done[v] = np.maximum(issued_t(v), done_ready(v)) if s.any_issue else done_ready(v)
        return done[v]

    free: dict[str, np.ndarray] = {}
    G = len(s.grants)
    start, end, req = np.empty((G, n)), np.empty((G, n)), np.empty((G, n))
    for i, (v, j) in enumerate(s.grants):
        if j < s.n_issue[v]:
            r = ends[(v, j - 1)] if j else issue_ready(v)
        elif j == s.n_issue[v]:
            r = np.maximum(issued_t(v), done_ready(v)) if s.any_issue else done_ready(v)
        else:
            r = ends[(v, j - 1)]
        u = s.units[v][j]
        t0 = np.maximum(r, free[u]) if u in free else r
        t1 = t0 + seconds[v][j]
        free[u] = t1
        ends[(v, j)] = t1
        start[i], end[i], req[i] = t0, t1, r
    ok = np.ones(n, dtype=bool)
    by_unit: dict[str, list[int]] = {}
    for i, (v, j) in enumerate(s.grants):
        by_unit.setdefault(s.units[v][j], []).append(i)
    for idx in by_unit.values():
        if len(idx) < 2:
            continue
        r = req[idx]
        d = r[1:] - r[:-1]
        ok &= (d >= 0).all(axis=0)
        if s.recorded_req is not None:
            rec = s.recorded_req[idx]
            tied = (rec[1:] == rec[:-1])[:, None]
            ok &= ((d > 0) | tied).all(axis=0)
    return start, end, req, ok


def _max(arrs: list[np.ndarray], zero: np.ndarray) -> np.ndarray:
    if not arrs:
        return zero
    out = arrs[0]
    for a in arrs[1:]:
        out = np.maximum(out, a)
    return out


def attribution(s: Schedule, recorded: list[tuple[float, float]], start: np.ndarray, end: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~llmsim.engine.simulate._attribute` over many replayed steps at once.

    At every instant the active ops share it equally; between consecutive phase edges (starts and
    ends) the active set is fixed, so while the edges keep the order of the recorded run (its
    ``(start, end)`` per grant) each op's share is a fixed combination of the gaps between edges.
    Returns (share (n_ops, n), idle (n,), ok (n,)): ``ok`` is False for steps whose edges come in
    another order (the caller attributes those one by one)."""
    n = start.shape[1]
    # edges in the recorded order: by time, ends before starts (as _attribute sorts), then grant
    edges = sorted([(t0, 1, g) for g, (t0, _) in enumerate(recorded)] + [(t1, -1, g) for g, (_, t1) in
                                                                          enumerate(recorded)])
    if not edges:
        return np.zeros((s.n_ops, n)), np.zeros(n), np.ones(n, dtype=bool)
    times = np.stack([start[g] if d > 0 else end[g] for _, d, g in edges])       # (m, n)
    gaps = np.diff(times, axis=0)                                                  # (m - 1, n)
    ok = (gaps >= 0).all(axis=0) & (times[0] >= 0)
    weight = np.zeros((s.n_ops, len(edges) - 1))
    empty = np.zeros(len(edges) - 1)
    count = [0] * s.n_ops
    for j, (_, d, g) in enumerate(edges[:-1]):
        count[s.grants[g][0]] += d
        active = [i for i, c in enumerate(count) if c > 0]
        if active:
            weight[active, j] = 1.0 / len(active)
        else:
            empty[j] = 1.0
    return weight @ gaps, times[0] + empty @ gaps, ok
