"""GPU: SMs with tensor and CUDA cores, L2, HBM/GDDR main memory, framework dispatch."""

from __future__ import annotations

from llmsim.devices.base import Device, is_matrix
from llmsim.graph.ops import Op


class Gpu(Device):
    kind = "gpu"
    units = {"host": 1, "gpu": 1}

    def unit_for(self, op: Op) -> str:
        return "gpu"

    def compute_unit_for(self, op: Op) -> str:
        return "tensor" if is_matrix(op) else "vector"
