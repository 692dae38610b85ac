"""Law: the steady-state extrapolation of long streams agrees with the full cycle-level simulation."""

import random

import pytest

from llmsim.config.loader import load_hardware
from llmsim.memory.dram import DramModel
from llmsim.memory.stream import exact_limit_bytes, ramp_start_bytes, stream_cost


@pytest.mark.parametrize("hw", ["t4", "xeon-gold-6154", "npu-ws-128"])
def test_extrapolated_stream_matches_full_simulation(hw):
    spec = load_hardware(hw).memory
    n = 24 * exact_limit_bytes(spec) + 12345
    est = stream_cost(spec, n)
    full = DramModel(spec).stream(n)
    assert not est.exact
    assert est.seconds == pytest.approx(full.seconds, rel=0.02)
    assert sum(est.energy_j.values()) == pytest.approx(full.energy_total_j, rel=0.03)


def test_short_streams_are_exact_and_never_beat_peak():
    spec = load_hardware("h100").memory
    for n in (1, 4096, ramp_start_bytes(spec) - 1, ramp_start_bytes(spec), exact_limit_bytes(spec),
              10 * exact_limit_bytes(spec)):
        c = stream_cost(spec, n)
        assert c.exact == (n < ramp_start_bytes(spec))
        assert c.seconds >= n / spec.peak_bandwidth_bytes_per_s


@pytest.mark.parametrize("hw", ["h100", "a100", "xeon-gold-6154", "npu-ws-128", "rpi5"])
def test_ramp_matches_full_simulation_at_random_sizes(hw):
    """The ramp's piecewise-linear curve stays within 1% in time and 2% in energy of the full
    cycle-level simulation at any size between its ends."""
    spec = load_hardware(hw).memory
    rng = random.Random(hw)
    lo, hi = ramp_start_bytes(spec), exact_limit_bytes(spec)
    for n in [lo, hi] + [rng.randint(lo, hi) for _ in range(8)]:
        est, full = stream_cost(spec, n), DramModel(spec).stream(n)
        assert est.seconds == pytest.approx(full.seconds, rel=0.01), n
        assert sum(est.energy_j.values()) == pytest.approx(full.energy_total_j, rel=0.02), n


def test_one_channel_long_stream_equals_all_channels():
    """The steady state is simulated on one channel when the ramp found one channel equal to all
    of them; over a stream with refreshes in it the two still agree exactly."""
    spec = load_hardware("t4").memory
    n = 6 * exact_limit_bytes(spec)
    assert stream_cost(spec, n).seconds == pytest.approx(DramModel(spec).stream(n).seconds, rel=0.02)
    one = DramModel(spec.model_copy(update={"channels": 1})).stream(n // spec.channels)
    full = DramModel(spec).stream(n)
    assert one.seconds == full.seconds
    assert one.energy_total_j * spec.channels == pytest.approx(full.energy_total_j, rel=1e-9)


def test_longer_streams_never_take_less_time():
    spec = load_hardware("t4").memory
    sizes = [1 << k for k in range(10, 27, 2)]
    times = [stream_cost(spec, n).seconds for n in sizes]
    assert times == sorted(times)
