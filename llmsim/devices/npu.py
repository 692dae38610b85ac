"""NPU: systolic-array cores with SRAM buffers and a vector unit."""

from __future__ import annotations

from llmsim.devices.base import Device, is_matrix
from llmsim.graph.ops import Op


class Npu(Device):
    kind = "npu"
    units = {"host": 1, "array": 1, "vector": 1}

    def unit_for(self, op: Op) -> str:
        return "array" if is_matrix(op) else "vector"

    def compute_unit_for(self, op: Op) -> str:
        return self.unit_for(op)
