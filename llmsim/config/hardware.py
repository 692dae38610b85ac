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

from pydantic import Field, field_validator, model_validator

from llmsim.config.base import DType, Spec
from llmsim.config.gpu_kernels import GpuKernelSpec
from llmsim.config.memory import DramSpec

Source = Union[str, dict[str, str]]

#: Simulated-state caps (the cycle-level models keep state per unit and per DRAM bank): far
#: above any real chip (an H100 has 132 SMs and ~2,560 HBM banks), low enough that a typo such
#: as ``channels: 1e18`` is refused instead of allocating gigabytes.
MAX_UNITS = 2**20
MAX_DRAM_BANKS = 2**20


class ComputeUnitSpec(Spec):
    """``count`` identical units (SMs, cores, PE arrays, vector lanes) at ``clock_hz``."""

    count: int = Field(gt=0, le=MAX_UNITS)
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


class OpCallsSpec(Spec):
    """What the framework runs for one llmsim op: kernels it launches and calls that launch none."""

    kernels: int = Field(default=1, ge=0, description="kernels launched per op")
    host_calls: int = Field(default=0, ge=0, description="framework calls per op that launch no kernel "
                            "(views, reshapes, slices, selects)")


class FrameworkSpec(Spec):
    """Per-kernel costs of running under a framework (DESIGN law 7).

    ``eager_dispatch_s``: host time to dispatch one kernel in eager mode (the host runs
    ahead of the device asynchronously). ``graph_dispatch_s``: the same inside a captured
    graph replay. ``kernel_overhead_s``: fixed device-side cost per kernel (launch, tail).
    ``calls_per_op``: by op kind, the kernels and host-only calls an eager framework runs for
    one llmsim op (an op kind not listed: one kernel, no host-only call); counted from a
    profile of the PyTorch reference (``benchmarks/framework_calls.py``). ``eager_host_call_s``:
    host time of one host-only call. ``eager_op_s``: by op kind, the measured eager host time of one
    op in the context of a layer (``llmsim.calibrate.framework.eager_op_seconds``); where given it
    replaces the count-based estimate for that kind. ``eager_python_call_s``: host time the
    model's own Python spends around each framework call (kernel-launching or not) in a real
    forward pass, beyond the dispatch a tight loop of one op measures.
    """

    source: str | None = Field(default=None, description="where the framework figures come from (a framework/ file)")
    eager_dispatch_s: float = Field(default=0.0, ge=0)
    graph_dispatch_s: float = Field(default=0.0, ge=0)
    kernel_overhead_s: float = Field(default=0.0, ge=0)
    eager_host_call_s: float = Field(default=0.0, ge=0)
    calls_per_op: dict[str, OpCallsSpec] = Field(default_factory=dict)
    eager_op_s: dict[str, float] = Field(
        default_factory=dict, description="measured eager host seconds of one op, by op kind (replaces the "
        "count-based estimate for that kind)")
    synchronous: bool = Field(default=False, description="host waits for each op (CPU frameworks)")
    eager_python_call_s: float = Field(
        default=0.0, ge=0, description="host seconds of the model's Python around each framework call in eager "
        "mode (used by GPU devices; 0 = none)")

    def calls(self, kind: str, fn: str | None = None) -> OpCallsSpec:
        """Calls for an op of ``kind`` (``kind.fn``, e.g. ``elementwise.rope``, is looked up first)."""
        return (fn and self.calls_per_op.get(f"{kind}.{fn}")) or self.calls_per_op.get(kind) or _ONE_KERNEL


_ONE_KERNEL = OpCallsSpec()


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
        default=1.0, gt=0, le=1,
        description="residual efficiency over the cycle-level DRAM model (fabric/controller losses it does not model)"
    )

    @model_validator(mode="before")
    @classmethod
    def _bounded_memory(cls, data: object) -> object:
        """Refuse a DRAM organisation past :data:`MAX_DRAM_BANKS` before anything derives from it."""
        mem = data.get("memory") if isinstance(data, dict) else None
        if isinstance(mem, dict):
            n = 1
            for k in ("channels", "ranks", "bank_groups", "banks_per_group"):
                v = mem.get(k, 1)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
                    n *= v
            if n > MAX_DRAM_BANKS:
                raise ValueError(f"memory: channels x ranks x bank_groups x banks_per_group = {n:.3g} banks is over "
                                 f"the simulator's {MAX_DRAM_BANKS:,} (no memory system has that many)")
        return data

    def onchip_level(self, name: str) -> SramLevelSpec | None:
        return next((lvl for lvl in self.onchip if lvl.name == name), None)

    def compute_units(self) -> dict[str, ComputeUnitSpec]:
        raise NotImplementedError


class GpuSpec(HardwareBase):
    kind: Literal["gpu"] = "gpu"
    tensor: ComputeUnitSpec = Field(description="tensor cores, per SM (count = SMs)")
    vector: ComputeUnitSpec = Field(description="CUDA cores, per SM (count = SMs)")
    max_threads_per_sm: int = Field(default=2048, gt=0)
    kernels: GpuKernelSpec = Field(description="kernel-library mapping: GEMM tiles, attention kernels, dispatch")

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

    # ---- systolic-array micro-architecture, read by llmsim/devices/npu.py ----------------------
    pe_macs_per_cycle: dict[DType, int] = Field(
        default={}, description="MACs one PE completes per cycle, by dtype (k > 1 packs k reduction "
        "elements per PE); when given, array.flops_per_cycle is derived as 2·R·C·k")
    trim_edges: bool = Field(
        default=False, description="edge folds bypass idle PEs (pay r + c, not R + C); also lets the "
        "mapper use power-of-two sub-arrays. False = SCALE-Sim semantics")

    @model_validator(mode="before")
    @classmethod
    def _derive_array_peak(cls, data: object) -> object:
        """array.flops_per_cycle = 2 · array_rows · array_cols · pe_macs_per_cycle (one source)."""
        if not (isinstance(data, dict) and data.get("pe_macs_per_cycle") and isinstance(data.get("array"), dict)):
            return data
        rows, cols, macs = data.get("array_rows"), data.get("array_cols"), data["pe_macs_per_cycle"]
        if not (isinstance(rows, int) and isinstance(cols, int) and isinstance(macs, dict)):
            return data  # field validation reports the bad value
        derived = {dt: 2 * rows * cols * k for dt, k in macs.items()}
        given = data["array"].get("flops_per_cycle")
        if given is not None and {str(getattr(k, "value", k)): v for k, v in given.items()} != {
                str(getattr(k, "value", k)): v for k, v in derived.items()}:
            raise ValueError(f"array.flops_per_cycle {given} disagrees with 2 x array_rows ({rows}) x array_cols "
                             f"({cols}) x pe_macs_per_cycle {macs}; leave it out, it is derived")
        return {**data, "array": {**data["array"], "flops_per_cycle": derived}}

    @model_validator(mode="after")
    def _npu_buffers(self) -> NpuSpec:
        for buf in ("ifmap", "filter", "ofmap"):
            if self.onchip_level(buf) is None:
                raise ValueError(f"onchip needs a level named '{buf}' (the per-core {buf} SRAM buffer)")
        for dt, k in self.pe_macs_per_cycle.items():
            if k < 1:
                raise ValueError(f"pe_macs_per_cycle.{dt.value} must be >= 1, got {k}")
        return self


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
    gemv_weight_bytes_per_s: float | None = Field(
        default=None, gt=0,
        description="weight bytes/s the framework's BLAS streams in a 1-row GEMM (GEMV) from DRAM, all threads "
                    "(measured by llmsim calibrate); None: no such limit")
    pointwise_cycles_per_element: dict[str, float] = Field(
        default={},
        description="core cycles per element of the framework's pointwise kernels, by function (gelu, relu, "
                    "silu_mul, gelu_mul, add, layernorm, rmsnorm), one thread, in cache (measured by llmsim "
                    "calibrate); a function not listed is costed by its FLOPs at the vector rate")
    pack_weight_bytes_per_s: float | None = Field(
        default=None, gt=0,
        description="weight bytes/s the framework's BLAS packs a DRAM-resident weight at before a multi-row GEMM, "
                    "all threads (measured by llmsim calibrate); packing precedes the compute of each panel, so "
                    "it adds; None: not modelled")
    weight_row_s: float = Field(
        default=0.0, ge=0,
        description="seconds the framework's BLAS spends per row of a DRAM-resident weight stored [out, in] (one "
                    "output column of x · Wᵀ) beyond streaming its bytes, all threads, in 1-row and packed GEMMs "
                    "(measured by llmsim calibrate from equal bytes in long and short rows); 0: not modelled")
    pack_weight_bytes_per_s_by_rows: dict[int, float] = Field(
        default={},
        description="pack_weight_bytes_per_s measured per row count M of the GEMM (the BLAS takes different paths "
                    "for few rows), all threads (measured by llmsim calibrate); between measured M the seconds per "
                    "byte are interpolated linearly in M, beyond them the nearest is held; empty: "
                    "pack_weight_bytes_per_s for every M")

    @field_validator("pack_weight_bytes_per_s_by_rows")
    @classmethod
    def _pack_rows(cls, v: dict[int, float]) -> dict[int, float]:
        for rows, rate in v.items():
            if rows < 2 or rate <= 0:
                raise ValueError(f"pack_weight_bytes_per_s_by_rows: rows must be >= 2 and rates > 0, "
                                 f"got {rows}: {rate}")
        return dict(sorted(v.items()))

    def pack_rate(self, rows: int) -> float | None:
        """Weight bytes/s the BLAS packs at before an ``rows``-row GEMM (None: not modelled)."""
        table = self.pack_weight_bytes_per_s_by_rows
        if not table:
            return self.pack_weight_bytes_per_s
        ms = sorted(table)
        if rows <= ms[0]:
            return table[ms[0]]
        if rows >= ms[-1]:
            return table[ms[-1]]
        hi = next(i for i, m in enumerate(ms) if m >= rows)
        m0, m1 = ms[hi - 1], ms[hi]
        f = (rows - m0) / (m1 - m0)
        return 1.0 / ((1 - f) / table[m0] + f / table[m1])

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

    # ---- PIM-GPT specifics (llmsim/devices/pim.py; docs/pim.md) ----
    mac_lanes_per_bank: int = Field(default=16, gt=0, description="multipliers per bank MAC unit (one burst/MAC_AB)")
    mac_dtypes: list[DType] = Field(default=[DType.bf16], min_length=1, description="formats the bank MACs compute in")
    bank_mac_vectors_per_burst: int = Field(
        default=1, gt=0, le=64,
        description="query vectors one burst of K/V feeds in attention (k x mac_lanes_per_bank multipliers per bank; "
                    "1 = AiM / PIM-GPT; > 1 = a GQA-aware what-if)")
    global_buffer_bytes: int = Field(default=2048, gt=0, description="per-channel buffer broadcasting the input vector")
    exp_taylor_terms: int = Field(default=6, gt=0, description="Taylor-series terms of exp() on the ASIC")
    reciprocal_newton_iterations: int = Field(default=3, gt=0, description="Newton-Raphson steps of 1/x")
    rsqrt_newton_iterations: int = Field(default=2, gt=0, description="Newton steps after the fast-inverse-sqrt seed")
    asic_pipeline_cycles: int = Field(default=4, ge=0, description="latency of one dependent ASIC vector op, cycles")

    @model_validator(mode="before")
    @classmethod
    def _derive_bank_mac(cls, data):
        """``bank_mac.count`` and ``clock_hz`` follow from ``memory`` (banks of all channels; one MAC_AB
        every tCCD_MAC) and ``flops_per_cycle`` from ``mac_lanes_per_bank`` × ``mac_dtypes`` (2 FLOPs per
        lane): filled in when omitted, so ``--set memory.channels=16`` or ``--set mac_lanes_per_bank=32``
        stays consistent."""
        if not isinstance(data, dict) or not isinstance(data.get("bank_mac"), dict):
            return data
        if "flops_per_cycle" not in data["bank_mac"]:
            lanes = data.get("mac_lanes_per_bank", 16)
            vec = data.get("bank_mac_vectors_per_burst", 1)
            dtypes = data.get("mac_dtypes", [DType.bf16])
            if isinstance(lanes, int) and lanes > 0 and isinstance(vec, int) and vec > 0 and isinstance(dtypes, list):
                fpc = {DType(d).value if isinstance(d, DType) else d: 2 * lanes * vec for d in dtypes}
                data = {**data, "bank_mac": {**data["bank_mac"], "flops_per_cycle": fpc}}
        mem = data.get("memory")
        mem = mem.model_dump() if hasattr(mem, "model_dump") else mem
        try:
            t = mem["timing"]
            banks = mem["channels"] * mem.get("ranks", 1) * mem["bank_groups"] * mem["banks_per_group"]
            clock = 1.0 / ((t.get("tCCD_MAC") or t["tCCD_L"]) * mem["tck_ns"] * 1e-9)
        except (KeyError, TypeError, ZeroDivisionError):
            return data  # the field validators report what is missing
        return {**data, "bank_mac": {"count": banks, "clock_hz": clock, **data["bank_mac"]}}

    @model_validator(mode="after")
    def _consistent_bank_mac(self) -> PimSpec:
        m = self.memory
        clock = 1.0 / (m.timing.values()["tCCD_MAC"] * m.tck_s)
        if self.bank_mac.count != m.channels * m.banks:
            raise ValueError(f"bank_mac.count ({self.bank_mac.count}) must equal memory channels x banks "
                             f"({m.channels * m.banks}); omit it to derive it")
        if abs(self.bank_mac.clock_hz - clock) > 1e-6 * clock:
            raise ValueError(f"bank_mac.clock_hz ({self.bank_mac.clock_hz:g}) must be the MAC_AB rate 1/(tCCD_MAC*tCK) "
                             f"({clock:g}); omit it to derive it")
        lane_flops = 2 * self.mac_lanes_per_bank * self.bank_mac_vectors_per_burst
        for dt, f in self.bank_mac.flops_per_cycle.items():
            if f != lane_flops:
                raise ValueError(f"bank_mac.flops_per_cycle.{dt.value} ({f:g}) must be 2 x mac_lanes_per_bank x "
                                 f"bank_mac_vectors_per_burst ({lane_flops})")
        return self


HardwareSpec = Annotated[Union[GpuSpec, NpuSpec, CpuSpec, PimSpec], Field(discriminator="kind")]
