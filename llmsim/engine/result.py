"""Immutable simulation results and the breakdowns derived from the per-op trace.

Every breakdown is a sum over op records, so each adds up to its total: latency by op kind
(wall-clock attributed, ``idle`` included) sums to the step latency, energy by component
(``static`` and the device's background power, charged per step wall time, included) to the
step energy.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Segment:
    unit: str
    start: float
    end: float
    issue: bool = False


@dataclass(frozen=True, slots=True)
class OpRecord:
    name: str
    kind: str
    layer: int
    stack: str
    flops: float
    start: float
    end: float
    segments: tuple[Segment, ...]
    busy_s: float
    cycles: float
    compute_cycles: float
    bytes_by_level: dict[str, float]
    energy_j: dict[str, float]
    stats: dict[str, float]
    shape: dict[str, int]
    bytes_total: float
    attributed_s: float = 0.0


_RECORD_FIELDS = tuple(f.name for f in fields(OpRecord))


def _record_dict(r: OpRecord) -> dict[str, Any]:
    """``dataclasses.asdict(r)`` without its generic deep copy (the records' leaves are floats,
    strings and flat dicts)."""
    d = {k: getattr(r, k) for k in _RECORD_FIELDS}
    d["segments"] = tuple({"unit": x.unit, "start": x.start, "end": x.end, "issue": x.issue} for x in r.segments)
    for k in ("bytes_by_level", "energy_j", "stats", "shape"):
        d[k] = dict(d[k])
    return d


def op_class(name: str, kind: str) -> str:
    """An op's class: its kind and role without the layer (``matmul ffn.up``)."""
    parts = name.split(".")
    role = ".".join(parts[2:]) if len(parts) > 2 and parts[1].startswith("L") else ".".join(parts[1:])
    return f"{kind} {role or name}"


class LazyRecords(Sequence):
    """A step's op records, built on first access (the engine's replayed steps keep the
    aggregates and build the per-op trace only when a reader asks for it)."""

    def __init__(self, build: Callable[[], list[OpRecord]], n: int):
        self._build: Callable[[], list[OpRecord]] | None = build
        self._items: tuple[OpRecord, ...] = ()
        self._n = n

    def _get(self) -> tuple[OpRecord, ...]:
        if self._build is not None:
            self._items = tuple(self._build())
            self._build = None
        return self._items

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        return self._get()[i]

    def __iter__(self):
        return iter(self._get())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    def __reduce__(self):  # pickles as the built tuple (the builder is a closure)
        return tuple, (self._get(),)


def _sum_into(acc: dict[str, float], d: dict[str, float], scale: float = 1.0) -> None:
    for k, v in d.items():
        acc[k] = acc.get(k, 0.0) + v * scale


@dataclass(frozen=True)
class StepResult:
    phase: str
    step: int
    batch: int
    seq_len: int | None
    context_len: int | None
    latency_s: float
    energy_j: float
    energy_breakdown_j: dict[str, float]
    latency_breakdown_s: dict[str, float]
    latency_by_layer_s: dict[str, float]
    busy_by_unit_s: dict[str, float]
    bytes_by_level: dict[str, float]
    flops: float
    stats: dict[str, float]
    records: Sequence[OpRecord] = field(repr=False, default=())
    time_by_op_class_s: dict[str, float] = field(repr=False, default_factory=dict)

    @classmethod
    def build(cls, *, phase: str, step: int, batch: int, seq_len: int | None, context_len: int | None,
              latency_s: float, records: list[OpRecord], idle_s: float,
              step_j: dict[str, float]) -> StepResult:
        """``step_j``: energy drawn for the whole step (static, DRAM background), by component;
        it belongs to the step, not to any op."""
        energy: dict[str, float] = {}
        by_kind: dict[str, float] = defaultdict(float)
        by_layer: dict[str, float] = defaultdict(float)
        by_unit: dict[str, float] = defaultdict(float)
        bytes_lvl: dict[str, float] = {}
        stats: dict[str, float] = {}
        by_class: dict[str, float] = defaultdict(float)
        for r in records:
            a = r.attributed_s
            by_class[op_class(r.name, r.kind)] += a
            _sum_into(energy, r.energy_j)
            _sum_into(bytes_lvl, r.bytes_by_level)
            _sum_into(stats, r.stats)
            by_kind[r.kind] += a
            by_layer[f"{r.stack}.L{r.layer}" if r.layer >= 0 else (r.stack or "model")] += a
            for s in r.segments:
                by_unit[s.unit] += s.end - s.start
        if idle_s > 0:
            by_kind["idle"] += idle_s
            by_layer["idle"] += idle_s
        _sum_into(energy, step_j)
        return cls(
            phase=phase, step=step, batch=batch, seq_len=seq_len, context_len=context_len, latency_s=latency_s,
            energy_j=sum(energy.values()), energy_breakdown_j=energy, latency_breakdown_s=dict(by_kind),
            latency_by_layer_s=dict(by_layer), busy_by_unit_s=dict(by_unit), bytes_by_level=bytes_lvl,
            flops=sum(r.flops for r in records), stats=stats, records=tuple(records),
            time_by_op_class_s=dict(by_class),
        )

    def summary(self) -> dict[str, Any]:
        d: dict[str, Any] = {"phase": self.phase, "step": self.step, "batch": self.batch}
        d["seq_len" if self.phase == "prefill" else "context_len"] = (
            self.seq_len if self.phase == "prefill" else self.context_len)
        d.update(latency_s=self.latency_s, energy_j=self.energy_j)
        return d

    def to_dict(self, trace: bool = True) -> dict[str, Any]:
        d = self.summary() | {
            "energy_breakdown_j": self.energy_breakdown_j, "latency_breakdown_s": self.latency_breakdown_s,
            "latency_by_layer_s": self.latency_by_layer_s, "busy_by_unit_s": self.busy_by_unit_s,
            "bytes_by_level": self.bytes_by_level, "flops": self.flops, "stats": self.stats,
        }
        if trace:
            d["trace"] = [_record_dict(r) for r in self.records]
        return d


@dataclass(frozen=True)
class SimResult:
    """A whole generation: prefill then decode steps. ``config`` is fully resolved."""

    steps: tuple[StepResult, ...]
    config: dict[str, Any]
    tokens: int
    memory: dict[str, Any] = field(default_factory=dict)  # llmsim.engine.footprint.memory_footprint

    @property
    def ttft_s(self) -> float:
        return self.steps[0].latency_s

    @property
    def total_s(self) -> float:
        return sum(s.latency_s for s in self.steps)

    @property
    def tpot_s(self) -> float:
        dec = self.steps[1:]
        return sum(s.latency_s for s in dec) / len(dec) if dec else 0.0

    @property
    def energy_j(self) -> float:
        return sum(s.energy_j for s in self.steps)

    def _sum(self, attr: str) -> dict[str, float]:
        acc: dict[str, float] = {}
        for s in self.steps:
            _sum_into(acc, getattr(s, attr))
        return acc

    def by_phase(self, attr: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for s in self.steps:
            _sum_into(out.setdefault(s.phase, {}), getattr(s, attr))
        return out

    def top_ops(self, n: int = 8) -> list[tuple[str, float]]:
        """Op *classes* (kind + role, e.g. ``matmul ffn.up``) by attributed time over the run."""
        acc: dict[str, float] = defaultdict(float)
        for s in self.steps:
            _sum_into(acc, s.time_by_op_class_s)
        return sorted(acc.items(), key=lambda kv: -kv[1])[:n]

    def to_dict(self, trace_steps: str = "representative") -> dict[str, Any]:
        """JSON-ready dict. Full per-op traces are kept for the prefill and the first and last
        decode steps (``trace_steps="all"`` keeps every step's; ``"none"`` keeps those steps' details
        without their traces, for a reader of the aggregates only: building the per-op records of a
        replayed step costs more than the rest of the dict)."""
        if trace_steps not in ("representative", "all", "none"):
            raise ValueError(f"trace_steps must be 'representative', 'all' or 'none', not {trace_steps!r}")
        keep = set(range(len(self.steps))) if trace_steps == "all" else {0, 1, len(self.steps) - 1}
        total = self.total_s
        by_level = self._sum("bytes_by_level")
        return {
            "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "total_s": total,
            "tokens_per_s": self.tokens / total if total else 0.0, "tokens": self.tokens,
            "energy_j": self.energy_j, "energy_per_token_j": self.energy_j / self.tokens,
            "energy_breakdown_j": self._sum("energy_breakdown_j"),
            "latency_breakdown_s": self._sum("latency_breakdown_s"),
            "latency_by_phase_s": self.by_phase("latency_breakdown_s"),
            "energy_by_phase_j": self.by_phase("energy_breakdown_j"),
            "latency_by_layer_s": self._sum("latency_by_layer_s"),
            "busy_by_unit_s": self._sum("busy_by_unit_s"),
            "bytes_by_level": by_level,
            "achieved_bandwidth_bytes_per_s": {k: v / total for k, v in by_level.items()}
            if total else {},
            "stats": self._sum("stats"),
            "top_ops": [{"op": k, "seconds": v} for k, v in self.top_ops()],
            "steps": [s.summary() for s in self.steps],
            "step_details": [s.to_dict(trace=trace_steps != "none") | {"index": i} for i, s in enumerate(self.steps)
                             if i in keep],
            "memory_footprint": self.memory,
            "config": self.config,
        }

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(**kw), sort_keys=True, indent=1, default=str, allow_nan=False)

    def to_frame(self, by: str = "step") -> Any:
        """A pandas DataFrame (pandas imported here, on use): ``by="step"`` one row per step
        (latency, energy, FLOPs, energy by component as ``energy_j.<name>``), ``by="op"`` one row
        per op record of every step (start, end, attributed time, energy, bytes)."""
        from llmsim.api import require_pandas

        pd = require_pandas()
        if by == "step":
            rows = [s.summary() | {"flops": s.flops} | {f"energy_j.{k}": v for k, v in s.energy_breakdown_j.items()}
                    for s in self.steps]
        elif by == "op":
            rows = [{"step": i, "phase": s.phase, "op": r.name, "kind": r.kind, "layer": r.layer, "start_s": r.start,
                     "end_s": r.end, "attributed_s": r.attributed_s, "busy_s": r.busy_s, "flops": r.flops,
                     "bytes": r.bytes_total, "energy_j": sum(r.energy_j.values())}
                    for i, s in enumerate(self.steps) for r in s.records]
        else:
            from llmsim.errors import LlmsimError

            raise LlmsimError(f"to_frame(by={by!r}): 'step' or 'op'")
        return pd.DataFrame(rows)
