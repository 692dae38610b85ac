"""Main-memory (DRAM) spec. PLACEHOLDER until the cycle-level DRAM model lands."""

from __future__ import annotations

from pydantic import Field

from llmsim.config.base import Spec


class DramSpec(Spec):
    standard: str
    source: str = ""
    channels: int = Field(gt=0)
    ranks: int = Field(default=1, gt=0)
    bank_groups: int = Field(gt=0)
    banks_per_group: int = Field(gt=0)
    rows: int = Field(gt=0)
    columns: int = Field(gt=0)
    device_width_bits: int = Field(gt=0)
    devices_per_channel: int = Field(default=1, gt=0)
    burst_length: int = Field(gt=0)
    tck_ns: float = Field(gt=0)
    data_rate: int = Field(default=2, gt=0)
    timing: dict[str, float] = {}
    energy: dict[str, float] = {}

    @property
    def tck_s(self) -> float:
        return self.tck_ns * 1e-9

    @property
    def banks(self) -> int:
        return self.ranks * self.bank_groups * self.banks_per_group

    @property
    def channel_bandwidth_bytes_per_s(self) -> float:
        return self.device_width_bits * self.devices_per_channel / 8 * self.data_rate / self.tck_s

    @property
    def peak_bandwidth_bytes_per_s(self) -> float:
        return self.channels * self.channel_bandwidth_bytes_per_s

    @property
    def capacity_bytes(self) -> int:
        per_bank = self.rows * self.columns * self.device_width_bits * self.devices_per_channel // 8
        return self.channels * self.banks * per_bank

    @property
    def energy_pj_per_bit_estimate(self) -> float:
        return self.energy.get("pj_per_bit", 7.5)
