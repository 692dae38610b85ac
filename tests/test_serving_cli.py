"""The serve command: runs on every device kind, is reproducible to the byte, and refuses every bad
option with one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from llmsim.cli import main
from llmsim.report.browser import INSTALL, check_report, find_chromium

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "workloads" / "traces" / "sharegpt-synthetic.jsonl"
BASE = ["serve", "--hw", "h100", "--model", "opt-125m", "--fidelity", "analytic"]


def _run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_serve_writes_byte_identical_json_for_the_same_seed(tmp_path):
    outs = []
    for i in range(2):
        p = tmp_path / f"r{i}.json"
        r = _run(*BASE, "--rate", "20,40", "--requests", "60", "--prompt-dist", "lognormal:100,0.7",
                 "--output-dist", "uniform:4,40", "--slo", "ttft=50ms,tpot=5ms", "--seed", "5", "--json", str(p),
                 "--report", str(tmp_path / "r.html"))
        assert r.exit_code == 0, r.output
        outs.append(p.read_bytes())
    assert outs[0] == outs[1] and b'"goodput_requests_per_s"' in outs[0]
    assert "rate 20/s" in r.output and "rate 40/s" in r.output
    html = (tmp_path / "r.html").read_text()
    assert html.count('class="plotly-graph-div') == 7 and "Rate curve" in html and "SLO" in html
    # `llmsim report` reads the saved JSON back into the same report
    r = _run("report", str(p), "-o", str(tmp_path / "again.html"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "again.html").read_text().count('class="plotly-graph-div') == 7


@pytest.mark.parametrize("trace", [TRACE, TRACE.with_suffix(".csv")])
def test_serve_replays_a_trace_with_replicas_and_chunked_prefill(trace):
    r = _run(*BASE, "--trace", str(trace), "--requests", "40", "--scheduler", "sarathi", "--replicas", "2")
    assert r.exit_code == 0, r.output
    assert "40 requests" in r.output


@pytest.mark.parametrize("hw,model", [("pim", "gpt2"), ("npu-ws-128", "gpt2"), ("xeon-gold-6154", "llama-68m")])
def test_serve_runs_on_pim_npu_and_cpu(hw, model):
    r = _run("serve", "--hw", hw, "--model", model, "--rate", "2", "--requests", "20", "--prompt-dist",
             "fixed:64", "--output-dist", "fixed:8")
    assert r.exit_code == 0, r.output
    assert "20 requests" in r.output


@pytest.mark.parametrize("args,flag", [
    ([], "--rate"),
    (["--rate", "1", "--trace", str(TRACE)], "--rate"),
    (["--rate", "0"], "--rate"),
    (["--rate", "1,x"], "--rate"),
    (["--rate", "1", "--requests", "0"], "--requests"),
    (["--trace", "nope.jsonl"], "--trace"),
    (["--trace", str(TRACE), "--prompt-dist", "fixed:3"], "--trace"),
    (["--rate", "1", "--prompt-dist", "gauss:3"], "--prompt-dist"),
    (["--rate", "1", "--prompt-dist", "uniform:9,3"], "--prompt-dist"),
    (["--rate", "1", "--output-dist", "fixed:0"], "--output-dist"),
    (["--rate", "1", "--output-dist", "lognormal:a,b"], "--output-dist"),
    (["--rate", "1", "--scheduler", "fifo"], "--scheduler"),
    (["--rate", "1", "--replicas", "0"], "--replicas"),
    (["--rate", "1", "--seed", "-1"], "--seed"),
    (["--rate", "1", "--dtype", "fp9"], "dtype"),
    (["--rate", "1", "--set", "hw.foo=1"], "hw.foo"),
    (["--rate", "1", "--slo", "ttft=fast"], "--slo"),
    (["--rate", "1", "--slo", "latency=1"], "--slo"),
    (["--rate", "1", "--set", "serve.block_size=0"], "block_size"),
    (["--rate", "1", "--set", "serve.colour=red"], "colour"),
    (["--rate", "1", "--set", "serve.gpu_memory_utilization=1.5"], "gpu_memory_utilization"),
    (["--rate", "1", "--report", "no/such/dir/x.html"], "--report"),
    (["--rate", "1", "--json", "no/such/dir/x.json"], "--json"),
])
def test_bad_serve_options_are_refused_in_one_line_naming_the_option(args, flag):
    r = CliRunner().invoke(main, BASE + args)
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert flag in err and len(err.splitlines()) == 1, err


def test_bad_trace_rows_are_refused_naming_the_row(tmp_path):
    cases = {"a.csv": "arrival_s,prompt_tokens\n0,5\n", "b.jsonl": '{"arrival_s": 1, "prompt_tokens": 5, '
             '"output_tokens": 0}\n', "c.jsonl": "{oops\n", "d.csv": "arrival_s,prompt_tokens,output_tokens\n2,5,5\n"
             "1,5,5\n", "e.txt": "x", "f.csv": "arrival_s,prompt_tokens,output_tokens\n0,3000,2000\n"}
    for name, text in cases.items():
        p = tmp_path / name
        p.write_text(text)
        r = CliRunner().invoke(main, BASE + ["--trace", str(p)])
        assert r.exit_code == 2 and "--trace" in r.stderr and len(r.stderr.strip().splitlines()) == 1, (name, r.output)


def test_models_that_cannot_be_served_are_refused():
    r = CliRunner().invoke(main, ["serve", "--hw", "h100", "--model", "flan-t5-small", "--rate", "1"])
    assert r.exit_code == 2 and "decoder-only" in r.stderr
    r = CliRunner().invoke(main, ["serve", "--hw", "rpi5", "--model", "llama-2-70b", "--rate", "1"])
    assert r.exit_code == 2 and "fit" in r.stderr


@pytest.mark.skipif(find_chromium() is None, reason=f"headless browser test needs Chromium: {INSTALL}")
def test_the_serve_report_renders_in_headless_chromium(tmp_path):
    out = tmp_path / "serve.html"
    r = _run(*BASE, "--rate", "20,40", "--requests", "40", "--slo", "ttft=50ms", "--report", str(out))
    assert r.exit_code == 0, r.output
    check = check_report(out)
    assert check.ok, check
