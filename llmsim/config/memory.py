"""DRAM specification: organisation, interface clocking, timing and energy of one memory system.

A :class:`DramSpec` describes ``channels`` identical, independent channels. One channel is
``devices_per_channel`` devices of ``device_width_bits`` DQ pins each, driven in lock-step, so a
channel's data bus is ``device_width_bits * devices_per_channel`` bits wide and one bank row of a
channel spans all its devices. All timings are integers in cycles of the command clock ``tck_ns``
(JEDEC ``nXXX`` values, named ``tXXX`` as datasheets do); ``data_rate`` is the number of data beats
per pin per tCK, so one burst occupies the data bus for ``burst_length / data_rate`` cycles
(``nBL``). Examples: DDR4/HBM2 transfer on both CK edges (``data_rate = 2``); GDDR6 clocks data on
WCK = 4 x CK with DDR signalling, i.e. 8 beats per CK: at CK = 2 GHz (tCK 0.5 ns) that is 16 Gb/s
per pin, and a BL16 burst takes 2 tCK.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llmsim.config.base import Spec


class DramTiming(Spec):
    """JEDEC timing parameters in cycles of tCK (sources cited by each preset's ``source:``)."""

    CL: int = Field(gt=0, description="RD command to first read data, cycles")
    CWL: int = Field(gt=0, description="WR command to first write data, cycles")
    tRCD: int = Field(gt=0, description="ACT to RD, cycles")
    tRCDW: int = Field(gt=0, description="ACT to WR, cycles")
    tRP: int = Field(gt=0, description="PRE to ACT (same bank), cycles")
    tRAS: int = Field(gt=0, description="ACT to PRE (same bank), cycles")
    tRC: int = Field(gt=0, description="ACT to ACT (same bank), cycles")
    tCCD_S: int = Field(gt=0, description="column to column, different bank group, cycles")
    tCCD_L: int = Field(gt=0, description="column to column, same bank group, cycles")
    tRRD_S: int = Field(gt=0, description="ACT to ACT, different bank group, cycles")
    tRRD_L: int = Field(gt=0, description="ACT to ACT, same bank group, cycles")
    tFAW: int = Field(gt=0, description="window holding at most four ACTs per rank, cycles")
    tWR: int = Field(gt=0, description="end of write data to PRE, cycles")
    tRTP: int = Field(gt=0, description="RD to PRE, cycles")
    tWTR_S: int = Field(gt=0, description="end of write data to RD, different bank group, cycles")
    tWTR_L: int = Field(gt=0, description="end of write data to RD, same bank group, cycles")
    tREFI: int = Field(gt=0, description="average interval between all-bank REF commands, cycles")
    tRFC: int = Field(gt=0, description="all-bank REF to next ACT (all banks blocked), cycles")
    tRTRS: int = Field(default=2, ge=0, description="rank-to-rank (and read-to-write) bus turnaround, cycles")
    tREFIpb: int | None = Field(default=None, gt=0, description="interval between a channel's per-bank REFs "
                                "(refresh: per_bank) or same-bank REFsb (refresh: same_bank), cycles")
    tRFCpb: int | None = Field(default=None, gt=0, description="per-bank REF (or same-bank REFsb: tRFCsb) to ACT of "
                               "a bank it refreshed, cycles")
    tRREFD: int = Field(default=0, ge=0, description="per-bank (or same-bank) REF to the next one in the rank, "
                        "cycles")
    tRCD_MAC: int | None = Field(default=None, gt=0, description="ACT_AB to MAC_AB (PIM), cycles; default tRCD")
    tCCD_MAC: int | None = Field(default=None, gt=0, description="MAC_AB to MAC_AB (PIM), cycles; default tCCD_L")

    @model_validator(mode="after")
    def _consistent(self) -> DramTiming:
        if self.tRC < self.tRAS + self.tRP:
            raise ValueError(f"tRC ({self.tRC}) must be >= tRAS + tRP ({self.tRAS} + {self.tRP})")
        if self.tCCD_L < self.tCCD_S:
            raise ValueError(f"tCCD_L ({self.tCCD_L}) must be >= tCCD_S ({self.tCCD_S})")
        if self.tRRD_L < self.tRRD_S:
            raise ValueError(f"tRRD_L ({self.tRRD_L}) must be >= tRRD_S ({self.tRRD_S})")
        if self.tRFC >= self.tREFI:
            raise ValueError(f"tRFC ({self.tRFC}) must be < tREFI ({self.tREFI})")
        return self

    def values(self) -> dict[str, int]:
        """All timings by name, PIM defaults filled in (tRCD_MAC = tRCD, tCCD_MAC = tCCD_L)."""
        v = self.model_dump()
        v["tRCD_MAC"] = self.tRCD_MAC or self.tRCD
        v["tCCD_MAC"] = self.tCCD_MAC or self.tCCD_L
        v["tRFCpb"] = self.tRFCpb or self.tRFC
        v["tREFIpb"] = self.tREFIpb or self.tREFI
        return v


class DramEnergy(Spec):
    """Per-command DRAM energy of one channel (all its devices together), DRAMPower style.

    ``act_pj`` is one ACT+PRE pair on one bank: VDD * (IDD0*tRC - IDD3N*tRAS - IDD2N*tRP) per
    device; ``rd/wr_pj_per_bit`` the array/periphery energy of a column access, VDD * (IDD4R -
    IDD3N) * t_burst per bit; ``io_pj_per_bit`` the DQ interface; ``ref_pj`` one all-bank REF,
    VDD * (IDD5AB - IDD3N) * tRFC; ``background_mw`` standby power, VDD * IDD3N (always drawn: the
    engine charges it per step wall time, never per command or per op).
    A PIM ``MAC_AB`` reads ``burst_bytes`` in every bank: ``mac_pj_per_bit`` per bit read (default
    ``rd_pj_per_bit``), no I/O energy.
    """

    act_pj: float = Field(ge=0, description="one ACT+PRE on one bank of a channel, pJ")
    rd_pj_per_bit: float = Field(ge=0, description="column read, core + periphery, pJ/bit")
    wr_pj_per_bit: float = Field(ge=0, description="column write, core + periphery, pJ/bit")
    io_pj_per_bit: float = Field(ge=0, description="DQ interface, pJ/bit")
    ref_pj: float = Field(ge=0, description="one all-bank REF of a channel, pJ")
    background_mw: float = Field(ge=0, description="standby power of one channel, mW")
    mac_pj_per_bit: float | None = Field(default=None, ge=0, description="MAC_AB per bit read, pJ/bit")


MAPPING_FIELDS = ("ch", "ra", "bg", "ba", "ro", "co")


class DramController(Spec):
    """Memory-controller policy of every channel (docs/memory.md). Defaults are DRAMsim3's controller
    (src/configuration.cc, configs/*.ini: 32-entry read queue and write buffer, 8-entry per-bank
    command queues, write drain when the buffer is full or holds more than 8 while the command
    queues are empty, at most 4 row hits before an older row miss may precharge)."""

    scheduler: Literal["fcfs", "frfcfs"] = Field(
        default="frfcfs", description="frfcfs: row hits first, then oldest; fcfs: each bank queue in order")
    page_policy: Literal["open", "closed", "adaptive"] = Field(
        default="open", description="open: row stays open; closed: auto-precharge after every access; "
        "adaptive: auto-precharge when no queued request hits the row")
    refresh: Literal["all_bank", "per_bank", "same_bank"] = Field(
        default="all_bank", description="all_bank: REF per rank every tREFI / ranks, ranks in turn; per_bank: one "
        "bank's REF every tREFIpb, banks in turn (HBM3, LPDDR5); same_bank: a REFsb every tREFIpb to one bank of "
        "every bank group of a rank, blocking those banks for tRFCpb, bank then rank in turn (DDR5)")
    read_queue_requests: int = Field(default=32, gt=0, description="read queue depth, requests per channel")
    write_buffer_requests: int = Field(default=32, gt=0, description="write buffer depth, requests per channel")
    bank_queue_requests: int = Field(default=8, gt=0, description="command queue depth of each bank, requests")
    write_high_requests: int = Field(default=32, gt=0, description="a write drain starts at this many buffered")
    write_low_requests: int = Field(default=8, ge=0, description="...or above this many when no command is queued")
    row_hit_cap: int = Field(default=4, gt=0, description="row hits served before an older miss may precharge")

    @model_validator(mode="after")
    def _consistent(self) -> DramController:
        if self.write_high_requests > self.write_buffer_requests:
            raise ValueError(f"write_high_requests ({self.write_high_requests}) must be <= write_buffer_requests "
                             f"({self.write_buffer_requests})")
        if self.write_low_requests >= self.write_high_requests:
            raise ValueError(f"write_low_requests ({self.write_low_requests}) must be < write_high_requests "
                             f"({self.write_high_requests})")
        return self


class DramSpec(Spec):
    """One DRAM memory system: ``channels`` independent channels of identical devices."""

    standard: str = Field(min_length=1, description="e.g. 'GDDR6', 'HBM3'")
    source: str = Field(min_length=1, description="where every number below comes from")
    channels: int = Field(gt=0)
    ranks: int = Field(default=1, gt=0)
    bank_groups: int = Field(gt=0, description="bank groups per rank")
    banks_per_group: int = Field(gt=0)
    rows: int = Field(gt=0, description="rows per bank")
    columns: int = Field(gt=0, description="columns per row, in device-width units")
    device_width_bits: int = Field(gt=0, description="DQ pins of one device")
    devices_per_channel: int = Field(gt=0, description="devices in lock-step on one channel")
    burst_length: int = Field(gt=0, description="data beats per RD/WR")
    tck_ns: float = Field(gt=0, description="command clock period, ns")
    data_rate: int = Field(gt=0, description="data beats per pin per tCK (2 = DDR)")
    command_buses: Literal[1, 2] = Field(
        default=1, description="1: one command per cycle; 2: separate row and column command pins (HBM), one "
        "row and one column command per cycle")
    address_mapping: str = Field(
        default="rorabacobgch", description="burst address fields, most significant first, 2 letters each: ch "
        "channel, ra rank, bg bank group, ba bank, ro row, co column (DRAMsim3 notation)")
    controller: DramController = Field(default_factory=DramController)
    timing: DramTiming
    energy: DramEnergy

    @model_validator(mode="after")
    def _consistent(self) -> DramSpec:
        if self.burst_length % self.data_rate:
            raise ValueError(
                f"burst_length ({self.burst_length}) must be a multiple of data_rate ({self.data_rate})"
            )
        if self.columns % self.burst_length:
            raise ValueError(f"columns ({self.columns}) must be a multiple of burst_length ({self.burst_length})")
        m = self.address_mapping
        if len(m) != 12 or sorted(m[i:i + 2] for i in range(0, 12, 2)) != sorted(MAPPING_FIELDS):
            raise ValueError(f"address_mapping {m!r} must name each of {', '.join(MAPPING_FIELDS)} once")
        t = self.timing
        if self.controller.refresh != "all_bank" and (t.tREFIpb is None or t.tRFCpb is None):
            raise ValueError(f"controller.refresh {self.controller.refresh} needs timing.tREFIpb and timing.tRFCpb")
        if t.tRAS < t.tRCD:
            raise ValueError(f"timing.tRAS ({t.tRAS}) must be >= timing.tRCD ({t.tRCD})")
        return self

    def __hash__(self) -> int:  # frozen pydantic models hash by fields; dicts inside need JSON
        return hash(self.model_dump_json())

    # ---- derived quantities (names relied upon by the rest of llmsim) ----
    @property
    def nBL(self) -> int:
        """Data-bus cycles of one burst: burst_length / data_rate."""
        return self.burst_length // self.data_rate

    @property
    def tck_s(self) -> float:
        return self.tck_ns * 1e-9

    @property
    def banks(self) -> int:
        """Banks per channel (all ranks)."""
        return self.ranks * self.bank_groups * self.banks_per_group

    @property
    def bus_width_bits(self) -> int:
        return self.device_width_bits * self.devices_per_channel

    @property
    def row_bytes(self) -> int:
        """Bytes in one row of one bank across the channel's devices."""
        return self.columns * self.bus_width_bits // 8

    @property
    def burst_bytes(self) -> int:
        """Bytes one RD/WR moves on one channel."""
        return self.burst_length * self.bus_width_bits // 8

    @property
    def bursts_per_row(self) -> int:
        return self.columns // self.burst_length

    @property
    def channel_bandwidth_bytes_per_s(self) -> float:
        return self.bus_width_bits * self.data_rate / 8 / self.tck_s

    @property
    def peak_bandwidth_bytes_per_s(self) -> float:
        return self.channel_bandwidth_bytes_per_s * self.channels

    @property
    def capacity_bytes(self) -> int:
        return self.channels * self.banks * self.rows * self.row_bytes

    @property
    def refresh_fraction(self) -> float:
        """Share of time all banks are blocked by all-bank refresh: tRFC / tREFI."""
        return self.timing.tRFC / self.timing.tREFI

    @property
    def energy_pj_per_bit_estimate(self) -> float:
        """Average energy per bit of a streaming read at peak bandwidth, pJ/bit.

        Column read + I/O + one ACT/PRE amortised over a full row + refresh power spread over the
        channel's peak bit rate. Used by roofline estimators. Background (standby) power is *not*
        in it: it is drawn whether or not bytes move, so the engine charges it per step wall time
        (:meth:`llmsim.devices.base.Device.background_power_w`); folding it in here as well would
        count it twice.
        """
        e = self.energy
        bits_per_s = self.channel_bandwidth_bytes_per_s * 8
        act = e.act_pj / (self.row_bytes * 8)
        ref = e.ref_pj / (self.timing.tREFI * self.tck_s) / bits_per_s
        return e.rd_pj_per_bit + e.io_pj_per_bit + act + ref
