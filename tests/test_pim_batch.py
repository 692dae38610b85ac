"""Batch-parallel PIM attention (AttAcc's mapping, ``llmsim/devices/pim_batch.py``) and the batch-1
results it must leave untouched (PIM-GPT's mapping)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from llmsim.config.base import DType
from llmsim.config.loader import HW_ADAPTER, load_hardware
from llmsim.devices.base import build_device
from llmsim.devices.pim_batch import BatchAttention, GroupKind, attention_plan, candidates, flow, group_kinds
from llmsim.errors import CapacityError, LlmsimError
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


def test_a_sliding_window_caps_the_keys_each_prefill_query_reads():
    dev = build_device(load_hardware("pim"))
    full = dev.cost(f.attention("a", 1, 12, 12, 512, 512, 64, dtype=BF, causal=True))
    wide = dev.cost(f.attention("a", 1, 12, 12, 512, 512, 64, dtype=BF, causal=True, window=512))
    narrow = dev.cost(f.attention("a", 1, 12, 12, 512, 512, 64, dtype=BF, causal=True, window=64))
    assert wide.seconds == full.seconds  # a window no shorter than the sequence changes nothing
    # at most 64 keys a query against 256.5 on average (a query's fixed costs keep it above a quarter)
    assert narrow.seconds < 0.7 * full.seconds


@pytest.mark.parametrize("preset", ["pim", "hbm3-pim"])
def test_a_variable_length_batch_is_costed_sequence_by_sequence(preset):
    dev = _dev(preset)
    lens = (20, 100, 300, 600, 900)
    mixed = dev.cost(f.attention_varlen("a", [(1, k) for k in lens], 12, 12, 64, dtype=BF))
    longest = dev.cost(f.attention("a", 5, 12, 12, 1, 900, 64, dtype=BF, causal=True))
    shortest = dev.cost(f.attention("a", 5, 12, 12, 1, 20, 64, dtype=BF, causal=True))
    # was: every sequence at the longest context; with a group per sequence (hbm3-pim's 160 channels) the
    # longest sequence's group still sets the time, but every other group reads only its own keys
    assert shortest.seconds < mixed.seconds <= longest.seconds
    e = lambda c: sum(c.energy_j.values())  # noqa: E731
    assert e(shortest) < e(mixed) < e(longest)
    # equal lengths through the per-sequence path cost what the uniform op costs
    same = dev.cost(f.attention_varlen("a", [(1, 300)] * 5, 12, 12, 64, dtype=BF))
    uniform = dev.cost(f.attention("a", 5, 12, 12, 1, 300, 64, dtype=BF, causal=True))
    assert same.seconds == pytest.approx(uniform.seconds, rel=1e-12) and e(same) == pytest.approx(e(uniform), rel=1e-12)


# ---- batch-parallel attention laws -------------------------------------------------------------------

def _dev(preset: str = "pim", *sets: str):
    from llmsim.config.loader import split_overrides

    return build_device(load_hardware(preset, split_overrides([f"hw.{s}" for s in sets])["hw"]))


def _sequential_seconds(dev, op) -> float:
    """PIM-GPT's mapping for the whole batch: one group of every channel, sequences one after another."""
    ba = BatchAttention(dev, op)
    units, share = ba.asic_split(1)
    return ba.group(GroupKind(1, ba.g.channels, ba.B), units, share)[0]


CASES = [(2, 12, 12, 1, 129, 64), (8, 12, 12, 1, 512, 64), (16, 8, 1, 1, 1024, 128), (5, 25, 25, 1, 300, 64),
         (3, 4, 4, 3, 40, 64), (64, 8, 8, 1, 256, 128)]


@pytest.mark.parametrize("preset", ["pim", "hbm3-pim"])
@pytest.mark.parametrize("case", CASES)
def test_batch_parallel_never_slower_than_the_sequential_mapping(preset, case):
    B, H, Hkv, Sq, Skv, D = case
    dev = _dev(preset)
    op = f.attention("a", B, H, Hkv, Sq, Skv, D, dtype=BF, causal=True)
    c = dev.cost(op)
    assert c.seconds <= _sequential_seconds(dev, op) * (1 + 1e-12)
    assert c.seconds >= dev.bound(op).seconds * (1 - 1e-9)


@pytest.mark.parametrize("case", [(8, 12, 12, 1, 512, 64), (32, 8, 1, 1, 1024, 128), (6, 25, 25, 1, 300, 64)])
def test_more_channels_never_slow_batch_parallel_attention(case):
    B, H, Hkv, Sq, Skv, D = case
    op = f.attention("a", B, H, Hkv, Sq, Skv, D, dtype=BF, causal=True)
    times = [_dev("pim", f"memory.channels={c}").cost(op).seconds for c in (2, 3, 4, 8, 12, 16, 32, 64)]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(times, times[1:], strict=False)), times
    assert times[-1] < times[0]


@pytest.mark.parametrize("preset", ["pim", "hbm3-pim"])
def test_batch_attention_energy_scales_with_the_sequences_it_reads(preset):
    """Energy is the sum over sequences of one sequence's energy on its group's channels: between B x the
    cheapest and B x the dearest channel count, growing with B, and B-proportional at a fixed split."""
    dev = _dev(preset)
    ba = BatchAttention(dev, f.attention("a", 1, 8, 8, 1, 1024, 128, dtype=BF, causal=True))
    per_seq = [ba.query(c, 1, 1024)[4].energy_total_j for c in range(1, dev.mem.channels + 1)]
    last, per_split = 0.0, {}
    for B in (1, 2, 8, 32, 128):
        op = f.attention("a", B, 8, 8, 1, 1024, 128, dtype=BF, causal=True)
        e = dev.cost(op).energy_total_j
        assert min(per_seq) * B * (1 - 1e-9) <= e <= max(per_seq) * B * (1 + 1e-9)
        assert e > last
        last = e
        split = tuple(k.channels for k in attention_plan(dev, op).kinds)
        per_split.setdefault(split, []).append(e / B)
    assert any(len(v) > 1 for v in per_split.values())
    for v in per_split.values():
        assert v == pytest.approx([v[0]] * len(v), rel=1e-9)


def test_every_group_is_costed_and_summed():
    dev = _dev("hbm3-pim")
    op = f.attention("a", 12, 8, 1, 1, 700, 128, dtype=BF, causal=True)
    ba, p = BatchAttention(dev, op), attention_plan(dev, op)
    assert sum(k.groups * k.seqs for k in p.kinds) == 12 and sum(k.groups * k.channels for k in p.kinds) == 160
    macs = sum(k.groups * k.seqs * ba.query(k.channels, p.units, 700)[4].stats["dram_MAC_AB"] for k in p.kinds)
    assert dev.cost(op).stats["dram_MAC_AB"] == macs
    assert p.groups > 1


@pytest.mark.parametrize("B,C", [(1, 8), (7, 8), (8, 7), (128, 160), (160, 128), (33, 160), (5, 3)])
def test_groups_split_channels_and_sequences_within_one(B, C):
    for G in candidates(B, C):
        kinds = group_kinds(B, C, G)
        assert sum(k.groups for k in kinds) == G
        assert sum(k.groups * k.channels for k in kinds) == C
        assert sum(k.groups * k.seqs for k in kinds) == B
        assert max(k.channels for k in kinds) - min(k.channels for k in kinds) <= 1
        assert max(k.seqs for k in kinds) - min(k.seqs for k in kinds) <= 1
    assert candidates(B, C) == [g for g in candidates(B, C + 5) if g <= min(B, C)]


def test_a_shared_softmax_unit_serialises_the_groups():
    op = f.attention("a", 64, 8, 8, 1, 2048, 128, dtype=BF, causal=True)
    many, one = _dev("hbm3-pim"), _dev("hbm3-pim", "asic.count=1")
    t_one = one.cost(op).seconds
    assert t_one > many.cost(op).seconds
    sm = one._asic_cost("softmax", 8, 2048, BF, 2.0 * 8 * 2048 * 2).seconds
    assert t_one >= 64 * sm  # every sequence's softmax on the one unit


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.0, 5.0), st.floats(0.0, 5.0), st.floats(0.0, 2.0)),
                min_size=1, max_size=12), st.integers(2, 5))
def test_shared_unit_flow_lies_between_one_group_and_k_times_the_asic(qs, k):
    bank = [(a, b) for a, b, _, _ in qs]
    asic = [(c, d) for _, _, c, d in qs]
    alone = flow(bank, asic)
    shared = flow(bank, asic, k)
    assert shared >= alone * (1 - 1e-12)
    assert shared <= flow(bank, [(c * k, d * k) for c, d in asic]) * (1 + 1e-12)
    assert flow(bank, [(0.0, 0.0)] * len(bank), k) == flow(bank, [(0.0, 0.0)] * len(bank))


# ---- GQA-aware bank MACs (bank_mac_vectors_per_burst) ---------------------------------------------------

GQA = [(1, 8, 1, 1, 512, 128), (32, 8, 1, 1, 2048, 128), (128, 8, 1, 1, 4096, 128), (16, 32, 4, 1, 700, 64),
       (4, 8, 2, 3, 300, 128)]


@pytest.mark.parametrize("case", GQA)
def test_gqa_aware_macs_never_slow_attention_nor_beat_the_roofline(case):
    B, H, Hkv, Sq, Skv, D = case
    op = f.attention("a", B, H, Hkv, Sq, Skv, D, dtype=BF, causal=True)
    plain, aware = _dev("hbm3-pim"), _dev("hbm3-pim-gqa")
    a, p = aware.cost(op), plain.cost(op)
    assert a.seconds <= p.seconds * (1 + 1e-12)
    assert a.seconds >= aware.bound(op).seconds * (1 - 1e-9)
    if attention_plan(aware, op).vectors > 1:  # K/V read once per group of query heads
        assert a.stats["dram_MAC_AB"] < p.stats["dram_MAC_AB"] and a.energy_total_j < p.energy_total_j
        assert a.energy_j["bank_mac"] == pytest.approx(p.energy_j["bank_mac"], rel=0.05)  # same MACs done


def test_gqa_aware_macs_change_nothing_without_grouped_heads():
    op = f.attention("a", 32, 8, 8, 1, 2048, 128, dtype=BF, causal=True)
    assert _dev("hbm3-pim-gqa").cost(op).seconds == _dev("hbm3-pim").cost(op).seconds


def test_gqa_aware_reads_the_kv_cache_once_per_kv_head():
    """llama-2-70b per TP-8 rank (8 query heads, 1 KV head): 8 vectors per burst read 1/8 of the rows."""
    op = f.attention("a", 64, 8, 1, 1, 4096, 128, dtype=BF, causal=True)
    aware = _dev("hbm3-pim-gqa")
    p = attention_plan(aware, op)
    assert p.vectors == 8
    ba = BatchAttention(aware, op)
    per = {v: ba.query(2, 1, 4096, v)[4].stats["dram_MAC_AB"] for v in (1, 8)}
    assert per[1] == 8 * per[8]


def test_too_small_a_global_buffer_for_the_vectors_is_refused():
    dev = _dev("hbm3-pim-gqa", "global_buffer_bytes=1024")
    with pytest.raises(LlmsimError, match="bank_mac_vectors_per_burst"):
        BatchAttention(dev, f.attention("a", 8, 8, 1, 1, 512, 128, dtype=BF, causal=True)).query(2, 1, 512, 8)


def test_bank_mac_rate_follows_vectors_per_burst():
    assert _dev("hbm3-pim-gqa").mac_peak_flops_per_s == 8 * _dev("hbm3-pim").mac_peak_flops_per_s
    d = load_hardware("hbm3-pim-gqa").model_dump(mode="json")
    d["bank_mac"]["flops_per_cycle"] = {"bf16": 32, "fp16": 32}  # one vector's lanes only
    with pytest.raises(ValidationError, match="bank_mac_vectors_per_burst"):
        HW_ADAPTER.validate_python(d)


def test_hbm3_pim_mac_timings_are_hbm3s_not_the_gddr6_parents():
    """hbm3-pim extends pim (GDDR6-AiM); its MAC_AB timings must be HBM3's tRCD and tCCD_L, as its source says."""
    m = load_hardware("hbm3-pim").memory
    v = m.timing.values()
    assert (v["tRCD_MAC"], v["tCCD_MAC"]) == (v["tRCD"], v["tCCD_L"]) == (23, 4)


# ---- KV capacity of the channel groups -----------------------------------------------------------------

def _held(dev, op, fill: float):
    """Declare a memory whose KV room is the op's whole KV cache (one layer) / ``fill``."""
    per_token = 2 * op.dim("Hkv") * op.dim("D") * BF.bytes
    keys = sum(skv for _, skv in op.attr("varlen")) if op.attr("varlen") else op.dim("B") * op.dim("Skv")
    dev.hold_kv(dev.spec.memory.capacity_bytes - keys * per_token / fill, per_token)
    return dev


def test_a_split_whose_fullest_group_overflows_is_not_a_candidate():
    """12 sequences on 160 channels: unconstrained, 12 groups of 13-14 channels (the 13-channel groups
    fill 1.026x faster than the device); at 99% full those overflow, a split that fits is chosen."""
    op = f.attention("a", 12, 8, 1, 1, 700, 128, dtype=BF, causal=True)
    free = attention_plan(_dev("hbm3-pim"), op)
    assert free.groups == 12 and free.kv_fill_imbalance > 1 / 0.99 and free.refused == 0
    assert free.kv_peak_fill is None  # the bare device knows nothing of its memory
    dev = _held(_dev("hbm3-pim"), op, 0.99)
    p = attention_plan(dev, op)
    ba = BatchAttention(dev, op)
    fitting = [G for G in candidates(12, 160) if ba.kv_fill(G) <= 1]
    assert p.groups != 12 and p.groups in fitting and p.refused == len(candidates(12, 160)) - len(fitting) > 0
    assert p.kv_peak_fill <= 1 and p.kv_peak_fill == pytest.approx(0.99 * p.kv_fill_imbalance)
    assert p.seconds == min(ba._split(1, G).seconds for G in fitting)
    assert p.seconds >= free.seconds
    c = dev.cost(op)
    assert c.seconds == p.seconds and c.stats["pim_kv_refused_splits"] == p.refused
    assert "pim_kv_refused_splits" not in _dev("hbm3-pim").cost(op).stats


def test_a_full_device_falls_back_to_one_group_when_no_other_split_is_balanced():
    """7 sequences on 160 channels: no split but G = 1 gives every group its channel share; a device
    filled exactly to its room maps them as PIM-GPT does, one after another on every channel."""
    op = f.attention("a", 7, 8, 1, 1, 700, 128, dtype=BF, causal=True)
    assert attention_plan(_dev("hbm3-pim"), op).groups > 1
    dev = _held(_dev("hbm3-pim"), op, 1.0)
    p = attention_plan(dev, op)
    assert p.groups == 1 and p.kv_peak_fill == pytest.approx(1.0) and p.refused == len(candidates(7, 160)) - 1
    assert dev.cost(op).seconds == _sequential_seconds(dev, op)


def test_a_kv_cache_larger_than_the_room_is_refused_naming_the_device_and_sizes():
    op = f.attention("a", 7, 8, 1, 1, 700, 128, dtype=BF, causal=True)
    dev = _held(_dev("hbm3-pim"), op, 1.001)
    with pytest.raises(CapacityError, match=r"KV cache does not fit hbm3-pim: attention a needs .* GB for 7 "
                                            r"sequences \(4900 keys x 512 B/token\) > its room .* GB"):
        dev.cost(op)


def test_ragged_sequences_fit_one_group_by_their_exact_total():
    """Sequences of different lengths: a group is charged its longest sequences (an upper bound), one
    group of all channels exactly the sum, so a memory filled to the sum still maps them."""
    op = f.attention_varlen("a", [(1, 100), (1, 900), (1, 3000), (1, 40)], 8, 1, 128, dtype=BF)
    dev = _held(_dev("hbm3-pim"), op, 1.0)
    assert attention_plan(dev, op).groups == 1
    with pytest.raises(CapacityError):
        _held(_dev("hbm3-pim"), op, 1.0001).cost(op)


def test_micro_batches_sharing_the_device_shrink_an_ops_room():
    """An op of 6 of the 12 sequences a device holds gets half the room: at 60% full with its own 6
    alone it fits anywhere balanced, with 12 held it overflows."""
    op = f.attention("a", 6, 8, 1, 1, 700, 128, dtype=BF, causal=True)
    per_token = 2 * 128 * BF.bytes
    dev = _dev("hbm3-pim")
    room = 6 * 700 * per_token / 0.6
    dev.hold_kv(dev.spec.memory.capacity_bytes - room, per_token)
    assert attention_plan(dev, op).kv_peak_fill <= 1
    dev.hold_kv(dev.spec.memory.capacity_bytes - room, per_token, sequences=12)
    with pytest.raises(CapacityError, match="x its 6 of the 12 sequences held"):
        dev.cost(op)


def test_simulations_declare_what_the_pim_memory_holds():
    """PIM-GPT holds the weights beside the KV cache; an AttAcc-like system's PIM only the KV cache of the
    layers its stage holds (llama-2-70b: 8 KV heads over the TP ranks)."""
    from llmsim.config.loader import load_model, make_scenario
    from llmsim.config.quant import stored_weight_bytes
    from llmsim.engine import make_device
    from llmsim.system import load_system
    from llmsim.system.run import SystemRun
    from llmsim.system.serve import SystemServe

    m, sc = load_model("gpt2"), make_scenario({"batch": 2, "prompt": 16, "gen": 2}, [])
    res = make_device(load_hardware("pim"), m, sc).kv_residency
    assert res.other_bytes == stored_weight_bytes(m, sc) > 0
    assert res.bytes_per_token == m.kv_bytes_per_token(sc.kv_dtype.bytes) and res.sequences is None
    m70 = load_model("llama-2-70b")
    sc = make_scenario({"batch": 8, "prompt": 64, "gen": 2}, [])
    attacc = load_system("attacc-dgx-h100")
    for r, seqs in ((SystemRun(attacc, m70, sc, tp=8), None), (SystemRun(attacc, m70, sc, tp=4, pp=2, micro=4), 8),
                    (SystemServe(attacc, m70, sc, tp=8), None)):
        pim = r.device.devs["pim"].kv_residency
        per_stage = 80 // r.pp
        assert pim.other_bytes == 0 and pim.sequences == seqs
        assert pim.bytes_per_token == 2 * per_stage * 8 // r.tp * 128 * sc.kv_dtype.bytes  # 8 KV heads of 128 / tp
        assert r.device.devs["gpu"].kv_residency is None


def test_a_nearly_full_attacc_pim_device_maps_attention_to_a_split_that_fits():
    """End to end: llama-2-70b at TP 8 on attacc-dgx-h100, 12 sequences of 4,000 keys (1.97 GB of KV cache
    per PIM device), the PIM devices shrunk to 758 rows per bank (1.99 GB, 99% full): the 12-group split the
    full-size device takes overflows its 13-channel groups, so the step records refused splits and is no
    faster; at 700 rows the memory plan refuses the run before any mapping, naming the device group."""
    from llmsim.config.loader import load_model, make_scenario
    from llmsim.errors import CapacityError
    from llmsim.system import load_system, simulate_system_step

    m = load_model("llama-2-70b")
    sc = make_scenario({"batch": 12, "prompt": 4096, "gen": 2}, [])
    full = load_system("attacc-dgx-h100")

    def rows(n: int):
        pim = full.devices["pim"].model_copy(update={"set": {"memory.rows": n}})
        return full.model_copy(update={"devices": full.devices | {"pim": pim}})

    def step(system):
        st, cfg = simulate_system_step(system, m, sc, "decode", 12, context=4000, fidelity="cycle", tp=8)
        return st, next(r for r in st.records if r.kind == "attention"), cfg["system"]["per_device"]

    st0, att0, _ = step(full)
    st1, att1, plan = step(rows(758))
    assert plan["kv_bytes"] / plan["capacity_bytes"]["pim"] == pytest.approx(12 * 4000 * 40960 / 1987051520)
    assert "pim_kv_refused_splits" not in att0.stats and att1.stats["pim_kv_refused_splits"] > 0
    assert att1.busy_s >= att0.busy_s and st1.latency_s >= st0.latency_s
    with pytest.raises(CapacityError, match="does not fit attacc-dgx-h100 at --tp 8 --pp 1: a 'pim' device needs"):
        step(rows(700))
