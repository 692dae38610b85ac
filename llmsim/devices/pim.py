"""PIM-DRAM (PIM-GPT style): MAC units in the DRAM banks plus a controller ASIC."""

from __future__ import annotations

from llmsim.devices.base import Device, is_matrix
from llmsim.graph.ops import Op


class Pim(Device):
    kind = "pim"
    units = {"banks": 1, "asic": 1}

    def unit_for(self, op: Op) -> str:
        return "banks" if is_matrix(op) else "asic"

    def compute_unit_for(self, op: Op) -> str:
        return "bank_mac" if is_matrix(op) else "asic"

    def level_traffic(self, op: Op) -> list[tuple[str, float, float, float]]:
        """Matrix ops read weights and KV inside the banks (bounded by the bank MACs' rate,
        i.e. the compute term); only activations cross the channel bus."""
        if not is_matrix(op):
            return super().level_traffic(op)
        mem = self.spec.memory
        act = op.read.activation + op.write.activation
        return [("dram", act, mem.peak_bandwidth_bytes_per_s, mem.energy_pj_per_bit_estimate * 8e-12),
                ("dram_internal", op.read.weight + op.read.kv, float("inf"), 0.0)]
