"""Systems: specs, tensor/pipeline parallel as graph transforms, collectives on link units, memory planning."""

from __future__ import annotations

import json

import networkx as nx
import pytest
from click.testing import CliRunner

from llmsim.cli import main
from llmsim.config.base import DType
from llmsim.config.loader import load_model, make_scenario
from llmsim.engine import simulate_step
from llmsim.errors import LlmsimError
from llmsim.system import bubble_fraction, load_system, simulate_system, simulate_system_step
from llmsim.system.collectives import ALGORITHM, closed_form_s
from llmsim.system.device import SystemDevice
from llmsim.system.parallel import bubble_closed_form, collective
from llmsim.system.spec import SystemSpec, load_group_device_spec

SC = make_scenario({"batch": 1, "prompt": 32, "gen": 4}, [])


def _system(name: str = "dgx-h100", **link) -> SystemSpec:
    """``name`` with every link's fields ``link`` replaced."""
    s = load_system(name)
    return s.model_copy(update={"links": {n: ls.model_copy(update=link) for n, ls in s.links.items()}})


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_bundled_system_presets_validate_and_cite_sources():
    for name in ("dgx-h100", "pcie-4xt4", "cent-like"):
        s = load_system(name)
        assert s.source and all(link.source for link in s.links.values()), name
        for g in s.devices:
            assert load_group_device_spec(s, g).memory.capacity_bytes > 0
    dgx = load_system("dgx-h100")
    assert dgx.devices["gpu"].count == 8 and dgx.links["nvlink"].bandwidth_bytes_per_s == 450e9


def test_a_model_too_big_for_one_gpu_says_how_many_devices_it_needs():
    r = _cli("run", "--hw", "h100", "--model", "llama-2-70b", "--gen", "2", "--fidelity", "analytic")
    assert r.exit_code != 0 and "needs at least 2 devices" in r.output
    r = _cli("run", "--hw", "dgx-h100", "--model", "llama-2-70b", "--gen", "2", "--fidelity", "analytic")
    assert r.exit_code != 0 and "needs at least 2 devices (raise --tp or --pp)" in r.output


def test_a_system_run_writes_its_report_and_a_trace_with_a_track_per_stage_unit(tmp_path):
    html, trace = tmp_path / "run.html", tmp_path / "trace.json"
    r = _cli("run", "--hw", "dgx-h100", "--model", "llama-2-7b", "--tp", "2", "--pp", "2", "--batch", "2", "--prompt",
             "16", "--gen", "4", "--fidelity", "analytic", "--report", str(html), "--trace", str(trace),
             "--trace-steps", "0:2")
    assert r.exit_code == 0, r.output
    assert "wrote " + str(trace) + ": 2 of 4 steps" in r.output and "llama-2-7b" in html.read_text()
    events = json.loads(trace.read_text())["traceEvents"]
    tracks = {e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"}
    assert {"s0.gpu.gpu", "s1.gpu.gpu", "s0.tp", "s0.pp"} <= tracks
    for bad, msg in ((("--trace-steps", "0:2"), "give --trace too"), (("--trace", str(trace), "--trace-steps", "9"),
                     "this run has steps 0..3"), (("--speculative", "draft=gpt2,k=4"), "not available on a system")):
        r = _cli("run", "--hw", "dgx-h100", "--model", "llama-2-7b", "--tp", "2", "--gen", "4", "--fidelity",
                 "analytic", *bad)
        assert r.exit_code != 0 and msg in r.output, r.output


def test_tp8_runs_llama_2_70b_on_dgx_h100_with_per_device_footprint():
    r = _cli("run", "--hw", "dgx-h100", "--tp", "8", "--model", "llama-2-70b", "--prompt", "16", "--gen", "3",
             "--fidelity", "analytic")
    assert r.exit_code == 0, r.output
    assert "per device" in r.output and "link energy" in r.output
    m = load_model("llama-2-70b")
    sc = make_scenario({"batch": 1, "prompt": 16, "gen": 3}, [])
    d = simulate_system(load_system("dgx-h100"), m, sc, tp=8, fidelity="analytic").to_dict()
    plan = d["config"]["system"]["per_device"]
    assert abs(plan["weight_bytes"] * 8 - m.parameter_count() * 2) / (m.parameter_count() * 2) < 0.01
    assert d["energy_breakdown_j"]["link"] > 0


def test_a_one_rank_system_equals_its_device_alone():
    from llmsim.config.loader import load_hardware
    from llmsim.engine import simulate

    m = load_model("llama-68m")
    one = simulate(load_hardware("h100"), m, SC, fidelity="analytic")
    sys1 = simulate_system(load_system("dgx-h100"), m, SC, tp=1, fidelity="analytic")
    assert sys1.tpot_s == pytest.approx(one.tpot_s, rel=1e-12)
    assert sys1.energy_j == pytest.approx(one.energy_j, rel=1e-12)


def test_data_parallel_replicas_multiply_tokens_and_energy_not_step_time():
    m, s = load_model("llama-68m"), load_system("dgx-h100")
    one = simulate_system(s, m, SC, tp=2, fidelity="analytic")
    four = simulate_system(s, m, SC, tp=2, dp=4, fidelity="analytic")
    assert four.tpot_s == pytest.approx(one.tpot_s, rel=1e-12)
    assert four.tokens == 4 * one.tokens and four.energy_j == pytest.approx(4 * one.energy_j, rel=1e-12)


def test_an_eager_collective_pays_the_hosts_dispatch_like_any_kernel():
    m, s = load_model("llama-68m"), load_system("dgx-h100")
    sc = make_scenario({"batch": 1, "prompt": 32, "gen": 4, "mode": "eager"}, [])
    st, _ = simulate_system_step(s, m, sc, "decode", 1, context=32, tp=2, fidelity="analytic")
    coll = [r for r in st.records if r.kind == "collective"]
    assert coll and all(r.segments[0].unit == "s0.gpu.host" and r.segments[0].issue for r in coll)
    graph = simulate_system_step(s, m, SC, "decode", 1, context=32, tp=2, fidelity="analytic")[0]
    assert st.latency_s >= graph.latency_s


def test_tp2_decode_step_is_faster_than_tp1_and_slower_than_half_at_batch_1():
    m, s = load_model("llama-2-7b"), load_system("dgx-h100")
    t = {tp: simulate_system_step(s, m, SC, "decode", 1, context=256, tp=tp, fidelity="analytic")[0].latency_s
         for tp in (1, 2)}
    assert t[1] / 2 < t[2] < t[1]


def test_bulk_path_equals_step_by_step_with_collectives_and_stages():
    m = load_model("llama-68m")
    sc = make_scenario({"batch": 2, "prompt": 8, "gen": 5}, [])
    a = simulate_system(load_system("dgx-h100"), m, sc, tp=2, pp=2, micro=2, fidelity="analytic")
    b = simulate_system(load_system("dgx-h100"), m, sc, tp=2, pp=2, micro=2, fidelity="analytic", exact=True)
    for x, y in zip(a.steps, b.steps, strict=True):
        assert x.latency_s == pytest.approx(y.latency_s, rel=1e-9)
        assert x.energy_j == pytest.approx(y.energy_j, rel=1e-9)


@pytest.mark.parametrize("topology", ["switch", "ring", "mesh", "pcie-tree"])
@pytest.mark.parametrize("fn", ["all_reduce", "all_gather", "all_to_all", "p2p"])
def test_collective_times_match_their_closed_forms_on_an_idle_system(topology, fn):
    base = load_system("dgx-h100")
    s = base.model_copy(update={"topology": {"gpu": base.topology["gpu"].model_copy(update={"kind": topology})}})
    specs = {"gpu": load_group_device_spec(s, "gpu")}
    link = s.links["nvlink"]
    for p in (2, 3, 8):
        for nbytes in (4096, 1 << 20, 1 << 28):
            dev = SystemDevice(s, specs, tp=p, fidelity="analytic")
            g = nx.DiGraph(phase="decode", batch=1, context_len=1)
            op = collective("c", fn, nbytes, 2 if fn == "p2p" else p, "tp", dtype=DType.fp16)
            g.add_node("c", op=op)
            t = simulate_step(g, dev).latency_s
            want = closed_form_s(fn, ALGORITHM[topology], 2 if fn == "p2p" else p, nbytes, link)
            assert t == pytest.approx(want, rel=0.01), (p, nbytes)


@pytest.mark.parametrize("system,model,par", [
    ("dgx-h100", "tinyllama-1.1b", dict(tp=4)),
    ("dgx-h100", "tinyllama-1.1b", dict(tp=2, pp=2, micro=2)),
    ("dgx-h100", "olmoe-1b-7b", dict(ep=4)),
    ("attacc-dgx-h100", "tinyllama-1.1b", dict(tp=2)),
    ("pcie-4xt4", "tinyllama-1.1b", dict(tp=4)),
])
def test_more_link_bandwidth_never_slows_a_step(system, model, par):
    m = load_model(model, [(["n_layers"], 4)])
    sc = make_scenario({"batch": 4, "prompt": 32, "gen": 4}, [])
    for phase in ("prefill", "decode"):
        prev = float("inf")
        for bw in (1e9, 16e9, 64e9, 450e9, 4e12):
            t = simulate_system_step(_system(system, bandwidth_bytes_per_s=bw), m, sc, phase, 4, seq=32, context=64,
                                     fidelity="analytic", **par)[0].latency_s
            assert t <= prev * (1 + 1e-12), (phase, bw)
            prev = t


def test_more_micro_batches_never_increase_the_bubble_and_equal_stages_meet_gpipes_form():
    # a small vocabulary makes the head as light as a layer, so the two stages are (nearly) equal
    m = load_model("tinyllama-1.1b", [(["vocab_size"], 64)])
    sc = make_scenario({"batch": 8, "prompt": 32, "gen": 4}, [])
    s = _system(latency_s=0.0, bandwidth_bytes_per_s=1e15)
    prev = 1.0
    for micro in (1, 2, 4, 8):
        st, _ = simulate_system_step(s, m, sc, "decode", 8, context=64, pp=2, micro=micro, fidelity="analytic")
        b = bubble_fraction(st, 2)
        assert b <= prev + 1e-12
        assert b == pytest.approx(bubble_closed_form(2, micro), abs=0.02)
        prev = b


@pytest.mark.parametrize("args,msg", [
    (["--hw", "h100", "--tp", "2"], "--tp needs a system preset"),
    (["--hw", "dgx-h100", "--tp", "0"], "--tp must be >= 1"),
    (["--hw", "dgx-h100", "--tp", "5"], "n_heads = 12, not divisible by 5"),
    (["--hw", "dgx-h100", "--tp", "4", "--pp", "4"], "needs 16 'gpu' devices"),
    (["--hw", "dgx-h100", "--pp", "20"], "--pp must be in 1..12"),
    (["--hw", "dgx-h100", "--pp", "2", "--micro-batches", "3"], "--micro-batches must be in 1..1"),
    (["--hw", "dgx-h100", "--micro-batches", "0"], "--micro-batches must be >= 1"),
    (["--hw", "h100", "--pp", "2"], "--pp needs a system preset"),
    (["--hw", "dgx-h100", "--ep", "2"], "gpt2 has no experts"),
    (["--hw", "dgx-h100", "--ep", "0"], "--ep must be >= 1"),
    (["--hw", "dgx-h100", "--dp", "0"], "--dp must be >= 1"),
    (["--hw", "dgx-h100", "--tp", "4", "--dp", "4"], "needs 16 'gpu' devices"),
    (["--hw", "h100", "--dp", "2"], "--dp needs a system preset"),
])
def test_bad_parallel_options_are_refused_in_one_line(args, msg):
    r = _cli("run", "--model", "gpt2", "--gen", "2", "--fidelity", "analytic", *args)
    assert r.exit_code != 0 and msg in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("edit,msg", [
    ({"topology": {"gpu": {"kind": "switch", "link": "nope"}}}, "no link 'nope'"),
    ({"topology": {"gpu": {"kind": "torus", "link": "nvlink"}}}, "kind: Input should be 'switch'"),
    ({"placement": {"softmax": "gpu"}}, "placement.softmax: not an op kind"),
    ({"placement": {"attention": "pim"}}, "no device group 'pim'"),
    ({"links": {"nvlink": {"bandwidth_bytes_per_s": -1, "latency_s": 0, "energy_pj_per_bit": 1}}},
     "bandwidth_bytes_per_s"),
])
def test_bad_system_specs_are_refused_naming_the_field(tmp_path, edit, msg):
    import yaml

    from llmsim.config.loader import deep_merge, hardware_dict

    data, _ = hardware_dict("system/dgx-h100")
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(deep_merge(data, edit)))
    with pytest.raises(LlmsimError, match=msg.replace(".", r"\.")):
        load_system(p)


def _moe_step(ep: int, skew: float = 0.0, batch: int = 8):
    m = load_model("olmoe-1b-7b", [(["n_layers"], 2)])
    sc = make_scenario({"batch": batch, "prompt": 32, "gen": 4, "moe_skew": skew}, [])
    return simulate_system_step(load_system("dgx-h100"), m, sc, "decode", batch, context=64, ep=ep,
                                fidelity="analytic")[0]


def test_expert_parallel_adds_two_all_to_alls_per_moe_layer_and_spends_link_energy():
    st = _moe_step(4)
    a2a = [r for r in st.records if r.name.endswith(".all_to_all")]
    assert len(a2a) == 2 * 2 and st.energy_breakdown_j["link"] > 0


def test_skewed_routing_never_speeds_up_an_expert_parallel_step():
    prev = 0.0
    for skew in (0.0, 0.5, 1.0, 2.0):
        t = _moe_step(8, skew, batch=16).latency_s
        assert t >= prev * (1 - 1e-12)
        prev = t


@pytest.mark.parametrize("args,msg", [
    (["--ep", "3"], "64 experts, not divisible by 3"),
    (["--ep", "4", "--batch", "2"], "the batch (2) must split evenly"),
])
def test_bad_expert_parallel_options_name_the_model_fact(args, msg):
    r = _cli("run", "--hw", "dgx-h100", "--model", "olmoe-1b-7b", "--gen", "2", "--fidelity", "analytic", *args)
    assert r.exit_code != 0 and msg in r.output, r.output


def _attacc_vs_gpus(batch: int, context: int) -> tuple[float, object]:
    m = load_model("llama-2-70b", [(["n_layers"], 4)])
    sc = make_scenario({"batch": batch, "prompt": context, "gen": 2}, [])
    t = {}
    for name in ("dgx-h100", "attacc-dgx-h100"):
        t[name], cfg = simulate_system_step(load_system(name), m, sc, "decode", batch, context=context, tp=8,
                                            fidelity="analytic")
    return t["dgx-h100"].latency_s / t["attacc-dgx-h100"].latency_s, (t["attacc-dgx-h100"], cfg)


def test_attention_on_pim_speeds_up_more_as_batch_times_context_grows():
    ratios = [_attacc_vs_gpus(b, c)[0] for b, c in ((1, 512), (32, 2048), (128, 4096))]
    assert ratios[0] < ratios[1] < ratios[2] and ratios[2] > 1


def _attacc_cycle(model, batch: int, context: int, pim_sets=()) -> float:
    sc = make_scenario({"batch": batch, "prompt": context, "gen": 2}, [])
    t = [simulate_system_step(load_system(name, sets), model, sc, "decode", batch, context=context, tp=8)[0].latency_s
         for name, sets in (("dgx-h100", ()), ("attacc-dgx-h100", pim_sets))]
    return t[0] / t[1]


GRID = ((1, 512), (32, 2048), (128, 4096))


def test_cycle_level_attacc_gain_grows_with_batch_times_context_for_mha():
    """Batch-parallel PIM attention (devices/pim_batch.py): with one KV head per query head the PIM's
    bank bandwidth pays off more as the KV cache grows."""
    mha = load_model("llama-2-70b", [(["n_layers"], 4), (["n_kv_heads"], 64)])
    r = [_attacc_cycle(mha, b, c) for b, c in GRID]
    assert r[0] < r[1] < r[2] and r[2] > 2


def test_cycle_level_attacc_with_gqa_reads_kv_per_query_head_unless_the_pim_shares_bursts():
    """llama-2-70b's GQA: AiM-style MACs re-read the K/V rows per query head, so the gain does not grow
    (docs/validation.md); the GQA-aware what-if (hbm3-pim-gqa) reads them once and grows again."""
    m = load_model("llama-2-70b", [(["n_layers"], 4)])
    plain = [_attacc_cycle(m, b, c) for b, c in GRID]
    aware = [_attacc_cycle(m, b, c, [(["devices", "pim", "preset"], "hbm3-pim-gqa")]) for b, c in GRID]
    assert plain[2] < plain[0] * 1.05
    assert aware[0] < aware[1] < aware[2] and aware[2] > 1.1 and aware[2] > plain[2]


def test_placed_attention_keeps_the_kv_cache_in_pim_and_sends_activations_over_the_link():
    _, (st, cfg) = _attacc_vs_gpus(4, 256)
    plan = cfg["system"]["per_device"]
    assert plan["kv_group"] == "pim"
    att = [r for r in st.records if r.kind == "attention"]
    assert att and all(s.unit.startswith("s0.pim.") for r in att for s in r.segments)
    sends = [r for r in st.records if r.kind == "collective" and all(s.unit == "s0.cross" for s in r.segments)]
    assert len(sends) == 3 * 4  # q, k/v in and the attention output back, per layer
    assert st.energy_breakdown_j["link"] > 0


def test_pipeline_sends_overlap_the_next_micro_batchs_compute():
    m = load_model("tinyllama-1.1b", [(["n_layers"], 4)])
    sc = make_scenario({"batch": 4, "prompt": 32, "gen": 4}, [])
    st, _ = simulate_system_step(load_system("dgx-h100"), m, sc, "decode", 4, context=64, pp=2, micro=4,
                                 fidelity="analytic")
    sends = [s for r in st.records for s in r.segments if s.unit == "s0.pp"]
    busy = [s for r in st.records for s in r.segments if s.unit == "s0.gpu.gpu"]
    assert any(a.start < b.end and b.start < a.end for a in sends for b in busy)


def test_npu_plus_pim_places_attention_on_the_pim_device():
    m = load_model("tinyllama-1.1b", [(["n_layers"], 2)])
    sc = make_scenario({"batch": 16, "prompt": 2048, "gen": 2}, [])
    st, cfg = simulate_system_step(load_system("npu-pim"), m, sc, "decode", 16, context=2048, fidelity="analytic")
    assert cfg["system"]["per_device"]["kv_group"] == "pim"
    assert {s.unit.split(".")[1] for r in st.records if r.kind == "attention" for s in r.segments} == {"pim"}
    assert {s.unit.split(".")[1] for r in st.records if r.kind == "matmul" for s in r.segments} == {"npu"}


def test_attacc_gqa_preset_is_attacc_with_gqa_aware_pim_devices():
    m = load_model("llama-2-70b", [(["n_layers"], 2)])
    sc = make_scenario({"batch": 4, "prompt": 256, "gen": 2}, [])
    t = [simulate_system_step(load_system(name, sets), m, sc, "decode", 4, context=256, tp=8)[0].latency_s
         for name, sets in (("attacc-gqa-dgx-h100", ()),
                            ("attacc-dgx-h100", [(["devices", "pim", "preset"], "hbm3-pim-gqa")]))]
    assert t[0] == t[1]
