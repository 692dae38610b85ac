"""Law: the steady-state extrapolation of long streams agrees with the full cycle-level simulation."""

import pytest

from llmsim.config.loader import load_hardware
from llmsim.memory.dram import DramModel
from llmsim.memory.stream import exact_limit_bytes, stream_cost


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
    for n in (1, 4096, exact_limit_bytes(spec), 10 * exact_limit_bytes(spec)):
        c = stream_cost(spec, n)
        assert c.exact == (n <= exact_limit_bytes(spec))
        assert c.seconds >= n / spec.peak_bandwidth_bytes_per_s


def test_longer_streams_never_take_less_time():
    spec = load_hardware("t4").memory
    sizes = [1 << k for k in range(10, 27, 2)]
    times = [stream_cost(spec, n).seconds for n in sizes]
    assert times == sorted(times)
