"""Step templates: lower a step graph once, re-derive only the ops that change with context.

Consecutive decode steps of one generation have the same op graph; only ops whose shape depends
on the context (attention over the KV cache, in today's lowering) differ. A :class:`StepTemplate`
(a prefill is one with no context-dependent ops) holds the step lowered once; :func:`build_template`
finds the context-dependent ops by lowering the next context too and comparing op signatures.
Their op at context ``c`` is the affine extrapolation of every numeric field (shape dims, FLOPs,
bytes, attrs) from the two lowered contexts.

That is a claim about the lowering, so the template checks it before it is used: the graph
lowered at the middle and at the last context of the run must have the same nodes and edges,
and every op there must equal its extrapolation (integers exactly, floats to 1e-12). A lowering
whose ops are not affine in context (a sliding window, a ceil of context) fails this check and
the engine costs every step from its own lowered graph instead (:func:`build_template` returns
``None``). Degree-2 terms and single kinks inside the range are always caught by these points.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx

from llmsim.graph.ops import Op


class NotAffine(Exception):
    """Two lowerings differ in a way that is not an affine function of context."""


def _plan(a, b) -> Callable[[int], object]:
    """``k -> a + k·(b − a)`` over the numeric leaves of ``a`` and ``b`` (ops, tuples, dataclasses);
    leaves that are equal are shared, others must be numbers of one type."""
    if a == b and type(a) is type(b):
        return lambda k: a
    if isinstance(a, bool) or isinstance(b, bool) or type(a) is not type(b):
        raise NotAffine(f"{a!r} -> {b!r}")
    if isinstance(a, int | float):
        d = b - a
        return lambda k: a + k * d
    if isinstance(a, tuple) and len(a) == len(b):
        parts = [_plan(x, y) for x, y in zip(a, b, strict=True)]
        return lambda k: tuple(p(k) for p in parts)
    if dataclasses.is_dataclass(a):
        changed = [(f.name, _plan(getattr(a, f.name), getattr(b, f.name))) for f in dataclasses.fields(a)
                   if f.init and getattr(a, f.name) != getattr(b, f.name)]
        return lambda k: dataclasses.replace(a, **{name: p(k) for name, p in changed})
    raise NotAffine(f"{a!r} -> {b!r}")


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1.0)
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(_close(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        return all(_close(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a) if f.init)
    return type(a) is type(b) and a == b


def _same_structure(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    return list(a.nodes) == list(b.nodes) and set(a.edges) == set(b.edges)


@dataclass
class StepTemplate:
    """One lowered decode step plus how its context-dependent ops move with context.

    ``groups``: lists of node names whose ops are equal at every context (one cost serves all);
    ``op_at(g, c)``: the op of group ``g``'s first node at context ``c``."""

    graph: nx.DiGraph
    context0: int
    groups: list[list[str]]
    _plans: list[Callable[[int], Op]]

    def op_at(self, group: int, context: int) -> Op:
        return self._plans[group](context - self.context0)


def build_template(lower: Callable[[int], nx.DiGraph], first: int, last: int) -> StepTemplate | None:
    """Template for contexts ``first .. last`` from ``lower(context) -> step graph``, or ``None``
    when the lowering is not affine in context over that range (the caller lowers every step)."""
    if last < first + 2:
        return None
    g0, g1 = lower(first), lower(first + 1)
    if not _same_structure(g0, g1):
        return None
    changed = [v for v in g0.nodes if g0.nodes[v]["op"].signature != g1.nodes[v]["op"].signature]
    by_sig: dict[tuple, list[str]] = {}
    for v in changed:
        by_sig.setdefault((g0.nodes[v]["op"].signature, g1.nodes[v]["op"].signature), []).append(v)
    groups = list(by_sig.values())
    try:
        plans = {v: _plan(g0.nodes[v]["op"], g1.nodes[v]["op"]) for v in changed}
    except NotAffine:
        return None
    for c in sorted({(first + last) // 2, last} - {first, first + 1}):
        gc = lower(c)
        if not _same_structure(g0, gc):
            return None
        for v in g0.nodes:
            op = gc.nodes[v]["op"]
            if not (_close(plans[v](c - first), op) if v in plans else op == g0.nodes[v]["op"]):
                return None
    return StepTemplate(g0, first, groups, [plans[g[0]] for g in groups])
