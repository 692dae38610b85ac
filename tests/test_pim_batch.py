"""Batch-parallel PIM attention (AttAcc's mapping, ``llmsim/devices/pim_batch.py``) and the batch-1
results it must leave untouched (PIM-GPT's mapping)."""

import pytest

from llmsim.config.base import DType
from llmsim.config.loader import load_hardware
from llmsim.devices.base import build_device
from llmsim.graph import factory as f
from llmsim.studies.pim_gpt import decode_metrics

BF = DType.bf16

# Measured on the PIM-GPT mapping before batch-parallel attention existed (commit cde9a23): batch 1 must
# stay bit-identical. (s/token, J/token, row-hit rate of the decode steps, prefill seconds)
PIM_GPT_BATCH1 = {
    "gpt2": (0.00015869889042207798, 0.0012002349999083765, 0.9608934119586583, 0.015115987481758391),
    "gpt2-xl": (0.0018226497857142846, 0.014588713699685714, 0.9684843539123066, 0.22812932170007738),
}
# (B, H, Sq, Skv, D) -> (seconds, joules) of one attention op on the pim preset, same commit
ATTENTION_BATCH1 = {
    (1, 12, 1, 129, 64): (1.742875e-06, 2.6247268799999997e-06),
    (1, 25, 1, 200, 64): (4.0830625e-06, 7.4289679999999995e-06),
    (1, 12, 4, 132, 64): (6.2080000000000005e-06, 1.096234848e-05),
}


@pytest.mark.parametrize("model", sorted(PIM_GPT_BATCH1))
def test_pim_gpt_batch1_decode_is_bit_identical_to_the_sequential_mapping(model):
    s, j, r = decode_metrics("pim", model, 128, 8)
    dec = r.steps[1:]
    hits = sum(x.stats.get("row_hits", 0) for x in dec)
    misses = sum(x.stats.get("row_misses", 0) for x in dec)
    assert (s, j, hits / (hits + misses), r.steps[0].latency_s) == PIM_GPT_BATCH1[model]


@pytest.mark.parametrize("shape", sorted(ATTENTION_BATCH1))
def test_batch1_attention_cost_is_bit_identical(shape):
    B, H, Sq, Skv, D = shape
    c = build_device(load_hardware("pim")).cost(f.attention("a", B, H, H, Sq, Skv, D, dtype=BF, causal=True))
    assert (c.seconds, sum(c.energy_j.values())) == ATTENTION_BATCH1[shape]
