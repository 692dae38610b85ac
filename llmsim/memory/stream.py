"""Main-memory cost of bulk transfers for GPU, NPU and CPU devices.

Streams up to ``exact_limit_bytes`` are simulated command by command. Longer streams are
costed at the steady-state rate of one long simulated stream (at least eight refresh
intervals at peak bandwidth, so refresh is sampled fairly) plus the latency of the exact
prefix: ``t(n) = t(L) + (n - L) / bw_steady``. ``tests/test_memory_stream.py`` checks this
against the full simulation at sizes where both run. Every result is at least
``n / peak_bandwidth`` (the roofline), since the steady rate is a simulated rate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from llmsim.config.memory import DramSpec
from llmsim.memory.dram import DramModel, DramStats


@dataclass(frozen=True, slots=True)
class StreamCost:
    seconds: float
    bytes: float
    energy_j: dict[str, float]
    row_hit_rate: float
    commands: float
    exact: bool

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds else 0.0


def _from_stats(st: DramStats, exact: bool) -> StreamCost:
    return StreamCost(st.seconds, float(st.bytes), dict(st.energy_j), st.row_hit_rate,
                      float(sum(st.commands.values())), exact)


@functools.lru_cache(maxsize=64)
def _steady(spec: DramSpec, write: bool) -> tuple[DramStats, DramStats]:
    """(short prefix, long stream) of sequential traffic for the steady-state rate."""
    m = DramModel(spec)
    n_long = max(8 * spec.timing.tREFI * spec.tck_s * spec.peak_bandwidth_bytes_per_s, 4 * exact_limit_bytes(spec))
    n_long = int(-(-n_long // (spec.burst_bytes * spec.channels)) * spec.burst_bytes * spec.channels)
    return m.stream(exact_limit_bytes(spec), write=write), m.stream(n_long, write=write)


def exact_limit_bytes(spec: DramSpec) -> int:
    """Streams up to this size are simulated exactly: 2048 bursts per channel."""
    return 2048 * spec.burst_bytes * spec.channels


def steady_rate(spec: DramSpec, *, write: bool = False) -> tuple[float, dict[str, float]]:
    """Steady state of long sequential traffic from the cycle-level simulation: (bytes/s, joules per
    byte by DRAM energy component), taken past the exact prefix so start-up latency is excluded.

    The per-byte energy leaves out ``background``: standby power is drawn whether or not bytes
    move, and devices get it charged per step wall time (``Device.background_power_w``)."""
    prefix, long = _steady(spec, write)
    n = long.bytes - prefix.bytes
    energy = {k: (long.energy_j.get(k, 0.0) - prefix.energy_j.get(k, 0.0)) / n for k in long.energy_j
              if k != "background"}
    return n / (long.seconds - prefix.seconds), energy


def sequential_bandwidth(spec: DramSpec) -> float:
    """Steady-state bytes/s of a long sequential read, from the cycle-level simulation."""
    return steady_rate(spec)[0]


def stream_cost(spec: DramSpec, n_bytes: float, *, write: bool = False) -> StreamCost:
    """Seconds, energy and row-hit rate of a sequential ``n_bytes`` read (or write)."""
    n = int(max(0, round(n_bytes)))
    if n == 0:
        return StreamCost(0.0, 0.0, {}, 0.0, 0.0, True)
    limit = exact_limit_bytes(spec)
    if n <= limit:
        return _from_stats(DramModel(spec).stream(n, write=write), True)
    prefix, long = _steady(spec, write)
    extra = n - prefix.bytes
    rate_s = (long.seconds - prefix.seconds) / (long.bytes - prefix.bytes)
    scale = extra / (long.bytes - prefix.bytes)
    energy = {k: prefix.energy_j.get(k, 0.0) + (long.energy_j.get(k, 0.0) - prefix.energy_j.get(k, 0.0)) * scale
              for k in long.energy_j}
    cmds = sum(prefix.commands.values()) + (sum(long.commands.values()) - sum(prefix.commands.values())) * scale
    return StreamCost(prefix.seconds + extra * rate_s, float(n), energy, long.row_hit_rate, cmds, False)
