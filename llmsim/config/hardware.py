"""Hardware specs: one schema, four kinds, built from shared parts.

``kind`` selects the variant (a pydantic discriminated union): ``gpu``, ``npu``, ``cpu``
or ``pim``. Every variant has the same shared parts — compute units, on-chip memory
levels, main memory (:class:`~llmsim.config.memory.DramSpec` under ``memory:``), a host
link, static power and framework overheads — plus what only that kind has.

Throughputs are per unit per cycle and count a multiply-accumulate as 2 FLOPs. Energies
are per action (pJ per FLOP, pJ per byte). Every preset carries ``source:``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from llmsim.config.base import DType, Spec
from llmsim.config.memory import DramSpec

Source = Union[str, dict[str, str]]


class ComputeUnitSpec(Spec):
    """``count`` identical units (SMs, cores, PE arrays, vector lanes) at ``clock_hz``."""

    count: int = Field(gt=0)
    clock_hz: float = Field(gt=0)
    flops_per_cycle: dict[DType, float] = Field(description="FLOPs per cycle per unit, by dtype (MAC = 2)")
    energy_pj_per_flop: dict[DType, float] = {}

    @model_validator(mode="after")
    def _positive(self) -> ComputeUnitSpec:
        for dt, v in self.flops_per_cycle.items():
            if v <= 0:
                raise ValueError(f"flops_per_cycle.{dt.value} must be > 0, got {v}")
        return self

    def peak_flops_per_s(self, dtype: DType) -> float:
        """Peak FLOP/s for ``dtype``; 0 when the unit has no path for it."""
        return self.count * self.clock_hz * self.flops_per_cycle.get(dtype, 0.0)

    def energy_per_flop_j(self, dtype: DType) -> float:
        if not self.energy_pj_per_flop:
            return 0.0
        pj = self.energy_pj_per_flop.get(dtype)
        if pj is None:  # nearest wider format that is listed
            pj = max(self.energy_pj_per_flop.values())
        return pj * 1e-12


class SramLevelSpec(Spec):
    """An on-chip memory level (cache, scratchpad, global buffer)."""

    name: str
    capacity_bytes: int = Field(gt=0)
    bandwidth_bytes_per_s: float = Field(gt=0)
    energy_pj_per_byte: float = Field(default=0.0, ge=0)


class LinkSpec(Spec):
    """Host link or interconnect (PCIe, NVLink, the PIM-GPT host bus)."""

    bandwidth_bytes_per_s: float = Field(gt=0)
    latency_s: float = Field(default=0.0, ge=0)
    energy_pj_per_bit: float = Field(default=0.0, ge=0)


class FrameworkSpec(Spec):
    """Per-kernel costs of running under a framework (DESIGN law 7).

    ``eager_dispatch_s``: host time to dispatch one kernel in eager mode (the host runs
    ahead of the device asynchronously). ``graph_dispatch_s``: the same inside a captured
    graph replay. ``kernel_overhead_s``: fixed device-side cost per kernel (launch, tail).
    """

    eager_dispatch_s: float = Field(default=0.0, ge=0)
    graph_dispatch_s: float = Field(default=0.0, ge=0)
    kernel_overhead_s: float = Field(default=0.0, ge=0)
    synchronous: bool = Field(default=False, description="host waits for each op (CPU frameworks)")


class HardwareBase(Spec):
    name: str
    source: Source
    description: str = ""
    memory: DramSpec
    onchip: list[SramLevelSpec] = []
    host_link: LinkSpec | None = None
    static_power_w: float = Field(default=0.0, ge=0)
    framework: FrameworkSpec = FrameworkSpec()
    area_mm2: float | None = Field(default=None, gt=0)
    cost_usd: float | None = Field(default=None, gt=0)
    memory_efficiency: float = Field(
        default=1.0, gt=0, le=1, description="achievable / peak main-memory bandwidth (calibrated)"
    )

    def onchip_level(self, name: str) -> SramLevelSpec | None:
        return next((lvl for lvl in self.onchip if lvl.name == name), None)

    def compute_units(self) -> dict[str, ComputeUnitSpec]:
        raise NotImplementedError


class GpuSpec(HardwareBase):
    kind: Literal["gpu"] = "gpu"
    tensor: ComputeUnitSpec = Field(description="tensor cores, per SM (count = SMs)")
    vector: ComputeUnitSpec = Field(description="CUDA cores, per SM (count = SMs)")
    max_threads_per_sm: int = Field(default=2048, gt=0)

    def compute_units(self) -> dict[str, ComputeUnitSpec]:
        return {"tensor": self.tensor, "vector": self.vector}


class NpuSpec(HardwareBase):
    kind: Literal["npu"] = "npu"
    array: ComputeUnitSpec = Field(description="systolic arrays (count = cores); flops_per_cycle = 2·R·C")
    array_rows: int = Field(gt=0)
    array_cols: int = Field(gt=0)
    dataflow: Literal["ws", "os", "is"] = "ws"
    vector: ComputeUnitSpec = Field(description="vector unit for norms, softmax, activations")

    def compute_units(self) -> dict[str, ComputeUnitSpec]:
        return {"array": self.array, "vector": self.vector}


class CpuSpec(HardwareBase):
    kind: Literal["cpu"] = "cpu"
    cores: ComputeUnitSpec = Field(description="cores; flops_per_cycle = SIMD lanes × FMA units × 2")
    threads: int | None = Field(default=None, gt=0, description="threads used; default = cores")
    isa: str = ""

    def compute_units(self) -> dict[str, ComputeUnitSpec]:
        return {"cores": self.cores}

    # ---- CPU cost-model facts (llmsim/devices/cpu.py) ----------------------------------------
    private_levels: list[str] = Field(
        default=["l1", "l2"],
        description="onchip levels private to each core: their capacity_bytes and bandwidth_bytes_per_s are per "
                    "core; the other levels are shared and give totals",
    )
    register_tile: tuple[int, int] = Field(
        description="GEMM micro-kernel register block (rows of A, columns of B), elements; e.g. BLIS sgemm 32x12 "
                    "on AVX-512, 8x12 on NEON",
    )
    cache_fill_fraction: float = Field(
        default=0.5, gt=0, le=1,
        description="share of a cache level one GEMM block may fill (the rest holds the other operands); also the "
                    "share of a level that counts as room for a resident activation",
    )
    vector_flops_fraction: float = Field(
        default=0.5, gt=0, le=1,
        description="non-GEMM arithmetic (adds, muls, exp) as a fraction of the FMA rate flops_per_cycle: a plain "
                    "add or mul is one FLOP per lane where an FMA is two",
    )
    core_memory_bandwidth_bytes_per_s: float | None = Field(
        default=None, gt=0,
        description="main-memory bandwidth one core can draw (outstanding misses / latency); None: no per-core limit",
    )
    parallel_grain_elements: int = Field(
        default=32768, gt=0,
        description="elements per thread below which the framework runs a pointwise op single-threaded "
                    "(PyTorch at::internal::GRAIN_SIZE = 32768)",
    )
    parallel_region_s: float = Field(
        default=0.0, ge=0, description="fork/join cost of one multi-threaded region (OpenMP), seconds",
    )

    @model_validator(mode="after")
    def _cpu_levels(self) -> CpuSpec:
        names = [lvl.name for lvl in self.onchip]
        if names[:2] != ["l1", "l2"]:
            raise ValueError(f"onchip: a cpu lists its caches innermost first, starting l1, l2 (have: {names})")
        for p in self.private_levels:
            if p not in names:
                raise ValueError(f"private_levels: '{p}' is not an onchip level (have: {names})")
        if min(self.register_tile) <= 0:
            raise ValueError(f"register_tile must be positive, got {self.register_tile}")
        return self


class PimSpec(HardwareBase):
    kind: Literal["pim"] = "pim"
    bank_mac: ComputeUnitSpec = Field(description="MAC units in the DRAM banks (count = all banks of all channels)")
    asic: ComputeUnitSpec = Field(description="the controller ASIC's vector unit (non-linear ops, reductions)")

    def compute_units(self) -> dict[str, ComputeUnitSpec]:
        return {"bank_mac": self.bank_mac, "asic": self.asic}


HardwareSpec = Annotated[Union[GpuSpec, NpuSpec, CpuSpec, PimSpec], Field(discriminator="kind")]
