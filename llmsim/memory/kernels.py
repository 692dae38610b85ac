"""The jitted DRAM memory controller: requests in, timed commands out.

One controller (:func:`simulate`) enforces every timing constraint from one table (see
:mod:`llmsim.memory.timing`); it knows no device numbers. Its helpers: ``_channel`` (one channel's
state) and ``_serve`` (its cycle loop), ``_pick`` (the FR-FCFS choice), ``_cands`` (a bank's
candidate commands), ``_issue`` / ``_issue_bank`` (record a command and propagate its constraints),
``_arrive`` (front end), ``_refresh_idle`` and ``_mac``. All are pure functions of arrays and
scalars; the plain-Python twin is the same code run with ``NUMBA_DISABLE_JIT=1`` (tests compare them
bit for bit, and tests/test_dram_pinned.py pins exact results and trace digests).

Controller (per channel, the structure of DRAMsim3's ``Controller``; docs/memory.md):
  * a front end hands requests over in order while the read queue / write buffer has room;
  * each cycle: a due refresh first (its banks' queues frozen, open banks precharged, then REF),
    else the round-robin scan over per-bank command queues picks the first bank with a ready
    command: FR-FCFS inside a bank (the oldest row hit first; a row miss precharges only from the
    head of its queue, and only when no queued request hits the open row or the row has already
    served ``row_hit_cap`` hits); ``fcfs`` serves only each queue's head. With two command buses
    (separate row and column pins) a second command of the other kind may issue in the same cycle;
  * then one request moves from the read queue (or, while draining, the write buffer) into its
    bank's command queue. A drain batch takes every write buffered when it starts; it starts when
    the buffer reaches the high watermark, or holds more than the low watermark while no command is
    queued, or when the stream has ended and only writes remain;
  * every constraint is kept per bank as ``ready[channel, cmd, bank]`` (earliest legal cycle): when
    a command issues, each table row it precedes raises the bound on every bank of the row's node
    (its bank, bank group, rank or channel, or the other ranks' banks), so a bank's earliest cycle
    for a command is one load. Windowed rows (tFAW) keep their command history per node.
How it stays fast without changing a command: each bank keeps the number of queued reads and writes
that hit its open row, so its candidates (ACT or PRE of the head, RD / WR of the first hit) and their
earliest cycles cost O(1) (``_cands``); a request is one packed word (row, bank, op; ``ROW_SHIFT``)
and the queues hold the words, so the scheduler never looks a request up through an index; each
bank keeps a lower bound of its next ready cycle, and the channel the least of them, so a cycle
scans the banks only when one may be ready, and then visits only those whose bound has come (found
by a branch-free mask, in round-robin order); the read queue and write buffer are per-bank FIFOs of
arrival positions, so the oldest request whose bank has room is a branch-free minimum, found once a
cycle (the bank found when deciding whether the next cycle is busy is the one the mover takes then,
unless a full command queue gained room or a drain started); a bank command's constraint rows are
precomputed per bank as (bank range, latency) triples, rows over the same range merged, each
applied by a vector max; and the loop jumps straight to the next cycle in which anything can happen
(a command, a refresh step, a request moving or arriving) instead of stepping cycle by cycle.
PIM all-bank requests (MAC) run in order once every queue is empty (``_mac``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Command and request codes; the order is the column order of the timing table.
ACT, PRE, RD, WR, REF, ACT_AB, MAC_AB, PRE_AB, REFB = range(9)
N_CMD = 9
N_LEVELS = 5  # bank, bank_group, rank, channel, other ranks of the channel
OP_READ, OP_WRITE, OP_MAC = 0, 1, 2
GEN_ARRAYS, GEN_SEQUENTIAL, GEN_RANDOM = 0, 1, 2
NEVER = -(10**12)
INF = 1 << 62
# address fields of a mapping (llmsim.memory.dram.MAPPING_FIELDS)
F_CH, F_RA, F_BG, F_BA, F_RO, F_CO = range(6)
# params indices
(P_CL, P_CWL, P_NBL, P_REFRESH, P_PAGE, P_SCHED, P_RQ, P_WQ, P_BQ, P_WHI, P_WLO, P_HITCAP, P_BUSES,
 P_REF_INTERVAL, P_REF_MODE, P_GEN_OP, P_SPAN) = range(17)
PAGE_OPEN, PAGE_CLOSED, PAGE_ADAPTIVE = 0, 1, 2
REF_ALL_BANK, REF_PER_BANK, REF_SAME_BANK = 0, 1, 2  # refresh modes (params[P_REF_MODE])

_MASK31 = 0x7FFFFFFF
# a request as one int64, (row << ROW_SHIFT) | (bank << 2) | op: the front end, the queues and the
# scheduler read one word instead of three arrays through an index (simulate packs them by channel)
ROW_SHIFT = 18
BANK_MASK = (1 << (ROW_SHIFT - 2)) - 1


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


@njit(cache=True, _nrt=False, inline="always")
def _ready(ready, b, cmd):
    """Earliest cycle the table allows ``cmd`` on bank ``b`` (``ready[cmd, b]``: every row that covers
    the bank has raised it when its preceding command issued)."""
    return ready[cmd, b]


@njit(cache=True, _nrt=False)
def _ready_all(ready, lo, hi, step, cmd):
    """Earliest cycle for ``cmd`` on every bank of ``range(lo, hi, step)`` at once (REF, all-bank commands)."""
    v = 0
    for b in range(lo, hi, step):
        v = max(v, ready[cmd, b])
    return v


@njit(cache=True, _nrt=False, inline="always")
def _raise(flat, lo, hi, v):
    """``flat[lo:hi] = max(flat[lo:hi], v)`` (a view, so the loop runs on vector loads and stores)."""
    seg = flat[lo:hi]
    for x in range(seg.shape[0]):
        seg[x] = max(seg[x], v)


@njit(cache=True, _nrt=False, inline="always")
def _cover(lvl, b, span, B):
    """The banks a row of level ``lvl`` covers from bank ``b``, as two ranges ``lo1:hi1``, ``lo2:hi2``:
    its bank, bank group, rank or channel (``span[b, lvl]``; the second range empty), or the banks of
    the other ranks (``lvl`` 4: those before and after its rank's)."""
    if lvl == 4:
        return 0, span[b, 2, 0], span[b, 2, 1], B
    return span[b, lvl, 0], span[b, lvl, 1], 0, 0


@njit(cache=True, _nrt=False, inline="always")
def _raise_node(flat, B, nxt, lvl, b, span, v):
    """Raise ``nxt``'s bound to ``v`` on the banks a row of level ``lvl`` covers from bank ``b``."""
    lo1, hi1, lo2, hi2 = _cover(lvl, b, span, B)
    _raise(flat, nxt * B + lo1, nxt * B + hi1, v)
    if hi2 > lo2:
        _raise(flat, nxt * B + lo2, nxt * B + hi2, v)


@njit(cache=True, _nrt=False)
def _issue(nodes, span, c, cmd, lo, hi, step, t, ready, hist, rows, pstart, whist, counts, trace, ntrace):
    """Record ``cmd`` on banks ``range(lo, hi, step)`` of channel ``c`` at cycle ``t`` and raise the bounds of the
    banks it constrains by every table row it precedes (``whist[cmd]``: keep its history for windowed
    rows such as tFAW, per node)."""
    depth = hist.shape[2]
    B = nodes.shape[0]
    flat = ready.reshape(-1)
    if whist[cmd]:
        for lvl in range(4):
            for b in range(lo, hi, step):
                h = nodes[b, lvl]
                if b > lo and h == nodes[b - step, lvl]:
                    continue
                for k in range(depth - 1, 0, -1):
                    hist[h, cmd, k] = hist[h, cmd, k - 1]
                hist[h, cmd, 0] = t
    for k in range(pstart[cmd], pstart[cmd + 1]):
        lvl, nxt, lat, w = rows[k, 0], rows[k, 1], rows[k, 2], rows[k, 3]
        col = 2 if lvl == 4 else lvl
        for b in range(lo, hi, step):
            h = nodes[b, col]
            if b > lo and h == nodes[b - step, col]:
                continue
            _raise_node(flat, B, nxt, lvl, b, span, (hist[h, cmd, w - 1] if w > 1 else t) + lat)
    counts[cmd] += 1
    n = ntrace[0]
    if n < trace.shape[0]:
        trace[n, 0] = t
        trace[n, 1] = cmd
        trace[n, 2] = c
        trace[n, 3] = -1 if hi - lo == nodes.shape[0] and step == 1 and cmd != REF else lo
        ntrace[0] = n + 1


@njit(cache=True, _nrt=False, inline="always")
def _issue_bank(nodes, span, c, cmd, b, t, flat, prog, hist, rows, pstart, whist, counts, trace, ntrace):
    """:func:`_issue` for one bank ``b``, inlined in the cycle loop: the windowed rows from the history,
    the others from ``prog[cmd, b]`` (a range of ``flat`` ready bounds and its latency; -1 ends),
    precomputed."""
    if whist[cmd]:
        depth = hist.shape[2]
        for lvl in range(4):
            h = nodes[b, lvl]
            for k in range(depth - 1, 0, -1):
                hist[h, cmd, k] = hist[h, cmd, k - 1]
            hist[h, cmd, 0] = t
        for k in range(pstart[cmd], pstart[cmd + 1]):
            w = rows[k, 3]
            if w > 1:
                lvl = rows[k, 0]
                h = nodes[b, 2] if lvl == 4 else nodes[b, lvl]
                _raise_node(flat, nodes.shape[0], rows[k, 1], lvl, b, span, hist[h, cmd, w - 1] + rows[k, 2])
    for j in range(prog.shape[2]):
        lo = prog[cmd, b, j, 0]
        if lo < 0:
            break
        _raise(flat, lo, prog[cmd, b, j, 1], t + prog[cmd, b, j, 2])
    counts[cmd] += 1
    n = ntrace[0]
    if n < trace.shape[0]:
        trace[n, 0] = t
        trace[n, 1] = cmd
        trace[n, 2] = c
        trace[n, 3] = -1 if nodes.shape[0] == 1 and cmd != REF else b
        ntrace[0] = n + 1


@njit(cache=True, _nrt=False)
def _ref_scope(k, mode, st, G):
    """Banks ``range(lo, hi, step)`` refreshed by refresh event ``k``: all banks of rank k % R
    (all-bank, ranks staggered); one bank, in the order bank group fastest, then bank, then rank
    (per-bank); or the same bank of every bank group of a rank, bank then rank (same-bank, DDR5's
    REFsb)."""
    B, BPG, BPR = st[0], st[1], st[2]
    if mode == REF_PER_BANK:
        j = k % B
        g = j % G
        j //= G
        ba = j % BPG
        r = j // BPG
        b = (r * G + g) * BPG + ba
        return b, b + 1, 1
    if mode == REF_SAME_BANK:
        j = k % (B // G)
        return j // BPG * BPR + j % BPG, j // BPG * BPR + BPR, BPG
    r = k % (B // BPR)
    return r * BPR, r * BPR + BPR, 1


@njit(cache=True, _nrt=False, inline="always")
def _cands(q, ready, open_row, bq, nhit, hitc, fr_fcfs, hitcap):
    """Earliest cycles of bank ``q``'s candidate commands (its queue non-empty): (e0, e_rd, e_wr), INF
    where a command is no candidate. e0 is the ACT of the head's row when the bank is closed, else the
    PRE of a head that misses the open row and may precharge (FR-FCFS: not while the row has queued
    hits, ``nhit``, unless it has served ``hitcap``); e_rd / e_wr the RD / WR of the queued hits
    (``fcfs``: of the head only)."""
    r_open = open_row[q]
    if r_open < 0:
        return _ready(ready, q, ACT), INF, INF
    e0 = e_rd = e_wr = INF
    if fr_fcfs:
        if bq[q, 0] >> ROW_SHIFT != r_open and (hitc[q] >= hitcap or nhit[q, 0] + nhit[q, 1] == 0):
            e0 = _ready(ready, q, PRE)
        if nhit[q, 0] > 0:
            e_rd = _ready(ready, q, RD)
        if nhit[q, 1] > 0:
            e_wr = _ready(ready, q, WR)
    else:
        x = bq[q, 0]
        if x >> ROW_SHIFT != r_open:
            e0 = _ready(ready, q, PRE)
        elif x & 3 == OP_WRITE:
            e_wr = _ready(ready, q, WR)
        else:
            e_rd = _ready(ready, q, RD)
    return e0, e_rd, e_wr


_DEBRUIJN = 0x022FDD63CC95386D
_DEBRUIJN_BIT = np.array([0, 1, 2, 53, 3, 7, 54, 27, 4, 38, 41, 8, 34, 55, 48, 28, 62, 5, 39, 46, 44, 42, 22, 9, 24, 35,
                          59, 56, 49, 18, 29, 11, 63, 52, 6, 26, 37, 40, 33, 47, 61, 45, 43, 21, 23, 58, 17, 10, 51, 25,
                          36, 32, 60, 20, 57, 16, 50, 31, 19, 15, 30, 14, 13, 12], dtype=np.int64)


@njit(cache=True, _nrt=False, inline="always")
def _lowest_bit(m):
    """Index of the lowest set bit of a non-zero 64-bit mask (de Bruijn; the same in Python ints)."""
    return _DEBRUIJN_BIT[(((m & -m) * _DEBRUIJN) >> 58) & 63]


@njit(cache=True, _nrt=False, inline="always")
def _pick(t, bq, nbq, nb, open_row, nhit, hitc, ready, rr, frz_lo, frz_hi, frz_st, fr_fcfs, hitcap, nodes, due,
          again):
    """First bank (round robin after ``rr``) with a command ready at ``t``: (bank, cmd, entry, rr, next),
    bank -1 if none, ``next`` then the earliest cycle any queued bank may have one. FR-FCFS inside a
    bank: its first queued entry with a ready command (the head's ACT or PRE, or a row hit's RD/WR).
    Banks ``range(frz_lo, frz_hi, frz_st)`` (refreshing) are skipped; ``nb`` (a lower bound of each bank's next ready
    cycle, INF for an empty queue) is tightened for banks that have nothing ready. The banks that
    may be ready (``nb`` <= t) are first marked in ``due``, 64 banks a word, by loops without
    branches; then visited in round-robin order, each unmarked when visited. ``again``: a second pick
    in the same cycle after bank ``rr`` issued, which continues the first one's visit (the banks it
    found not ready stay so) with bank ``rr`` marked again if its new bound allows; its ``next`` is not
    a bound then."""
    B = nodes.shape[0]
    nxt = INF
    if again:
        if nb[rr] <= t:
            due[rr >> 6] |= 1 << (rr & 63)
    else:
        for w in range(due.shape[0]):
            m = 0
            nbw = nb[w * 64:min(B, w * 64 + 64)]  # a view: indices from 0, so plain vector loads
            for j in range(nbw.shape[0]):
                v = nbw[j]
                m |= int(v <= t) << j
                nxt = min(nxt, v if v > t else INF)
            due[w] = m
        for b in range(frz_lo, frz_hi, frz_st):
            due[b >> 6] &= ~(1 << (b & 63))
    s = rr + 1 if rr + 1 < B else 0
    ws = s >> 6
    for j in range(due.shape[0] + 1):  # words from the one holding s, wrapping; that word twice
        w = ws + j
        if w >= due.shape[0]:
            w -= due.shape[0]
        m = due[w]
        if j == 0:
            m &= -1 << (s & 63)  # banks s.. of the first word
        elif j == due.shape[0]:
            m &= ~(-1 << (s & 63))  # then the banks before s
        while m != 0:
            k = _lowest_bit(m)
            m &= m - 1
            due[w] &= ~(1 << k)
            q = w * 64 + k
            e0, e_rd, e_wr = _cands(q, ready, open_row, bq, nhit, hitc, fr_fcfs, hitcap)
            if e0 <= t:
                return q, (ACT if open_row[q] < 0 else PRE), 0, q, 0
            if e_rd <= t or e_wr <= t:
                r_open = open_row[q]
                for kk in range(nbq[q]):
                    x = bq[q, kk]
                    if x >> ROW_SHIFT == r_open and (e_wr <= t if x & 3 == OP_WRITE else e_rd <= t):
                        return q, (WR if x & 3 == OP_WRITE else RD), kk, q, 0
            best = min(e0, e_rd, e_wr)
            nb[q] = best
            nxt = min(nxt, best)
    return -1, -1, -1, rr, nxt


@njit(cache=True, _nrt=False)
def _refresh_idle(c, t, kref, T, mode, interval, G, st, nodes, span, whist, open_row, ready, hist, rows, pstart,
                  counts, trace, ntrace):
    """Issue every refresh event of channel ``c`` due by cycle ``T`` from cycle ``t`` on (no traffic):
    PRE of its open banks, then the REF. Returns the next unissued event."""
    while (kref + 1) * interval <= T:
        lo, hi, step = _ref_scope(kref, mode, st, G)
        t = max(t, (kref + 1) * interval)
        for b in range(lo, hi, step):
            if open_row[b] >= 0:
                t = max(t, _ready(ready, b, PRE))
                _issue(nodes, span, c, PRE, b, b + 1, 1, t, ready, hist, rows, pstart, whist, counts, trace, ntrace)
                open_row[b] = -1
                t += 1
        cmd = REF if mode == REF_ALL_BANK else REFB
        t = max(t, _ready_all(ready, lo, hi, step, cmd))
        _issue(nodes, span, c, cmd, lo, hi, step, t, ready, hist, rows, pstart, whist, counts, trace, ntrace)
        t += 1
        kref += 1
    return kref


@njit(cache=True, _nrt=False)
def _mac(c, t, r, closed, open_row, ready, hist, rows, pstart, counts, trace, ntrace, st, nodes, span, whist):
    """One PIM all-bank request (row ``r`` of every bank) from cycle ``t``, in order: PRE_AB if a
    different row is open, ACT_AB, MAC_AB (PRE_AB after it with a closed page). Returns (next
    free cycle, data end cycle, hit)."""
    B = st[0]
    allhit = True
    anyopen = False
    for b in range(B):
        if open_row[b] != r:
            allhit = False
        if open_row[b] >= 0:
            anyopen = True
    if not allhit:
        for cmd in (PRE_AB, ACT_AB):
            if cmd == PRE_AB and not anyopen:
                continue
            t = max(t, _ready_all(ready, 0, B, 1, cmd))
            _issue(nodes, span, c, cmd, 0, B, 1, t, ready, hist, rows, pstart, whist, counts, trace, ntrace)
            t += 1
        for b in range(B):
            open_row[b] = r
    t = max(t, _ready_all(ready, 0, B, 1, MAC_AB))
    _issue(nodes, span, c, MAC_AB, 0, B, 1, t, ready, hist, rows, pstart, whist, counts, trace, ntrace)
    tm = t
    t += 1
    if closed:
        t2 = max(tm, _ready_all(ready, 0, B, 1, PRE_AB))
        _issue(nodes, span, c, PRE_AB, 0, B, 1, t2, ready, hist, rows, pstart, whist, counts, trace, ntrace)
        for b in range(B):
            open_row[b] = -1
    return t, tm, allhit


@njit(cache=True, _nrt=False, inline="always")
def _fifo_first(fk, nbq, BQ):
    """The bank whose buffered request came first (``fk``: front-end position of the head of each
    bank's FIFO, INF if empty) among banks whose command queue has room; -1 if none."""
    best = INF
    for b in range(fk.shape[0]):
        best = min(best, fk[b] if nbq[b] < BQ else INF)
    if best == INF:
        return -1
    for b in range(fk.shape[0]):
        if fk[b] == best:
            return b
    return -1


@njit(cache=True, _nrt=False, inline="always")
def _arrive(p, n, pk, rqf, rqh, rqn, rqk, wqf, wqh, wqn, wqk, nbq, nrq, nwq, RQ, WQ, BQ):
    """Front end: requests ``pk[p:]`` into the read queue / write buffer (per-bank FIFOs of positions)
    in order while their queue has room, up to a MAC. Returns (p, nrq, nwq, whether one may move to
    its bank's command queue)."""
    unblock = False
    while p < n:
        x = pk[p]
        b = (x >> 2) & BANK_MASK
        o = x & 3
        if o == OP_WRITE:
            if nwq == WQ:
                break
            j = wqh[b] + wqn[b]
            wqf[b, j - WQ if j >= WQ else j] = p
            if wqn[b] == 0:
                wqk[b] = p
            wqn[b] += 1
            nwq += 1
        elif o == OP_READ:
            if nrq == RQ:
                break
            j = rqh[b] + rqn[b]
            rqf[b, j - RQ if j >= RQ else j] = p
            if rqn[b] == 0:
                rqk[b] = p
            rqn[b] += 1
            nrq += 1
        else:
            break
        p += 1
        if nbq[b] < BQ:
            unblock = True
    return p, nrq, nwq, unblock


@njit(cache=True)
def _channel(c, pk, p, ready, hist, open_row, rows, pstart, st, nodes, span, whist, G, params, counts, trace, ntrace,
             out, prog):
    """Run channel ``c``'s requests ``pk`` (packed, in order) to completion; ``out`` receives (data end cycle, hits,
    misses, next refresh event, last command cycle)."""
    B = st[0]
    RQ, WQ, BQ = params[P_RQ], params[P_WQ], params[P_BQ]
    # read queue and write buffer, kept as one FIFO per bank of front-end positions (their order is
    # the arrival order, so the oldest request whose bank has room is the least head of such banks)
    rqf = np.zeros((B, RQ), np.int64)
    wqf = np.zeros((B, WQ), np.int64)
    bq = np.zeros((B, BQ), np.int64)
    # per bank: read-queue head and length, write-buffer head and length, command-queue length, hits
    # served since the ACT, a lower bound of the cycle its next command is ready (INF: empty queue),
    # and the front-end positions at the heads of its read and write FIFOs (INF: empty)
    bs = np.zeros((9, B), np.int64)
    bs[6:] = INF
    nhit = np.zeros((B, 2), np.int64)
    due = np.zeros((B + 63) // 64, np.int64)
    _serve(c, pk, p, ready, ready.reshape(-1), prog, hist, open_row, rows, pstart, st, nodes, span, whist, G,
           params, counts, trace, ntrace, out, rqf, wqf, bq, bs[0], bs[1], bs[2], bs[3], bs[4], nhit, bs[5], bs[6], due,
           bs[7], bs[8])


@njit(cache=True, _nrt=False)
def _serve(c, pk, p, ready, flat, prog, hist, open_row, rows, pstart, st, nodes, span, whist, G, params,
           counts, trace, ntrace, out, rqf, wqf, bq, rqh, rqn, wqh, wqn, nbq, nhit, hitc, nb, due, rqk, wqk):
    """The cycle loop of :func:`_channel` (no allocation, so no reference counting)."""
    B = st[0]
    CL, CWL, NBL = params[P_CL], params[P_CWL], params[P_NBL]
    REFRESH, PAGE, FR = params[P_REFRESH], params[P_PAGE], params[P_SCHED]
    RQ, WQ, BQ = params[P_RQ], params[P_WQ], params[P_BQ]
    WHI, WLO, HITCAP, BUSES = params[P_WHI], params[P_WLO], params[P_HITCAP], params[P_BUSES]
    INTERVAL, REF_MODE = params[P_REF_INTERVAL], params[P_REF_MODE]
    n = len(pk)
    nrq = nwq = inflight = draining = 0
    rr = B - 1
    kref = 0
    t = 0
    lb = INF  # lower bound of the next cycle any bank has a ready command
    done = 0
    hits = misses = 0
    last = -1
    p, nrq, nwq, _ = _arrive(p, n, pk, rqf, rqh, rqn, rqk, wqf, wqh, wqn, wqk, nbq, nrq, nwq, RQ, WQ, BQ)
    blocked = False
    moved = -2  # the mover's next bank as the last cycle's end found it (-2: not known)
    while True:
        busy = False  # this cycle changed the state: the next one may act too
        # front end: a MAC waits for empty queues (other requests arrive at the end of the cycle before)
        if p < n and pk[p] & 3 == OP_MAC and not (nrq or nwq or inflight or (REFRESH and (kref + 1) * INTERVAL <= t)):
            tn, tm, hit = _mac(c, max(t, last + 1), pk[p] >> ROW_SHIFT, PAGE == PAGE_CLOSED, open_row, ready, hist,
                               rows, pstart, counts, trace, ntrace, st, nodes, span, whist)
            last = tn - 1
            t = last
            done = max(done, tm + CL + NBL)
            hits += hit
            misses += 1 - hit
            p += 1
            busy = True
        if p == n and nrq == 0 and nwq == 0 and inflight == 0:
            break
        # a due refresh goes first; its banks' queues wait
        frz_lo, frz_hi, frz_st = 0, 0, 1
        issued = -1
        t_ref = INF
        if REFRESH:
            if (kref + 1) * INTERVAL <= t:
                frz_lo, frz_hi, frz_st = _ref_scope(kref, REF_MODE, st, G)
                cmd = REF if REF_MODE == REF_ALL_BANK else REFB
                e_ref = 0
                for b in range(frz_lo, frz_hi, frz_st):
                    if open_row[b] >= 0:
                        e = _ready(ready, b, PRE)
                        if e <= t:
                            _issue(nodes, span, c, PRE, b, b + 1, 1, t, ready, hist, rows, pstart, whist, counts, trace,
                                   ntrace)
                            open_row[b] = -1
                            nhit[b, 0] = nhit[b, 1] = 0
                            if nbq[b] > 0:
                                nb[b] = 0
                            lb = min(lb, t + 1)
                            issued = 0
                            break
                        t_ref = min(t_ref, e)
                        e_ref = INF
                    else:
                        e_ref = max(e_ref, _ready(ready, b, cmd))
                if issued < 0:
                    if e_ref <= t:
                        _issue(nodes, span, c, cmd, frz_lo, frz_hi, frz_st, t, ready, hist, rows, pstart, whist, counts,
                               trace, ntrace)
                        kref += 1
                        issued = 0
                    else:
                        t_ref = min(t_ref, e_ref)
                if issued >= 0:
                    busy = True  # the refresh may go on next cycle
            else:
                t_ref = (kref + 1) * INTERVAL
        picks = BUSES if issued < 0 else BUSES - 1
        nxt = lb
        q1 = -1  # the bank that issued first this cycle
        for _pk in range(picks):
            if t < lb:
                break  # no bank can have a ready command yet
            q, cmd, k, rr, nxt = _pick(t, bq, nbq, nb, open_row, nhit, hitc, ready, rr, frz_lo, frz_hi, frz_st,
                                       FR, HITCAP, nodes, due, q1 >= 0)
            if q < 0:
                lb = nxt
                break
            col = 1 if cmd == RD or cmd == WR else 0
            if issued >= 0 and col == issued:
                break  # the second bus carries the other kind of command only
            i = bq[q, k]
            _issue_bank(nodes, span, c, cmd, q, t, flat, prog, hist, rows, pstart, whist, counts, trace, ntrace)
            if q1 < 0:
                q1 = q
            issued = col
            if cmd == ACT:
                r = i >> ROW_SHIFT
                open_row[q] = r
                hitc[q] = 0
                nhit[q, 0] = nhit[q, 1] = 0
                for kk in range(nbq[q]):
                    x = bq[q, kk]
                    if x >> ROW_SHIFT == r:
                        nhit[q, x & 3] += 1
            elif cmd == PRE:
                open_row[q] = -1
                nhit[q, 0] = nhit[q, 1] = 0
            else:
                if hitc[q] > 0:
                    hits += 1
                else:
                    misses += 1
                hitc[q] += 1
                done = max(done, t + (CWL if cmd == WR else CL) + NBL)
                for kk in range(k, nbq[q] - 1):
                    bq[q, kk] = bq[q, kk + 1]
                if nbq[q] == BQ:
                    moved = -2  # a full queue has room again: the mover's choice may change
                nbq[q] -= 1
                nhit[q, i & 3] -= 1
                inflight -= 1
                blocked = False
                close = PAGE == PAGE_CLOSED
                if PAGE == PAGE_ADAPTIVE:
                    close = nhit[q, 0] + nhit[q, 1] == 0
                if close:  # auto-precharge: no command slot
                    tp = _ready(ready, q, PRE)
                    _issue(nodes, span, c, PRE, q, q + 1, 1, tp, ready, hist, rows, pstart, whist, counts, trace,
                           ntrace)
                    open_row[q] = -1
                    nhit[q, 0] = nhit[q, 1] = 0
            if nbq[q] == 0:  # the bank's next command
                nb[q] = INF
            else:
                e0, e_rd, e_wr = _cands(q, ready, open_row, bq, nhit, hitc, FR, HITCAP)
                nb[q] = min(e0, e_rd, e_wr)
        if issued >= 0:
            last = t
        if q1 >= 0:  # the next cycle any bank may issue
            lb = INF
            for b in range(B):
                lb = min(lb, nb[b])
        elif frz_hi > frz_lo:
            lb = min(lb, t + 1)  # the scan left the refreshing banks out
        # then one request into its bank's command queue (it may issue from the next cycle on)
        fe_idle = p == n or pk[p] & 3 == OP_MAC  # nothing more will arrive before the queues empty
        if draining == 0 and nwq > 0 and (nwq >= WHI or (inflight == 0 and (nwq > WLO or (fe_idle and nrq == 0)))):
            draining = nwq
            blocked = False
            moved = -2
        if not blocked:
            blocked = True  # until a queue slot frees or a request arrives
            if draining > 0:
                b = moved if moved >= 0 else _fifo_first(wqk, nbq, BQ)
                if b >= 0:
                    i = pk[wqf[b, wqh[b]]]
                    wqh[b] = wqh[b] + 1 if wqh[b] + 1 < WQ else 0
                    wqn[b] -= 1
                    wqk[b] = wqf[b, wqh[b]] if wqn[b] > 0 else INF
                    nwq -= 1
                    draining -= 1
            else:
                b = moved if moved >= 0 else _fifo_first(rqk, nbq, BQ)
                if b >= 0:
                    i = pk[rqf[b, rqh[b]]]
                    rqh[b] = rqh[b] + 1 if rqh[b] + 1 < RQ else 0
                    rqn[b] -= 1
                    rqk[b] = rqf[b, rqh[b]] if rqn[b] > 0 else INF
                    nrq -= 1
            moved = -2
            if b >= 0:
                was_empty = nbq[b] == 0
                bq[b, nbq[b]] = i
                nbq[b] += 1
                inflight += 1
                blocked = False
                r_open = open_row[b]
                if r_open >= 0 and i >> ROW_SHIFT == r_open:
                    nhit[b, i & 3] += 1
                    new_kind = nhit[b, i & 3] == 1
                else:
                    new_kind = False
                if was_empty:
                    e0, e_rd, e_wr = _cands(b, ready, open_row, bq, nhit, hitc, FR, HITCAP)
                    nb[b] = min(e0, e_rd, e_wr)
                elif new_kind and FR:  # a first hit of its kind: RD / WR becomes a candidate
                    nb[b] = min(nb[b], _ready(ready, b, WR if i & 3 == OP_WRITE else RD))
                lb = min(lb, max(nb[b], t + 1))
        # requests arriving for the next cycle: in order while their queue has room (a MAC waits)
        p, nrq, nwq, unblock = _arrive(p, n, pk, rqf, rqh, rqn, rqk, wqf, wqh, wqn, wqk, nbq, nrq, nwq,
                                       RQ, WQ, BQ)
        if unblock:
            blocked = False
        if p == n and nrq == 0 and nwq == 0 and inflight == 0:
            break
        # the next cycle in which anything can happen: the next one after a refresh command, a MAC or a
        # drain that starts, or while the mover has a request to move; else the next ready command or refresh
        if not busy:
            fe_idle = p == n or pk[p] & 3 == OP_MAC
            if draining == 0 and nwq > 0 and (nwq >= WHI or (inflight == 0 and (nwq > WLO or (fe_idle and nrq == 0)))):
                busy = True
            elif p < n and pk[p] & 3 == OP_MAC and nrq == 0 and nwq == 0 and inflight == 0:
                busy = True
            elif not blocked:
                moved = _fifo_first(wqk, nbq, BQ) if draining > 0 else _fifo_first(rqk, nbq, BQ)
                busy = moved >= 0
                blocked = not busy
        if busy:
            t += 1
        else:
            nxt = min(lb, t_ref)
            if nxt >= INF:
                raise RuntimeError("DRAM controller: no request can make progress")
            t = max(t + 1, nxt)
    out[0] = done
    out[1] = hits
    out[2] = misses
    out[3] = kref
    out[4] = last


@njit(cache=True)
def simulate(op, chan, bank, row, n_req, gen, seed, rows, pstart, geom, amap, params, trace):
    """Run ``n_req`` requests; return (cycles, counts[9], row_hits, row_misses, n_trace).

    Requests come from the arrays ``op, chan, bank, row`` (``gen`` = 0) or are generated for a
    sequential (1) or uniformly random (2, over ``params[P_SPAN]`` bursts) stream of op
    ``params[P_GEN_OP]``, burst addresses decoded by the mapping ``amap`` (field codes F_*, least
    significant first). ``rows`` (level, following cmd, latency cycles, window) are sorted by
    preceding command, rows of command k being ``pstart[k]:pstart[k+1]``. ``geom`` = (channels,
    banks, banks per group, banks per rank, bursts per row, rows, bank groups per rank, ranks).
    Channels run independently (each its own front end); every channel, busy or idle, is refreshed
    until the last data of the stream. ``trace`` (m x 4: cycle, cmd, channel, first bank or -1 for
    all) receives the first m commands.
    """
    C, B, BPG, BPR, BPROW, ROWS, G, R = geom[0], geom[1], geom[2], geom[3], geom[4], geom[5], geom[6], geom[7]
    st = np.array([B, BPG, BPR], dtype=np.int64)
    if gen != 0:
        radix = np.array([C, R, G, BPG, ROWS, BPROW], dtype=np.int64)
        op = np.full(n_req, params[P_GEN_OP], dtype=np.int64)
        chan = np.zeros(n_req, np.int64)
        bank = np.zeros(n_req, np.int64)
        row = np.zeros(n_req, np.int64)
        f = np.zeros(6, np.int64)
        for i in range(n_req):
            if gen == 1:
                x = i
            else:
                x = (hash31(i, seed, 1) * 2147483648 + hash31(i, seed, 2)) % params[P_SPAN]
            for j in range(6):
                f[amap[j]] = x % radix[amap[j]]
                x //= radix[amap[j]]
            chan[i] = f[F_CH]
            bank[i] = (f[F_RA] * G + f[F_BG]) * BPG + f[F_BA]
            row[i] = f[F_RO]
    # requests packed (ROW_SHIFT) and sorted by channel, stably (a counting sort)
    cnt = np.zeros(C + 1, np.int64)
    for i in range(n_req):
        cnt[chan[i] + 1] += 1
    for ch in range(C):
        cnt[ch + 1] += cnt[ch]
    pk = np.zeros(n_req, np.int64)
    fill = cnt[:C].copy()
    for i in range(n_req):
        pk[fill[chan[i]]] = (row[i] << ROW_SHIFT) | (bank[i] << 2) | op[i]
        fill[chan[i]] += 1
    window = 1
    for k in range(rows.shape[0]):
        window = max(window, rows[k, 3])
    hist = np.full((C, B + B // BPG + B // BPR + 1, N_CMD, window), NEVER, dtype=np.int64)
    # history nodes of each bank (windowed rows such as tFAW): its own, its bank group's, its rank's, the channel's
    NG, NR = B // BPG, B // BPR
    nodes = np.zeros((B, 4), dtype=np.int64)
    for b in range(B):
        nodes[b, 0] = b
        nodes[b, 1] = B + b // BPG
        nodes[b, 2] = B + NG + b // BPR
        nodes[b, 3] = B + NG + NR
    whist = np.zeros(N_CMD, dtype=np.bool_)
    for k in range(rows.shape[0]):
        if rows[k, 3] > 1:
            for cmd in range(N_CMD):
                if pstart[cmd] <= k < pstart[cmd + 1]:
                    whist[cmd] = True
    # each bank's bound per command, raised over the banks a row covers: span[b, lvl] is the range of
    # banks of b's node at level lvl (bank, bank group, rank, channel); level 4 is the other ranks
    ready = np.zeros((C, N_CMD, B), dtype=np.int64)
    span = np.zeros((B, 4, 2), dtype=np.int64)
    for b in range(B):
        for lvl, size in enumerate((1, BPG, BPR, B)):
            span[b, lvl, 0] = b // size * size
            span[b, lvl, 1] = b // size * size + size
    open_row = np.full((C, B), -1, dtype=np.int64)
    counts = np.zeros(N_CMD, dtype=np.int64)
    ntrace = np.zeros(1, dtype=np.int64)
    res = np.zeros((C, 5), dtype=np.int64)
    # each bank command's (ACT, PRE, RD, WR) rows of window 1, per bank: (lo, hi, latency), a range of a
    # channel's flat ready bounds; rows over the same range keep the largest latency (one range, one max).
    # Rows into a command this run never issues are left out (all-bank PIM commands without MAC requests,
    # the refresh command of the other refresh mode, both without refresh): nothing reads their bounds.
    used = np.ones(N_CMD, np.bool_)
    mac = False
    for i in range(n_req):
        if op[i] == OP_MAC:
            mac = True
            break
    used[ACT_AB] = used[MAC_AB] = used[PRE_AB] = mac
    used[REF] = params[P_REFRESH] != 0 and params[P_REF_MODE] == REF_ALL_BANK
    used[REFB] = params[P_REFRESH] != 0 and params[P_REF_MODE] != REF_ALL_BANK
    width = 1
    for cmd in range(WR + 1):
        width = max(width, 2 * (pstart[cmd + 1] - pstart[cmd]) + 1)
    prog = np.full((WR + 1, B, width, 3), -1, dtype=np.int64)
    for cmd in range(WR + 1):
        for b in range(B):
            j = 0
            for k in range(pstart[cmd], pstart[cmd + 1]):
                if rows[k, 3] == 1 and used[rows[k, 1]]:
                    base = rows[k, 1] * B
                    lo1, hi1, lo2, hi2 = _cover(rows[k, 0], b, span, B)
                    for part in range(2):
                        lo, hi = (base + lo1, base + hi1) if part == 0 else (base + lo2, base + hi2)
                        if lo == hi:
                            continue
                        jj = 0
                        while jj < j and not (prog[cmd, b, jj, 0] == lo and prog[cmd, b, jj, 1] == hi):
                            jj += 1
                        if jj == j:
                            prog[cmd, b, j, 0], prog[cmd, b, j, 1], prog[cmd, b, j, 2] = lo, hi, rows[k, 2]
                            j += 1
                        else:
                            prog[cmd, b, jj, 2] = max(prog[cmd, b, jj, 2], rows[k, 2])
    out = np.zeros(5, dtype=np.int64)
    for ch in range(C):
        _channel(ch, pk[cnt[ch]:cnt[ch + 1]], 0, ready[ch], hist[ch], open_row[ch], rows, pstart, st, nodes, span,
                 whist, G, params, counts, trace, ntrace, out, prog)
        res[ch] = out
    end = res[:, 0].max()
    if params[P_REFRESH]:
        for ch in range(C):
            _refresh_idle(ch, res[ch, 4] + 1, res[ch, 3], end, params[P_REF_MODE], params[P_REF_INTERVAL], G, st,
                          nodes, span, whist, open_row[ch], ready[ch], hist[ch], rows, pstart, counts, trace, ntrace)
    return end, counts, res[:, 1].sum(), res[:, 2].sum(), ntrace[0]
