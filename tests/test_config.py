"""Laws of the spec layer: strangers are refused with their path; extends merges; --set type-checks."""

import json
from pathlib import Path

import pytest

from llmsim.config.loader import (
    apply_set,
    deep_merge,
    list_bundled,
    load_hardware,
    load_model,
    make_scenario,
    parse_set,
    split_overrides,
)
from llmsim.errors import ConfigError


def test_every_bundled_preset_validates_and_has_source():
    for name in list_bundled("hw_configs"):
        if name.startswith(("memory/", "framework/", "system/")):  # parts other presets extend; systems
            continue
        hw = load_hardware(name)
        assert hw.source, name
        assert hw.memory.peak_bandwidth_bytes_per_s > 0


def test_name_resolves_with_and_without_yaml_suffix():
    assert load_hardware("pim").name == load_hardware("pim.yaml").name == "pim"


def test_unknown_key_is_refused_with_its_path(tmp_path):
    p = tmp_path / "hw.yaml"
    p.write_text("extends: pim\nmemory: {chanels: 4}\n")
    with pytest.raises(ConfigError, match=r"memory\.chanels"):
        load_hardware(p)


def test_wrong_type_is_refused_with_its_path(tmp_path):
    p = tmp_path / "hw.yaml"
    p.write_text("extends: pim\nstatic_power_w: lots\n")
    with pytest.raises(ConfigError, match="static_power_w"):
        load_hardware(p)


def test_zero_clock_is_refused(tmp_path):
    p = tmp_path / "hw.yaml"
    p.write_text("extends: pim\nasic: {clock_hz: 0}\n")
    with pytest.raises(ConfigError, match=r"asic\.clock_hz"):
        load_hardware(p)


def test_missing_preset_names_the_bundled_ones():
    with pytest.raises(ConfigError, match="no hw_configs preset or file named 'nope'.*h100"):
        load_hardware("nope")


def test_extends_merges_nested_mappings_and_replaces_scalars(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("extends: pim\nname: mine\nsource: test\nmemory: {channels: 16}\n")
    base, mine = load_hardware("pim"), load_hardware(p)
    assert mine.memory.channels == 16 and mine.name == "mine"
    assert mine.memory.banks == base.memory.banks
    assert mine.memory.peak_bandwidth_bytes_per_s == pytest.approx(2 * base.memory.peak_bandwidth_bytes_per_s)


def test_extends_cycle_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_hardware(tmp_path / "a.yaml")


def test_set_overrides_with_type_checks():
    o = split_overrides(["hw.memory.channels=16", "model.n_layers=2", "scenario.batch=4"])
    assert load_hardware("pim", o["hw"]).memory.channels == 16
    assert load_model("gpt2", o["model"]).n_layers == 2
    assert make_scenario({}, o["scenario"]).batch == 4
    with pytest.raises(ConfigError, match=r"hw\.memory\.chanels: no such field"):
        load_hardware("pim", split_overrides(["hw.memory.chanels=3"])["hw"])
    with pytest.raises(ConfigError, match="channels"):
        load_hardware("pim", split_overrides(["hw.memory.channels=many"])["hw"])
    with pytest.raises(ConfigError, match="must start with"):
        split_overrides(["memory.channels=3"])


def test_deep_merge_and_apply_set_do_not_mutate_inputs():
    a = {"x": {"y": 1, "z": 2}}
    b = deep_merge(a, {"x": {"y": 5}})
    assert a["x"]["y"] == 1 and b == {"x": {"y": 5, "z": 2}}
    assert apply_set({"k": {"v": 1}}, ["k", "v"], 3, "hw") == {"k": {"v": 3}}


def test_set_reaches_maps_keyed_by_integers():
    # a calibrated CPU preset keys its packing rates by row count (YAML integers); --set gives strings
    assert apply_set({"r": {2: 1.0, 4: 2.0}}, ["r", "4"], 5.0, "hw") == {"r": {2: 1.0, 4: 5.0}}
    with pytest.raises(ConfigError, match="hw.r.3: no such field"):
        apply_set({"r": {2: 1.0, 4: 2.0}}, ["r", "3"], 5.0, "hw")
    run = Path(__file__).parents[1] / "benchmarks/data/cpu_validation/epyc-2026-12-07-s7/run4/calibrated.yaml"
    hw = load_hardware(run, parse_set(["pack_weight_bytes_per_s_by_rows.4=1e9"]))
    assert hw.pack_weight_bytes_per_s_by_rows[4] == 1e9 and hw.pack_rate(4) == pytest.approx(1e9)
    assert hw.pack_rate(8) == load_hardware(run).pack_rate(8)


HF = {
    "gpt2": ({"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
              "n_positions": 1024}, "gpt2"),
    "opt": ({"model_type": "opt", "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
             "ffn_dim": 4096, "vocab_size": 50272, "max_position_embeddings": 2048, "word_embed_proj_dim": 512,
             "do_layer_norm_before": False}, "opt-350m"),
    "llama": ({"model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
               "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
               "max_position_embeddings": 2048, "tie_word_embeddings": False}, "tinyllama-1.1b"),
    "t5": ({"model_type": "t5", "d_model": 512, "d_kv": 64, "d_ff": 1024, "num_layers": 8, "num_decoder_layers": 8,
            "num_heads": 6, "vocab_size": 32128, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},
           "flan-t5-small"),
}


@pytest.mark.parametrize("family", sorted(HF))
def test_hugging_face_config_gives_the_zoo_parameter_count(tmp_path, family):
    cfg, zoo = HF[family]
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    assert load_model(p).parameter_count() == load_model(zoo).parameter_count()


def test_unsupported_hf_model_type(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"model_type": "bloom"}))
    with pytest.raises(ConfigError, match="bloom"):
        load_model(p)
