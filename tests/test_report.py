"""HTML reports: detection, content, and rendering in a real headless browser (skipped without Chromium)."""

from __future__ import annotations

import json

import pytest

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.engine import simulate
from llmsim.errors import LlmsimError
from llmsim.report import detect, load_input, render, write_report
from llmsim.report.browser import INSTALL, check_report, find_chromium, screenshot
from llmsim.report.validation import normalise
from llmsim.sweep import SweepSpec, run_sweep

VALIDATION = {"hw": "h100", "model": "gpt2",
              "cases": [{"name": "prefill b1 s128", "phase": "prefill", "measured_s": 1.2e-3, "predicted_s": 1.1e-3},
                        {"name": "decode b1 c128", "phase": "decode", "measured": 4.0e-4, "simulated_s": 4.6e-4}],
              "op_classes": [{"kind": "matmul", "measured_s": 8e-4, "predicted_s": 7.5e-4},
                             {"op_class": "attention", "measured_s": 2e-4, "predicted_s": 2.6e-4}]}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    sc = make_scenario({"batch": 1, "prompt": 16, "gen": 3})
    run = simulate(load_hardware("pim"), load_model("gpt2"), sc, fidelity="analytic").to_dict()
    spec = SweepSpec.from_dict({"hw": "pim", "model": "gpt2", "scenario": {"prompt": 8, "gen": 2},
                                "fidelity": "analytic",
                                "axes": {"hw.memory.channels": [1, 4, 16], "scenario.batch": [1, 4]}})
    run_sweep(spec, tmp / "sweep", workers=1)
    return {"run": run, "sweep": load_input(tmp / "sweep"), "validation": VALIDATION, "tmp": tmp}


def test_inputs_are_told_apart_and_strangers_refused(inputs):
    assert [detect(inputs[k]) for k in ("run", "sweep", "validation")] == ["run", "sweep", "validation"]
    with pytest.raises(LlmsimError, match="not recognised"):
        detect({"latency": 1})
    with pytest.raises(LlmsimError, match="none of measured_s"):
        normalise({"cases": [{"name": "x", "predicted_s": 1.0}]})


def test_validation_errors_are_relative_to_measured():
    cases, classes = normalise(VALIDATION)
    assert [round(c["error"], 4) for c in cases] == [round(-0.1 / 1.2, 4), 0.15]
    assert {c["name"]: round(c["error"], 4) for c in classes} == {"matmul": -0.0625, "attention": 0.3}


def test_reports_are_one_offline_file_with_every_chart(inputs, tmp_path):
    for kind, n_charts in (("run", 6), ("sweep", 2), ("validation", 2)):
        text = render(inputs[kind])
        assert "<script src=" not in text and len(text) > 3_000_000  # plotly.js inline: no external script
        assert text.count('class="plotly-graph-div"') == n_charts, kind
    sweep_html = render(inputs["sweep"])
    assert "Pareto front" in sweep_html and "hw.memory.channels = 16" in sweep_html  # hover shows the config
    out = write_report(inputs["run"], tmp_path / "run.html")
    assert out.stat().st_size > 1_000_000


def test_cli_report_and_run_report(inputs, tmp_path):
    from click.testing import CliRunner

    from llmsim.cli import main

    (tmp_path / "v.json").write_text(json.dumps(VALIDATION))
    r = CliRunner().invoke(main, ["report", str(tmp_path / "v.json"), "-o", str(tmp_path / "v.html")])
    assert r.exit_code == 0 and (tmp_path / "v.html").exists(), r.output
    r = CliRunner().invoke(main, ["report", str(inputs["tmp"] / "sweep"), "-o", str(tmp_path / "s.html")])
    assert r.exit_code == 0 and (tmp_path / "s.html").exists(), r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path), "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "not a sweep folder" in r.output


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason=f"headless browser test needs Chromium: {INSTALL}")
def test_reports_render_in_headless_chromium_without_console_errors(inputs, tmp_path):
    for kind in ("run", "sweep", "validation"):
        path = write_report(inputs[kind], tmp_path / f"{kind}.html")
        check = check_report(path)
        assert check.ok, (kind, check)
    assert screenshot(tmp_path / "sweep.html", tmp_path / "sweep.png", size=(1200, 900)).stat().st_size > 10_000
    # the check can fail: a page whose script throws, and a chart div left empty
    bad = tmp_path / "bad.html"
    bad.write_text(render(inputs["validation"]).replace("</body>", "<div id='chart-9'></div>"
                                                                   "<script>null.x()</script></body>"))
    check = check_report(bad)
    assert not check.ok and check.rendered == check.charts - 1 and check.console_errors


def test_validate_json_is_detected_as_a_validation_report():
    import json
    from pathlib import Path

    from llmsim.report import detect

    data = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "cpu_validation" / "val-gpt2.json"
    d = json.loads(data.read_text())
    assert detect(d) == "validation"
    assert len(d["cases"]) == 4 and {c["phase"] for c in d["cases"]} == {"prefill", "decode"}
    assert any(c["kind"] == "matmul" for c in d["op_classes"])
