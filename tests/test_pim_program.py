"""Law: a PIM program repeating one pattern many times, costed in closed form, agrees with the
full cycle-level simulation of every command (within 1% in time, 2% in energy)."""

import random

import pytest

from llmsim.config.loader import load_hardware
from llmsim.devices.pim_dram import PERIODIC_MIN_REPS, _period, _program_stats, _program_stats_exact


def test_period_is_the_shortest_whole_repeat():
    assert _period((3, 5, 3, 5, 3, 5)) == 2
    assert _period((4,) * 9) == 1
    assert _period((3, 5, 3, 5, 3)) == 5  # not a whole number of repeats
    assert _period((1, 2, 3)) == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_repeated_program_closed_form_matches_full_simulation(seed):
    spec = load_hardware("pim").memory
    rng = random.Random(seed)
    unit = tuple(rng.choice([4, 16, 32, 64]) for _ in range(rng.randint(3, 40)))
    reps = rng.randint(40, 160)
    rows = unit * reps
    fast, full = _program_stats(spec, rows), _program_stats_exact(spec, rows)
    assert fast.seconds == pytest.approx(full.seconds, rel=0.01)
    assert fast.energy_total_j == pytest.approx(full.energy_total_j, rel=0.02)
    assert fast.commands["MAC_AB"] == full.commands["MAC_AB"]


def test_few_repeats_are_simulated_exactly():
    spec = load_hardware("pim").memory
    rows = (32, 16) * (PERIODIC_MIN_REPS - 1)
    assert _program_stats(spec, rows) == _program_stats_exact(spec, rows)
