"""Law: the closed-form channel-program classes of attention (``score_classes``,
``context_classes``) are exactly the per-channel programs ``score_programs`` /
``context_programs`` build, grouped; and ``_attention_banks`` from them gives the same runs
(bit-identical) as ``_attention_banks_programs`` from one Program per channel."""

import random

import pytest

from llmsim.config.base import DType
from llmsim.config.loader import load_hardware
from llmsim.devices.pim_dram import _attention_banks, _attention_banks_programs
from llmsim.devices.pim_map import (
    Geometry,
    Program,
    context_classes,
    context_programs,
    program_classes,
    score_classes,
    score_programs,
)
from llmsim.errors import ConfigError


def _random_case(rng: random.Random, small: bool = False) -> tuple:
    burst = rng.choice([8, 16, 32])
    row = burst * rng.choice([4, 8, 16, 32, 64] if not small else [4, 8, 16])
    gb = burst * rng.choice([2, 8, 32, 64, 128, 256])
    g = Geometry(channels=rng.choice([1, 2, 3, 5, 8, 16, 32]), banks=rng.choice([1, 2, 4, 16]),
                 row_elems=row, burst_elems=burst, gb_elems=gb)
    D = rng.randint(1, min(row, gb))
    H = rng.randint(1, 48)
    skv = rng.randint(0, 3000 if not small else 600)
    vectors = rng.choice([1, 1, 2, 3, 4, 8])
    return g, H, skv, D, vectors


def _per_channel(g, H, skv, D, vectors):
    ps = [Program() for _ in range(g.channels)]
    score_programs(H, skv, D, g, ps, vectors)
    pc = [Program() for _ in range(g.channels)]
    adds = context_programs(H, skv, D, g, pc, vectors)
    return program_classes(ps), program_classes(pc), adds


@pytest.mark.parametrize("seed", range(4))
def test_classes_are_the_grouped_per_channel_programs(seed):
    rng = random.Random(seed)
    checked = 0
    for _ in range(500):
        g, H, skv, D, vectors = _random_case(rng)
        try:
            ref = _per_channel(g, H, skv, D, vectors)
        except ConfigError as e:
            with pytest.raises(ConfigError, match=str(e)[:30]):
                score_classes(H, skv, D, g, vectors)
                context_classes(H, skv, D, g, vectors)
            continue
        ctx, adds = context_classes(H, skv, D, g, vectors)
        assert (score_classes(H, skv, D, g, vectors), ctx, adds) == ref, (g, H, skv, D, vectors)
        assert sum(c.count for c in ctx) == g.channels
        checked += 1
    assert checked > 200  # most random cases are valid shapes


def test_classes_cover_uneven_spreads():
    """Tokens that do not fill every bank and heads that do not fill every channel give two classes each."""
    g = Geometry(channels=8, banks=4, row_elems=256, burst_elems=16, gb_elems=1024)
    H, skv = 11, 8 * 4 * 3 + 13
    sc = score_classes(H, skv, 64, g)
    assert [c.count for c in sc] == [5, 3]  # 13 extra tokens: channels 0-4 hold 2 of them, 5-7 one
    ctx, adds = context_classes(H, skv, 64, g)
    assert [c.count for c in ctx] == [3, 5]  # 11 heads: channels 0-2 hold 2, 3-7 one
    assert (sc, ctx, adds) == _per_channel(g, H, skv, 64, 1)


@pytest.mark.parametrize("seed", range(3))
def test_attention_banks_closed_form_equals_per_channel_programs(seed):
    mem = load_hardware("pim").memory
    rng = random.Random(100 + seed)
    checked = 0
    while checked < 12:
        g, H, skv, D, vectors = _random_case(rng, small=True)
        dtype = rng.choice([DType.fp16, DType.int8])
        try:
            ref = _attention_banks_programs(mem, g, H, skv, D, dtype, vectors)
        except ConfigError:
            continue
        assert _attention_banks.__wrapped__(mem, g, H, skv, D, dtype, vectors) == ref
        checked += 1


def test_attention_banks_of_the_pim_preset_decode_steps():
    """The shapes ``llmsim run --hw pim --model gpt2-xl`` costs (H 25, D 64, one head per channel
    group) over consecutive KV lengths, and a GQA-style vectors > 1 case."""
    hw = load_hardware("pim")
    mem = hw.memory
    g = Geometry(mem.channels, mem.banks, int(mem.row_bytes / 2), int(mem.burst_bytes / 2),
                 int(hw.global_buffer_bytes / 2))
    for skv in (1, 2, 129, 255, 256, 257, 1023, 1024):
        for H, vectors in ((25, 1), (8, 2)):
            assert (_attention_banks.__wrapped__(mem, g, H, skv, 64, DType.fp16, vectors)
                    == _attention_banks_programs(mem, g, H, skv, 64, DType.fp16, vectors))
