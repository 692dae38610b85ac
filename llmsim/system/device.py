"""The system as the engine sees it: the units of every stage's devices and links, one cost per op.

The engine needs a ``cost(op)``, a map of units and the step's background power; this class
gives it those for a whole system while the devices inside stay ordinary devices. An op runs on
the device group its kind is placed on (``placement``; default the first group), on the
representative rank of its pipeline stage (attr ``stage``): its phases hold that rank's units,
renamed ``s{stage}.{group}.{unit}``. A collective holds its stage's port (``s{stage}.tp``,
``s{stage}.pp``, ``s{stage}.cross``) with the closed-form steps of :mod:`llmsim.system.collectives`.

Every rank of a tensor-parallel group runs the same op at the same time, so the simulated rank
stands for all of them: times are its times, and energies (op, link, static, background) are
multiplied by the ranks that spend them (``dp`` data-parallel replicas are more such ranks,
each serving its own batch). Bytes per level are one rank's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from llmsim.devices.base import Cost, build_device
from llmsim.errors import ConfigError
from llmsim.graph.ops import Op, OpKind
from llmsim.system.collectives import ALGORITHM, collective_cost
from llmsim.system.spec import SystemSpec


@dataclass(frozen=True)
class SystemView:
    """What the engine and the result read of ``device.spec``."""

    name: str
    kind: str
    static_power_w: float


def _strip(op: Op) -> Op:
    return replace(op, attrs=tuple((k, v) for k, v in op.attrs if k != "stage"))


def check_ranks(system: SystemSpec, tp: int, pp: int, ep: int, dp: int) -> int:
    """The devices ``tp x pp x ep x dp`` ranks take; refused when the system has fewer."""
    main = system.main_group
    need = tp * pp * ep * dp
    if need > system.devices[main].count:
        raise ConfigError(f"--tp {tp} x --pp {pp} x --ep {ep} x --dp {dp} needs {need} '{main}' devices; "
                          f"{system.name} has {system.devices[main].count}")
    for g, grp in system.devices.items():
        if g != main and grp.count < need:
            raise ConfigError(f"{system.name}: placement pairs each of the {need} '{main}' ranks with a "
                              f"'{g}' device, and devices.{g}.count is {grp.count}")
    return need


class SystemDevice:
    kind = "system"

    def __init__(self, system: SystemSpec, specs: dict[str, Any], tp: int = 1, pp: int = 1,
                 fidelity: str = "cycle", mode: str = "graph", ep: int = 1, dp: int = 1):
        need = check_ranks(system, tp, pp, ep, dp)
        self.system, self.tp, self.pp = system, tp, pp
        # ranks of a stage, all running the simulated rank's graph (data-parallel replicas run it too)
        self.ranks = tp * ep * dp
        self.devs = {g: build_device(s, fidelity=fidelity, mode=mode) for g, s in specs.items()}
        self.placement = {k: g for k, g in system.placement.items()}
        self.cycle_level = all(type(d).cycle_level for d in self.devs.values())
        self.units: dict[str, int] = {}
        for s in range(pp):
            for g, d in self.devs.items():
                for u, cap in d.units.items():
                    self.units[f"s{s}.{g}.{u}"] = cap
            self.units[f"s{s}.tp"] = 1
            if s < pp - 1:
                self.units[f"s{s}.pp"] = 1
            if len(self.devs) > 1:
                self.units[f"s{s}.cross"] = 1
        static = sum(d.spec.static_power_w for d in self.devs.values()) * need
        self.spec = SystemView(system.name, "system", static)
        self.fidelity = fidelity
        self._cache: dict[tuple, Cost] = {}

    def step_graph(self, graph: Any, keep: frozenset[str] = frozenset()) -> Any:
        """A system runs the split graph as lowered: a member device's own rewrite (PIM's pipelined
        FFN tiles, :meth:`Device.step_graph`) is not applied inside a system yet."""
        return graph

    def group_for(self, op: Op) -> str:
        return self.placement.get(op.kind.value, self.system.main_group)

    def _port(self, op: Op):
        if op.attr("port") == "cross":
            return self.system.links[self.system.crossing], "ring"
        fab = self.system.topology[self.system.main_group]
        return self.system.links[fab.link], ALGORITHM[fab.kind]

    def cost(self, op: Op) -> Cost:
        key = op.signature
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        stage = op.attr("stage", 0)
        if op.kind == OpKind.collective:
            link, algo = self._port(op)
            c = collective_cost(op.attr("fn"), algo, op.dim("ranks"), op.dim("bytes"), link,
                                f"s{stage}.{op.attr('port')}")
            # the framework launches a collective as it launches any kernel (NCCL): the host's issue phase
            main = self.system.main_group
            host = tuple(replace(p, unit=f"s{stage}.{main}.{p.unit}")
                         for p in self.devs[main].host_phases(_strip(op)))
            c = replace(c, phases=host + c.phases)
        else:
            g = self.group_for(op)
            base = self.devs[g].cost(_strip(op))
            c = replace(base, phases=tuple(replace(p, unit=f"s{stage}.{g}.{p.unit}") for p in base.phases))
        c = replace(c, energy_j={k: v * self.ranks for k, v in c.energy_j.items()})
        self._cache[key] = c
        return c

    def background_power_w(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for d in self.devs.values():
            for k, w in d.background_power_w().items():
                out[k] = out.get(k, 0.0) + w * self.ranks * self.pp
        return out
