"""System specs (``kind: system``): devices by preset reference, links and a topology.

A system is a graph of devices and links (STYLE rule 17): groups of identical devices, each
named after a hardware preset with a ``count``; links with a latency, a bandwidth per direction
and an energy per bit; a ``topology`` saying how a group's devices reach each other (which link,
which fabric shape). A device preset never learns it is part of a system: the system layer
(:mod:`llmsim.system.device`) wraps the devices it builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from llmsim.config.base import Spec
from llmsim.errors import ConfigError

Topology = Literal["switch", "ring", "mesh", "pcie-tree"]


class SystemLinkSpec(Spec):
    """One device's port into a fabric: latency per message, bandwidth per direction, energy per bit."""

    bandwidth_bytes_per_s: float = Field(gt=0, description="per direction, per device port")
    latency_s: float = Field(ge=0, description="per message (one hop of a collective's step)")
    energy_pj_per_bit: float = Field(ge=0)
    source: str | dict[str, str] = ""


class DeviceGroupSpec(Spec):
    """``count`` devices of hardware preset ``preset`` (a bundled name or a path); ``set``: field
    overrides of the preset, as ``--set hw.KEY.PATH=VALUE`` would apply them (``memory.channels: 32``)."""

    preset: str
    count: int = Field(gt=0)
    set: dict[str, Any] = {}


class FabricSpec(Spec):
    """How a group's devices talk: ``kind`` (the fabric shape) over ``link`` (each device's port)."""

    kind: Topology
    link: str


class SystemSpec(Spec):
    kind: Literal["system"]
    name: str
    source: str | dict[str, str] = ""
    devices: dict[str, DeviceGroupSpec] = Field(min_length=1)
    links: dict[str, SystemLinkSpec] = Field(min_length=1)
    topology: dict[str, FabricSpec] = Field(description="device group -> its fabric")
    placement: dict[str, str] = Field(default={}, description="op kind -> device group (default: the first group)")
    crossing: str | None = Field(default=None, description="link activations take between device groups")

    @model_validator(mode="after")
    def _refs(self) -> SystemSpec:
        for g, fab in self.topology.items():
            if g not in self.devices:
                raise ValueError(f"topology.{g}: no device group '{g}' (groups: {', '.join(self.devices)})")
            if fab.link not in self.links:
                raise ValueError(f"topology.{g}.link: no link '{fab.link}' (links: {', '.join(self.links)})")
        for g in self.devices:
            if g not in self.topology:
                raise ValueError(f"devices.{g}: the group has no entry in topology")
        from llmsim.graph.ops import OpKind

        kinds = {k.value for k in OpKind}
        for k, g in self.placement.items():
            if k not in kinds:
                raise ValueError(f"placement.{k}: not an op kind ({', '.join(sorted(kinds))})")
            if g not in self.devices:
                raise ValueError(f"placement.{k}: no device group '{g}' (groups: {', '.join(self.devices)})")
        if self.crossing is not None and self.crossing not in self.links:
            raise ValueError(f"crossing: no link '{self.crossing}' (links: {', '.join(self.links)})")
        if len(self.devices) > 1 and self.crossing is None:
            raise ValueError("crossing: a system of several device groups needs the link between them")
        return self

    @property
    def main_group(self) -> str:
        return next(iter(self.devices))


def system_dict(name: str | Path) -> tuple[dict, Path] | None:
    """The YAML of ``name`` when it is a ``kind: system`` spec (bundled ones live in ``hw_configs/system/``)."""
    from llmsim.config.loader import hardware_dict

    for cand in (name, f"system/{name}"):
        try:
            data, path = hardware_dict(cand)
        except ConfigError:
            continue
        if data.get("kind") == "system":
            return data, path
    return None


def is_system(name: str | Path) -> bool:
    """True when the hardware preset or file ``name`` is a ``kind: system`` spec."""
    return system_dict(name) is not None


LAYOUT_FLAGS = (("tp", "--tp"), ("pp", "--pp"), ("ep", "--ep"), ("dp", "--dp"), ("micro", "--micro-batches"))


def check_layout_flags(hw_name: str, system: bool, **flags: int | None) -> None:
    """Refuse a parallel layout on one device, or a count below 1 (``llmsim run/step/serve``'s
    ``--tp/--pp/--ep/--dp/--micro-batches``, a sweep's ``serve.tp`` ...; None: not given)."""
    given = [(f, flags[k]) for k, f in LAYOUT_FLAGS if flags.get(k) is not None]
    if not system:
        if given:
            raise ConfigError(f"{given[0][0]} needs a system preset (kind: system, e.g. --hw dgx-h100); "
                              f"'{hw_name}' is one device")
        return
    for f, v in given:
        if v < 1:
            raise ConfigError(f"{f} must be >= 1, got {v}")


def load_system(name: str | Path, overrides: list[tuple[list[str], Any]] = ()) -> SystemSpec:
    """A system spec by name or path; ``overrides`` are ``--set hw.*`` paths into it."""
    from llmsim.config.loader import apply_set, validate

    found = system_dict(name)
    if found is None:
        raise ConfigError(f"'{name}' is not a system preset or file (kind: system)")
    data, path = found
    for p, v in overrides:
        apply_set(data, p, v, "hw")
    return validate(SystemSpec, data, str(path))


def load_group_device_spec(system: SystemSpec, group: str) -> Any:
    """The hardware spec of one device group (its preset, validated as any preset is)."""
    from llmsim.config.loader import load_hardware

    grp = system.devices[group]
    return load_hardware(grp.preset, [(k.split("."), v) for k, v in grp.set.items()])
