"""Laws of the PIM-GPT device: lower bound, monotonicity, row hits, energy, overlap, exact mapping."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsim.config.base import DType
from llmsim.config.loader import load_hardware, load_model, make_scenario, split_overrides
from llmsim.devices.base import build_device
from llmsim.devices.pim import _program_stats
from llmsim.devices.pim_map import Program, vmm_programs
from llmsim.engine import simulate_one_step
from llmsim.errors import LlmsimError
from llmsim.graph import factory as f
from llmsim.memory import DramModel, Requests

BF = DType.bf16


def pim(*sets: str):
    return load_hardware("pim", split_overrides([f"hw.{s}" for s in sets])["hw"])


_DEVICES: dict = {}


def device(*sets: str):
    if sets not in _DEVICES:
        _DEVICES[sets] = build_device(pim(*sets))
    return _DEVICES[sets]


hw_choice = st.tuples(st.sampled_from([1, 2, 8]), st.sampled_from([2, 4]), st.sampled_from([0.5, 0.8]),
                      st.sampled_from([1e8, 1e9]))


def _dev(h):
    ch, bpg, tck, clk = h
    return device(f"memory.channels={ch}", f"memory.banks_per_group={bpg}", f"memory.tck_ns={tck}",
                  f"asic.clock_hz={clk}")


@settings(max_examples=25, deadline=None)
@given(hw_choice, st.integers(1, 3), st.integers(8, 2600), st.integers(1, 2100), st.booleans())
def test_matmul_never_beats_its_roofline(h, M, K, N, bias):
    dev = _dev(h)
    op = f.matmul("mm", M, K, N, dtype=BF, bias=bias)
    assert dev.cost(op).seconds >= dev.bound(op).seconds * (1 - 1e-9)


@settings(max_examples=20, deadline=None)
@given(hw_choice, st.integers(1, 2), st.integers(1, 20), st.integers(1, 3), st.integers(0, 1200),
       st.sampled_from([32, 64, 128]))
def test_attention_never_beats_its_roofline(h, B, H, Sq, past, D):
    dev = _dev(h)
    op = f.attention("att", B, H, H, Sq, Sq + past, D, dtype=BF, causal=True)
    assert dev.cost(op).seconds >= dev.bound(op).seconds * (1 - 1e-9)


@settings(max_examples=20, deadline=None)
@given(hw_choice, st.integers(1, 4), st.integers(1, 7000),
       st.sampled_from(["layernorm", "gelu", "add", "softmax_row", "kv", "embed"]))
def test_vector_ops_never_beat_their_roofline(h, rows, width, kind):
    dev = _dev(h)
    op = {"layernorm": lambda: f.norm("n", rows, min(width, 4096), "layernorm", dtype=BF),
          "gelu": lambda: f.activation("g", rows, width, "gelu", dtype=BF),
          "add": lambda: f.elementwise("r", rows, width, dtype=BF),
          "softmax_row": lambda: f.activation("s", rows, width, "silu_mul", dtype=BF),
          "kv": lambda: f.kv_write("k", rows, width, dtype=BF),
          "embed": lambda: f.embedding("e", rows, width, n_tables=2, dtype=BF)}[kind]()
    assert dev.cost(op).seconds >= dev.bound(op).seconds * (1 - 1e-9)


def _decode_latency(*sets: str) -> float:
    model, sc = load_model("gpt2"), make_scenario({"prompt": 64, "gen": 2, "weight_dtype": "bf16",
                                                    "act_dtype": "bf16", "kv_dtype": "bf16"})
    return simulate_one_step(pim(*sets), model, sc, "decode", 1, context=64)[0].latency_s


def test_more_channels_banks_or_faster_clocks_never_slow_a_step():
    base = _decode_latency()
    assert _decode_latency("memory.channels=16") < base < _decode_latency("memory.channels=4")
    assert _decode_latency("memory.banks_per_group=2") > base
    assert _decode_latency("memory.tck_ns=0.4") < base
    assert _decode_latency("asic.clock_hz=1e8") > base


def test_decode_vmm_row_buffer_hit_rate_is_high():
    st_ = device().cost(f.matmul("qkv", 1, 1600, 4800, dtype=BF)).stats
    assert st_["row_hits"] / (st_["row_hits"] + st_["row_misses"]) > 0.95


def test_every_mac_is_simulated_and_counts_match_the_mapping():
    dev = device()
    # K = one row (1,024 BF16 = 64 bursts), N = 4 columns per bank on all 128 banks
    c = dev.cost(f.matmul("mm", 1, 1024, 4 * 128, dtype=BF))
    assert c.stats["dram_MAC_AB"] == 8 * 4 * 64
    assert c.stats["dram_ACT_AB"] == 8 * 4
    assert c.bytes_by_level["dram_internal"] == 1024 * 512 * 2


def test_identical_channels_simulated_once_equal_all_channels_simulated():
    spec = pim().memory
    progs = [Program() for _ in range(spec.channels)]
    vmm_programs(1600, 700, device().geometry(BF), progs)
    once = [_program_stats(spec, tuple(p.rows)) for p in progs]
    reqs = []
    for ch, p in enumerate(progs):
        row = np.repeat(np.arange(len(p.rows)), p.rows)
        reqs.append((np.full(len(row), ch), row))
    ch = np.concatenate([r[0] for r in reqs])
    row = np.concatenate([r[1] for r in reqs])
    z = np.zeros(len(ch), np.int64)
    full = DramModel(spec).run(Requests(np.full(len(ch), 2), ch, z, z, row))
    assert full.cycles == max(s.cycles for s in once)
    assert full.commands["MAC_AB"] == sum(s.commands["MAC_AB"] for s in once)
    assert full.commands["ACT_AB"] == sum(s.commands["ACT_AB"] for s in once)
    assert full.row_hits == sum(s.row_hits for s in once)


def test_program_cache_misses_when_a_timing_changes():
    rows = (64, 64, 32)
    a = _program_stats(pim().memory, rows)
    b = _program_stats(pim("memory.timing.tRCD_MAC=80").memory, rows)
    assert b.cycles > a.cycles


def test_energy_breakdown_has_every_component_and_adds_up():
    model, sc = load_model("gpt2"), make_scenario({"prompt": 16, "gen": 2})
    r, _ = simulate_one_step(pim(), model, sc, "decode", 1, context=16)
    e = r.energy_breakdown_j
    for k in ("dram_act_pre", "dram_mac_rd", "dram_io", "dram_refresh", "dram_background", "asic", "bank_mac",
              "static"):
        assert e.get(k, 0) > 0, k
    assert sum(e.values()) == pytest.approx(r.energy_j)
    assert r.stats["dram_MAC_AB"] > 0 and r.stats["row_hits"] > 0


def test_asic_overlaps_the_banks_inside_tiled_ops():
    dev = device()
    mm = dev.cost(f.matmul("down", 1, 6400, 1600, dtype=BF))  # 7 K-tiles: partial sums during MACs
    bank = sum(p.seconds for p in mm.phases if p.unit == "banks")
    assert mm.seconds < bank + mm.stats["asic_busy_s"]
    att = dev.cost(f.attention("pre", 1, 12, 12, 8, 8, 64, dtype=BF))  # softmax i while scores i+1
    assert att.seconds < att.stats["bank_busy_s"] + att.stats["asic_busy_s"]


def test_inconsistent_bank_mac_count_is_refused():
    with pytest.raises(LlmsimError, match="bank_mac.count"):
        pim("bank_mac.count=100")


def test_dram_background_is_standby_power_times_step_wall_time():
    """DRAM standby power is drawn for the whole step, not per op: bank and ASIC ops overlap, so
    a sum over op times would count it twice (host-bound idle gaps: tests/test_engine.py)."""
    hw = pim()
    r, _ = simulate_one_step(hw, load_model("gpt2"), make_scenario({"prompt": 16, "gen": 2}), "decode", 1,
                             context=16)
    watts = hw.memory.energy.background_mw * 1e-3 * hw.memory.channels
    assert r.energy_breakdown_j["dram_background"] == pytest.approx(watts * r.latency_s, rel=1e-12)
    assert not any("dram_background" in rec.energy_j for rec in r.records)
    assert sum(r.energy_breakdown_j.values()) == pytest.approx(r.energy_j, rel=1e-12)


def test_roofline_mac_read_energy_is_bytes_times_pj_per_bit_and_bounds_the_cycle_model():
    dev, e = device(), pim().memory.energy
    op = f.matmul("up", 1, 1600, 6400, dtype=BF)
    b = dev.bound(op)
    bits = b.bytes_by_level["dram_internal"] * 8
    assert b.energy_j["dram_internal"] == pytest.approx(bits * e.mac_pj_per_bit * 1e-12)
    assert b.energy_j["dram_internal"] <= dev.cycle_cost(op).energy_j["dram_mac_rd"]


def test_framework_dispatch_on_pim_is_refused_by_name():
    from llmsim.config.loader import load_hardware
    from llmsim.devices.base import build_device
    from llmsim.errors import ConfigError

    hw = load_hardware("pim")
    hw = hw.model_copy(update={"framework": hw.framework.model_copy(update={"eager_dispatch_s": 5e-6})})
    with pytest.raises(ConfigError, match="framework: dispatch costs need a host unit"):
        build_device(hw, mode="eager")
