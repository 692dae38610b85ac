"""CPU: the framework BLAS's weight streaming (GEMV, packing) and the usable last-level cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsim.calibrate.llc import effective_capacity, measure_llc, sweep_sizes
from llmsim.config.base import DType
from llmsim.config.loader import load_hardware
from llmsim.devices.base import build_device
from llmsim.graph import factory as f

XEON = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "cpu_validation" / "calibrated.yaml"
MIB = 1 << 20


def _dev(**update):
    spec = load_hardware(XEON)
    return spec, build_device(spec.model_copy(update=update), "cycle", "eager")


def test_one_row_gemm_streams_its_weight_once_through_every_level():
    spec, dev = _dev()
    K, N = 1024, 4096
    c = dev.cycle_cost(f.matmul("op", 1, K, N, dtype=DType.fp32))
    w = 4.0 * K * N
    for name, b in c.bytes_by_level.items():  # the weight once, plus the 1-row input and output
        assert w <= b <= w + 4.0 * 4 * (K + N), name


def test_gemv_runs_at_the_calibrated_chain_rate_when_memory_is_faster():
    spec, dev = _dev()
    K = N = 1448  # calibrate's chain weight (8 MiB fp32)
    c = dev.cycle_cost(f.matmul("op", 1, K, N, dtype=DType.fp32))
    expect = 4.0 * K * N / spec.gemv_weight_bytes_per_s + spec.parallel_region_s
    assert c.seconds == pytest.approx(expect, rel=1e-9)


def test_eight_row_gemm_costs_its_flops_plus_the_calibrated_packing():
    """The model reproduces the measurement it was calibrated from: pack rate = w / (t8 − FLOPs at peak)."""
    spec, dev = _dev()
    K = N = 1448
    c = dev.cycle_cost(f.matmul("op", 8, K, N, dtype=DType.fp32))
    peak = spec.cores.flops_per_cycle["fp32"] * spec.cores.clock_hz * spec.threads
    compute = 2.0 * 8 * K * N / peak
    pack = 4.0 * K * N / spec.pack_weight_bytes_per_s
    # the register tile computes 32 rows for 8 (edge tiles cost a full tile): compute is at least the FLOPs
    assert c.seconds >= compute + pack
    assert c.seconds == pytest.approx(c.compute_cycles / spec.cores.clock_hz + pack + spec.parallel_region_s,
                                      rel=1e-9)


def test_more_rows_never_stream_a_weight_faster_than_one():
    _, dev = _dev()
    t = [dev.cycle_cost(f.matmul("op", m, 1280, 5120, dtype=DType.fp32)).seconds for m in (1, 2, 4, 8, 32, 128)]
    assert t == sorted(t)


def test_pack_rate_per_row_count_interpolates_seconds_per_byte_and_holds_the_ends():
    spec = _dev(pack_weight_bytes_per_s_by_rows={2: 5e9, 8: 20e9, 32: 16e9})[1].spec
    assert spec.pack_rate(2) == spec.pack_rate(1) == 5e9
    assert spec.pack_rate(32) == spec.pack_rate(4096) == 16e9
    assert 1 / spec.pack_rate(5) == pytest.approx(0.5 / 5e9 + 0.5 / 20e9, rel=1e-12)
    assert spec.pack_rate(8) == 20e9
    assert _dev()[0].pack_rate(4) == _dev()[0].pack_weight_bytes_per_s  # no table: the one rate


def test_a_four_row_gemm_packs_at_the_rate_measured_for_four_rows():
    _, dev = _dev(pack_weight_bytes_per_s_by_rows={4: 6e9, 8: 18e9})
    spec = dev.spec
    K = N = 1448
    c = dev.cycle_cost(f.matmul("op", 4, K, N, dtype=DType.fp32))
    assert c.stats["pack_s"] == pytest.approx(4.0 * K * N / 6e9, rel=1e-12)
    assert c.seconds == pytest.approx(c.compute_cycles / spec.cores.clock_hz + c.stats["pack_s"]
                                      + spec.parallel_region_s, rel=1e-9)


def test_weight_rows_cost_the_calibrated_time_each_in_gemv_and_packed_gemm():
    """Equal bytes in more, shorter rows cost N x weight_row_s more, in both library paths."""
    _, dev = _dev(weight_row_s=70e-9)
    _, base = _dev()
    for m in (1, 4):
        long_rows = dev.cycle_cost(f.matmul("op", m, 8192, 256, dtype=DType.fp32))
        short_rows = dev.cycle_cost(f.matmul("op", m, 512, 4096, dtype=DType.fp32))
        key = "gemv_floor_s" if m == 1 else "pack_s"
        assert short_rows.stats[key] - long_rows.stats[key] == pytest.approx((4096 - 256) * 70e-9, rel=1e-9)
        assert short_rows.stats[key] - base.cycle_cost(f.matmul("op", m, 512, 4096, dtype=DType.fp32)).stats[key] \
            == pytest.approx(4096 * 70e-9, rel=1e-9)


def test_a_weight_larger_than_the_llc_sends_its_packed_copy_to_memory_and_back():
    spec, dev = _dev()
    llc = spec.onchip[-1].capacity_bytes
    K = 1024
    fits, spills = (int(r * llc / (4 * K)) for r in (0.5, 2.0))
    small = dev.cycle_cost(f.matmul("op", 4, K, fits, dtype=DType.fp32))
    big = dev.cycle_cost(f.matmul("op", 4, K, spills, dtype=DType.fp32))
    assert "pack_spill_s" not in small.stats
    assert big.stats["pack_spill_s"] == pytest.approx(2.0 * 4 * K * spills / dev.bandwidth(dev.dram_index, 2),
                                                      rel=1e-9)
    assert big.stats["pack_s"] / spills > small.stats["pack_s"] / fits  # more time per weight byte
    assert "pack_spill_s" not in dev.cycle_cost(f.matmul("op", 1, K, spills, dtype=DType.fp32)).stats  # GEMV


def test_a_pack_table_row_below_two_is_refused_by_name():
    from llmsim.config.hardware import CpuSpec

    spec = load_hardware(XEON)
    with pytest.raises(ValueError, match="pack_weight_bytes_per_s_by_rows"):
        CpuSpec.model_validate(spec.model_dump() | {"pack_weight_bytes_per_s_by_rows": {1: 5e9}})


# ---- the usable last-level cache -----------------------------------------------------------------------
def test_sweep_doubles_up_to_the_os_capacity():
    assert sweep_sizes(4 * MIB, 300 * MIB) == [4 * MIB, 8 * MIB, 16 * MIB, 32 * MIB, 64 * MIB, 128 * MIB,
                                               256 * MIB, 300 * MIB]


def test_llc_capacity_is_the_knee_of_the_read_sweep():
    sizes = sweep_sizes(4 * MIB, 300 * MIB)
    rates = [25e9, 24e9, 24e9, 23e9, 20e9, 14e9, 13.5e9, 13.4e9]  # this VM's one-thread sweep, GB/s
    assert effective_capacity(sizes, rates, 13e9) == 64 * MIB


def test_no_visible_step_means_the_smallest_set_at_memory_speed():
    sizes = sweep_sizes(4 * MIB, 64 * MIB)
    assert effective_capacity(sizes, [10e9] * len(sizes), 12e9) == 4 * MIB
    m = measure_llc(lambda b: 10e9, 4 * MIB, 64 * MIB, 12e9)
    assert m["capacity_bytes"] == 4 * MIB and m["bandwidth_at_bytes"] == 0


def test_a_cache_that_holds_everything_keeps_the_os_capacity():
    m = measure_llc(lambda b: 80e9, 4 * MIB, 32 * MIB, 20e9)
    assert m["capacity_bytes"] == 32 * MIB and m["bandwidth_at_bytes"] == 16 * MIB


def test_effective_capacity_names_its_inputs_when_they_disagree():
    with pytest.raises(ValueError, match="one rate per size"):
        effective_capacity([1, 2], [1.0], 1.0)


def test_preset_takes_the_usable_llc_not_the_os_figure():
    from llmsim.calibrate.cpu import build_preset
    from llmsim.calibrate.machine import CacheLevel, MachineFacts

    facts = MachineFacts("test cpu", 2, 2.1e9, "given", "avx512",
                         [CacheLevel(1, 48 << 10, 1), CacheLevel(2, 2 << 20, 1), CacheLevel(3, 300 * MIB, 2)], 32 << 30)
    res = {"facts": facts, "backend": "numpy", "threads": 2, "quick": False,
           "gemm_flops_per_s": {"fp32": 3e11}, "copy_bytes_per_s": 26e9, "triad_bytes_per_s": 27e9,
           "core_triad_bytes_per_s": 17e9, "dispatch_s": 1e-6, "l2_read_bytes_per_s": 80e9,
           "l3_read_bytes_per_s": 45e9, "parallel_region_s": 3e-6, "llc_capacity_bytes": 64 * MIB,
           "llc_sweep": {4 * MIB: 25e9, 64 * MIB: 20e9, 128 * MIB: 13.8e9}, "memory_read_bytes_per_s": 13e9}
    p = build_preset(res, "t")
    assert p["onchip"][2]["capacity_bytes"] == 64 * MIB
    assert p["onchip"][2]["bandwidth_bytes_per_s"] == pytest.approx(45e9)
    assert "the OS reports 300 MiB" in p["source"]["onchip"] and "64 MiB 20.0" in p["source"]["onchip"]
