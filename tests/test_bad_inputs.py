"""The bad-input corpus: every input a new or hostile user may give ends in a one-line error
that names the culprit, a non-zero exit, no traceback, no file left behind, in bounded time and
memory.

Static inputs live in ``tests/bad_inputs/``; bombs (a 50 MB file, an alias bomb, 100,000-deep
nesting, binary files) are generated per test in a temporary folder. Commands run in-process
through Click's runner, in a fresh temporary working folder whose listing must not change.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmsim.cli import main

HERE = Path(__file__).resolve().parent / "bad_inputs"
MAX_SECONDS = 30.0
MAX_RSS_BYTES = 3 * 2**30  # the test process's high-water mark: a bomb that ran would pass it

OP = ["op", "--kind", "matmul", "--shape", "1,64,64", "--hw"]
RUN = ["run", "--hw", "pim", "--model", "gpt2", "--gen", "2"]
STEP = ["step", "--hw", "pim", "--model", "gpt2"]


def _bomb_alias(tmp: Path) -> Path:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    p = tmp / "alias_bomb.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def _big(tmp: Path) -> Path:
    p = tmp / "big.yaml"
    with open(p, "wb") as fh:
        fh.truncate(50 * 2**20)  # sparse: 50 MB by size, no disk used
    return p


def _deep(tmp: Path, suffix: str = ".yaml") -> Path:
    p = tmp / f"deep{suffix}"
    p.write_text("[" * 100_000 + "]" * 100_000)
    return p


def _binary(tmp: Path, suffix: str = ".yaml") -> Path:
    p = tmp / f"binary{suffix}"
    p.write_bytes(bytes(range(256)) * 64)
    return p


def _latin1(tmp: Path) -> Path:
    p = tmp / "latin1.yaml"
    p.write_bytes("name: caf\xe9\nkind: pim\n".encode("latin-1"))
    return p


def _corrupt_sweep(tmp: Path) -> Path:
    d = tmp / "sweepdir"
    d.mkdir()
    (d / "results.jsonl").write_text('{"key": "a", "axes": {}}\nnot json\n{"key": "b", "axes": {}}\n')
    return d


def _existing_file(tmp: Path) -> Path:
    p = tmp / "taken"
    p.write_text("x")
    return p


def _f(name: str) -> str:
    return str(HERE / name)


# id -> (argv; ``{gen:...}`` names a generated input, ``{tmp}`` the gen folder), text the error must contain
CASES: dict[str, tuple[list[str], str]] = {
    **{f"hw-{n}": ([*OP, _f(f"hw_{n}.yaml")], needle) for n, needle in {
        "clock_inf": "clock_hz", "clock_nan": "clock_hz", "clock_1e300": "clock_hz", "clock_negative": "clock_hz",
        "clock_zero": "clock_hz", "clock_200ghz": "clock_hz", "channels_1e18": "channels", "channels_zero": "channels",
        "channels_negative": "channels", "channels_text": "channels", "energy_flop_negative": "energy_pj_per_flop",
        "energy_flop_nan": "energy_pj_per_flop", "static_power_negative": "static_power_w",
        "static_power_inf": "static_power_w", "act_energy_negative": "act_pj", "tck_tiny": "tck_ns",
        "tck_zero": "tck_ns", "unknown_key": "memry", "host_link_negative": "bandwidth_bytes_per_s",
        "onchip_zero": "capacity_bytes", "memory_efficiency_2": "memory_efficiency",
        "dispatch_negative": "eager_dispatch_s", "eager_op_nan": "eager_op_s", "bank_mac_inconsistent": "bank_mac",
        "mac_lanes_zero": "mac_lanes_per_bank", "banks_huge": "banks", "npu_units_1e12": "count",
        "no_kind": "kind", "bad_kind": "kind", "top_list": "mapping", "empty": "mapping",
        "bad_syntax": "not valid YAML", "cycle_a": "cycle", "extends_missing": "no_such_parent",
        "deep_100": "nested deeper"}.items()},
    "hw-framework-part": ([*OP, "framework/pytorch-eager"], "kind"),
    "hw-memory-part": ([*OP, "memory/hbm3"], "kind"),
    "hw-missing": ([*OP, "no-such-chip"], "no-such-chip"),
    "hw-folder": ([*OP, "{tmp}"], "folder"),
    "hw-binary": ([*OP, "{gen:binary}"], "binary"),
    "hw-latin1": ([*OP, "{gen:latin1}"], "UTF-8"),
    "hw-50MB": ([*OP, "{gen:big}"], "limit"),
    "hw-alias-bomb": ([*OP, "{gen:alias}"], "aliases"),
    "hw-nested-100000": ([*OP, "{gen:deep}"], "nested"),
    # --set overrides
    "set-typo": ([*RUN, "--set", "hw.memory.chanels=3"], "chanels"),
    "set-no-prefix": ([*RUN, "--set", "memory.channels=3"], "hw., model. or scenario."),
    "set-no-equals": ([*RUN, "--set", "hw.static_power_w"], "KEY.PATH=VALUE"),
    "set-wrong-type": ([*RUN, "--set", "hw.static_power_w=hot"], "static_power_w"),
    "set-clock-inf": ([*RUN, "--set", "hw.asic.clock_hz=.inf"], "clock_hz"),
    "set-clock-huge": ([*RUN, "--set", "hw.asic.clock_hz=1e300"], "clock_hz"),
    "set-layers-zero": ([*RUN, "--set", "model.n_layers=0"], "n_layers"),
    "set-width-negative": ([*RUN, "--set", "model.d_model=-1"], "d_model"),
    "set-batch-zero": ([*RUN, "--set", "scenario.batch=0"], "batch"),
    "set-layers-1e5": ([*RUN, "--set", "model.n_layers=100000", "--set", "model.d_model=64", "--set",
                        "model.n_heads=1", "--set", "model.d_ff=64", "--set", "model.vocab_size=100"], "n_layers"),
    "set-alias-bomb": ([*RUN, "--set", "hw.description=" + "[" + ", ".join(["&a0 [x, x, x, x, x, x, x, x, x, x]"]
                        + [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]) + "]"],
                       "aliases"),
    "set-deep": ([*RUN, "--set", "hw.static_power_w=" + "[" * 5000 + "]" * 5000], "static_power_w"),
    "set-dtype": ([*RUN, "--set", "scenario.kv_dtype=fp7"], "kv_dtype"),
    "set-channels-1e18": (["op", "--hw", "pim", "--kind", "matmul", "--shape", "1,8,8", "--set",
                           "hw.memory.channels=1.0e+18"], "channels"),
    # models and Hugging Face configs
    **{f"model-{n}": (["run", "--hw", "pim", "--model", _f(f"{n}"), "--gen", "2"], needle) for n, needle in {
        "hf_t5_no_num_layers.json": "num_layers", "hf_mixtral_no_experts.json": "num_local_experts",
        "hf_llama_no_heads.json": "num_attention_heads", "hf_gpt2_no_n_embd.json": "n_embd",
        "hf_unknown_type.json": "rwkv", "hf_gpt2_text_width.json": "d_model", "hf_gpt2_huge_width.json": "d_model",
        "hf_gpt2_list_width.json": "hf_gpt2_list_width", "hf_top_list.json": "JSON object",
        "hf_bad_json.json": "not valid", "model_unknown_key.yaml": "n_layerz",
        "model_zero_layers.yaml": "n_layers"}.items()},
    "model-hf-binary": (["run", "--hw", "pim", "--model", "{gen:binary.json}"], "binary"),
    "model-hf-deep": (["run", "--hw", "pim", "--model", "{gen:deep.json}"], "nested"),
    "model-missing": (["run", "--hw", "pim", "--model", "no-such-model"], "no-such-model"),
    # run / step / op flags
    "run-gen-zero": ([*RUN, "--gen", "0"], "--gen"),
    "run-prompt-zero": ([*RUN, "--prompt", "0"], "--prompt"),
    "run-batch-zero": ([*RUN, "--batch", "0"], "--batch"),
    "run-prompt-too-long": ([*RUN, "--prompt", "5000"], "max_positions"),
    "run-gen-past-positions": ([*RUN, "--prompt", "16", "--gen", "1100"], "max_positions"),
    "run-dtype": ([*RUN, "--dtype", "fp7"], "fp7"),
    "run-mode": ([*RUN, "--mode", "turbo"], "--mode"),
    "run-does-not-fit": ([*RUN, "--set", "hw.memory.rows=16"], "does not fit"),
    "run-batch-does-not-fit": ([*RUN, "--batch", "100000"], "does not fit"),
    "step-seq-zero": ([*STEP, "--phase", "prefill", "--seq", "0"], "--seq"),
    "step-context-zero": ([*STEP, "--phase", "decode", "--context", "0"], "--context"),
    "step-batch-zero": ([*STEP, "--phase", "decode", "--context", "8", "--batch", "0"], "--batch"),
    "step-prefill-no-seq": ([*STEP, "--phase", "prefill"], "--seq"),
    "step-decode-no-context": ([*STEP, "--phase", "decode"], "--context"),
    "step-context-too-long": ([*STEP, "--phase", "decode", "--context", "5000"], "max_positions"),
    "op-kind": (["op", "--hw", "pim", "--kind", "conv", "--shape", "1,2"], "conv"),
    "op-7-dims": (["op", "--hw", "h100", "--kind", "matmul", "--shape", "1,2,3,4,5,6,7"], "M,K,N"),
    "op-too-few-dims": (["op", "--hw", "h100", "--kind", "attention", "--shape", "1,2,3"], "B,H,Sq,Skv,D"),
    "op-zero-dim": (["op", "--hw", "h100", "--kind", "matmul", "--shape", "1,0,3"], "positive"),
    "op-negative-dim": (["op", "--hw", "h100", "--kind", "matmul", "--shape", "1,-2,3"], "positive"),
    "op-text-dim": (["op", "--hw", "h100", "--kind", "matmul", "--shape", "a,b,c"], "integers"),
    "op-kv-heads": (["op", "--hw", "h100", "--kind", "attention", "--shape", "1,12,1,64,64,5"], "Hkv=5"),
    "op-pim-1e11": (["op", "--hw", "pim", "--kind", "matmul", "--shape", "1,100000,1000000"], "memory"),
    "op-npu-1e11-dim": (["op", "--hw", "npu-ws-128", "--kind", "matmul", "--shape", "1,1,100000000000"], "2**31"),
    "op-npu-1e11-matmul": (["op", "--hw", "npu-ws-128", "--kind", "matmul", "--shape", "100000,100000,10000"],
                           "memory"),
    "op-dtype": (["op", "--hw", "h100", "--kind", "matmul", "--shape", "1,2,3", "--dtype", "fp7"], "fp7"),
    # output paths, checked before any work
    "out-run-json-folder": ([*RUN, "--json", "{tmp}"], "--json"),
    "out-run-json-no-folder": ([*RUN, "--json", "{tmp}/nope/r.json"], "does not exist"),
    "out-run-json-readonly": ([*RUN, "--json", "/proc/llmsim.json"], "--json"),
    "out-run-report-folder": ([*RUN, "--report", "{tmp}"], "--report"),
    "out-run-trace-no-folder": ([*RUN, "--trace", "{tmp}/nope/t.json"], "--trace"),
    "out-step-json-folder": ([*STEP, "--phase", "decode", "--context", "8", "--json", "{tmp}"], "--json"),
    "out-op-json-readonly": (["op", "--hw", "pim", "--kind", "matmul", "--shape", "1,8,8", "--json",
                              "/proc/op.json"], "--json"),
    "out-schema-folder": (["schema", "-o", "{tmp}"], "-o"),
    "out-report-folder": (["report", _f("report_unknown.json"), "-o", "{tmp}"], "-o"),
    "out-calibrate-folder": (["calibrate", "--quick", "--out", "{tmp}"], "--out"),
    "out-sweep-existing-file": (["sweep", _f("sweep_ok.yaml"), "--out", "{gen:taken}"], "not a folder"),
    "out-sweep-readonly": (["sweep", _f("sweep_ok.yaml"), "--out", "/proc/llmsim-sweep"], "--out"),
    "out-diff-json-folder": (["diff", _f("report_unknown.json"), _f("report_unknown.json"), "--json", "{tmp}"],
                             "--json"),
    # report and diff inputs
    "report-binary": (["report", "{gen:binary.json}", "-o", "{tmp}/r.html"], "binary"),
    "report-list": (["report", _f("report_list.json"), "-o", "{tmp}/r.html"], "JSON object"),
    "report-wrong-shape": (["report", _f("report_wrong_shape.json"), "-o", "{tmp}/r.html"], "report input"),
    "report-unknown": (["report", _f("report_unknown.json"), "-o", "{tmp}/r.html"], "not recognised"),
    "report-bad-json": (["report", _f("report_bad_json.json"), "-o", "{tmp}/r.html"], "not valid JSON"),
    "report-nan": (["report", _f("report_nan.json"), "-o", "{tmp}/r.html"], "NaN"),
    "diff-nan": (["diff", _f("report_nan.json"), _f("report_nan.json")], "NaN"),
    "report-missing": (["report", "{tmp}/none.json", "-o", "{tmp}/r.html"], "none.json"),
    "report-deep": (["report", "{gen:deep.json}", "-o", "{tmp}/r.html"], "nested"),
    "report-corrupt-sweep": (["report", "{gen:sweepdir}", "-o", "{tmp}/r.html"], "line 2"),
    "diff-not-a-run": (["diff", _f("report_unknown.json"), _f("report_unknown.json")], "not recognised"),
    "diff-binary": (["diff", "{gen:binary.json}", _f("report_unknown.json")], "binary"),
    # sweep specs
    **{f"sweep-{n}": (["sweep", _f(f"sweep_{n}.yaml"), "--out", "{tmp}/out"], needle) for n, needle in {
        "expr_class": "__class__", "expr_float_pow": "too large", "expr_int_pow": "bits", "expr_str_mul": "str",
        "expr_import": "may be called", "expr_list_mul": "List", "expr_syntax": "hw.memory.channels >",
        "expr_long": "longer than", "expr_unknown_name": "nosuch", "expr_lambda": "may be called",
        "expr_dunder_sub": "__class__", "axis_range_1e9": "scenario.batch", "axis_logrange_1e8": "100,000,000",
        "axis_factor_tiny": "factor", "axis_inf": "finite", "axis_empty": "empty", "axis_bad_path": "nope",
        "axis_no_prefix": "memory.channels", "axis_step_zero": "step", "axis_value_nan": "clock_hz",
        "grid_1e6": "--max-points", "random_1e9": "--max-points", "sample_bad_method": "sobol",
        "unknown_spec_key": "axez", "objective_unknown": "speed", "fidelity_bad": "exact",
        "continuous_grid": "continuous", "no_model": "model", "hw_part": "kind:",
        "scenario_list": "scenario: expected a mapping", "set_int": "set: expected", "derived_list": "derived:",
        "objectives_int": "objectives:"}.items()},
    "sweep-binary": (["sweep", "{gen:binary}", "--out", "{tmp}/out"], "binary"),
    "sweep-alias-bomb": (["sweep", "{gen:alias}", "--out", "{tmp}/out"], "aliases"),
    "sweep-workers": (["sweep", _f("sweep_ok.yaml"), "--out", "{tmp}/out", "--workers", "100000"], "--workers"),
    "sweep-max-points-zero": (["sweep", _f("sweep_ok.yaml"), "--out", "{tmp}/out", "--max-points", "0"],
                              "--max-points"),
    "sweep-max-points-low": (["sweep", _f("sweep_ok.yaml"), "--out", "{tmp}/out", "--max-points", "1"],
                             "--max-points"),
}

GEN = {"binary": _binary, "binary.json": lambda t: _binary(t, ".json"), "latin1": _latin1, "big": _big,
       "alias": _bomb_alias, "deep": _deep, "deep.json": lambda t: _deep(t, ".json"), "sweepdir": _corrupt_sweep,
       "taken": _existing_file}


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_corpus_has_at_least_100_inputs():
    assert len(CASES) >= 100


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_in_one_line_naming_the_culprit(case, tmp_path, monkeypatch):
    argv, needle = CASES[case]
    gen_dir, work = tmp_path / "gen", tmp_path / "work"
    gen_dir.mkdir()
    work.mkdir()
    args = []
    for a in argv:
        if a.startswith("{gen:"):
            a = str(GEN[a[5:-1]](gen_dir))
        args.append(a.replace("{tmp}", str(gen_dir)))
    before_gen, before_corpus = _listing(gen_dir), _listing(HERE)
    monkeypatch.chdir(work)
    t0 = time.perf_counter()
    res = CliRunner().invoke(main, args)
    elapsed = time.perf_counter() - t0
    # the first run on a fresh install announces the Numba compile before any work: a progress
    # line, not part of the error
    err = "\n".join(ln for ln in res.stderr.strip().splitlines() if not ln.startswith("compiling kernels"))
    assert res.exit_code != 0, f"accepted: {res.output}"
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    last = err.splitlines()[-1] if err else ""
    assert last.lower().startswith("error"), err
    if last.startswith("error:"):  # llmsim's own errors: exactly one line
        assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    assert needle in last, f"{needle!r} not named in: {last}"
    assert _listing(work) == set() and _listing(gen_dir) == before_gen and _listing(HERE) == before_corpus
    assert elapsed < MAX_SECONDS
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 < MAX_RSS_BYTES


def test_a_bad_input_exits_non_zero_from_the_real_command_line(run_cli, tmp_path):
    p = run_cli("op", "--hw", _f("hw_clock_inf.yaml"), "--kind", "matmul", "--shape", "1,64,64", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    err = [ln for ln in p.stderr.strip().splitlines() if not ln.startswith("compiling kernels")]
    assert len(err) == 1 and "clock_hz" in err[0]
    assert os.listdir(tmp_path) == []
