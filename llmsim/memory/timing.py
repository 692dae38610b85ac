"""DRAM timing constraints declared as data, and an independent trace checker.

Each :data:`CONSTRAINTS` row reads like Ramulator 2's ``TimingConstraint``: at ``level`` (bank,
bank_group, rank or channel), a ``following`` command may issue no earlier than ``latency`` cycles
after the ``window``-th most recent ``preceding`` command on the same node. ``latency`` is a sum of
timing names of :class:`~llmsim.config.memory.DramTiming` (plus ``nBL``, the burst's data-bus
cycles, and integer constants). Bank-scoped commands (ACT, PRE, RD, WR) look at the one node of
each level that holds their bank; channel-scoped commands (REF, ACT_AB, MAC_AB, PRE_AB) at every
node of the level. Sources: JESD79-4 / JESD250 timing definitions as encoded by Ramulator 2's
DDR4/GDDR6 models; the RD->WR turnaround of 2 cycles assumes a 1-tCK preamble (Ramulator 2).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from llmsim.config.memory import DramSpec
from llmsim.errors import LlmsimError
from llmsim.memory.kernels import (
    ACT,
    ACT_AB,
    MAC_AB,
    N_CMD,
    NEVER,
    PRE,
    PRE_AB,
    RD,
    REF,
    REFB,
    WR,
)

CMD_NAMES = ("ACT", "PRE", "RD", "WR", "REF", "ACT_AB", "MAC_AB", "PRE_AB", "REFB")
LEVELS = ("bank", "bank_group", "rank", "channel", "other_rank")
ALL_BANK_CMDS = frozenset({ACT_AB, MAC_AB, PRE_AB})

_ANY_ACT = (ACT, ACT_AB)
_ANY_PRE = (PRE, PRE_AB)

# (level, preceding, following, latency expression[, window])
CONSTRAINTS: tuple[tuple, ...] = (
    ("bank", _ANY_ACT, _ANY_ACT, "tRC"),
    ("bank", _ANY_ACT, RD, "tRCD"),
    ("bank", _ANY_ACT, WR, "tRCDW"),
    ("bank", _ANY_ACT, MAC_AB, "tRCD_MAC"),
    ("bank", _ANY_ACT, _ANY_PRE, "tRAS"),
    ("bank", _ANY_PRE, _ANY_ACT, "tRP"),
    ("bank", (RD, MAC_AB), _ANY_PRE, "tRTP"),
    ("bank", WR, _ANY_PRE, "CWL + nBL + tWR"),
    ("bank", _ANY_ACT, (REF, REFB), "tRC"),
    ("bank", _ANY_PRE, (REF, REFB), "tRP"),
    ("bank", REFB, (ACT, REF, REFB), "tRFCpb"),
    ("bank_group", RD, RD, "tCCD_L"),
    ("bank_group", WR, WR, "tCCD_L"),
    ("bank_group", WR, RD, "CWL + nBL + tWTR_L"),
    ("bank_group", ACT, ACT, "tRRD_L"),
    ("rank", RD, RD, "tCCD_S"),
    ("rank", WR, WR, "tCCD_S"),
    ("rank", RD, WR, "CL + nBL + tRTRS - CWL"),
    ("rank", WR, RD, "CWL + nBL + tWTR_S"),
    ("rank", ACT, ACT, "tRRD_S"),
    ("rank", ACT, ACT, "tFAW", 4),
    ("rank", ACT, REFB, "tRRD_S"),
    ("rank", REFB, REFB, "tRREFD"),
    ("channel", RD, RD, "nBL"),
    ("channel", WR, WR, "nBL"),
    ("channel", MAC_AB, MAC_AB, "tCCD_MAC"),
    ("channel", (RD, WR), MAC_AB, "tCCD_L"),
    ("channel", MAC_AB, (RD, WR), "tCCD_L"),
    ("rank", REF, (ACT, ACT_AB, REF, REFB), "tRFC"),
    ("other_rank", RD, RD, "nBL + tRTRS"),
    ("other_rank", WR, WR, "nBL"),
    ("other_rank", RD, WR, "CL + nBL + tRTRS - CWL"),
    ("other_rank", WR, RD, "CWL + nBL + tRTRS - CL"),
)


class TimingViolation(LlmsimError):
    """A command trace breaks a timing constraint or the bank state machine."""


def _tuple(x: int | Sequence[int]) -> tuple[int, ...]:
    return tuple(x) if isinstance(x, Sequence) else (x,)


def evaluate(expr: str, spec: DramSpec) -> int:
    """Value in cycles of a latency expression such as ``"CWL + nBL + tWR"``."""
    values = spec.timing.values() | {"nBL": spec.nBL}
    total, sign = 0, 1
    for tok in re.findall(r"[A-Za-z_][A-Za-z_0-9]*|\d+|[+-]", expr):
        if tok in "+-":
            sign = 1 if tok == "+" else -1
        else:
            total += sign * (int(tok) if tok.isdigit() else values[tok])
    return total


def expand(spec: DramSpec) -> list[tuple[int, int, int, int, int, str]]:
    """One row per (level, preceding, following) pair: (level, prev, next, cycles, window, expr)."""
    rows = []
    for entry in CONSTRAINTS:
        level, prevs, nexts, expr = entry[:4]
        window = entry[4] if len(entry) > 4 else 1
        lat = max(evaluate(expr, spec), 0)
        for p in _tuple(prevs):
            for f in _tuple(nexts):
                rows.append((LEVELS.index(level), p, f, lat, window, expr))
    return rows


def table(spec: DramSpec) -> tuple[np.ndarray, np.ndarray]:
    """The constraint table as the kernel wants it: rows (level, following, cycles, window) sorted by
    preceding command, and ``pstart`` with rows of command k at ``pstart[k]:pstart[k+1]``."""
    rows = sorted(expand(spec), key=lambda r: r[1])
    cons = np.array([(r[0], r[2], r[3], r[4]) for r in rows], dtype=np.int64).reshape(-1, 4)
    prevs = np.array([r[1] for r in rows], dtype=np.int64)
    pstart = np.searchsorted(prevs, np.arange(N_CMD + 1)).astype(np.int64)
    return cons, pstart


def scope(spec: DramSpec, cmd: int, bank: int) -> range:
    """Banks of a channel a trace row touches: REF the rank of ``bank``, all-bank commands (or bank
    -1) every bank, REFB under same-bank refresh (DDR5 REFsb) the bank ``bank`` and its namesakes in
    the rank's other bank groups, other commands their bank."""
    if bank < 0 or cmd in ALL_BANK_CMDS:
        return range(spec.banks)
    bpr = spec.bank_groups * spec.banks_per_group
    if cmd == REF:
        return range(bank // bpr * bpr, bank // bpr * bpr + bpr)
    if cmd == REFB and spec.controller.refresh == "same_bank":
        return range(bank, bank // bpr * bpr + bpr, spec.banks_per_group)
    return range(bank, bank + 1)


def check_trace(spec: DramSpec, trace: np.ndarray) -> None:
    """Raise :class:`TimingViolation` at the first command of ``trace`` that breaks a rule.

    ``trace`` rows are (cycle, cmd, channel, bank or -1), in issue order; they are checked in
    cycle order (stable). The checker is independent of the kernel: it keeps its own per-node
    history and the open/closed state of every bank, and names the violated constraint, e.g.
    ``RD at cycle 47 violates tRCD (ACT at 24, needs 48)``.
    """
    rows = expand(spec)
    by_next: dict[int, list] = {}
    for r in rows:
        by_next.setdefault(r[2], []).append(r)
    bpg, banks = spec.banks_per_group, spec.banks
    bpr = spec.bank_groups * bpg
    div = (1, bpg, bpr, banks)
    hist: dict[tuple, list[int]] = {}
    open_banks: dict[tuple[int, int], bool] = {}
    order = np.argsort(trace[:, 0], kind="stable")
    for t, cmd, ch, b in (tuple(int(v) for v in trace[i]) for i in order):
        name = CMD_NAMES[cmd]
        scoped = scope(spec, cmd, b)
        for level, prev, _, lat, window, expr in by_next.get(cmd, ()):
            if level == 4:  # other ranks: the latest ``prev`` on any rank not touched by this command
                mine = {bb // bpr for bb in scoped}
                for r in set(range(spec.ranks)) - mine:
                    past = hist.get((ch, 2, r, prev), [])
                    if past and t < past[-1] + lat:
                        raise TimingViolation(
                            f"{name} at cycle {t} violates {expr} ({CMD_NAMES[prev]} at {past[-1]} on rank {r}, "
                            f"needs {past[-1] + lat}) on channel {ch}")
                continue
            for bb in scoped:
                past = hist.get((ch, level, bb // div[level], prev), [])
                if len(past) >= window and t < past[-window] + lat:
                    raise TimingViolation(
                        f"{name} at cycle {t} violates {expr} ({CMD_NAMES[prev]} at {past[-window]}, "
                        f"needs {past[-window] + lat}) on channel {ch} {LEVELS[level]} {bb // div[level]}"
                    )
        for bb in scoped:
            is_open = open_banks.get((ch, bb), False)
            if cmd in (RD, WR, MAC_AB) and not is_open:
                raise TimingViolation(f"{name} at cycle {t} to closed bank {bb} of channel {ch}")
            if cmd in (ACT, ACT_AB) and is_open:
                raise TimingViolation(f"{name} at cycle {t} to open bank {bb} of channel {ch} (needs PRE)")
            if cmd in (REF, REFB) and is_open:
                raise TimingViolation(f"{name} at cycle {t} with bank {bb} of channel {ch} open")
            if cmd in (ACT, ACT_AB):
                open_banks[(ch, bb)] = True
            elif cmd in (PRE, PRE_AB):
                open_banks[(ch, bb)] = False
        nodes = {(lv, bb // div[lv]) for lv in range(4) for bb in scoped}
        for lv, node in nodes:
            hist.setdefault((ch, lv, node, cmd), []).append(t)


__all__ = ["CMD_NAMES", "CONSTRAINTS", "LEVELS", "NEVER", "TimingViolation", "check_trace", "evaluate", "scope",
           "table"]
