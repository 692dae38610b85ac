"""Run sweeps on a system preset: a sweep spec's ``layout:`` block makes every point an ``llmsim run`` at that
layout (``--tp``, ``--pp``, ``--ep``, ``--dp``, ``--micro-batches``)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmsim.cli import main
from llmsim.errors import ConfigError
from llmsim.sweep import SweepSpec, config_hash, read_rows, run_sweep

BASE = {"hw": "dgx-h100", "model": "llama-2-7b", "fidelity": "analytic", "scenario": {"batch": 4, "prompt": 64,
                                                                                        "gen": 8}}


def test_a_run_sweep_over_tp_matches_llmsim_run_and_fails_the_layouts_the_flags_refuse(tmp_path):
    spec = SweepSpec.from_dict(BASE | {"layout": {"tp": 1}, "axes": {"layout.tp": [1, 2, 3], "layout.pp": [1, 2]},
                                       "constraints": ["layout.tp * layout.pp <= 8"]})
    out = tmp_path / "out"
    res = run_sweep(spec, out, workers=1)
    rows = {(r["axes"]["layout.tp"], r["axes"]["layout.pp"]): r for r in read_rows(out / "results.jsonl")}
    assert res.total == 6 and res.errors == 2
    for pp in (1, 2):
        assert "--tp 3: llama-2-7b has n_heads = 32, not divisible by 3" in rows[3, pp]["error"]
    for (tp, pp), row in rows.items():
        if tp == 3:
            continue
        assert row["status"] == "ok"
        cfg = json.loads((out / row["config_file"]).read_text())
        assert cfg["layout"] == {"tp": tp, "pp": pp, "ep": 1, "dp": 1, "micro_batches": 1}
        assert config_hash(cfg) == row["key"]
        js = tmp_path / f"tp{tp}pp{pp}.json"
        r = CliRunner().invoke(main, ["run", "--hw", "dgx-h100", "--model", "llama-2-7b", "--fidelity", "analytic",
                                      "--batch", "4", "--prompt", "64", "--gen", "8", "--tp", str(tp), "--pp", str(pp),
                                      "--json", str(js)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        d = json.loads(js.read_text())
        assert (row["total_s"], row["tpot_s"], row["energy_j"]) == (d["total_s"], d["tpot_s"], d["energy_j"])
    assert rows[2, 1]["tpot_s"] < rows[1, 1]["tpot_s"]  # two ranks share each step's weights


def test_a_layout_beyond_the_systems_devices_is_a_failed_point_with_the_flags_message(tmp_path):
    spec = SweepSpec.from_dict(BASE | {"layout": {"tp": 8, "dp": 2}})
    res = run_sweep(spec, tmp_path / "out", workers=1)
    (row,) = read_rows(tmp_path / "out" / "results.jsonl")
    assert res.errors == 1 and "--tp 8 x --pp 1 x --ep 1 x --dp 2 needs 16 'gpu' devices; dgx-h100 has 8" in row[
        "error"]


@pytest.mark.parametrize("extra,error", [
    ({"layout": {"tp": 2}, "serve": {"rate": 1}}, "layout: is for run sweeps"),
    ({"axes": {"layout.tp": [1, 2]}}, "axis 'layout.tp': needs a layout: block"),
    ({"layout": {"tp": 1}, "axes": {"layout.tpp": [1, 2]}}, "axis 'layout.tpp': needs a layout: block and one of"),
    ({"layout": {"tensor": 2}}, "layout: unknown key(s) ['tensor']"),
    ({"layout": {"tp": 1.5}}, "layout.tp: expected an integer, got 1.5"),
    ({"layout": []}, "layout: expected a mapping"),
])
def test_a_bad_layout_block_is_refused_before_anything_runs(extra, error):
    with pytest.raises(ConfigError) as e:
        SweepSpec.from_dict(BASE | extra).points()
    assert error in str(e.value)


def test_a_layout_needs_a_system_and_a_device_sweeps_keys_are_unchanged():
    with pytest.raises(ConfigError, match="layout: needs a system preset .* 'h100' is one device"):
        SweepSpec.from_dict(BASE | {"hw": "h100", "model": "gpt2", "layout": {"tp": 2}}).points()
    (p,), _ = SweepSpec.from_dict(BASE | {"hw": "h100", "model": "gpt2"}).points()
    assert "layout" not in p.config()
    keys = [p.key for p in SweepSpec.from_dict(BASE | {"layout": {"tp": 1}, "axes": {"layout.tp": [1, 2]}}).points()[0]]
    assert len(set(keys)) == 2


@pytest.mark.parametrize("name", ["sweep_gpu_hbm_sm", "sweep_npu_array_sram", "sweep_pim_gpt2xl", "sweep_run_layout",
                                  "sweep_serve_rate", "sweep_serve_tp"])
def test_every_bundled_example_sweep_plans(name):
    from pathlib import Path

    points, counts = SweepSpec.load(Path(__file__).resolve().parents[1] / "examples" / f"{name}.yaml").points()
    assert points and counts["sampled"] >= len(points)
