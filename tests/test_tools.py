"""Everyday tools: the Chrome trace, diff, Parquet, the Python API, the memory footprint, explain,
list, --help defaults, progress lines and the first-run compile notice."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmsim.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _invoke(*args: str):
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two small PIM runs (8 and 16 channels) with their JSON and the first one's trace."""
    d = tmp_path_factory.mktemp("runs")
    base = ["run", "--hw", "pim", "--model", "gpt2", "--prompt", "8", "--gen", "3", "--fidelity", "analytic"]
    _invoke(*base, "--json", str(d / "a.json"), "--trace", str(d / "t.json"))
    _invoke(*base, "--set", "hw.memory.channels=16", "--json", str(d / "b.json"))
    return d


def test_trace_events_add_up_to_the_step_times(runs):
    trace = json.loads((runs / "t.json").read_text())
    run = json.loads((runs / "a.json").read_text())
    ev = trace["traceEvents"]
    for e in ev:  # the trace-event format: phase, pid, tid, and for complete events ts/dur in us
        assert {"ph", "pid", "name"} <= set(e) and e["ph"] in ("X", "M")
        if e["ph"] == "X":
            assert e["dur"] >= 0 and e["ts"] >= 0 and isinstance(e["tid"], int)
    steps = [e for e in ev if e["ph"] == "X" and e.get("cat") == "step"]
    assert [e["dur"] * 1e-6 for e in steps] == pytest.approx([s["latency_s"] for s in run["steps"]], rel=1e-9)
    units = {e["tid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    busy_by_step = {d["index"]: d["busy_by_unit_s"] for d in run["step_details"]}
    for i, s in enumerate(steps):
        ops = [e for e in ev if e["ph"] == "X" and e.get("cat") != "step" and e["args"]["step"] == s["name"]]
        assert min(e["ts"] for e in ops) == pytest.approx(s["ts"], abs=1e-6)
        assert max(e["ts"] + e["dur"] for e in ops) == pytest.approx(s["ts"] + s["dur"], rel=1e-9)
        if i in busy_by_step:  # per unit, the events' durations sum to the unit's busy time
            per_unit: dict[str, float] = {}
            for e in ops:
                per_unit[units[e["tid"]]] = per_unit.get(units[e["tid"]], 0.0) + e["dur"] * 1e-6
            assert per_unit == pytest.approx(busy_by_step[i], rel=1e-9)


def test_trace_steps_keeps_the_chosen_steps_at_their_place_on_the_timeline(tmp_path):
    base = ["run", "--hw", "pim", "--model", "gpt2", "--prompt", "8", "--gen", "5", "--fidelity", "analytic"]
    out = _invoke(*base, "--json", str(tmp_path / "r.json"), "--trace", str(tmp_path / "t.json"),
                  "--trace-steps", "2:4").output
    assert "2 of 5 steps" in out
    run = json.loads((tmp_path / "r.json").read_text())
    steps = [e for e in json.loads((tmp_path / "t.json").read_text())["traceEvents"] if e.get("cat") == "step"]
    assert [e["name"] for e in steps] == ["decode 2", "decode 3"]
    starts = [sum(s["latency_s"] for s in run["steps"][:i]) for i in (2, 3)]
    assert [e["ts"] * 1e-6 for e in steps] == pytest.approx(starts, rel=1e-9)
    for bad, msg in (("7", "steps 0..4"), ("a:b", "expected all"), ("", "expected all")):
        r = CliRunner().invoke(main, [*base, "--trace", str(tmp_path / "u.json"), "--trace-steps", bad])
        assert r.exit_code != 0 and msg in r.output and not (tmp_path / "u.json").exists()


def test_diff_of_a_run_with_itself_changes_nothing_and_more_channels_show(runs):
    same = _invoke("diff", str(runs / "a.json"), str(runs / "a.json")).output
    assert "ttft_s" in same and "bytes_by_level" in same and "%" not in same.split("change", 1)[1]
    out = runs / "d.json"
    text = _invoke("diff", str(runs / "a.json"), str(runs / "b.json"), "--json", str(out)).output
    d = json.loads(out.read_text())
    a, b = json.loads((runs / "a.json").read_text()), json.loads((runs / "b.json").read_text())
    assert d["headline"]["tpot_s"] == {"a": a["tpot_s"], "b": b["tpot_s"]}
    assert b["tpot_s"] < a["tpot_s"] and "top_ops" in d and d["top_ops"]
    assert "top_ops:" in text


def test_sweep_writes_a_parquet_table_pandas_reads(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    spec = tmp_path / "s.yaml"
    spec.write_text("hw: pim.yaml\nmodel: gpt2\nscenario: {prompt: 8, gen: 2}\nfidelity: analytic\n"
                    "axes: {hw.memory.channels: [4, 8], scenario.batch: [1, 2]}\n")
    out = tmp_path / "rows.parquet"
    _invoke("sweep", str(spec), "--out", str(tmp_path / "sw"), "--workers", "1", "--parquet", str(out))
    df = pd.read_parquet(out)
    rows = [json.loads(x) for x in (tmp_path / "sw" / "results.jsonl").read_text().splitlines()]
    assert len(df) == len(rows) == 4
    assert sorted(df["axes.hw.memory.channels"]) == [4, 4, 8, 8]
    assert list(df["total_s"]) == [r["total_s"] for r in rows]
    assert (df["memory_footprint.max_batch"] > 0).all()
    assert "energy_breakdown_j.dram_internal" in df.columns and "bytes_by_level.dram_internal" in df.columns


def test_python_api_frames_add_up_to_the_result():
    pytest.importorskip("pandas")
    from llmsim import load_hardware, load_model, simulate

    res = simulate(load_hardware("pim", set={"memory.channels": 16}), load_model("gpt2"), prompt=8, gen=3,
                   fidelity="analytic")
    assert res.config["hw"]["memory"]["channels"] == 16
    steps = res.to_frame()
    assert len(steps) == 3 and steps["latency_s"].sum() == pytest.approx(res.total_s)
    assert steps["energy_j"].sum() == pytest.approx(res.energy_j)
    ops = res.to_frame("op")
    assert ops["flops"].sum() == pytest.approx(sum(s.flops for s in res.steps))


def test_memory_footprint_adds_up_and_max_batch_is_the_edge():
    from llmsim.config.loader import load_hardware, load_model, make_scenario
    from llmsim.engine.footprint import memory_footprint
    from llmsim.graph.lower import lower_prefill

    hw, model = load_hardware("pim"), load_model("gpt2-xl")
    sc = make_scenario({"batch": 2, "prompt": 64, "gen": 8})
    m = memory_footprint(hw, model, sc, lower_prefill(model, sc))
    assert m["weights_bytes"] + m["kv_cache_bytes"] + m["activations_bytes"] + m["free_bytes"] == pytest.approx(
        m["capacity_bytes"])
    for b, fits in ((m["max_batch"], True), (m["max_batch"] + 1, False)):
        s = make_scenario({"batch": b, "prompt": 64, "gen": 8})
        assert (memory_footprint(hw, model, s, lower_prefill(model, s))["free_bytes"] >= 0) is fits


def test_every_energy_component_of_a_run_is_explained(runs):
    from llmsim.config.loader import load_hardware
    from llmsim.report.text import ENERGY_COMPONENTS

    for hw in ("pim", "h100", "npu-ws-128", "xeon-gold-6154"):
        d = json.loads(CliRunner().invoke(main, ["run", "--hw", hw, "--model", "gpt2", "--prompt", "8", "--gen",
                                                 "2", "--fidelity", "analytic", "--json", str(runs / "e.json")]
                                          ).exit_code == 0 and (runs / "e.json").read_text())
        spec = load_hardware(hw)
        named = set(ENERGY_COMPONENTS) | set(spec.compute_units()) | {lvl.name for lvl in spec.onchip} | set(
            d["bytes_by_level"])
        assert set(d["energy_breakdown_j"]) <= named, hw
    text = _invoke("explain", "energy").output
    assert all(k in text for k in ENERGY_COMPONENTS)


def test_list_keeps_parts_out_of_the_hardware_list():
    out = _invoke("list").output
    hw_section = out.split("hardware (", 1)[1].split("parts presets extend", 1)[0]
    assert "pim" in hw_section and "memory/" not in hw_section and "framework/" not in hw_section
    assert "memory/hbm3" in out and "framework/pytorch-eager" in out


def test_help_shows_the_defaults():
    text = _invoke("run", "--help").output
    for d in ("[default: 128]", "[default: 32]", "[default: 1]", "[default: cycle]", "[default: graph]"):
        assert d in text
    assert "[default: 100000]" in _invoke("sweep", "--help").output


def test_progress_lines_when_stderr_is_not_a_terminal(capsys):
    from llmsim.cli_support import progress_lines

    tick = progress_lines("sweep: points", every_s=0.0)
    for i in range(1, 4):
        tick(i, 3)
    assert capsys.readouterr().err.splitlines() == ["sweep: points: 1/3", "sweep: points: 2/3", "sweep: points: 3/3"]


def test_compile_notice_only_without_a_kernel_cache(monkeypatch, tmp_path):
    import llmsim.kernels as k

    _invoke("op", "--hw", "npu-ws-128", "--kind", "matmul", "--shape", "8,8,8")  # fills the cache
    assert k.jit_cache_ready()
    res = CliRunner().invoke(main, ["op", "--hw", "npu-ws-128", "--kind", "matmul", "--shape", "8,8,8"])
    assert "compiling kernels" not in res.stderr
    monkeypatch.setattr(k, "JIT_MODULES", ("kernels/not_compiled_yet.py",))
    res = CliRunner().invoke(main, ["op", "--hw", "npu-ws-128", "--kind", "matmul", "--shape", "8,8,8"])
    assert res.exit_code == 0 and "compiling kernels (first run only" in res.stderr


def test_json_is_strict_and_writes_are_atomic(tmp_path):
    from llmsim.errors import LlmsimError
    from llmsim.io import dumps_json, write_json

    with pytest.raises(LlmsimError, match=r"steps\[1\].energy_j"):
        dumps_json({"steps": [{"energy_j": 1.0}, {"energy_j": math.nan}]})
    target = tmp_path / "r.json"
    with pytest.raises(LlmsimError):
        write_json(target, {"x": math.inf})
    assert list(tmp_path.iterdir()) == []


def test_shared_yaml_anchors_load_but_an_alias_bomb_is_refused(tmp_path):
    from llmsim.config.loader import MAX_CONFIG_VALUES, read_yaml
    from llmsim.errors import ConfigError

    ok = tmp_path / "ok.yaml"
    ok.write_text("t: &t {a: 1, b: 2}\nx: *t\ny: *t\n")
    assert read_yaml(ok)["y"] == {"a": 1, "b": 2}
    n = 1
    lines = ["l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    while 10 ** n <= 10 * MAX_CONFIG_VALUES:
        lines.append(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]")
        n += 1
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="aliases"):
        read_yaml(bomb)


def test_the_api_example_runs():
    import subprocess
    import sys

    pytest.importorskip("pandas")
    p = subprocess.run([sys.executable, str(ROOT / "examples" / "api_quickstart.py")], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "TTFT" in p.stdout and "channels 16" in p.stdout


def test_the_sdist_ships_the_examples_and_a_hugging_face_config():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "examples" in cfg["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert json.loads((ROOT / "examples" / "hf-tinyllama" / "config.json").read_text())["model_type"] == "llama"
