"""Collectives as costs on a link unit: ring, direct (mesh) and tree algorithms in closed form.

Closed forms with α = link latency per message and β = 1 / bandwidth per direction, p ranks,
n bytes per rank (Thakur, Rabenseifner & Gropp, "Optimization of collective communication
operations in MPICH", IJHPCA 2005; NCCL uses the ring and tree forms):

* all-reduce, ring (switch, ring): reduce-scatter then all-gather, 2(p−1) steps of n/p bytes:
  2(p−1)·α + 2(p−1)/p · n·β
* all-reduce, direct (full mesh: a port split over p−1 peers): one reduce-scatter and one
  all-gather round: 2α + 2(p−1)/p · n·β
* all-reduce, binomial tree (PCIe tree: traffic climbs to the root and back): reduce then
  broadcast, 2⌈log2 p⌉ steps of n bytes: 2⌈log2 p⌉·(α + n·β)
* all-gather (ring/direct/tree): half the all-reduce (one of its two rounds)
* all-to-all (pairwise exchange): (p−1)·α + (p−1)/p · n·β; tree: every byte climbs and
  descends, 2⌈log2 p⌉·α + 2(p−1)/p·n·β
* point to point: α + n·β

A collective's cost is one phase per algorithm step on the group's link unit, so the engine
composes the steps and the closed form is what an idle link gives (tested to 1%). Link energy
counts the bytes one rank sends (its share of the traffic) × 8 × pJ/bit.
"""

from __future__ import annotations

import math

from llmsim.devices.base import Cost, Phase
from llmsim.errors import ConfigError
from llmsim.system.spec import SystemLinkSpec

FNS = ("all_reduce", "all_gather", "all_to_all", "p2p")
ALGORITHM = {"switch": "ring", "ring": "ring", "mesh": "direct", "pcie-tree": "tree"}


def steps(fn: str, algorithm: str, p: int, n: float) -> list[float]:
    """Bytes each rank sends in each sequential step of collective ``fn`` over ``p`` ranks."""
    if fn not in FNS:
        raise ConfigError(f"collective '{fn}': one of {', '.join(FNS)}")
    if fn == "p2p":
        return [n]
    if p < 2:
        return []
    lg = math.ceil(math.log2(p))
    rounds = 2 if fn == "all_reduce" else 1
    if algorithm == "ring":
        if fn == "all_to_all":
            return [n / p] * (p - 1)
        return [n / p] * (rounds * (p - 1))
    if algorithm == "direct":
        return [n * (p - 1) / p] * (rounds if fn != "all_to_all" else 1)
    if algorithm == "tree":
        if fn == "all_to_all":
            return [n * (p - 1) / p / lg] * (2 * lg)
        return [n] * (rounds * lg)
    raise ConfigError(f"collective algorithm '{algorithm}': one of ring, direct, tree")


def closed_form_s(fn: str, algorithm: str, p: int, n: float, link: SystemLinkSpec) -> float:
    """The textbook time (see the module docstring), independent of :func:`steps`."""
    a, b = link.latency_s, 1.0 / link.bandwidth_bytes_per_s
    if fn == "p2p":
        return a + n * b
    if p < 2:
        return 0.0
    lg = math.ceil(math.log2(p))
    half = 1 if fn in ("all_gather", "all_to_all") else 2
    if algorithm == "ring":
        return half * (p - 1) * a + half * (p - 1) / p * n * b if fn != "all_to_all" else \
            (p - 1) * a + (p - 1) / p * n * b
    if algorithm == "direct":
        return half * a + half * (p - 1) / p * n * b if fn != "all_to_all" else a + (p - 1) / p * n * b
    if fn == "all_to_all":
        return 2 * lg * a + 2 * (p - 1) / p * n * b
    return half * lg * (a + n * b)


def collective_cost(fn: str, algorithm: str, p: int, n: float, link: SystemLinkSpec, unit: str) -> Cost:
    """Cost of one collective on ``unit``: a phase per step, link energy of the bytes one rank sends."""
    per_step = steps(fn, algorithm, p, n)
    phases = tuple(Phase(unit, link.latency_s + s / link.bandwidth_bytes_per_s) for s in per_step)
    sent = sum(per_step)
    t = sum(ph.seconds for ph in phases)
    return Cost(seconds=t, bytes_by_level={"link": sent}, energy_j={"link": sent * 8 * link.energy_pj_per_bit * 1e-12},
                phases=phases, stats={"link_bytes": sent})
