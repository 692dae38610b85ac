"""Serve sweeps: a sweep spec's ``serve:`` block makes every point an ``llmsim serve`` run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmsim.errors import ConfigError
from llmsim.sweep import SweepSpec, config_hash, read_rows, run_sweep
from llmsim.sweep.space import SERVE_METRICS

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
hw: h100
model: gpt2
fidelity: analytic
serve: {rate: 4, requests: 24, prompt_dist: "fixed:32", output_dist: "fixed:8", slo: "ttft=0.2ms,tpot=1ms"}
axes:
  serve.rate: [20, 2000]
  serve.replicas: [1, 2]
objectives: ["max:goodput_rps", energy_per_token_j]
"""


def _spec(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve_sweep")
    out = tmp / "out"
    return run_sweep(SweepSpec.load(_spec(tmp, SPEC)), out, workers=1), out


def test_serve_sweep_runs_to_4_rows_with_serving_metrics(swept):
    res, out = swept
    rows = read_rows(out / "results.jsonl")
    assert res.total == 4 and len(rows) == 4 and res.errors == 0
    assert {(r["axes"]["serve.rate"], r["axes"]["serve.replicas"]) for r in rows} == \
        {(20, 1), (20, 2), (2000, 1), (2000, 2)}
    for r in rows:
        assert all(k in r for k in SERVE_METRICS)
        assert r["requests"] == 24 and r["throughput_rps"] > 0 and r["energy_per_token_j"] > 0
        assert r["ttft_p99_s"] >= r["ttft_p50_s"] > 0 and r["tpot_p99_s"] >= r["tpot_p50_s"] > 0
        cfg = json.loads((out / r["config_file"]).read_text())
        assert cfg["serve"]["rate"] == r["axes"]["serve.rate"] and cfg["serve"]["replicas"] == r["axes"][
            "serve.replicas"]
    # a higher offered rate serves more requests per second; the front is over the spec's objectives
    by = {(r["axes"]["serve.rate"], r["axes"]["serve.replicas"]): r for r in rows}
    assert by[(2000, 1)]["throughput_rps"] > by[(20, 1)]["throughput_rps"]
    assert res.objectives == ["max:goodput_rps", "energy_per_token_j"] and res.front
    # a rerun of the same spec runs nothing
    again = run_sweep(SweepSpec.load(out / "sweep_spec.yaml"), out, workers=1)
    assert again.ran == 0 and again.skipped == 4


def test_llmsim_report_draws_a_serve_sweep_over_its_objectives(swept, tmp_path):
    from click.testing import CliRunner

    from llmsim.cli import main

    _, out = swept
    page = tmp_path / "sweep.html"
    r = CliRunner().invoke(main, ["report", str(out), "-o", str(page)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    html = page.read_text()
    assert "Serve sweep: gpt2 on h100" in html and "best goodput" in html and "goodput (requests/s)" in html


def test_laws_hold_on_every_row(swept):
    _, out = swept
    rows = read_rows(out / "results.jsonl")
    assert any(r["goodput_rps"] < r["throughput_rps"] for r in rows)  # the SLO bites somewhere
    for r in rows:
        assert r["goodput_rps"] <= r["throughput_rps"] * (1 + 1e-12)
        assert 0 <= r["slo_attained"] <= 1 and 0 < r["busy_fraction"] <= 1 + 1e-9
        assert r["energy_per_token_with_idle_j"] >= r["energy_per_token_j"]
        # each request's E2E >= its TTFT, so every percentile is ordered the same way
        assert r["e2e_p99_s"] >= r["ttft_p99_s"] and r["e2e_p50_s"] >= r["ttft_p50_s"]


@pytest.mark.parametrize("text, named", [
    (SPEC.replace("requests: 24", "reqests: 24"), "serve: reqests"),
    (SPEC.replace("serve.rate:", "serve.rat:"), "serve.rat"),
    (SPEC.replace("serve.replicas:", "serve.replicas.n:"), "serve.replicas.n"),
    (SPEC.replace('slo: "ttft=0.2ms,tpot=1ms"', 'slo: "ttfb=2ms"'), "slo"),
    (SPEC.replace('"fixed:32"', '"fixd:32"'), "prompt_dist"),
    (SPEC.replace("rate: 4, ", ""), "give one of rate or trace"),
    (SPEC.replace("energy_per_token_j]", "total_s]"), "total_s"),
    (SPEC.replace("serve: {", "#").replace('"ttft=0.2ms,tpot=1ms"}', ""), "serve.rate"),
    (SPEC.replace("serve.replicas: [1, 2]", "serve.replicas: [0, 1]"), "replicas"),
])
def test_bad_serve_input_fails_in_one_line_naming_it(tmp_path, text, named):
    with pytest.raises(ConfigError) as e:
        SweepSpec.load(_spec(tmp_path, text)).points()
    msg = str(e.value)
    assert named in msg and "\n" not in msg


def test_example_spec_parses_to_its_points():
    spec = SweepSpec.load(ROOT / "examples" / "sweep_serve_rate.yaml")
    points, _ = spec.points()
    assert len(points) == 5 * 2 * 2 and all(p.serve is not None for p in points)


def test_ray_runs_serve_points_like_the_local_pool(tmp_path, swept):
    # .ci/run installs ray: in CI a missing ray is a failure, not a skip
    ray = __import__("ray") if os.environ.get("CI") else pytest.importorskip("ray")
    local, _ = swept
    try:
        res = run_sweep(SweepSpec.load(_spec(tmp_path, SPEC)), tmp_path / "ray", backend="ray", workers=2)
    finally:
        ray.shutdown()
    strip = ("elapsed_s", "config_file")
    assert [{k: v for k, v in r.items() if k not in strip} for r in res.rows] == \
        [{k: v for k, v in r.items() if k not in strip} for r in local.rows]


def test_constraints_read_serve_fields_and_serve_metrics(tmp_path):
    spec = SweepSpec.load(_spec(tmp_path, SPEC + 'constraints: ["serve.rate * serve.replicas <= 2000", '
                                                 '"goodput_rps <= throughput_rps"]\n'))
    assert spec.config_constraints() == ["serve.rate * serve.replicas <= 2000"]
    assert spec.result_constraints() == ["goodput_rps <= throughput_rps"]
    points, counts = spec.points()
    assert len(points) == 3 and counts["filtered"] == 1


# ---- serving on a system preset: the layout in the serve: block -----------------------------------------

SYSTEM_SPEC = """\
hw: dgx-h100
model: llama-2-7b
fidelity: analytic
serve: {rate: 4, requests: 8, prompt_dist: "fixed:64", output_dist: "fixed:8"}
axes:
  serve.tp: [1, 2, 3]
"""


def test_a_serve_sweep_over_tp_on_a_system_matches_llmsim_serve_and_fails_an_invalid_layout(tmp_path):
    from click.testing import CliRunner

    from llmsim.cli import main

    out = tmp_path / "out"
    res = run_sweep(SweepSpec.load(_spec(tmp_path, SYSTEM_SPEC)), out, workers=1)
    rows = {r["axes"]["serve.tp"]: r for r in read_rows(out / "results.jsonl")}
    assert res.total == 3 and res.errors == 1
    assert rows[3]["status"] == "error" and "--tp 3: llama-2-7b has n_heads = 32, not divisible by 3" in rows[3][
        "error"]
    for tp in (1, 2):
        assert rows[tp]["status"] == "ok"
        cfg = json.loads((out / rows[tp]["config_file"]).read_text())
        assert cfg["hw"]["kind"] == "system" and cfg["serve"]["tp"] == tp
        js = tmp_path / f"tp{tp}.json"
        r = CliRunner().invoke(main, ["serve", "--hw", "dgx-h100", "--model", "llama-2-7b", "--fidelity", "analytic",
                                      "--rate", "4", "--requests", "8", "--prompt-dist", "fixed:64", "--output-dist",
                                      "fixed:8", "--tp", str(tp), "--json", str(js)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        m = json.loads(js.read_text())["runs"][0]["metrics"]
        assert rows[tp]["tpot_p50_s"] == m["tpot_s"]["p50"] and rows[tp]["ttft_p50_s"] == m["ttft_s"]["p50"]
        assert rows[tp]["energy_j"] == m["energy_j"]
    assert rows[2]["tpot_p50_s"] < rows[1]["tpot_p50_s"]  # two ranks share each step's weights


@pytest.mark.parametrize("hw,serve,error", [
    ("dgx-h100", "tp: 0", "--tp must be >= 1, got 0"),
    ("dgx-h100", "micro_batches: 0", "--micro-batches must be >= 1, got 0"),
    ("dgx-h100", "tp: 8, dp: 2", "--tp 8 x --pp 1 x --ep 1 x --dp 2 needs 16 'gpu' devices; dgx-h100 has 8"),
    ("h100", "tp: 2", "--tp needs a system preset (kind: system, e.g. --hw dgx-h100); 'h100' is one device"),
])
def test_a_layout_the_flags_refuse_is_a_failed_point_with_their_message(tmp_path, hw, serve, error):
    text = (f"hw: {hw}\nmodel: llama-2-7b\nfidelity: analytic\n"
            f"serve: {{rate: 4, requests: 2, prompt_dist: 'fixed:16', output_dist: 'fixed:2', {serve}}}\n")
    res = run_sweep(SweepSpec.load(_spec(tmp_path, text)), tmp_path / "out", workers=1)
    (row,) = read_rows(tmp_path / "out" / "results.jsonl")
    assert res.errors == 1 and row["status"] == "error" and error in row["error"]


def test_a_system_point_is_keyed_by_its_devices_resolved_presets(tmp_path):
    # the system names a device preset by path: editing that file must give its points new keys
    dev = tmp_path / "gpu.yaml"
    system = tmp_path / "sys.yaml"
    base = (ROOT / "hw_configs" / "system" / "dgx-h100.yaml").read_text()
    system.write_text(base.replace("gpu: {preset: h100, count: 8}", f"gpu: {{preset: {dev}, count: 8}}"))
    text = (f"hw: {system}\nmodel: llama-2-7b\nfidelity: analytic\n"
            "serve: {rate: 4, requests: 2, prompt_dist: 'fixed:16', output_dist: 'fixed:2', tp: 2}\n")
    keys = []
    for eff in (0.98, 0.9):
        dev.write_text(f"extends: h100\nname: my-gpu\nmemory_efficiency: {eff}\n")
        (point,), _ = SweepSpec.load(_spec(tmp_path, text)).points()
        cfg = point.config()
        assert cfg["devices"]["gpu"]["memory_efficiency"] == eff and config_hash(cfg) == point.key
        keys.append(point.key)
    assert keys[0] != keys[1]


def test_a_system_preset_needs_a_serve_or_a_layout_block(tmp_path):
    spec = SweepSpec.load(_spec(tmp_path, "hw: dgx-h100\nmodel: llama-2-7b\nscenario: {batch: 1, prompt: 8, gen: 2}\n"))
    with pytest.raises(ConfigError, match="'dgx-h100' is a system preset: a sweep runs on it at a layout"):
        spec.points()


def test_unset_layout_fields_leave_a_device_points_config_and_hash_as_before():
    """A serve point on one device stores no layout fields, so stores written before they existed resume."""
    spec = SweepSpec.from_dict({"hw": "h100", "model": "gpt2", "serve": {"rate": 1}, "axes": {"serve.rate": [1, 2]}})
    pts, _ = spec.points()
    assert not {"tp", "pp", "ep", "dp", "micro_batches"} & set(pts[0].serve)
    assert [p.key for p in pts] == ["bf6c2ed7b7d0d4ff", "ad653b7dcf8cf84a"]  # the keys before (commit 47c43dd)
    tp = SweepSpec.from_dict({"hw": "dgx-h100", "model": "llama-2-7b", "serve": {"rate": 1},
                              "axes": {"serve.tp": [1, 2]}}).points()[0]
    assert [p.serve["tp"] for p in tp] == [1, 2]


# ---- a recorded trace as a serve point's stream ---------------------------------------------------------

TRACE = "arrival_s,prompt_tokens,output_tokens\n0.0,32,8\n0.1,64,4\n0.15,16,8\n0.4,32,2\n"


def test_a_serve_sweep_replays_a_trace_as_llmsim_serve_does_and_keys_it_by_content(tmp_path):
    from click.testing import CliRunner

    from llmsim.cli import main

    (tmp_path / "t.csv").write_text(TRACE)
    text = "hw: h100\nmodel: gpt2\nfidelity: analytic\nserve: {trace: t.csv}\naxes: {serve.replicas: [1, 2]}\n"
    out = tmp_path / "out"
    res = run_sweep(SweepSpec.load(_spec(tmp_path, text)), out, workers=1)
    assert res.errors == 0
    row = next(r for r in read_rows(out / "results.jsonl") if r["axes"]["serve.replicas"] == 1)
    js = tmp_path / "serve.json"
    r = CliRunner().invoke(main, ["serve", "--hw", "h100", "--model", "gpt2", "--fidelity", "analytic", "--trace",
                                  str(tmp_path / "t.csv"), "--json", str(js)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads(js.read_text())["runs"][0]["metrics"]
    assert (row["ttft_p50_s"], row["energy_j"], row["requests"]) == (m["ttft_s"]["p50"], m["energy_j"], 4)
    # the spec saved beside the results finds the trace (an absolute path), and reruns nothing
    assert run_sweep(SweepSpec.load(out / "sweep_spec.yaml"), out, workers=1).ran == 0
    # the key holds the file's content: an edited trace gives new keys; one edited after planning fails its point
    (before,), _ = SweepSpec.load(_spec(tmp_path, text.replace("[1, 2]", "[1]"))).points()
    (tmp_path / "t.csv").write_text(TRACE + "0.5,16,2\n")
    (after,), _ = SweepSpec.load(_spec(tmp_path, text.replace("[1, 2]", "[1]"))).points()
    assert before.key != after.key and before.serve["trace_sha256"] != after.serve["trace_sha256"]
    from llmsim.sweep.runner import run_point

    stale = run_point({"config": before.config(), "key": before.key})
    assert stale["status"] == "error" and "changed or gone since the sweep was planned" in stale["error"]


@pytest.mark.parametrize("serve,error", [
    ("{rate: 2, trace: t.csv}", "give one of rate or trace"),
    ("{requests: 2}", "give one of rate or trace"),
    ("{trace: t.csv, prompt_dist: 'fixed:8'}", "trace gives the lengths"),
    ("{trace: missing.csv}", "serve.trace: missing.csv: no such file"),
])
def test_a_bad_serve_stream_is_refused_before_anything_runs(tmp_path, serve, error):
    (tmp_path / "t.csv").write_text(TRACE)
    with pytest.raises(ConfigError) as e:
        SweepSpec.load(_spec(tmp_path, f"hw: h100\nmodel: gpt2\nserve: {serve}\n")).points()
    assert error in str(e.value)
