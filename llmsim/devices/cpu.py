"""CPU: cores × SIMD × FMA units, cache hierarchy, DRAM, per-op framework dispatch."""

from __future__ import annotations

from llmsim.devices.base import Device
from llmsim.graph.ops import Op


class Cpu(Device):
    kind = "cpu"
    units = {"host": 1, "cores": 1}

    def unit_for(self, op: Op) -> str:
        return "cores"

    def compute_unit_for(self, op: Op) -> str:
        return "cores"
