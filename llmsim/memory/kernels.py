"""The jitted DRAM command scheduler: requests in, timed commands out.

One scheduler (:func:`simulate`) enforces every timing constraint from one table (see
:mod:`llmsim.memory.timing`); it knows no device numbers. ``_earliest`` and ``_issue`` are its two
helpers. All three are pure functions of arrays and scalars; the plain-Python twin is the same
code run with ``NUMBA_DISABLE_JIT=1`` (tests compare them bit for bit).

Scheduling policy (per channel, documented in docs/memory.md):
  * column commands (RD, WR, MAC_AB) issue in request order on the column command bus;
  * row commands (ACT, PRE, ACT_AB, PRE_AB, REF) use a separate row command bus (HBM and GDDR6
    have separate row/column command pins; for DDR4/5 this is an approximation). They start in
    request order -- the first row command of request i issues after the first of request i-1 --
    but a request's ACT may follow later (its PRE waits tRP) while the next request's PRE goes
    ahead, so PRE->ACT gaps of different banks overlap. Two row commands of different requests
    may share a cycle (bus slot conflicts are not modelled). Row commands run ahead of the column
    bus by at most ``queue_depth`` requests: those of request i wait for the column command of
    request i - queue_depth of the same channel;
  * each command issues at the earliest cycle that satisfies every constraint and its bus;
  * all-bank refresh is due every tREFI: open banks are precharged, REF issued, tRFC blocks all.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Command and request codes; the order is the column order of the timing table.
ACT, PRE, RD, WR, REF, ACT_AB, MAC_AB, PRE_AB = range(8)
N_CMD = 8
OP_READ, OP_WRITE, OP_MAC = 0, 1, 2
GEN_ARRAYS, GEN_SEQUENTIAL, GEN_RANDOM = 0, 1, 2
NEVER = -(10**12)

_MASK31 = 0x7FFFFFFF


@njit(cache=True)
def hash31(i: int, seed: int, salt: int) -> int:
    """A 31-bit integer hash, identical in Numba, Python and NumPy int64 (no overflow)."""
    h = ((i & _MASK31) * 2654435761 + (i >> 31) * 97 + seed * 40503 + salt * 7919) & _MASK31
    h ^= h >> 15
    h = (h * 2246822519) & _MASK31
    h ^= h >> 13
    h = (h * 3266489917) & _MASK31
    h ^= h >> 16
    return h


@njit(cache=True)
def _earliest(hist, c, cmd, b, cons, cstart, off, div, cnt):
    """Earliest cycle allowed by the constraint table for ``cmd`` on bank ``b`` (-1: all banks)."""
    t = 0
    for k in range(cstart[cmd], cstart[cmd + 1]):
        lvl = cons[k, 0]
        p = cons[k, 1]
        lat = cons[k, 2]
        w = cons[k, 3]
        if b >= 0:
            lo = off[lvl] + b // div[lvl]
            hi = lo + 1
        else:
            lo = off[lvl]
            hi = lo + cnt[lvl]
        for node in range(lo, hi):
            v = hist[c, node, p, w - 1] + lat
            t = max(t, v)
    return t


@njit(cache=True)
def _issue(hist, c, cmd, b, t, off, div, cnt, counts, trace, ntrace):
    """Record ``cmd`` at cycle ``t`` in the history of every node it touches (and the trace)."""
    depth = hist.shape[3]
    for lvl in range(4):
        if b >= 0:
            lo = off[lvl] + b // div[lvl]
            hi = lo + 1
        else:
            lo = off[lvl]
            hi = lo + cnt[lvl]
        for node in range(lo, hi):
            for k in range(depth - 1, 0, -1):
                hist[c, node, cmd, k] = hist[c, node, cmd, k - 1]
            hist[c, node, cmd, 0] = t
    counts[cmd] += 1
    n = ntrace[0]
    if n < trace.shape[0]:
        trace[n, 0] = t
        trace[n, 1] = cmd
        trace[n, 2] = c
        trace[n, 3] = b
        ntrace[0] = n + 1


@njit(cache=True)
def simulate(op, chan, bank, row, n_req, gen, seed, cons, cstart, geom, params, trace):
    """Schedule ``n_req`` requests; return (cycles, counts[8], row_hits, row_misses, n_trace).

    Requests come from the arrays ``op, chan, bank, row`` (``gen`` = 0) or are generated for a
    sequential (1) or random (2) stream of op ``params[6]`` (see docs/memory.md for the mapping).
    ``cons`` rows are (level, preceding cmd, latency cycles, window) sorted by following command,
    rows of command k being ``cstart[k]:cstart[k+1]``. ``geom`` = (channels, banks, banks per
    group, banks per rank, bursts per row, rows, bank groups per rank, ranks); ``params`` = (CL,
    CWL, nBL, tREFI or 0 for no refresh, closed page 0/1, queue depth, generated op). ``trace``
    (m x 4: cycle, cmd, channel, bank or -1) receives the first m commands.
    """
    C, B, BPG, BPR, BPROW, ROWS, G, R = geom[0], geom[1], geom[2], geom[3], geom[4], geom[5], geom[6], geom[7]
    CL, CWL, NBL, TREFI, CLOSED, Q, GEN_OP = params[0], params[1], params[2], params[3], params[4], params[5], params[6]
    NG = B // BPG
    off = np.array([0, B, B + NG, B + NG + R], dtype=np.int64)
    div = np.array([1, BPG, BPR, B], dtype=np.int64)
    cnt = np.array([B, NG, R, 1], dtype=np.int64)
    window = 1
    for k in range(cons.shape[0]):
        window = max(window, cons[k, 3])
    hist = np.full((C, B + NG + R + 1, 8, window), NEVER, dtype=np.int64)
    open_row = np.full((C, B), -1, dtype=np.int64)
    row_free = np.zeros(C, dtype=np.int64)
    col_free = np.zeros(C, dtype=np.int64)
    done = np.zeros(C, dtype=np.int64)
    next_ref = np.full(C, TREFI, dtype=np.int64)
    qring = np.zeros((C, Q), dtype=np.int64)
    qcount = np.zeros(C, dtype=np.int64)
    counts = np.zeros(8, dtype=np.int64)
    ntrace = np.zeros(1, dtype=np.int64)
    hits = 0
    misses = 0
    for i in range(n_req):
        if gen == 0:
            o = op[i]
            c = chan[i]
            b = bank[i]
            r = row[i]
        elif gen == 1:  # row : rank : bank : column : bankgroup : channel (MSB -> LSB)
            o = GEN_OP
            x = i
            c = x % C
            x //= C
            g = x % G
            x //= G
            x //= BPROW
            bk = x % BPG
            x //= BPG
            rk = x % R
            x //= R
            r = x % ROWS
            b = (rk * G + g) * BPG + bk
        else:
            o = GEN_OP
            h2 = hash31(i, seed, 2)
            r = hash31(i, seed, 1) % ROWS
            c = h2 % C
            b = (h2 // C) % B
        qi = qcount[c] % Q
        gate = qring[c, qi] if qcount[c] >= Q else 0
        if TREFI > 0:
            while max(row_free[c], col_free[c], gate) >= next_ref[c]:
                for bb in range(B):
                    if open_row[c, bb] >= 0:
                        t = max(_earliest(hist, c, PRE, bb, cons, cstart, off, div, cnt), row_free[c])
                        _issue(hist, c, PRE, bb, t, off, div, cnt, counts, trace, ntrace)
                        row_free[c] = t + 1
                        open_row[c, bb] = -1
                t = max(_earliest(hist, c, REF, -1, cons, cstart, off, div, cnt), row_free[c], next_ref[c])
                _issue(hist, c, REF, -1, t, off, div, cnt, counts, trace, ntrace)
                row_free[c] = t + 1
                next_ref[c] += TREFI
        if o == OP_MAC:
            allhit = True
            anyopen = False
            for bb in range(B):
                if open_row[c, bb] != r:
                    allhit = False
                if open_row[c, bb] >= 0:
                    anyopen = True
            if allhit:
                hits += 1
            else:
                misses += 1
                if anyopen:
                    t = max(_earliest(hist, c, PRE_AB, -1, cons, cstart, off, div, cnt), row_free[c], gate)
                    _issue(hist, c, PRE_AB, -1, t, off, div, cnt, counts, trace, ntrace)
                    row_free[c] = t + 1
                t = max(_earliest(hist, c, ACT_AB, -1, cons, cstart, off, div, cnt), row_free[c], gate)
                _issue(hist, c, ACT_AB, -1, t, off, div, cnt, counts, trace, ntrace)
                row_free[c] = t + 1
                for bb in range(B):
                    open_row[c, bb] = r
            t = max(_earliest(hist, c, MAC_AB, -1, cons, cstart, off, div, cnt), col_free[c], gate)
            _issue(hist, c, MAC_AB, -1, t, off, div, cnt, counts, trace, ntrace)
            col_free[c] = t + 1
            end = t + CL + NBL
            if CLOSED:
                t2 = max(_earliest(hist, c, PRE_AB, -1, cons, cstart, off, div, cnt), row_free[c])
                _issue(hist, c, PRE_AB, -1, t2, off, div, cnt, counts, trace, ntrace)
                row_free[c] = t2 + 1
                for bb in range(B):
                    open_row[c, bb] = -1
        else:
            if open_row[c, b] == r:
                hits += 1
            else:
                misses += 1
                first = -1
                if open_row[c, b] >= 0:
                    t = max(_earliest(hist, c, PRE, b, cons, cstart, off, div, cnt), row_free[c], gate)
                    _issue(hist, c, PRE, b, t, off, div, cnt, counts, trace, ntrace)
                    first = t
                t = max(_earliest(hist, c, ACT, b, cons, cstart, off, div, cnt), row_free[c], gate, first + 1)
                _issue(hist, c, ACT, b, t, off, div, cnt, counts, trace, ntrace)
                # the next request's row commands may start right after this request's first one
                row_free[c] = (first if first >= 0 else t) + 1
                open_row[c, b] = r
            cmd = WR if o == OP_WRITE else RD
            t = max(_earliest(hist, c, cmd, b, cons, cstart, off, div, cnt), col_free[c], gate)
            _issue(hist, c, cmd, b, t, off, div, cnt, counts, trace, ntrace)
            col_free[c] = t + 1
            end = t + (CWL if o == OP_WRITE else CL) + NBL
            if CLOSED:
                t2 = max(_earliest(hist, c, PRE, b, cons, cstart, off, div, cnt), row_free[c])
                _issue(hist, c, PRE, b, t2, off, div, cnt, counts, trace, ntrace)
                row_free[c] = t2 + 1
                open_row[c, b] = -1
        done[c] = max(done[c], end)
        qring[c, qi] = t
        qcount[c] += 1
    return done.max(), counts, hits, misses, ntrace[0]
