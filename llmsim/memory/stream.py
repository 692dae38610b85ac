"""Main-memory cost of bulk transfers for GPU, NPU and CPU devices.

Three regimes, all read off the cycle-level DRAM model (:class:`DramModel`):

* up to ``ramp_start_bytes`` (64 bursts per channel): simulated command by command;
* up to ``exact_limit_bytes`` (2048 bursts per channel): the *ramp*, a piecewise-linear curve
  through simulated streams of whole stripes (one burst on every channel), refined where it is
  not linear (:class:`_Ramp`): a KV cache growing by one token costs a lookup, not a simulation;
* longer: the steady-state rate of one long simulated stream (at least eight refresh intervals
  at peak bandwidth, so refresh is sampled fairly) plus the latency of the exact prefix:
  ``t(n) = t(L) + (n - L) / bw_steady``.

``tests/test_memory_stream.py`` checks both closed forms against the full simulation at random
sizes. Every result is at least ``n / peak_bandwidth`` (the roofline), since every rate is a
simulated rate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmsim.config.memory import DramSpec

if TYPE_CHECKING:
    from llmsim.memory.dram import DramStats


def DramModel(spec: DramSpec):  # noqa: N802  (imported on first use: it pulls in Numba)
    from llmsim.memory.dram import DramModel as _Model

    return _Model(spec)


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
    """(short prefix, long stream) of sequential traffic for the steady-state rate. Both are whole
    stripes, so where one channel is known to behave as all of them (:class:`_Ramp`), one channel
    is simulated and scaled."""
    n_long = max(8 * spec.timing.tREFI * spec.tck_s * spec.peak_bandwidth_bytes_per_s, 4 * exact_limit_bytes(spec))
    n_long = int(-(-n_long // (spec.burst_bytes * spec.channels)) * spec.burst_bytes * spec.channels)
    one = _ramp(spec, write).one_channel
    if one is None:
        m = DramModel(spec)
        return m.stream(exact_limit_bytes(spec), write=write), m.stream(n_long, write=write)
    m, c = DramModel(one), spec.channels
    return (_scaled(m.stream(exact_limit_bytes(spec) // c, write=write), c),
            _scaled(m.stream(n_long // c, write=write), c))


def _scaled(s: DramStats, k: int) -> DramStats:
    """``k`` channels each running stream ``s`` side by side."""
    from llmsim.memory.dram import DramStats

    return DramStats(s.cycles, s.seconds, s.bytes * k, {n: v * k for n, v in s.commands.items()}, s.row_hits * k,
                     s.row_misses * k, {n: v * k for n, v in s.energy_j.items()})


RAMP_START_BURSTS = 64     # per channel: below, streams are simulated exactly
RAMP_TOLERANCE = 2e-3      # relative: a ramp interval is linear when its quarter points agree this well


def ramp_start_bytes(spec: DramSpec) -> int:
    return RAMP_START_BURSTS * spec.burst_bytes * spec.channels


@dataclass(frozen=True, slots=True)
class _Point:
    seconds: float
    energy_j: dict[str, float]
    commands: float
    row_hit_rate: float


class _Ramp:
    """Sequential streams of ``k`` whole stripes (``k`` bursts on every channel), k in
    [RAMP_START_BURSTS, 2048], as a piecewise-linear function of k.

    Knots are simulated streams. Between knots a and b the curve is linear once the simulated
    streams at the quarter points a + (b-a)/4, a + (b-a)/2, a + 3(b-a)/4 agree with the line
    within ``RAMP_TOLERANCE`` in time and energy; otherwise the interval is halved, down to
    adjacent knots. Intervals start dyadic ([64, 128], [128, 256], ...), so knots are shared by
    every query. A refresh inside an interval is a step of the time curve; one step is always
    visible at the midpoint and two cannot hide from all three quarter points.

    When streams on one channel of the memory take exactly as long as on all of them (checked
    at the first knot against the full model) knots are simulated on one channel and scaled:
    the full stream is that channel's pattern on every channel."""

    def __init__(self, spec: DramSpec, write: bool):
        self.spec, self.write = spec, write
        self.knots: dict[int, _Point] = {}
        self.linear: set[tuple[int, int]] = set()
        self.nonlinear: set[tuple[int, int]] = set()
        one = spec.model_copy(update={"channels": 1})
        self._model_full, self._model_one = DramModel(spec), DramModel(one)
        k0 = RAMP_START_BURSTS
        full = self._full(k0)
        part = self._from(self._model_one.stream(k0 * spec.burst_bytes, write=write), spec.channels)
        same = part.seconds == full.seconds and all(
            abs(part.energy_j.get(c, 0.0) - v) <= 1e-9 * max(abs(v), 1e-30) for c, v in full.energy_j.items())
        self.one_channel = one if same else None
        self.knots[k0] = full

    def _from(self, st: DramStats, scale: int) -> _Point:
        return _Point(st.seconds, {k: v * scale for k, v in st.energy_j.items()},
                      float(sum(st.commands.values())) * scale, st.row_hit_rate)

    def _full(self, k: int) -> _Point:
        return self._from(self._model_full.stream(k * self.spec.burst_bytes * self.spec.channels,
                                                  write=self.write), 1)

    def knot(self, k: int) -> _Point:
        p = self.knots.get(k)
        if p is None:
            if self.one_channel is not None:
                st = self._model_one.stream(k * self.spec.burst_bytes, write=self.write)
                p = self._from(st, self.spec.channels)
            else:
                p = self._full(k)
            self.knots[k] = p
        return p

    def _line(self, a: int, b: int, x: float) -> _Point:
        pa, pb = self.knot(a), self.knot(b)
        w = (x - a) / (b - a)
        energy = {c: pa.energy_j.get(c, 0.0) + w * (pb.energy_j.get(c, 0.0) - pa.energy_j.get(c, 0.0))
                  for c in pa.energy_j.keys() | pb.energy_j.keys()}
        return _Point(pa.seconds + w * (pb.seconds - pa.seconds), energy,
                      pa.commands + w * (pb.commands - pa.commands),
                      pa.row_hit_rate + w * (pb.row_hit_rate - pa.row_hit_rate))

    def _is_linear(self, a: int, b: int) -> bool:
        if (a, b) in self.linear:
            return True
        if (a, b) in self.nonlinear:
            return False
        for q in {a + (b - a) // 4, (a + b) // 2, a + 3 * (b - a) // 4} - {a, b}:
            est, sim = self._line(a, b, q), self.knot(q)
            e_est, e_sim = sum(est.energy_j.values()), sum(sim.energy_j.values())
            if (abs(est.seconds - sim.seconds) > RAMP_TOLERANCE * sim.seconds
                    or abs(e_est - e_sim) > RAMP_TOLERANCE * e_sim):
                self.nonlinear.add((a, b))
                return False
        self.linear.add((a, b))
        return True

    def at(self, x: float) -> _Point:
        """The curve at ``x`` stripes (RAMP_START_BURSTS <= x <= 2048)."""
        a = RAMP_START_BURSTS
        while 2 * a < x:
            a *= 2
        b = min(2 * a, 2048)
        while True:
            if x == a or x == b:
                return self.knot(int(x))
            if b - a <= 1 or self._is_linear(a, b):
                return self._line(a, b, x)
            m = (a + b) // 2
            a, b = (a, m) if x <= m else (m, b)


@functools.lru_cache(maxsize=64)
def _ramp(spec: DramSpec, write: bool) -> _Ramp:
    return _Ramp(spec, write)


def _ramp_cost(spec: DramSpec, n: int, write: bool) -> StreamCost:
    """A stream inside the ramp: its time is that of its busiest channel (``ceil`` stripes),
    its energy and commands grow with its bursts (fractional stripes)."""
    bursts = -(-n // spec.burst_bytes)
    r = _ramp(spec, write)
    t = r.at(-(-bursts // spec.channels)).seconds
    p = r.at(bursts / spec.channels)
    return StreamCost(t, float(n), p.energy_j, p.row_hit_rate, p.commands, False)


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
    if n < ramp_start_bytes(spec):
        return _from_stats(DramModel(spec).stream(n, write=write), True)
    if n <= limit:
        return _ramp_cost(spec, n, write)
    prefix, long = _steady(spec, write)
    extra = n - prefix.bytes
    rate_s = (long.seconds - prefix.seconds) / (long.bytes - prefix.bytes)
    scale = extra / (long.bytes - prefix.bytes)
    energy = {k: prefix.energy_j.get(k, 0.0) + (long.energy_j.get(k, 0.0) - prefix.energy_j.get(k, 0.0)) * scale
              for k in long.energy_j}
    cmds = sum(prefix.commands.values()) + (sum(long.commands.values()) - sum(prefix.commands.values())) * scale
    return StreamCost(prefix.seconds + extra * rate_s, float(n), energy, long.row_hit_rate, cmds, False)
