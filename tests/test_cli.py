"""The CLI contract: fields of --json, and bad input → one line, non-zero exit, no traceback."""

import json

import pytest

RUN_FIELDS = {"ttft_s", "tpot_s", "total_s", "tokens_per_s", "energy_j", "energy_breakdown_j", "latency_breakdown_s",
              "bytes_by_level", "steps", "config"}


def test_run_json_has_every_contract_field(run_cli, tmp_path):
    out = tmp_path / "r.json"
    p = run_cli("run", "--hw", "pim.yaml", "--model", "gpt2", "--prompt", "16", "--gen", "3", "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert "TTFT" in p.stdout and "TPOT" in p.stdout
    d = json.loads(out.read_text())
    assert RUN_FIELDS <= set(d)
    assert len(d["steps"]) == 3
    assert d["steps"][0]["phase"] == "prefill" and d["steps"][0]["seq_len"] == 16
    assert d["steps"][1]["context_len"] == 17
    assert set(d["config"]) >= {"hw", "model", "scenario"}
    assert d["config"]["scenario"]["gen"] == 3


def test_step_and_op_commands(run_cli, tmp_path):
    out = tmp_path / "s.json"
    p = run_cli("step", "--hw", "h100", "--model", "gpt2", "--phase", "decode", "--batch", "2", "--context", "64",
                "--json", str(out))
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert d["context_len"] == 64 and d["latency_s"] > 0 and d["batch"] == 2
    # the step's memory: 2 sequences of 64 + 1 tokens of K/V (gpt2: 12 layers x 2 x 768 fp16 values a token)
    m = d["memory_footprint"]
    assert m["kv_cache_bytes"] == 2 * 65 * 12 * 2 * 768 * 2 and m["context"] == 65
    assert m["weights_bytes"] + m["kv_cache_bytes"] + m["activations_bytes"] + m["free_bytes"] == m["capacity_bytes"]
    assert "memory: weights" in p.stdout
    p = run_cli("op", "--hw", "npu-ws-128", "--kind", "matmul", "--shape", "128,768,2304", "--json", str(out))
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert {"latency_s", "cycles", "compute_cycles", "energy_j", "bytes_by_level"} <= set(d)
    assert d["cycles"] >= d["compute_cycles"] > 0


def test_list_and_schema(run_cli):
    p = run_cli("list")
    assert p.returncode == 0 and "gpt2-xl" in p.stdout and "pim" in p.stdout
    p = run_cli("schema")
    assert p.returncode == 0
    assert "hardware" in json.loads(p.stdout)


BAD = {
    "unknown yaml key": (["--set", "hw.memory.chanels=3"], "chanels"),
    "wrong type": (["--set", "hw.static_power_w=hot"], "static_power_w"),
    "missing preset": (["--hw", "no-such-chip"], "no-such-chip"),
    "prompt too long": (["--prompt", "5000"], "max_positions"),
    "model does not fit": (["--set", "hw.memory.rows=16"], "does not fit"),
    "bad dtype": (["--dtype", "fp7"], "fp7"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_one_line_error_and_no_traceback(run_cli, tmp_path, case):
    extra, needle = BAD[case]
    args = ["run", "--hw", "pim", "--model", "gpt2", "--gen", "2", "--json", str(tmp_path / "x.json")]
    if extra[0] == "--hw":
        args[2] = extra[1]
        extra = []
    p = run_cli(*args, *extra)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert not (tmp_path / "x.json").exists()  # nothing half-written


def test_unknown_key_in_a_yaml_file_names_file_and_field(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: pim\nmemroy: {channels: 4}\n")
    p = run_cli("run", "--hw", str(bad), "--model", "gpt2", "--gen", "2")
    assert p.returncode != 0 and "bad.yaml" in p.stderr and "memroy" in p.stderr and "Traceback" not in p.stderr
