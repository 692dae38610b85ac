"""Decode steps in bulk: one template, one cost per context-dependent op, replayed schedules.

The decode steps of a generation differ only in context (:mod:`llmsim.engine.template`). This
module costs them together:

1. every op of the template is costed once; each group of context-dependent ops (the attention
   of every layer) is costed once per step, at that step's op;
2. the step is cut into segments as :func:`~llmsim.engine.simulate.simulate_step` cuts it, and
   each distinct segment is simulated by simpy once per *variant* (steps whose context-dependent
   costs have the same phase units), recording the order units were granted;
3. that order is replayed for every step of the variant in one vectorised pass
   (:func:`~llmsim.engine.replay.replay`); a step whose costs would make simpy pick another order
   is simulated by simpy again, segment by segment.

The result of each step is what :func:`simulate_step` returns for the step's own graph: the same
times (the replay performs simpy's additions and maxima), energies, bytes and breakdowns; the
per-op records are built when first read. ``tests/test_bulk.py`` compares the two paths.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from llmsim.devices.base import Cost, Device
from llmsim.engine.replay import Schedule, attribution, replay, replayable
from llmsim.engine.result import LazyRecords, OpRecord, Segment, StepResult, _sum_into, op_class
from llmsim.engine.simulate import _attribute, _cuts, _run_segment, _segment_key, op_record
from llmsim.engine.template import StepTemplate


@dataclass
class _Seg:
    """One distinct segment: its nodes (first occurrence) and where it recurs."""

    nodes: list[str]
    occurrences: list[list[str]] = field(default_factory=list)


def _layer_key(op) -> str:
    return f"{op.stack}.L{op.layer}" if op.layer >= 0 else (op.stack or "model")


@dataclass
class _Plan:
    """What the bulk path derives from a template alone (cached on it, shared by every device)."""

    order: list[str]
    group_of: dict[str, int]
    segs: list[_Seg]
    layout: list[int]                 # distinct-segment id of every segment, in order
    kinds: list[list[str]]            # op kind of each op of each distinct segment
    L: list[np.ndarray]               # per distinct segment: layer key x op, occurrences counted
    C: list[np.ndarray]               # per distinct segment: op-class key x op, occurrences counted
    layer_names: list[str]
    class_names: list[str]


def _plan(tpl: StepTemplate, whole: bool) -> _Plan:
    """Segments of the template (one when ``whole``: issue phases run ahead across cuts)."""
    cache = tpl.__dict__.setdefault("_bulk_plans", {})
    if whole in cache:
        return cache[whole]
    g = tpl.graph
    order = list(nx.lexicographical_topological_sort(g))
    group_of = {v: gi for gi, members in enumerate(tpl.groups) for v in members}
    if whole:
        bounds = [len(order)]
    else:
        bounds = [c + 1 for c in _cuts(order, g)]
        if not bounds or bounds[-1] != len(order):
            bounds.append(len(order))
    # distinct segments (the context-dependent group of each node is part of the key)
    ids: dict[tuple, int] = {}
    segs: list[_Seg] = []
    layout: list[int] = []
    start = 0
    for end in bounds:
        nodes = order[start:end]
        start = end
        sig, edges = _segment_key(nodes, g)
        uid = ids.setdefault((tuple(zip(sig, (group_of.get(v, -1) for v in nodes), strict=True)), edges), len(ids))
        if uid == len(segs):
            segs.append(_Seg(nodes))
        segs[uid].occurrences.append(nodes)
        layout.append(uid)
    # breakdown matrices per distinct segment: layer and op-class keys of each occurrence
    layer_keys: dict[str, int] = {}
    class_keys: dict[str, int] = {}
    rows = []
    for sg in segs:
        rows_l, rows_c = [], []
        for occ in sg.occurrences:
            ops = [g.nodes[v]["op"] for v in occ]
            rows_l.append([layer_keys.setdefault(_layer_key(op), len(layer_keys)) for op in ops])
            rows_c.append([class_keys.setdefault(op_class(v, op.kind.value), len(class_keys))
                           for v, op in zip(occ, ops, strict=True)])
        rows.append((rows_l, rows_c))
    plan = _Plan(order, group_of, segs, layout, [[g.nodes[v]["op"].kind.value for v in sg.nodes] for sg in segs],
                 [_count_matrix(r[0], len(layer_keys)) for r in rows],
                 [_count_matrix(r[1], len(class_keys)) for r in rows], list(layer_keys), list(class_keys))
    cache[whole] = plan
    return plan


def _fixed_ops(tpl: StepTemplate) -> tuple[dict[str, int], dict[str, str], list[tuple[str, int]]]:
    """(group of each context-dependent node, representative of every other node, (representative,
    count) per op signature): ops with one signature have one cost, costed and summed once."""
    cache = tpl.__dict__.get("_bulk_fixed")
    if cache is None:
        g = tpl.graph
        group_of = {v: gi for gi, members in enumerate(tpl.groups) for v in members}
        rep_of: dict[str, str] = {}
        reps: dict[tuple, list] = {}
        for v in g.nodes:
            if v not in group_of:
                r = reps.setdefault(g.nodes[v]["op"].signature, [v, 0])
                r[1] += 1
                rep_of[v] = r[0]
        cache = tpl.__dict__["_bulk_fixed"] = (group_of, rep_of, [(r, k) for r, k in reps.values()])
    return cache


def simulate_graph(tpl: StepTemplate, device: Device) -> StepResult:
    """One step graph with nothing context-dependent (a prefill), through the same machinery:
    its segment plan cached with the graph, aggregates without per-op records."""
    out = simulate_decode(tpl, device, [tpl.context0], [tpl.graph.graph.get("step", 0)])
    assert out is not None and not tpl.groups
    return out[0]


def simulate_decode(tpl: StepTemplate, device: Device, contexts: list[int], steps: list[int]
                    ) -> list[StepResult] | None:
    """Every decode step at ``contexts`` (step indices ``steps``), or ``None`` when a precondition
    of the bulk path does not hold (the caller then simulates each step from its own graph)."""
    g = tpl.graph
    n = len(contexts)
    group_of, rep_of, fixed = _fixed_ops(tpl)
    by_rep = {r: device.cost(g.nodes[r]["op"]) for r, _ in fixed}
    base = {v: by_rep[r] for v, r in rep_of.items()}
    gops = [[tpl.op_at(gi, c) for c in contexts] for gi in range(len(tpl.groups))]
    gcost = [[device.cost(op) for op in ops] for ops in gops]

    def cost(v: str, s: int) -> Cost:
        gi = group_of.get(v)
        return base[v] if gi is None else gcost[gi][s]

    fixed_issue = any(p.issue for c in by_rep.values() for p in c.phases)
    issue = [fixed_issue or any(p.issue for gc in gcost for p in gc[s].phases) for s in range(n)]
    if len(set(issue)) > 1:
        return None
    plan = _plan(tpl, issue[0])
    order, segs, layout = plan.order, plan.segs, plan.layout
    keys = range(len(segs))

    # steps with the same phase units in their context-dependent costs share recorded schedules
    variants: dict[tuple, list[int]] = defaultdict(list)
    for s in range(n):
        variants[tuple(tuple((p.unit, p.issue) for p in gc[s].phases) for gc in gcost)].append(s)

    # per distinct segment: durations, shares, idle and unit busy time of every step
    runs = [_Runs(len(segs[key].nodes), n) for key in keys]
    can_replay = replayable(device.units)
    for idx in variants.values():
        for key in keys:
            _segment_steps(segs[key].nodes, g, idx, cost, device.units, can_replay, runs[key])

    # step-constant sums over the ops outside the context-dependent groups
    e0: dict[str, float] = {}
    b0: dict[str, float] = {}
    st0: dict[str, float] = {}
    for r, k in fixed:
        _sum_into(e0, by_rep[r].energy_j, k)
        _sum_into(b0, by_rep[r].bytes_by_level, k)
        _sum_into(st0, by_rep[r].stats, k)
    f0 = sum(g.nodes[r]["op"].flops * k for r, k in fixed)
    sizes = [len(m) for m in tpl.groups]

    # every step's totals and breakdowns, as arrays over steps (segments add in step order)
    total, idle = np.zeros(n), np.zeros(n)
    for key in layout:
        total = total + runs[key].dur
        idle = idle + runs[key].idle
    kind_names = sorted({k for ks in plan.kinds for k in ks})
    lay, cls, kinds = np.zeros((n, len(plan.layer_names))), np.zeros((n, len(plan.class_names))), 0.0
    unit_names = sorted({u for r in runs for u in r.busy})
    busy = np.zeros((n, len(unit_names)))
    for key in keys:
        r, occ = runs[key], len(segs[key].occurrences)
        lay += r.share @ plan.L[key].T
        cls += r.share @ plan.C[key].T
        km = np.zeros((len(kind_names), len(plan.kinds[key])))
        for i, kd in enumerate(plan.kinds[key]):
            km[kind_names.index(kd), i] = occ
        kinds = kinds + r.share @ km.T
        for u, v in r.busy.items():
            busy[:, unit_names.index(u)] += v * occ
    kinds = np.broadcast_to(kinds, (n, len(kind_names)))

    spec = device.spec
    phase = g.graph["phase"]
    bg = device.background_power_w()
    results = []
    for s in range(n):
        t, idle_s = float(total[s]), float(idle[s])
        by_kind = dict(zip(kind_names, kinds[s].tolist(), strict=True))
        by_layer = dict(zip(plan.layer_names, lay[s].tolist(), strict=True))
        if idle_s > 0:
            by_kind["idle"] = idle_s
            by_layer["idle"] = by_layer.get("idle", 0.0) + idle_s
        energy, nbytes, stats, flops = dict(e0), dict(b0), dict(st0), f0
        for gi, size in enumerate(sizes):
            c = gcost[gi][s]
            _sum_into(energy, c.energy_j, size)
            _sum_into(nbytes, c.bytes_by_level, size)
            _sum_into(stats, c.stats, size)
            flops += gops[gi][s].flops * size
        _sum_into(energy, {"static": spec.static_power_w * t} | {k: w * t for k, w in bg.items()})
        results.append(StepResult(
            phase=phase, step=steps[s], batch=g.graph["batch"], seq_len=g.graph.get("seq_len"),
            context_len=contexts[s] if phase == "decode" else g.graph.get("context_len"),
            latency_s=t, energy_j=sum(energy.values()), energy_breakdown_j=energy,
            latency_breakdown_s=by_kind, latency_by_layer_s=by_layer,
            busy_by_unit_s=dict(zip(unit_names, busy[s].tolist(), strict=True)),
            bytes_by_level=nbytes, flops=flops, stats=stats,
            records=LazyRecords(_records_builder(g, layout, segs, runs, s, cost, group_of, gops), len(order)),
            time_by_op_class_s=dict(zip(plan.class_names, cls[s].tolist(), strict=True)),
        ))
    return results


def _count_matrix(rows: list[list[int]], n_keys: int) -> np.ndarray:
    m = np.zeros((n_keys, len(rows[0]) if rows else 0))
    for r in rows:
        for i, k in enumerate(r):
            m[k, i] += 1.0
    return m


class _Runs:
    """One distinct segment over all steps: duration, idle, share per op and busy time per unit,
    as arrays over steps, and each step's phase segments (built on demand for the records)."""

    def __init__(self, n_ops: int, n: int):
        self.dur, self.idle, self.share = np.zeros(n), np.zeros(n), np.zeros((n, n_ops))
        self.busy: dict[str, np.ndarray] = {}
        self._sim: dict[int, list[list[Segment]]] = {}
        self._replayed: dict[int, tuple] = {}

    def put(self, s: int, dur: float, ss: list[list[Segment]], share: list[float], idle: float) -> None:
        """Step ``s`` from a simpy run (or one attributed on its own)."""
        self.dur[s], self.idle[s], self.share[s] = dur, idle, share
        for x in (x for seg in ss for x in seg):
            self.busy.setdefault(x.unit, np.zeros(len(self.dur)))[s] += x.end - x.start
        self._sim[s] = ss

    def replayed(self, s: int, entry: tuple) -> None:
        """Step ``s`` is column ``i`` of a replay: ``entry`` = (schedule, issue flags, start, end, i)."""
        self._replayed[s] = entry

    def segments(self, s: int) -> list[list[Segment]]:
        if s in self._sim:
            return self._sim[s]
        sched, issue, st, en, i = self._replayed[s]
        ss: list[list[Segment]] = [[] for _ in range(sched.n_ops)]
        for gi, (v, j) in enumerate(sched.grants):
            ss[v].append(Segment(sched.units[v][j], float(st[gi, i]), float(en[gi, i]), issue[v][j]))
        return ss


def _segment_steps(nodes: list[str], g: nx.DiGraph, idx: list[int], cost, units_cap: dict[str, int],
                   can_replay: bool, runs: _Runs) -> None:
    """Fill ``runs`` for every step in ``idx``: simpy for the first, the recorded order replayed
    (and attributed) for the rest at once, simpy again for a step where that order does not hold."""
    local = {v: i for i, v in enumerate(nodes)}

    def simpy_run(s: int, grants=None) -> list[list[Segment]]:
        dur, ss = _run_segment(nodes, g, {v: cost(v, s) for v in nodes}, units_cap, grants)
        runs.put(s, dur, ss, *_attribute(ss, dur))
        return ss

    s0 = idx[0]
    grants: list[tuple[int, int]] = []
    first = simpy_run(s0, grants)
    rest = idx[1:]
    if not rest:
        return
    phases0 = [cost(v, s0).phases for v in nodes]
    if can_replay:
        n_issue = []
        for ph in phases0:
            k = 0
            while k < len(ph) and ph[k].issue:
                k += 1
            n_issue.append(k)
        sched = Schedule(
            n_ops=len(nodes), preds=[[local[p] for p in g.predecessors(v) if p in local] for v in nodes],
            units=[[p.unit for p in ph] for ph in phases0], n_issue=n_issue,
            any_issue=any(p.issue for ph in phases0 for p in ph), grants=grants)
        st, en, req, _ = replay(sched, [[np.array([p.seconds]) for p in ph] for ph in phases0], 1)
        simulated = [first[v][j] for v, j in grants]
        if all(a.start == x[0] and a.end == y[0] for a, x, y in zip(simulated, st, en, strict=True)):
            sched.recorded_req = req[:, 0]
            seconds = [[np.array([cost(v, s).phases[j].seconds for s in rest]) for j in range(len(ph))]
                       for v, ph in zip(nodes, phases0, strict=True)]
            st, en, _, ok = replay(sched, seconds, len(rest))
            share, idle, in_order = attribution(sched, [(a.start, a.end) for a in simulated], st, en)
            issue = [[p.issue for p in ph] for ph in phases0]
            rows = np.asarray(rest)
            good = ok & in_order
            runs.dur[rows[good]] = np.maximum(en.max(axis=0), 0.0)[good] if len(grants) else 0.0
            runs.idle[rows[good]] = idle[good]
            runs.share[rows[good]] = share.T[good]
            for gi, (v, j) in enumerate(grants):
                runs.busy.setdefault(sched.units[v][j], np.zeros(len(runs.dur)))[rows[good]] += (en[gi] - st[gi])[good]
            for i, s in enumerate(rest):
                if not ok[i]:
                    simpy_run(s)
                elif not in_order[i]:  # edges reordered: attribute this step on its own
                    runs.replayed(s, (sched, issue, st, en, i))
                    ss = runs.segments(s)
                    d = float(np.maximum(en[:, i].max(), 0.0)) if len(grants) else 0.0
                    runs.put(s, d, ss, *_attribute(ss, d))
                else:
                    runs.replayed(s, (sched, issue, st, en, i))
            return
    for s in rest:
        simpy_run(s)


def _records_builder(g, layout, segs, runs, s, cost, group_of, gops):
    def build() -> list[OpRecord]:
        records = []
        occ_i: dict[int, int] = defaultdict(int)
        t = 0.0
        for key in layout:
            nodes = segs[key].occurrences[occ_i[key]]
            occ_i[key] += 1
            r = runs[key]
            for v, ss, a in zip(nodes, r.segments(s), r.share[s].tolist(), strict=True):
                gi = group_of.get(v)
                records.append(op_record(v, g.nodes[v]["op"], cost(v, s), ss, t, a,
                                         None if gi is None else gops[gi][s]))  # the op at this step's context
            t += float(r.dur[s])
        return records
    return build
