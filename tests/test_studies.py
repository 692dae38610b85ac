"""Studies (llmsim study NAME) on reduced grids, and the PIM step-graph pipeline they rely on."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmsim.cli import main
from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.devices.base import build_device
from llmsim.engine import simulate_one_step
from llmsim.engine.simulate import simulate_step
from llmsim.graph.lower import lower_decode
from llmsim.graph.ops import OpKind

BF16 = {"weight_dtype": "bf16", "act_dtype": "bf16", "kv_dtype": "bf16"}


def _pim_step(model: str, context: int = 64):
    sc = make_scenario({"prompt": context, "gen": 2, **BF16})
    return simulate_one_step(load_hardware("pim"), load_model(model), sc, "decode", 1, context=context)[0]


def test_pim_asic_and_banks_overlap_in_a_gpt3_xl_step():
    r = _pim_step("gpt3-xl")
    b = r.busy_by_unit_s
    assert b["asic"] + b["banks"] > r.latency_s * 1.02


def test_pim_ffn_pipeline_keeps_weights_flops_and_never_slows_the_step(monkeypatch):
    sc = make_scenario({"prompt": 32, "gen": 2, **BF16})
    g = lower_decode(load_model("gpt2"), sc, context=32)
    dev = build_device(load_hardware("pim"))
    p = dev.step_graph(g)
    assert len(p) > len(g) and dev.step_graph(p) is p  # tiles are not split again
    mm = lambda G: [G.nodes[v]["op"] for v in G if G.nodes[v]["op"].kind == OpKind.matmul]  # noqa: E731
    assert sum(o.read.weight for o in mm(p)) == pytest.approx(sum(o.read.weight for o in mm(g)), rel=1e-12)
    assert sum(o.flops for o in mm(p)) == pytest.approx(sum(o.flops for o in mm(g)), rel=1e-12)
    # every tile of FFN-down waits for its own GELU tile only; the residual waits for the last sum
    ups = [v for v in p if ".ffn.down#" in v and p.nodes[v]["op"].layer == 0]
    assert all(len(list(p.predecessors(v))) == 1 and ".ffn.act#" in next(iter(p.predecessors(v))) for v in ups)
    piped = simulate_step(g, dev)  # the engine runs the device's step graph
    assert piped.latency_s == simulate_step(p, dev).latency_s
    from llmsim.devices.pim import Pim

    monkeypatch.setattr(Pim, "step_graph", lambda self, graph, keep=frozenset(): graph)
    assert piped.latency_s < simulate_step(g, build_device(load_hardware("pim"))).latency_s


def test_non_pim_devices_run_the_lowered_graph_unchanged():
    sc = make_scenario({"prompt": 32, "gen": 2})
    g = lower_decode(load_model("gpt2"), sc, context=32)
    assert build_device(load_hardware("h100")).step_graph(g) is g


def test_study_pim_gpt_quick_writes_results_and_lists_six_trends(tmp_path):
    out = tmp_path / "pim"
    r = CliRunner().invoke(main, ["study", "pim-gpt", "--quick", "--out", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads((out / "results.json").read_text())
    trends = {v["trend"].split(" (")[0].split(" ")[0] for v in d["verdicts"]}
    assert {"non-VMM", "ASIC", "channels", "row-buffer", "speed-up", "energy"} <= trends
    assert (out / "report.html").stat().st_size > 10_000 and "| trend |" in (out / "results.md").read_text()


def test_unknown_study_is_refused_by_name():
    r = CliRunner().invoke(main, ["study", "nope"])
    assert r.exit_code != 0 and "nope" in r.output


def test_decode_kernels_never_beat_the_roofline_and_split_kernels_gain_most_on_an_empty_gpu():
    from llmsim.config.base import DType
    from llmsim.graph import factory as f
    from llmsim.studies.leanattention import _devices

    devs = _devices("h100")
    for B, H, C in ((1, 8, 1024), (1, 32, 524288), (8, 64, 65536), (3, 12, 5000)):
        op = f.attention("a", B, H, H, 1, C, 128, causal=True, dtype=DType.fp16)
        for d in devs.values():
            assert d.cost(op).seconds >= d.bound(op).seconds * (1 - 1e-9)


def test_study_leanattention_quick_split_gain_at_batch_1_shrinks_as_batch_times_heads_fill_the_sms(tmp_path):
    r = CliRunner().invoke(main, ["study", "leanattention", "--quick", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "results.json").read_text())
    s = d["summary"][0]
    assert s["hw"] == "h100" and s["long_b1_lean"] >= 2.0 and s["long_b1_fd"] >= 2.0
    gains = list(s["lean_by_bh"].values())
    assert gains == sorted(gains, reverse=True) and gains[-1] < 0.5 * gains[0]


def test_fa2_num_splits_heuristic_does_not_split_a_full_gpu_and_splits_an_empty_one():
    from llmsim.devices.gpu_decode import num_splits

    assert num_splits(128, 132, 512, 128) == 1
    n = num_splits(8, 132, 512, 128)
    assert n > 8 and 8 * n <= 2 * 132


def test_encoder_decoder_twin_matches_parameters_within_one_decoder_layer_and_splits_two_thirds():
    from llmsim.studies.encoder import encoder_decoder_twin

    for name in ("gpt2", "gpt2-medium"):
        dec = load_model(name)
        enc = encoder_decoder_twin(dec)
        assert enc.arch == "encoder-decoder" and enc.n_encoder_layers == round(2 * dec.n_layers / 3)
        assert abs(enc.parameter_count() - dec.parameter_count()) <= enc.decoder_layer_params() / 2


def test_study_encoder_quick_runs_on_the_three_edge_devices_beside_the_papers_ratios(tmp_path):
    r = CliRunner().invoke(main, ["study", "encoder", "--quick", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "results.json").read_text())
    assert {s["hw"] for s in d["summary"]} == {"jetson-orin", "rpi5", "hexagon-npu"}
    md = (tmp_path / "results.md").read_text()
    assert "47%" in md and "4.7x" in md
    # fewer weights per generated token: the encoder-decoder decodes faster on every device
    assert all(s["mean_throughput_ratio"] > 1 for s in d["summary"])
