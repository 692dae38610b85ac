"""Laws of the Hugging Face config mapping: the same parameter count as the bundled preset (and HF),
every unread key named in one warning, sliding windows, QKV bias and MoE fields carried over."""

import json
import warnings

import pytest

from llmsim.config.hf import HfKeysNotUsed
from llmsim.config.loader import load_model
from llmsim.errors import ConfigError
from tests.test_zoo import HF_COUNTS

_LLAMA_META = {"rms_norm_eps": 1e-5, "rope_theta": 10000.0, "torch_dtype": "bfloat16", "bos_token_id": 1}
# config.json values of each checkpoint (the fields transformers reads for the architecture)
HF_CONFIGS = {
    "llama-2-7b": dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                       max_position_embeddings=4096, tie_word_embeddings=False, hidden_act="silu"),
    "llama-3-70b": dict(model_type="llama", hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                        num_attention_heads=64, num_key_value_heads=8, vocab_size=128256,
                        max_position_embeddings=8192, tie_word_embeddings=False),
    "mistral-7b": dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                       max_position_embeddings=32768, sliding_window=4096, tie_word_embeddings=False),
    "mixtral-8x7b": dict(model_type="mixtral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                         max_position_embeddings=32768, num_local_experts=8, num_experts_per_tok=2,
                         sliding_window=None, tie_word_embeddings=False),
    "qwen2-7b": dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                     num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                     max_position_embeddings=131072, use_sliding_window=False, sliding_window=131072,
                     max_window_layers=28, tie_word_embeddings=False),
    "phi-3-mini": dict(model_type="phi3", hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, vocab_size=32064,
                       max_position_embeddings=4096, sliding_window=2047, tie_word_embeddings=False),
    "opt-6.7b": dict(model_type="opt", hidden_size=4096, ffn_dim=16384, num_hidden_layers=32,
                     num_attention_heads=32, vocab_size=50272, max_position_embeddings=2048,
                     word_embed_proj_dim=4096, do_layer_norm_before=True),
    "olmoe-1b-7b": dict(model_type="olmoe", hidden_size=2048, intermediate_size=1024, num_hidden_layers=16,
                        num_attention_heads=16, num_key_value_heads=16, vocab_size=50304,
                        max_position_embeddings=4096, num_experts=64, num_experts_per_tok=8,
                        tie_word_embeddings=False),
}


def _load(tmp_path, cfg):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = load_model(str(p))
    return m, [str(x.message) for x in w if issubclass(x.category, HfKeysNotUsed)]


@pytest.mark.parametrize("name", sorted(HF_CONFIGS))
def test_hf_config_gives_the_bundled_presets_parameter_count(tmp_path, name):
    m, _ = _load(tmp_path, HF_CONFIGS[name])
    assert m.parameter_count() == HF_COUNTS[name] == load_model(name).parameter_count()
    bundled = load_model(name)
    for field in ("sliding_window", "has_qkv_bias", "qk_norm", "tied_embeddings", "moe", "kv_heads"):
        assert getattr(m, field) == getattr(bundled, field), field


def test_every_unread_key_is_named_in_one_warning_line(tmp_path):
    m, warned = _load(tmp_path, HF_CONFIGS["llama-2-7b"] | _LLAMA_META)
    assert len(warned) == 1 and "\n" not in warned[0]
    for key in _LLAMA_META:
        assert key in warned[0]
    assert "hidden_size" not in warned[0] and "hidden_act" not in warned[0]


def test_a_config_whose_keys_are_all_read_warns_nothing(tmp_path):
    _, warned = _load(tmp_path, HF_CONFIGS["mistral-7b"])
    assert warned == []


def test_qwen2_window_applies_only_with_use_sliding_window(tmp_path):
    cfg = HF_CONFIGS["qwen2-7b"]
    assert _load(tmp_path, cfg)[0].sliding_window is None
    on = _load(tmp_path, cfg | {"use_sliding_window": True, "max_window_layers": 0, "sliding_window": 4096})[0]
    assert on.sliding_window == 4096
    with pytest.raises(ConfigError, match="max_window_layers"):
        _load(tmp_path, cfg | {"use_sliding_window": True, "max_window_layers": 14})


def test_unmodelled_activation_and_family_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="hidden_act 'relu2'"):
        _load(tmp_path, HF_CONFIGS["llama-2-7b"] | {"hidden_act": "relu2"})
    with pytest.raises(ConfigError, match="model_type 'mamba'"):
        _load(tmp_path, {"model_type": "mamba"})
