"""Laws of the cycle-level DRAM model (llmsim.memory), each test named after the law it checks."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from llmsim.config.loader import load_yaml
from llmsim.config.memory import DramSpec
from llmsim.errors import ConfigError
from llmsim.memory import DramModel, Requests, TimingViolation, check_trace
from llmsim.memory.kernels import ACT, REFB

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.stem for p in (ROOT / "hw_configs" / "memory").glob("*.yaml"))


def raw(name: str) -> dict:
    """The preset's mapping with its ``extends:`` resolved (as the hardware loader does)."""
    return load_yaml(ROOT / "hw_configs" / "memory" / f"{name}.yaml", "hw_configs")


def spec(name: str, **over) -> DramSpec:
    return DramSpec.model_validate(raw(name) | over)


def reqs(op, ch, bg, bk, row) -> Requests:
    return Requests(*(np.asarray(a, dtype=np.int64) for a in (op, ch, bg, bk, row)))


def random_requests(s: DramSpec, n: int, seed: int, mac: bool = False) -> Requests:
    rng = np.random.default_rng(seed)
    ops = rng.integers(0, 3 if mac else 2, n)
    return Requests(*(np.asarray(a, dtype=np.int64) for a in (
        ops, rng.integers(0, s.channels, n), rng.integers(0, s.bank_groups, n), rng.integers(0, s.banks_per_group, n),
        rng.integers(0, 4, n), rng.integers(0, s.ranks, n))))


def test_presets_exist_validate_and_cite_a_source():
    assert {"gddr6", "gddr6-aim", "hbm2", "hbm3", "lpddr4x", "lpddr5", "ddr4", "ddr5"} <= set(PRESETS)
    for name in PRESETS:
        s = spec(name)
        assert len(s.source) > 40 and s.peak_bandwidth_bytes_per_s > 0 and s.capacity_bytes > 0


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [(("timing", "tRCD"), 0, "timing.tRCD"), (("tck_ns",), -1.0, "tck_ns"), (("channels",), 0, "channels"),
     (("timing", "tRC"), 10, "tRC"), (("energy", "io_pj_per_bit"), -1, "energy.io_pj_per_bit"),
     (("timing", "tRCDD"), 3, "timing.tRCDD"), (("burst_length",), 12, "burst_length")],
)
def test_field_errors_name_their_path(path, value, needle):
    d = raw("gddr6")
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValidationError, match=needle.replace(".", r"\.")):
        DramSpec.model_validate(d)


def test_gddr6_is_16_gbps_per_pin():
    s = spec("gddr6")
    assert s.data_rate / s.tck_s == pytest.approx(16e9)
    assert s.channel_bandwidth_bytes_per_s == pytest.approx(32e9)


def test_unloaded_read_from_idle_costs_tRCD_plus_CL_plus_burst():
    """From idle (all banks precharged): the request enters its bank queue at cycle 0, ACT at 1, RD tRCD
    later, last data CL + nBL after the RD (one cycle of queue admission, as in DRAMsim3)."""
    s = spec("gddr6")
    m = DramModel(s)
    st = m.run(reqs([0], [0], [0], [0], [5]), trace=8)
    t = s.timing
    assert st.cycles == 1 + t.tRCD + t.CL + s.nBL
    assert m.last_trace[:, :2].tolist() == [[1, 0], [1 + t.tRCD, 2]]


@pytest.mark.parametrize("name", ["gddr6", "ddr4", "hbm2"])
def test_row_miss_read_costs_tRP_plus_tRCD_plus_CL_plus_burst_after_its_PRE(name):
    """A read to a bank holding another row: PRE, then ACT after tRP, RD after tRCD, data after CL + nBL."""
    s = spec(name)
    t = s.timing
    m = DramModel(s)
    st = m.run(reqs([0, 0], [0, 0], [0, 0], [0, 0], [1, 2]), trace=8)
    pre_cycle = 1 + max(t.tRAS, t.tRCD + t.tRTP)  # earliest PRE after the first ACT (cycle 1) and RD
    assert m.last_trace[2].tolist()[:2] == [pre_cycle, 1]
    assert st.cycles == pre_cycle + t.tRP + t.tRCD + t.CL + s.nBL
    assert (st.row_hits, st.row_misses) == (0, 2)


def test_read_issued_one_cycle_early_is_refused():
    s = spec("gddr6")
    m = DramModel(s)
    m.run(reqs([0], [0], [0], [0], [5]), trace=8)
    trace = m.last_trace.copy()
    check_trace(s, trace)  # the scheduler's own trace is legal
    trace[1, 0] -= 1
    msg = rf"RD at cycle {s.timing.tRCD} violates tRCD \(ACT at 1, needs {s.timing.tRCD + 1}\)"
    with pytest.raises(TimingViolation, match=msg):
        check_trace(s, trace)


@pytest.mark.parametrize("name", ["gddr6-aim", "ddr4", "lpddr5", "hbm2"])
@pytest.mark.parametrize("policy", ["open", "closed", "adaptive"])
def test_scheduled_traces_obey_every_constraint(name, policy):
    """Random reads, writes and MACs over every rank and bank (DDR4: 2 ranks, HBM2: 2 command buses)."""
    s = spec(name, controller={"page_policy": policy}, channels=2,
             timing=raw(name)["timing"] | {"tREFI": 900, "tRFC": 100})
    m = DramModel(s)
    r = random_requests(s, 600, seed=1, mac=True)
    st = m.run(r, trace=10_000)
    assert st.commands["REF"] > 0 and st.commands["MAC_AB"] > 0
    check_trace(s, m.last_trace)


@pytest.mark.parametrize("name", ["hbm3", "lpddr5"])
def test_per_bank_refresh_traces_are_legal_and_hide_refresh_from_a_sequential_stream(name):
    """REFB blocks one bank for tRFCpb while the others serve; all-bank REF blocks the whole rank for tRFC."""
    s = spec(name, controller={"refresh": "per_bank"}, channels=2)
    m = DramModel(s)
    st = m.run(random_requests(s, 3000, seed=2), trace=100_000)
    assert st.commands["REFB"] > 0 and st.commands["REF"] == 0
    check_trace(s, m.last_trace)
    per_bank = DramModel(s).stream(8 << 20)
    all_bank = DramModel(spec(name, channels=2)).stream(8 << 20)
    assert per_bank.cycles < all_bank.cycles


def test_same_bank_refresh_blocks_one_bank_of_every_bank_group():
    """DDR5 REFsb: bank k of every bank group of the rank refreshes for tRFCpb (tRFCsb), k in turn, while the
    other banks serve; traces are legal, and a stream loses less time than to all-bank REF for the same
    refresh work (energy per cycle within 10%)."""
    s = spec("ddr5", controller={"refresh": "same_bank"}, channels=1)
    m = DramModel(s)
    st = m.run(random_requests(s, 3000, seed=3), trace=100_000)
    assert st.commands["REFB"] > 0 and st.commands["REF"] == 0
    check_trace(s, m.last_trace)
    refs = m.last_trace[m.last_trace[:, 1] == REFB]
    assert refs[:8, 3].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]  # first bank of each: bank k of bank group 0
    same, every = DramModel(s).stream(8 << 20), DramModel(spec("ddr5", channels=1)).stream(8 << 20)
    assert same.cycles < every.cycles
    assert same.energy_j["refresh"] / same.cycles == pytest.approx(every.energy_j["refresh"] / every.cycles, rel=0.1)


def test_same_bank_refresh_takes_the_ranks_in_turn():
    s = spec("ddr5", controller={"refresh": "same_bank"}, ranks=2, channels=1)
    s = s.model_copy(update={"timing": s.timing.model_copy(update={"tREFIpb": s.timing.tREFIpb // 2})})
    m = DramModel(s)
    m.run(random_requests(s, 4000, seed=7), trace=200_000)
    check_trace(s, m.last_trace)
    bpr = s.bank_groups * s.banks_per_group
    assert m.last_trace[m.last_trace[:, 1] == REFB][:8, 3].tolist() == [0, 1, 2, 3, bpr, bpr + 1, bpr + 2, bpr + 3]


def test_checker_knows_a_same_bank_refresh_covers_every_bank_group():
    s = spec("ddr5", controller={"refresh": "same_bank"})
    bpg = s.banks_per_group
    check_trace(s, np.array([[0, REFB, 0, 0], [10, ACT, 0, 1]]))  # bank 1 of bank group 0: not refreshing
    with pytest.raises(TimingViolation, match="tRFCpb"):
        check_trace(s, np.array([[0, REFB, 0, 0], [10, ACT, 0, bpg]]))  # bank 0 of bank group 1: refreshing


def test_idle_channels_are_refreshed_too():
    """A stream on channel 0 alone: every channel receives its REFs until the stream's last data."""
    s = spec("gddr6", channels=4)
    n = 4 * s.timing.tREFI // s.nBL
    z = np.zeros(n, np.int64)
    m = DramModel(s)
    st = m.run(reqs(z, z, z, z, np.arange(n) // s.bursts_per_row % s.rows), trace=100_000)
    per_channel = np.bincount(m.last_trace[m.last_trace[:, 1] == 4][:, 2], minlength=4)
    assert per_channel.min() >= st.cycles // s.timing.tREFI - 1 and per_channel.min() > 0


def test_write_buffer_drains_in_batches_so_turnarounds_are_few():
    """Reads and writes interleaved 2:1: writes wait in the buffer and drain 32 at a time, so the bus turns
    around about twice per batch instead of twice per write (fcfs within banks gives no row-hit advantage)."""
    s = spec("hbm2", channels=1)
    n = 3000
    m = DramModel(s)
    r = m.map_bursts(np.arange(n))
    ops = (np.arange(n) % 3 == 2).astype(np.int64)
    m.run(Requests(ops, r.channel, r.bank_group, r.bank, r.row, r.rank), trace=20_000)
    cols = m.last_trace[np.isin(m.last_trace[:, 1], (2, 3))]
    cols = cols[np.argsort(cols[:, 0], kind="stable")]
    switches = int(np.count_nonzero(np.diff(cols[:, 1])))
    assert switches <= 2 * (n // 3) // 16, switches


def test_address_mapping_must_name_each_field_once():
    with pytest.raises(ValidationError, match="address_mapping"):
        spec("hbm2", address_mapping="rorabgbachch")


@pytest.mark.parametrize("name", PRESETS)
def test_sequential_stream_reaches_95pct_of_its_mappings_column_rate_net_of_refresh(name):
    """Where the mapping rotates bank groups between a channel's consecutive bursts only nBL limits it; where
    consecutive bursts stay in one row (column field lowest, as DRAMsim3's DDR4 and HBM2 mappings), tCCD_L
    does. All-bank refresh blocks tRFC/tREFI of the time, which no access order can hide."""
    s = spec(name)
    st = DramModel(s).stream(16 << 20)
    fields = [s.address_mapping[i:i + 2] for i in range(0, 12, 2) if s.address_mapping[i:i + 2] != "ch"]
    rate = s.nBL / max(s.nBL, s.timing.tCCD_L) if fields[-1] == "co" else 1.0
    eff = st.bandwidth_bytes_per_s / s.peak_bandwidth_bytes_per_s
    assert eff >= 0.95 * rate * (1 - s.refresh_fraction), eff
    assert st.bandwidth_bytes_per_s <= s.peak_bandwidth_bytes_per_s


@pytest.mark.parametrize("name", ["gddr6", "ddr4", "hbm3"])
def test_same_bank_row_misses_are_bounded_below_by_tRC_and_frfcfs_turns_them_into_hits(name):
    """In order (fcfs), rows alternating in one bank miss every time, tRC apart; FR-FCFS serves the queued
    hits of the open row first, so far fewer rows are opened."""
    n = 50
    r = reqs([0] * n, [0] * n, [0] * n, [0] * n, np.arange(n) % 2)
    s = spec(name, controller={"scheduler": "fcfs"})
    st = DramModel(s).run(r, refresh=False)
    assert st.row_misses == n
    assert st.cycles >= (n - 1) * s.timing.tRC
    fr = DramModel(spec(name)).run(r, refresh=False)
    assert fr.cycles < st.cycles / 2 and fr.row_misses < n / 2 and fr.commands["ACT"] == fr.row_misses


@pytest.mark.parametrize("name", ["gddr6", "ddr4", "lpddr4x"])
def test_activates_are_bounded_below_by_tFAW(name):
    s = spec(name)
    n = 4 * 40
    bpr = s.bank_groups * s.banks_per_group
    banks = np.arange(n) % bpr  # all in rank 0: tFAW is per rank
    st = DramModel(s).run(
        reqs([0] * n, [0] * n, banks // s.banks_per_group, banks % s.banks_per_group, np.arange(n) // bpr + 1),
        refresh=False,
    )
    assert st.commands["ACT"] == n
    assert st.cycles >= (n // 4 - 1) * s.timing.tFAW


@pytest.mark.parametrize("name", ["gddr6", "hbm2", "ddr5"])
def test_refresh_takes_about_tRFC_over_tREFI_of_the_time(name):
    """Each REF blocks tRFC and also forces PRE of the open banks and their re-ACT (at most tRP + tRCD +
    3 tRRD + queue refill, well under 0.6 tRFC on these presets); REF count is quantised by one."""
    s = spec(name)
    m = DramModel(s)
    r = m.requests(int(40 * s.timing.tREFI / s.nBL) * s.channels)
    with_ref, without = m.run(r), m.run(r, refresh=False)
    frac = (with_ref.cycles - without.cycles) / with_ref.cycles
    assert 0.9 * s.refresh_fraction <= frac <= 1.6 * s.refresh_fraction, (frac, s.refresh_fraction)


@pytest.mark.parametrize("name", ["gddr6", "hbm3", "ddr4"])
def test_more_channels_never_make_a_stream_slower(name):
    for pattern in ("sequential", "random"):
        times = [DramModel(spec(name, channels=c)).stream(1 << 20, pattern=pattern).seconds for c in (1, 2, 4, 8)]
        assert all(a >= b for a, b in itertools.pairwise(times)), (pattern, times)


def test_generated_streams_equal_their_explicit_requests():
    s = spec("ddr5")
    m = DramModel(s)
    for pattern in ("sequential", "random"):
        n = 3000
        gen = m.stream(n * s.burst_bytes, pattern=pattern, write=True, seed=3)
        explicit = m.run(m.requests(n, pattern=pattern, write=True, seed=3))
        assert gen == explicit


def test_mac_all_bank_reads_every_bank_without_io():
    s = spec("gddr6-aim")
    m = DramModel(s)
    st = m.run(reqs([2, 2], [0, 0], [0, 0], [0, 0], [7, 7]), trace=8)
    t = s.timing
    assert m.last_trace[:, 1].tolist() == [5, 6, 6]  # ACT_AB, MAC_AB, MAC_AB
    assert st.cycles == t.tRCD_MAC + t.tCCD_MAC + t.CL + s.nBL
    assert st.bytes == 2 * s.banks * s.burst_bytes and st.row_hits == 1
    assert st.energy_j["io"] == 0 and st.energy_j["mac"] > 0


def test_stats_add_componentwise():
    s = spec("hbm2")
    a = DramModel(s).stream(1 << 16)
    b = a + a
    assert (b.cycles, b.bytes, b.commands["RD"]) == (2 * a.cycles, 2 * a.bytes, 2 * a.commands["RD"])
    assert b.energy_j["io"] == pytest.approx(2 * a.energy_j["io"])


_TWIN = """
import json, sys, numpy as np, yaml
from pathlib import Path
from llmsim.config.loader import load_yaml
from llmsim.config.memory import DramSpec
from llmsim.memory import DramModel, Requests
out = []
for name, seed, refresh in json.loads(sys.argv[1]):
    d = load_yaml(Path(f"hw_configs/memory/{name}.yaml").resolve(), "hw_configs")
    d["timing"] |= {"tREFI": 700, "tRFC": 90, "tREFIpb": 175, "tRFCpb": 60}
    d["controller"] = d.get("controller", {}) | {"refresh": refresh}
    s = DramSpec.model_validate(d)
    m = DramModel(s)
    rng = np.random.default_rng(seed)
    n = 400
    r = Requests(*(a.astype(np.int64) for a in (rng.integers(0, 3, n), rng.integers(0, s.channels, n),
        rng.integers(0, s.bank_groups, n), rng.integers(0, s.banks_per_group, n), rng.integers(0, 3, n))))
    st = m.run(r, trace=5000)
    g = DramModel(s)._simulate(*(np.zeros(0, np.int64),) * 4, 500, 2, seed, 0, True, 0)
    out.append([st.cycles, st.commands, st.row_hits, m.last_trace.tolist(), g.cycles, g.commands])
print(json.dumps(out))
"""


def test_jit_and_pure_python_twin_agree_bit_for_bit():
    cases = json.dumps([["gddr6-aim", 0, "all_bank"], ["ddr4", 1, "all_bank"], ["hbm3", 2, "per_bank"],
                        ["ddr5", 3, "same_bank"]])

    def run(disable: str) -> list:
        env = os.environ | {"NUMBA_DISABLE_JIT": disable, "PYTHONPATH": str(ROOT)}
        res = subprocess.run([sys.executable, "-c", _TWIN, cases], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=False)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    assert run("1") == run("0")


def test_too_many_banks_per_channel_is_refused():
    """The kernel packs a request's bank into 16 bits: more banks per channel is a clear error, not a wrong run."""
    with pytest.raises(ConfigError, match="banks per channel"):
        DramModel(spec("hbm2", banks_per_group=16385))


@pytest.mark.parametrize("mode", ["per_bank", "same_bank"])
def test_a_per_or_same_bank_refresh_without_its_timings_is_refused_naming_them(mode):
    with pytest.raises(ValidationError, match=f"controller.refresh {mode} needs timing.tREFIpb and timing.tRFCpb"):
        spec("ddr4", controller={"refresh": mode})
