"""The device protocol, the additive cost record and the roofline lower bound.

A device turns an :class:`~llmsim.graph.ops.Op` into a :class:`Cost`: how long it holds
which unit (a sequence of :class:`Phase`), the bytes it moves per memory level, and the
joules it spends per hardware component. Costs are pure functions of (op signature, spec),
so they are cached (DESIGN law 6); the engine turns phases into simpy processes competing
for the device's units, which is where overlap between units comes from (law 2).

Every device has two fidelities: ``analytic`` (the roofline: FLOPs / peak, bytes / peak
bandwidth per level — a true lower bound, law 5) and ``cycle`` (its own cycle-level model,
which must never beat the roofline). A device kind without a cycle-level model yet falls
back to the roofline and says so in :attr:`Device.cycle_level`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

from llmsim.config.base import DType
from llmsim.devices.quant import add_quant_work, quant_plan
from llmsim.errors import ConfigError, UnsupportedOpError
from llmsim.graph.ops import Op, OpKind

Fidelity = Literal["cycle", "analytic"]


def _add_maps(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + v
    return out


@dataclass(frozen=True, slots=True)
class Phase:
    """Hold ``unit`` for ``seconds``. An ``issue`` phase is host-side dispatch: it waits only
    for its predecessors to be *issued* (asynchronous launch), not for them to finish."""

    unit: str
    seconds: float
    issue: bool = False


@dataclass(frozen=True, slots=True)
class Cost:
    """What one op costs on one device. Adds with ``+`` (breakdowns are sums)."""

    seconds: float = 0.0
    cycles: float = 0.0
    compute_cycles: float = 0.0
    flops: float = 0.0
    bytes_by_level: dict[str, float] = field(default_factory=dict)
    energy_j: dict[str, float] = field(default_factory=dict)
    phases: tuple[Phase, ...] = ()
    stats: dict[str, float] = field(default_factory=dict)

    def __add__(self, o: Cost) -> Cost:
        return Cost(
            self.seconds + o.seconds, self.cycles + o.cycles, self.compute_cycles + o.compute_cycles,
            self.flops + o.flops, _add_maps(self.bytes_by_level, o.bytes_by_level),
            _add_maps(self.energy_j, o.energy_j), self.phases + o.phases, _add_maps(self.stats, o.stats),
        )

    @property
    def energy_total_j(self) -> float:
        return sum(self.energy_j.values())

    @property
    def device_seconds(self) -> float:
        return sum(p.seconds for p in self.phases if not p.issue)


@dataclass(frozen=True, slots=True)
class KvResidency:
    """What a device's memory holds beside the KV cache, for mappers that place the cache (PIM's
    channel groups, ``pim_batch``): ``other_bytes`` of weights and activations stored there (spread
    over the whole memory), ``bytes_per_token`` one sequence's K and V bytes per token over every
    layer the device holds, ``sequences`` the sequences whose cache it holds (None: an op's own
    batch is all of them; more when micro-batches share the device)."""

    capacity_bytes: float
    other_bytes: float
    bytes_per_token: float
    sequences: int | None = None

    @property
    def kv_room_bytes(self) -> float:
        """Bytes left for the KV cache."""
        return self.capacity_bytes - self.other_bytes


_REGISTRY: dict[str, type[Device]] = {}


def device_class(kind: str) -> type[Device]:
    from llmsim.devices import discover

    if kind not in _REGISTRY:
        discover(kind)  # the kind's own module
    if kind not in _REGISTRY:
        discover()  # every module
    try:
        return _REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"no device implementation for kind '{kind}' (known: {known})") from None


class Device:
    """Base of all devices. Subclasses declare ``kind = "..."`` and are registered on import;
    two classes claiming one kind is an error.

    Subclasses override :meth:`unit_for` and :meth:`compute_unit_for` (where an op runs),
    and :meth:`cycle_cost` once they have a cycle-level model (then set ``cycle_level``).
    """

    kind: ClassVar[str] = ""
    cycle_level: ClassVar[bool] = False
    units: ClassVar[dict[str, int]] = {"device": 1}
    # compute unit -> the compute unit that (de)quantises its operands (None: nothing can; see devices/quant.py)
    dequant_unit: ClassVar[dict[str, str | None]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not cls.kind:
            return
        if cls.kind in _REGISTRY and _REGISTRY[cls.kind] is not cls:
            raise TypeError(f"device kind '{cls.kind}' claimed by both {_REGISTRY[cls.kind].__name__} "
                            f"and {cls.__name__}")
        _REGISTRY[cls.kind] = cls

    def __init__(self, spec: Any, fidelity: Fidelity = "cycle", mode: str = "graph"):
        self.spec = spec
        known = {k.value for k in OpKind}
        fw = spec.framework
        dispatch = fw.eager_dispatch_s or fw.graph_dispatch_s or fw.eager_host_call_s or fw.eager_op_s
        if dispatch and "host" not in self.units:
            raise ConfigError(f"{spec.name}: framework: dispatch costs need a host unit to issue ops, and a "
                              f"{self.kind} device has none (units: {', '.join(self.units)})")
        for table in ("calls_per_op", "eager_op_s"):
            for k in getattr(spec.framework, table):
                if k.split(".")[0] not in known or (table == "eager_op_s" and "." in k):
                    raise ConfigError(f"{spec.name}: framework.{table}.{k} is not an op kind "
                                      f"({', '.join(sorted(known))})")
        self.fidelity: Fidelity = fidelity
        self.mode = mode
        self._cache: dict[tuple, Cost] = {}
        self.kv_residency: KvResidency | None = None  # unknown: mappers place the KV cache unconstrained

    def hold_kv(self, other_bytes: float, bytes_per_token: float, sequences: int | None = None) -> None:
        """Declare what the memory stores beside the KV cache (:class:`KvResidency`); costs cached
        before are dropped, since a mapper's choice may depend on it."""
        if other_bytes < 0 or bytes_per_token < 0 or (sequences is not None and sequences < 1):
            raise ConfigError(f"{self.spec.name}: KV residency needs other_bytes >= 0, bytes_per_token >= 0 and "
                              f"sequences >= 1 (got {other_bytes}, {bytes_per_token}, {sequences})")
        self.kv_residency = KvResidency(float(self.spec.memory.capacity_bytes), float(other_bytes),
                                        float(bytes_per_token), sequences)
        self._cache.clear()

    # ---- where an op runs ----------------------------------------------------------------
    def unit_for(self, op: Op) -> str:
        """The simpy unit (resource) the op occupies."""
        return next(iter(self.units))

    def compute_unit_for(self, op: Op) -> str:
        """The compute-unit spec (``spec.compute_units()`` key) whose peak bounds the op."""
        raise NotImplementedError

    def supports(self, op: Op) -> bool:
        unit = self.spec.compute_units()[self.compute_unit_for(op)]
        return op.flops == 0 or unit.peak_flops_per_s(op.dtype) > 0

    @property
    def clock_hz(self) -> float:
        return next(iter(self.spec.compute_units().values())).clock_hz

    # ---- power drawn for the whole step -------------------------------------------------------
    def background_power_w(self) -> dict[str, float]:
        """Power drawn for as long as a step lasts, busy or idle, by energy component (W).

        The engine charges each entry x the step's wall time, beside ``static_power_w``; op costs
        must never charge it (ops overlap and leave idle gaps, so per-op time would count it twice
        or not at all). Every device has DRAM main memory: its standby power (``background_mw``
        per channel) is drawn whatever the units do.
        """
        mem = self.spec.memory
        return {"dram_background": mem.energy.background_mw * 1e-3 * mem.channels}

    # ---- memory levels -------------------------------------------------------------------
    def dram_bytes_lower_bound(self, op: Op) -> float:
        """Bytes that must cross the main-memory interface: weights and KV always; activations
        only when the op's activation working set exceeds the largest on-chip level."""
        act = op.read.activation + op.write.activation
        onchip = max((lvl.capacity_bytes for lvl in self.spec.onchip), default=0)
        return op.read.weight + op.read.kv + op.write.kv + (act if act > onchip else 0.0)

    def level_traffic(self, op: Op) -> list[tuple[str, float, float, float]]:
        """``(level, bytes, bandwidth B/s, energy J/byte)`` the roofline charges the op with."""
        mem = self.spec.memory
        dram = self.dram_bytes_lower_bound(op)
        out = [("dram", dram, mem.peak_bandwidth_bytes_per_s, mem.energy_pj_per_bit_estimate * 8e-12)]
        onchip_bytes = op.bytes_total - dram
        if onchip_bytes > 0 and self.spec.onchip:
            lvl = max(self.spec.onchip, key=lambda x: x.capacity_bytes)
            out.append((lvl.name, onchip_bytes, lvl.bandwidth_bytes_per_s, lvl.energy_pj_per_byte * 1e-12))
        return out

    # ---- costs ------------------------------------------------------------------------------
    def bound(self, op: Op) -> Cost:
        """The roofline: max(FLOPs / peak, bytes_l / bandwidth_l for every level l)."""
        cu_name = self.compute_unit_for(op)
        cu = self.spec.compute_units()[cu_name]
        peak = cu.peak_flops_per_s(op.dtype)
        if op.flops and peak <= 0:
            raise UnsupportedOpError(f"op {op.name}: {self.spec.name} has no {op.dtype.value} path on '{cu_name}'")
        t_compute = op.flops / peak if op.flops else 0.0
        traffic = self.level_traffic(op)
        t = max([t_compute] + [b / bw for _, b, bw, _ in traffic if b])
        energy = {"compute": op.flops * cu.energy_per_flop_j(op.dtype)}
        for lvl, b, _, e in traffic:
            energy[lvl] = energy.get(lvl, 0.0) + b * e
        return Cost(
            seconds=t, cycles=t * cu.clock_hz, compute_cycles=t_compute * cu.clock_hz, flops=op.flops,
            bytes_by_level={lvl: b for lvl, b, _, _ in traffic}, energy_j=energy,
            phases=(Phase(self.unit_for(op), t),),
        )

    def cycle_cost(self, op: Op) -> Cost:
        """Cycle-level cost; devices without one yet use the roofline."""
        return self.bound(op)

    def host_seconds(self, op: Op) -> float:
        """Host time to issue ``op`` (DESIGN law 7): eager pays ``eager_dispatch_s`` per kernel the
        framework launches for it and ``eager_host_call_s`` per call that launches none (views);
        graph replay pays ``graph_dispatch_s`` per kernel."""
        fw = self.spec.framework
        calls = fw.calls(op.kind.value, op.attr("fn"))
        if self.mode == "eager":
            if op.kind.value in fw.eager_op_s:  # measured for this kind (calibrate.framework.eager_op_seconds)
                return fw.eager_op_s[op.kind.value]
            return calls.kernels * fw.eager_dispatch_s + calls.host_calls * fw.eager_host_call_s
        return calls.kernels * fw.graph_dispatch_s

    def host_phases(self, op: Op) -> tuple[Phase, ...]:
        """The host's issue phase (asynchronous unless the framework is synchronous)."""
        t = self.host_seconds(op)
        return (Phase("host", t, issue=not self.spec.framework.synchronous),) if t > 0 else ()

    def step_graph(self, graph: Any, keep: frozenset[str] = frozenset()) -> Any:
        """The step graph as this device runs it: a device whose data flow allows finer-grained
        dependencies than one op per product (PIM: :mod:`llmsim.devices.pim_flow`) rewrites it,
        leaving the ops in ``keep`` (context-dependent template ops) as they are, and returns the same
        object for the same (graph, keep) so that the engine reuses what it built on it (PIM keeps its
        rewrites per graph). Default: unchanged."""
        return graph

    def cost(self, op: Op) -> Cost:
        """Cached cost of ``op`` at this device's fidelity, with framework overheads."""
        key = op.signature
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if not self.supports(op):
            cu = self.compute_unit_for(op)
            has = ", ".join(d.value for d in self.spec.compute_units()[cu].flops_per_cycle)
            raise UnsupportedOpError(f"op {op.name} ({op.kind.value}, {op.dtype.value}) is not supported by "
                                     f"{self.spec.name}: its '{cu}' unit has no {op.dtype.value} path ({has})")
        plan = quant_plan(self, op)  # refuses first when no unit can (de)quantise the op's formats
        c = self.bound(op) if self.fidelity == "analytic" else self.cycle_cost(op)
        c = add_quant_work(self, op, c, plan)
        fw = self.spec.framework
        # the fixed device-side cost of every kernel the op launches
        k = fw.kernel_overhead_s * fw.calls(op.kind.value, op.attr("fn")).kernels
        if k > 0:
            c = replace(c, seconds=c.seconds + k,
                        phases=tuple(replace(p, seconds=p.seconds + k) if i == len(c.phases) - 1 else p
                                     for i, p in enumerate(c.phases)))
        c = replace(c, phases=self.host_phases(op) + c.phases)
        self._cache[key] = c
        return c

    def check_fits(self, weight_bytes: float, kv_bytes: float) -> None:
        """Refuse a model whose weights + KV cache exceed main memory (law 8)."""
        cap = self.spec.memory.capacity_bytes
        if weight_bytes + kv_bytes > cap:
            from llmsim.errors import CapacityError

            raise CapacityError(
                f"model does not fit {self.spec.name}: weights {weight_bytes / 1e9:.2f} GB + KV cache "
                f"{kv_bytes / 1e9:.2f} GB > memory capacity {cap / 1e9:.2f} GB; needs at least "
                f"{math.ceil((weight_bytes + kv_bytes) / cap)} devices (a system preset with --tp/--pp)"
            )


def is_matrix(op: Op) -> bool:
    return op.kind in (OpKind.matmul, OpKind.attention)


def build_device(spec: Any, fidelity: Fidelity = "cycle", mode: str = "graph") -> Device:
    """The device for ``spec.kind`` at the requested fidelity."""
    return device_class(spec.kind)(spec, fidelity=fidelity, mode=mode)


__all__ = ["Cost", "Device", "DType", "KvResidency", "Phase", "build_device", "device_class", "is_matrix"]
