"""The event-driven engine: simpy processes over the device's units, one environment per segment.

Every op is a simpy process. It waits for its predecessors, then runs its cost's phases,
each holding one of the device's units (a ``simpy.Resource``) for the phase's duration.
Host *issue* phases (framework dispatch) wait only for predecessors to be issued, so the
host runs ahead of the device as an asynchronous launch queue does. Independent ops
overlap whenever their units are free; same-time ordering is simpy's (time, priority,
insertion), and ops are created in a fixed topological order, so runs are deterministic.

Repeated work is simulated once (DESIGN law 6). A *cut* is an op that every other op of the
step either precedes or follows; when no op has an issue phase, nothing can run across a
cut, so the step is exactly the sequence of segments between cuts (a transformer layer is
one). Segments with the same op signatures, structure and device are simulated once and
reused, shifted in time. With issue phases (eager host dispatch running ahead) the step is
one segment. No device-specific code lives here.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import networkx as nx
import simpy

from llmsim.devices.base import Cost, Device
from llmsim.engine.result import OpRecord, Segment, StepResult
from llmsim.graph.ops import Op


def _attribute(segs: list[list[Segment]], total: float) -> tuple[list[float], float]:
    """Split wall-clock time among ops: at every instant the active ops share it equally;
    instants where nothing runs are ``idle``. Returns (share per op, idle); they sum to ``total``."""
    edges: list[tuple[float, int, int]] = []
    for i, ss in enumerate(segs):
        for s in ss:
            if s.end > s.start:
                edges.append((s.start, 1, i))
                edges.append((s.end, -1, i))
    edges.sort(key=lambda e: (e[0], e[1]))
    share = [0.0] * len(segs)
    count: dict[int, int] = defaultdict(int)
    active: set[int] = set()
    idle, t_prev = 0.0, 0.0
    for t, delta, i in edges:
        if t > t_prev:
            if active:
                each = (t - t_prev) / len(active)
                for a in active:
                    share[a] += each
            else:
                idle += t - t_prev
            t_prev = t
        count[i] += delta
        if count[i] > 0:
            active.add(i)
        else:
            active.discard(i)
    return share, idle + max(0.0, total - t_prev)


@contextmanager
def long_run_gc() -> Iterator[None]:
    """Keep the cyclic garbage collector off the results of finished steps.

    A generation accumulates ~10^5 long-lived records; every collection of the oldest generation
    re-traverses them (measured: ~40% of a 128-step gpt2-xl run). Call :func:`step_done` after a
    step to move everything alive into the permanent generation; new garbage is still collected.
    What is alive on entry (imported modules, loaded specs) outlives the run and is frozen too;
    leaving, everything is unfrozen (cyclic garbage frozen meanwhile is collectable again).
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def step_done() -> None:
    gc.freeze()


def _cuts(order: list[str], graph: nx.DiGraph) -> list[int]:
    """Positions of cut ops: no edge jumps over them, no source after, no sink before."""
    pos = {n: i for i, n in enumerate(order)}
    n = len(order)
    jump = [0] * (n + 1)
    for a, b in graph.edges:
        pa, pb = pos[a], pos[b]
        if pb > pa + 1:
            jump[pa + 1] += 1
            jump[pb] -= 1
    first_sink = next((i for i, v in enumerate(order) if graph.out_degree(v) == 0), n)
    last_source = max((i for i, v in enumerate(order) if graph.in_degree(v) == 0), default=0)
    cuts, running = [], 0
    for i in range(n):
        running += jump[i]
        if running == 0 and last_source <= i <= first_sink:
            cuts.append(i)
    return cuts


def _run_segment(nodes: list[str], graph: nx.DiGraph, costs: dict[str, Cost],
                 units_cap: dict[str, int], grants: list[tuple[int, int]] | None = None
                 ) -> tuple[float, list[list[Segment]]]:
    """Simulate ops ``nodes`` (topological order) from time 0; predecessors outside are done.
    ``grants``, when given, receives (op index, phase index) in the order units were granted
    (the schedule :mod:`llmsim.engine.replay` replays)."""
    env = simpy.Environment()
    units = {name: simpy.Resource(env, capacity=cap) for name, cap in units_cap.items()}
    inside = set(nodes)
    issued = {v: env.event() for v in nodes}
    done = {v: env.event() for v in nodes}
    segments: dict[str, list[Segment]] = {v: [] for v in nodes}

    index = {v: i for i, v in enumerate(nodes)}

    def run_phase(name: str, j: int, phase):
        with units[phase.unit].request() as req:
            yield req
            if grants is not None:
                grants.append((index[name], j))
            t0 = env.now
            yield env.timeout(phase.seconds)
            segments[name].append(Segment(phase.unit, t0, env.now, phase.issue))

    any_issue = any(ph.issue for v in nodes for ph in costs[v].phases)

    def op_process(name: str, preds: list[str]):
        phases = costs[name].phases
        n_issue = 0
        while n_issue < len(phases) and phases[n_issue].issue:
            n_issue += 1
        if any_issue:  # without issue phases anywhere, "issued" is implied by "done"
            if preds:
                yield env.all_of([issued[p] for p in preds]) if len(preds) > 1 else issued[preds[0]]
            for j in range(n_issue):
                yield from run_phase(name, j, phases[j])
            issued[name].succeed()
        if preds:
            yield env.all_of([done[p] for p in preds]) if len(preds) > 1 else done[preds[0]]
        for j in range(n_issue, len(phases)):
            yield from run_phase(name, j, phases[j])
        done[name].succeed()

    for v in nodes:
        env.process(op_process(v, [p for p in graph.predecessors(v) if p in inside]))
    env.run()
    return env.now, [segments[v] for v in nodes]


def op_record(name: str, op: Op, c: Cost, segments: list[Segment], t: float, attributed_s: float,
              shape_op: Op | None = None) -> OpRecord:
    """The trace record of ``op`` (named ``name``) whose segments, relative to its segment run,
    start at ``t`` in the step; ``c`` is the device's cost. ``shape_op`` (default ``op``) gives
    shape, FLOPs and bytes: the bulk path's op at this step's context."""
    shape_op = shape_op or op
    shifted = tuple(Segment(x.unit, x.start + t, x.end + t, x.issue) for x in segments)
    return OpRecord(
        name=name, kind=op.kind.value, layer=op.layer, stack=op.stack, flops=shape_op.flops,
        start=shifted[0].start if shifted else t, end=max(x.end for x in shifted) if shifted else t,
        segments=shifted, busy_s=c.device_seconds, cycles=c.cycles, compute_cycles=c.compute_cycles,
        bytes_by_level=c.bytes_by_level, energy_j=c.energy_j, stats=c.stats,
        shape=dict(shape_op.shape), bytes_total=shape_op.bytes_total, attributed_s=attributed_s,
    )


def _segment_key(nodes: list[str], graph: nx.DiGraph) -> tuple:
    local = {v: i for i, v in enumerate(nodes)}
    sig = tuple(graph.nodes[v]["op"].signature for v in nodes)
    edges = tuple((local[a], local[b]) for v in nodes for a, b in graph.in_edges(v) if a in local)
    return sig, edges


def simulate_step(graph: nx.DiGraph, device: Device, reuse: bool = True) -> StepResult:
    """Simulate one phase step's op graph on ``device`` (``reuse=False``: one simpy run, no cuts), as the
    device runs it (:meth:`Device.step_graph`: PIM pipelines its FFNs; other devices leave it as lowered)."""
    graph = device.step_graph(graph)
    order = list(nx.lexicographical_topological_sort(graph))
    costs: dict[str, Cost] = {v: device.cost(graph.nodes[v]["op"]) for v in order}
    if not reuse or any(p.issue for c in costs.values() for p in c.phases):
        bounds = [len(order)]
    else:
        bounds = [c + 1 for c in _cuts(order, graph)]
        if not bounds or bounds[-1] != len(order):
            bounds.append(len(order))
    memo: dict[tuple, tuple[float, list[list[Segment]], list[float], float]] = {}
    t, start, idle = 0.0, 0, 0.0
    records: list[OpRecord] = []
    for end in bounds:
        nodes = order[start:end]
        start = end
        key = _segment_key(nodes, graph)
        if key not in memo:
            dur, segs = _run_segment(nodes, graph, costs, device.units)
            share, seg_idle = _attribute(segs, dur)
            memo[key] = (dur, segs, share, seg_idle)
        dur, segs, share, seg_idle = memo[key]
        idle += seg_idle
        for v, ss, a in zip(nodes, segs, share, strict=True):
            records.append(op_record(v, graph.nodes[v]["op"], costs[v], ss, t, a))
        t += dur
    g = graph.graph
    return StepResult.build(
        phase=g["phase"], step=g.get("step", 0), batch=g["batch"], seq_len=g.get("seq_len"),
        context_len=g.get("context_len"), latency_s=t, records=records, idle_s=idle,
        step_j={"static": device.spec.static_power_w * t}
        | {k: w * t for k, w in device.background_power_w().items()},
    )
