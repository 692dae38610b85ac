"""CPU device: blocking loop == closed form, roofline law, monotonicity, calibrate, presets."""

from __future__ import annotations

from math import ceil

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsim.cli import main
from llmsim.config.base import DType
from llmsim.config.loader import bundled_dir, list_bundled, load_hardware, load_yaml, split_overrides
from llmsim.devices._cpu_blocking import choose_blocking, gemm_traffic, gemm_traffic_loop
from llmsim.devices.base import build_device
from llmsim.errors import LlmsimError
from llmsim.graph import factory as f

CPU_PRESETS = [n for n in list_bundled("hw_configs")
               if load_yaml(bundled_dir("hw_configs") / f"{n}.yaml", "hw_configs").get("kind") == "cpu"]
SPECS = {n: load_hardware(n) for n in CPU_PRESETS}


def test_bundled_cpu_presets_are_the_three_sourced_ones():
    assert {"xeon-gold-6154", "rpi5", "snapdragon-x-elite"} <= set(CPU_PRESETS)
    for name, spec in SPECS.items():
        assert spec.source, name


# ---- blocking: the loop nest and its closed form agree ---------------------------------------------
@settings(max_examples=60, deadline=None)
@given(M=st.integers(1, 70), K=st.integers(1, 300), N=st.integers(1, 200), mr=st.sampled_from([4, 6, 8, 32]),
       nr=st.sampled_from([4, 12, 16]), l1=st.sampled_from([2048, 8192, 32768]), l2=st.sampled_from([16384, 262144]),
       l3=st.sampled_from([65536, 1 << 22]), threads=st.integers(1, 20), homes=st.tuples(*[st.integers(0, 3)] * 3),
       b=st.sampled_from([1.0, 2.0, 4.0]))
def test_gemm_blocking_loop_equals_closed_form(M, K, N, mr, nr, l1, l2, l3, threads, homes, b):
    blk = choose_blocking(M, K, N, mr, nr, b, l1, l2, l3, 0.5)
    args = (M, K, N, blk, b, 2 * b, b, homes, 2, 4, threads, 32.0)
    loop, closed = gemm_traffic_loop(*args), gemm_traffic(*args)
    assert closed.bytes_by_level == pytest.approx(loop.bytes_by_level, rel=1e-12)
    assert closed.compute_cycles == pytest.approx(loop.compute_cycles, rel=1e-12)
    assert closed.tiles == loop.tiles


def test_blocks_fit_their_cache_share():
    blk = choose_blocking(4096, 4096, 4096, 32, 12, 4.0, 32768, 1 << 20, 25 << 20, 0.5)
    assert (blk.mr + blk.nr) * blk.kc * 4 <= 0.5 * 32768
    assert blk.mc * blk.kc * 4 <= 0.5 * (1 << 20) and blk.mc % blk.mr == 0
    assert blk.kc * blk.nc * 4 <= 0.5 * (25 << 20) and blk.nc % blk.nr == 0


# ---- the roofline is a law ---------------------------------------------------------------------------
def _ops(kind: str, a: int, b: int, c: int, dt: DType):
    if kind == "matmul":
        return f.matmul("op", a, b, c, dtype=dt, bias=c % 2 == 0)
    if kind == "act_matmul":
        return f.matmul("op", a, b, c, dtype=dt, weighted=False)
    if kind == "attention":
        sq = min(a, b)
        return f.attention("op", 1 + c % 4, 12, 12 if c % 3 else 4, sq, b, 64, dtype=dt, causal=sq > 1)
    if kind == "norm":
        return f.norm("op", a, b * 8, "layernorm", dtype=dt)
    if kind == "activation":
        return f.activation("op", a, b * 8, "gelu", dtype=dt)
    if kind == "elementwise":
        return f.elementwise("op", a, b * 8, "add", dtype=dt)
    if kind == "embedding":
        return f.embedding("op", a, b * 8, n_tables=2, dtype=dt)
    return f.kv_write("op", a, b * 8, dtype=dt)


KINDS = ["matmul", "act_matmul", "attention", "norm", "activation", "elementwise", "embedding", "kv_write"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hw=st.sampled_from(sorted(SPECS)), kind=st.sampled_from(KINDS), a=st.integers(1, 2048),
       b=st.integers(1, 4096), c=st.integers(1, 8192), dt=st.sampled_from([DType.fp32, DType.fp16]),
       threads=st.one_of(st.none(), st.integers(1, 32)))
def test_no_op_beats_its_roofline(hw, kind, a, b, c, dt, threads):
    spec = SPECS[hw].model_copy(update={"threads": threads})
    op = _ops(kind, a, b, c, dt)
    dev = build_device(spec, "cycle", "eager")
    cyc, bound = dev.cycle_cost(op), dev.bound(op)
    assert cyc.seconds >= bound.seconds * (1 - 1e-12)
    assert cyc.compute_cycles >= bound.compute_cycles * (1 - 1e-12)
    assert dev.cost(op).device_seconds >= bound.seconds * (1 - 1e-12)


# ---- monotonicity: more cores, bandwidth or clock never make anything slower ------------------------
def _faster(spec, what: str):
    if what == "cores":
        return spec.model_copy(update={"cores": spec.cores.model_copy(update={"count": spec.cores.count * 2})})
    if what == "clock":
        return spec.model_copy(update={"cores": spec.cores.model_copy(update={"clock_hz": spec.cores.clock_hz * 1.5})})
    if what == "dram":
        mem = spec.memory.model_copy(update={"channels": spec.memory.channels * 2})
        return spec.model_copy(update={"memory": mem})
    if what == "core_bw":
        return spec.model_copy(update={"core_memory_bandwidth_bytes_per_s": spec.core_memory_bandwidth_bytes_per_s * 2})
    lv = [lvl.model_copy(update={"bandwidth_bytes_per_s": lvl.bandwidth_bytes_per_s * 2}) for lvl in spec.onchip]
    return spec.model_copy(update={"onchip": lv})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hw=st.sampled_from(sorted(SPECS)), kind=st.sampled_from(KINDS), a=st.integers(1, 1024),
       b=st.integers(1, 2048), c=st.integers(1, 4096), what=st.sampled_from(["cores", "clock", "dram", "core_bw",
                                                                             "caches"]))
def test_more_resources_never_slower(hw, kind, a, b, c, what):
    spec = SPECS[hw]
    op = _ops(kind, a, b, c, DType.fp32)
    slow = build_device(spec, "cycle", "eager").cost(op)
    fast = build_device(_faster(spec, what), "cycle", "eager").cost(op)
    assert fast.device_seconds <= slow.device_seconds * (1 + 1e-12)


def test_more_cores_never_slow_a_gpt2_step():
    from llmsim.config.loader import load_model, make_scenario
    from llmsim.engine import simulate_one_step

    model, sc = load_model("gpt2"), make_scenario({"batch": 1, "prompt": 32, "gen": 2, "mode": "eager"})
    lat = []
    for n in (1, 2, 4, 8):
        spec = SPECS["rpi5"].model_copy(update={"cores": SPECS["rpi5"].cores.model_copy(update={"count": n})})
        lat.append(simulate_one_step(spec, model, sc, "prefill", 1, seq=32)[0].latency_s)
    assert lat == sorted(lat, reverse=True) and lat[-1] < lat[0]


# ---- edges of the quantisation: ceil in the register tile and in the thread split --------------------
def test_partial_register_tile_costs_a_full_tile():
    spec = SPECS["xeon-gold-6154"].model_copy(update={"threads": 1})
    dev = build_device(spec, "cycle")
    nr = spec.register_tile[1]
    cyc = [dev.cycle_cost(f.matmul("op", 64, 256, n, dtype=DType.fp32)).compute_cycles for n in (nr, nr + 1, 2 * nr)]
    assert cyc[0] < cyc[1] == cyc[2]


def test_thread_split_rounds_up():
    spec = SPECS["xeon-gold-6154"]
    dev = build_device(spec, "cycle")
    mr, nr = spec.register_tile
    T = spec.cores.count
    per = [dev.cycle_cost(f.matmul("op", mr, 512, nr * t, dtype=DType.fp32)).compute_cycles for t in (T, T + 1)]
    assert per[1] == pytest.approx(2 * per[0])


def test_small_pointwise_ops_run_on_one_thread_large_on_all():
    spec = SPECS["xeon-gold-6154"]
    dev = build_device(spec, "cycle")
    small = dev.cycle_cost(f.activation("op", 1, 768, "gelu", dtype=DType.fp32))
    large = dev.cycle_cost(f.activation("op", 4096, 4096, "gelu", dtype=DType.fp32))
    assert small.stats["threads"] == 1 and large.stats["threads"] == spec.cores.count


def test_eager_dispatch_runs_on_the_cores():
    spec = SPECS["rpi5"]
    op = f.norm("op", 1, 768, "layernorm", dtype=DType.fp32)
    eager, graph = build_device(spec, "cycle", "eager").cost(op), build_device(spec, "cycle", "graph").cost(op)
    assert eager.phases[0].unit == "cores" and not eager.phases[0].issue
    assert eager.device_seconds == pytest.approx(graph.device_seconds + spec.framework.eager_dispatch_s)


def test_bad_cpu_spec_names_the_field():
    with pytest.raises(LlmsimError, match="private_levels"):
        load_hardware("rpi5", split_overrides(["hw.private_levels=[l1,l4]"])["hw"])


# ---- presets and calibrate ----------------------------------------------------------------------------
@pytest.mark.parametrize("hw", CPU_PRESETS)
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_llmsim_step_on_every_cpu_preset(hw, phase):
    arg = ["--seq", "32"] if phase == "prefill" else ["--context", "128", "--batch", "4"]
    r = CliRunner().invoke(main, ["step", "--hw", hw, "--model", "gpt2", "--phase", phase, "--mode", "eager",
                                  "--dtype", "fp32", *arg])
    assert r.exit_code == 0, r.output
    assert "latency" in r.output


def test_build_preset_from_measurements():
    from llmsim.calibrate.cpu import build_preset
    from llmsim.calibrate.machine import CacheLevel, MachineFacts

    facts = MachineFacts("test cpu", 8, 3.0e9, "given", "avx2",
                         [CacheLevel(1, 48 << 10, 1), CacheLevel(2, 2 << 20, 1), CacheLevel(3, 32 << 20, 8)], 64 << 30)
    res = {"facts": facts, "backend": "numpy", "threads": 8, "quick": False,
           "gemm_flops_per_s": {"fp32": 8 * 3.0e9 * 24}, "copy_bytes_per_s": 50e9, "triad_bytes_per_s": 60e9,
           "core_triad_bytes_per_s": 15e9, "dispatch_s": 2e-6, "l2_read_bytes_per_s": 400e9,
           "l3_read_bytes_per_s": 300e9, "parallel_region_s": 3e-6}
    p = build_preset(res, "t")
    assert p["cores"]["flops_per_cycle"]["fp32"] == pytest.approx(24)
    assert p["private_levels"] == ["l1", "l2"] and p["onchip"][1]["bandwidth_bytes_per_s"] == pytest.approx(50e9)
    assert p["onchip"][2]["capacity_bytes"] == 32 << 20
    assert 0 < p["memory_efficiency"] <= 1
    spec = load_hardware_dict(p)
    from llmsim.memory.stream import sequential_bandwidth

    # the modelled sustained bandwidth (cycle-level DRAM rate x residual efficiency) is the measured triad
    assert sequential_bandwidth(spec.memory) * spec.memory_efficiency == pytest.approx(60e9, rel=0.02)
    assert spec.memory.capacity_bytes >= 64 << 30
    assert p["register_tile"] == [6, 16]


def load_hardware_dict(p: dict):
    from llmsim.config.hardware import CpuSpec
    from llmsim.config.loader import deep_merge

    mem = load_yaml(bundled_dir("hw_configs") / p["memory"]["extends"], "hw_configs")
    return CpuSpec.model_validate(dict(p, memory=deep_merge(mem, {k: v for k, v in p["memory"].items()
                                                                   if k != "extends"})))


def test_calibrate_quick_writes_a_loadable_preset(tmp_path):
    out = tmp_path / "me.yaml"
    r = CliRunner().invoke(main, ["calibrate", "--quick", "--out", str(out), "--name", "me"])
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(out.read_text())
    assert data["kind"] == "cpu" and "measured" in data["source"]
    spec = load_hardware(out)
    assert spec.name == "me" and spec.cores.count >= 1 and spec.framework.eager_dispatch_s > 0
    ops = spec.framework.eager_op_s  # measured on the reference's blocks (torch is installed with the test extra)
    assert set(ops) == {"matmul", "norm", "activation", "elementwise", "embedding", "kv_write", "attention"}
    assert all(0 < t < 1e-3 for t in ops.values()) and ops["attention"] > ops["elementwise"]
    r = CliRunner().invoke(main, ["step", "--hw", str(out), "--model", "gpt2", "--phase", "decode", "--context", "8",
                                  "--mode", "eager", "--dtype", "fp32"])
    assert r.exit_code == 0, r.output
    assert ceil(spec.memory_efficiency * 100) <= 100


def test_measured_pointwise_kernel_cost_is_a_floor_and_listed_functions_only():
    from math import ceil

    from llmsim.config.base import DType
    from llmsim.config.loader import load_hardware
    from llmsim.devices.base import build_device
    from llmsim.graph import factory as f

    hw = load_hardware("xeon-gold-6154")
    slow = hw.model_copy(update={"pointwise_cycles_per_element": {"gelu": 50.0}})
    gelu = f.activation("a", 64, 4096, "gelu", dtype=DType.fp32)
    relu = f.activation("r", 64, 4096, "relu", dtype=DType.fp32)
    c = build_device(slow).cost(gelu)
    threads = c.stats["threads"]
    assert c.device_seconds >= ceil(64 * 4096 / threads) * 50.0 / hw.cores.clock_hz
    assert c.device_seconds > build_device(hw).cost(gelu).device_seconds
    assert build_device(slow).cost(relu).device_seconds == build_device(hw).cost(relu).device_seconds


def test_cache_rate_below_main_memory_is_remeasured_then_refused():
    from llmsim.calibrate.cpu import _cache_rate
    from llmsim.calibrate.machine import CalibrationError

    seen = []

    def disturbed_then_quiet(reps):  # the first try was disturbed by another process
        seen.append(reps)
        return 1e9 if len(seen) == 1 else 80e9

    assert _cache_rate(disturbed_then_quiet, "l2", memory_read=30e9, reps=10) == 80e9
    assert seen == [10, 20]  # re-measured with more repeats
    with pytest.raises(CalibrationError, match=r"l2 read bandwidth measured 0\.033 GB/s, below main memory"):
        _cache_rate(lambda reps: 33e6, "l2", memory_read=30e9, reps=10)
    said = []  # --quick (a smoke run) floors it at main memory and says so
    assert _cache_rate(lambda reps: 33e6, "l2", memory_read=30e9, reps=10, strict=False, say=said.append) == 30e9
    assert said and "WARNING: l2 read bandwidth" in said[0]
