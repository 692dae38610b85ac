"""Laws of the NPU device: never faster than the roofline, monotone in cores / bandwidth / array size
(power-of-two scaling with edge bypass), the SCALE-Sim-compatible mapping, tiles that do not fit refused,
and the CLI on every NPU preset."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsim.cli import main as cli
from llmsim.config.base import DType
from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.devices.base import build_device
from llmsim.engine import simulate_one_step
from llmsim.errors import CapacityError, ConfigError
from llmsim.graph.factory import attention, matmul, norm, single_op
from llmsim.graph.lower import lower_decode, lower_prefill
from llmsim.kernels.systolic import systolic_gemm

PRESETS = ["npu-ws-128", "tpu-v4i", "hexagon-npu"]
SLACK = 1 + 1e-9


def _dev(hw: str = "npu-ws-128", **sets):
    """Device of preset ``hw`` with ``--set``-style overrides, e.g. ``array_rows=32``, ``memory.channels=4``."""
    return build_device(load_hardware(hw, [(k.split("."), v) for k, v in sets.items()]))


def _dtype(hw: str) -> DType:
    return DType.int8 if hw == "hexagon-npu" else DType.bf16 if hw == "tpu-v4i" else DType.fp16


def _ops(dt: DType):
    """A few ops of every kind the NPU costs differently."""
    return [matmul("mm", 96, 300, 200, dtype=dt), matmul("gemv", 1, 512, 1000, dtype=dt, bias=True),
            matmul("moe", 64, 256, 128, experts=4, dtype=dt),
            attention("att", 2, 8, 2, 64, 64, 32, dtype=dt), attention("dec", 3, 4, 4, 1, 300, 64, dtype=dt),
            norm("ln", 64, 512, "layernorm", dtype=dt)]


# ---- lower bound ------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(hw=st.sampled_from(PRESETS), m=st.integers(1, 400), k=st.integers(1, 700), n=st.integers(1, 700),
       rows=st.sampled_from([4, 8, 16, 33, 64, 128]), cols=st.sampled_from([4, 8, 16, 33, 64, 128]),
       df=st.sampled_from(["ws", "os", "is"]), cores=st.integers(1, 3), trim=st.booleans())
def test_matmul_never_beats_roofline(hw, m, k, n, rows, cols, df, cores, trim):
    dev = _dev(hw, array_rows=rows, array_cols=cols, dataflow=df, trim_edges=trim, **{"array.count": cores})
    op = matmul("mm", m, k, n, dtype=_dtype(hw))
    c, b = dev.cost(op), dev.bound(op)
    assert c.seconds >= b.seconds / SLACK
    assert c.compute_cycles <= c.cycles
    assert c.stats["utilization"] <= 1.0


@settings(max_examples=25, deadline=None)
@given(hw=st.sampled_from(PRESETS), b=st.integers(1, 3), hkv=st.integers(1, 4), grp=st.integers(1, 4),
       sq=st.integers(1, 90), extra=st.integers(0, 200), d=st.sampled_from([16, 64, 128]),
       df=st.sampled_from(["ws", "os", "is"]))
def test_attention_never_beats_roofline(hw, b, hkv, grp, sq, extra, d, df):
    dev = _dev(hw, dataflow=df)
    op = attention("att", b, hkv * grp, hkv, sq, sq + extra, d, dtype=_dtype(hw), causal=sq > 1)
    assert dev.cost(op).seconds >= dev.bound(op).seconds / SLACK


@pytest.mark.parametrize("hw", PRESETS)
def test_every_op_of_a_step_never_beats_roofline(hw):
    dev = _dev(hw)
    model = load_model("gpt2")
    sc = make_scenario({"weight_dtype": _dtype(hw).value, "act_dtype": _dtype(hw).value,
                        "kv_dtype": _dtype(hw).value})
    for g in (lower_prefill(model, sc, 2, 200), lower_decode(model, sc, 300, 4)):
        for _, data in g.nodes(data=True):
            op = data["op"]
            assert dev.cost(op).seconds >= dev.bound(op).seconds / SLACK, op.name


# ---- monotonicity -------------------------------------------------------------------------------

def _step_s(hw: str, phase: str, **sets) -> float:
    spec = load_hardware(hw, [(k.split("."), v) for k, v in sets.items()])
    dt = _dtype(hw).value
    sc = make_scenario({"weight_dtype": dt, "act_dtype": dt, "kv_dtype": dt, "prompt": 128})
    kw = {"seq": 128} if phase == "prefill" else {"context": 256}
    res, _ = simulate_one_step(spec, load_model("gpt2"), sc, phase, 2, **kw)
    return res.latency_s


@pytest.mark.parametrize("hw", PRESETS)
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_more_cores_never_slow_a_step(hw, phase):
    times = [_step_s(hw, phase, **{"array.count": p}) for p in (1, 2, 3, 4)]
    assert all(b <= a * SLACK for a, b in zip(times, times[1:], strict=False)), times
    assert times[-1] < times[0]


@pytest.mark.parametrize("hw", PRESETS)
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_more_dram_channels_never_slow_a_step(hw, phase):
    times = [_step_s(hw, phase, **{"memory.channels": ch}) for ch in (2, 4, 8, 16)]
    assert all(b <= a * SLACK for a, b in zip(times, times[1:], strict=False)), times
    assert times[-1] < times[0]


@pytest.mark.parametrize("hw", ["tpu-v4i", "hexagon-npu"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_power_of_two_bigger_array_never_slows_a_step_with_edge_bypass(hw, phase):
    times = [_step_s(hw, phase, array_rows=r, array_cols=c, trim_edges=True)
             for r, c in ((16, 16), (32, 16), (32, 32), (64, 64), (128, 64), (128, 128), (256, 256))]
    assert all(b <= a * SLACK for a, b in zip(times, times[1:], strict=False)), times


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 300), k=st.integers(1, 600), n=st.integers(1, 600), r=st.sampled_from([2, 4, 8, 16, 32]),
       c=st.sampled_from([2, 4, 8, 16, 32]), up=st.sampled_from([(1, 0), (0, 1), (1, 1), (2, 1)]),
       df=st.sampled_from(["ws", "os", "is"]), cores=st.integers(1, 2), chans=st.sampled_from([1, 2, 8]))
def test_power_of_two_bigger_array_never_slows_an_op_with_edge_bypass(m, k, n, r, c, up, df, cores, chans):
    common = {"dataflow": df, "trim_edges": True, "array.count": cores, "memory.channels": chans}
    small = _dev("npu-ws-128", array_rows=r, array_cols=c, **common)
    big = _dev("npu-ws-128", array_rows=r << up[0], array_cols=c << up[1], **common)
    for op in (matmul("mm", m, k, n, dtype=DType.fp16), attention("a", 1, 2, 1, 1 + m % 40, 40 + n % 90, 64,
                                                                     dtype=DType.fp16, causal=False)):
        assert big.cost(op).seconds <= small.cost(op).seconds * SLACK


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 300), k=st.integers(1, 600), n=st.integers(1, 600), df=st.sampled_from(["ws", "os", "is"]),
       cores=st.integers(1, 3), trim=st.booleans())
def test_more_cores_and_more_channels_never_slow_an_op(m, k, n, df, cores, trim):
    op = matmul("mm", m, k, n, dtype=DType.fp16)
    base = {"dataflow": df, "trim_edges": trim, "array_rows": 32, "array_cols": 32}
    t = _dev(**base, **{"array.count": cores, "memory.channels": 2}).cost(op).seconds
    assert _dev(**base, **{"array.count": cores + 1, "memory.channels": 2}).cost(op).seconds <= t * SLACK
    assert _dev(**base, **{"array.count": cores, "memory.channels": 4}).cost(op).seconds <= t * SLACK


def test_without_edge_bypass_a_bigger_array_can_be_slower_as_documented():
    """The array law's precondition is real: SCALE-Sim semantics pad edge folds to the full array."""
    op = matmul("mm", 1, 32, 32, dtype=DType.fp16)
    small = _dev(array_rows=32, array_cols=32, trim_edges=False)
    big = _dev(array_rows=128, array_cols=128, trim_edges=False)
    assert (small.cost(op).compute_cycles, big.cost(op).compute_cycles) == (95, 383)
    assert _dev(array_rows=128, array_cols=128, trim_edges=True).cost(op).compute_cycles <= 95


# ---- mapping ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("df", ["ws", "os", "is"])
@pytest.mark.parametrize("size", [32, 128])
@pytest.mark.parametrize("mkn", [(128, 768, 2304), (1, 2048, 6144), (512, 64, 512), (8, 1600, 1600)])
def test_single_core_device_reproduces_the_kernel_scalesim_compared(df, size, mkn):
    """What benchmarks/npu_vs_scalesim.py relies on: the device's compute cycles on npu-ws-128 are the
    kernel's fold count (SCALE-Sim + 1) for the same array and dataflow."""
    m, k, n = mkn
    dev = _dev(array_rows=size, array_cols=size, dataflow=df)
    c = dev.cost(single_op("matmul", [m, k, n], DType.fp16))
    assert c.compute_cycles == systolic_gemm(m, n, k, size, size, df).cycles
    assert c.cycles >= c.compute_cycles


def test_int8_packing_makes_compute_bound_gemm_faster_on_hexagon():
    dev = _dev("hexagon-npu")
    f16, i8 = (dev.cost(matmul("mm", 512, 2048, 2048, dtype=dt)) for dt in (DType.fp16, DType.int8))
    assert i8.compute_cycles < 0.6 * f16.compute_cycles


def test_array_peak_is_derived_from_geometry():
    spec = load_hardware("hexagon-npu", [(["array_rows"], 64)])
    assert spec.array.flops_per_cycle[DType.int8] == 2 * 64 * 64 * 2
    with pytest.raises(ConfigError, match="flops_per_cycle"):
        load_hardware("npu-ws-128", [(["array"], {"count": 1, "clock_hz": 1e9, "flops_per_cycle": {"fp16": 7}})])


# ---- refusals ---------------------------------------------------------------------------------------

def test_stationary_tile_too_big_names_the_filter_buffer():
    dev = _dev(**{"onchip.1.capacity_bytes": 1000})
    with pytest.raises(CapacityError, match=r"op mm matmul: filter SRAM.*32768 B.*500 B"):
        dev.cost(matmul("mm", 4, 512, 512, dtype=DType.fp16))


def test_os_ifmap_buffer_too_small_for_one_element_of_stream_is_refused():
    dev = _dev(dataflow="os", **{"onchip.0.capacity_bytes": 511})  # one K step of 128 rows = 256 B > 255.5
    with pytest.raises(CapacityError, match="ifmap SRAM.*256 B"):
        dev.cost(matmul("mm", 128, 64, 64, dtype=DType.fp16))
    assert _dev(dataflow="os", **{"onchip.0.capacity_bytes": 512}).cost(matmul("mm", 128, 64, 64, dtype=DType.fp16))


def test_long_os_reduction_is_chunked_over_k():
    c = _dev(dataflow="os").cost(matmul("mm", 128, 20000, 64, dtype=DType.fp16))  # 20000 x 128 x 2 B > 3 MiB half
    assert c.stats["chunks"] == 2


def test_long_ws_stream_is_chunked_to_fit_not_refused():
    dev = _dev(**{"onchip.2.capacity_bytes": 65536})  # ofmap half holds 128 columns x 128 rows of fp16
    c = dev.cost(matmul("mm", 1000, 256, 256, dtype=DType.fp16))
    assert c.stats["chunks"] == 8


# ---- CLI on every preset ---------------------------------------------------------------------------

@pytest.mark.parametrize("hw", PRESETS)
def test_cli_op_and_step_on_every_npu_preset(hw):
    r = CliRunner()
    out = r.invoke(cli, ["op", "--hw", hw, "--kind", "matmul", "--shape", "64,512,1024", "--dtype", _dtype(hw).value])
    assert out.exit_code == 0, out.output
    assert "roofline bound" in out.output
    for phase, extra in (("prefill", ["--seq", "64"]), ("decode", ["--context", "128"])):
        out = r.invoke(cli, ["step", "--hw", hw, "--model", "gpt2", "--phase", phase, *extra,
                             "--dtype", _dtype(hw).value])
        assert out.exit_code == 0, out.output
        assert "latency" in out.output


def test_cli_refuses_a_tile_that_does_not_fit_in_one_line():
    out = CliRunner().invoke(cli, ["op", "--hw", "npu-ws-128", "--kind", "matmul", "--shape", "4,512,512",
                                   "--set", "hw.onchip.1.capacity_bytes=1000"])
    assert out.exit_code == 2
    assert "filter SRAM" in out.output
