"""Hugging Face ``config.json`` → :class:`ModelSpec` field mapping (GPT-2, OPT, Llama, T5).

Only the architecture is read; no weights are loaded. Field meanings follow the
``transformers`` configuration classes of each family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmsim.errors import ConfigError


def _need(cfg: dict, key: str, path: Path) -> Any:
    if key not in cfg:
        raise ConfigError(f"{path}: Hugging Face config lacks '{key}' (model_type {cfg.get('model_type')!r})")
    return cfg[key]


def from_hf_config(cfg: Any, path: Path) -> dict:
    """Map a Hugging Face config mapping to ModelSpec fields."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    mt = cfg.get("model_type")
    name = cfg.get("_name_or_path") or path.parent.name or path.stem
    src = f"Hugging Face config.json at {path}"
    if mt == "gpt2":
        d = _need(cfg, "n_embd", path)
        return dict(
            name=name, source=src, d_model=d, n_layers=_need(cfg, "n_layer", path),
            n_heads=_need(cfg, "n_head", path), d_ff=cfg.get("n_inner") or 4 * d, ffn="gelu_mlp",
            norm="layernorm", positions="learned", vocab_size=_need(cfg, "vocab_size", path),
            max_positions=_need(cfg, "n_positions", path), tied_embeddings=cfg.get("tie_word_embeddings", True),
            bias=True,
        )
    if mt == "opt":
        d = _need(cfg, "hidden_size", path)
        pre = cfg.get("do_layer_norm_before", True)
        proj = cfg.get("word_embed_proj_dim", d)
        return dict(
            name=name, source=src, d_model=d, n_layers=_need(cfg, "num_hidden_layers", path),
            n_heads=_need(cfg, "num_attention_heads", path), d_ff=_need(cfg, "ffn_dim", path),
            ffn="relu_mlp" if cfg.get("activation_function", "relu") == "relu" else "gelu_mlp",
            norm="layernorm", norm_position="pre" if pre else "post", final_norm=bool(pre),
            positions="learned", position_offset=2, vocab_size=_need(cfg, "vocab_size", path),
            max_positions=_need(cfg, "max_position_embeddings", path),
            embed_dim=proj if proj != d else None, tied_embeddings=cfg.get("tie_word_embeddings", True),
            bias=cfg.get("enable_bias", True),
        )
    if mt in ("llama", "mistral", "qwen2", "mixtral"):
        d = _need(cfg, "hidden_size", path)
        out = dict(
            name=name, source=src, d_model=d, n_layers=_need(cfg, "num_hidden_layers", path),
            n_heads=_need(cfg, "num_attention_heads", path),
            n_kv_heads=cfg.get("num_key_value_heads") or _need(cfg, "num_attention_heads", path),
            head_dim=cfg.get("head_dim"), d_ff=_need(cfg, "intermediate_size", path), ffn="swiglu",
            norm="rmsnorm", positions="rotary", vocab_size=_need(cfg, "vocab_size", path),
            max_positions=_need(cfg, "max_position_embeddings", path),
            tied_embeddings=cfg.get("tie_word_embeddings", False), bias=cfg.get("attention_bias", False),
        )
        if mt == "mixtral":
            out["moe"] = {"experts": _need(cfg, "num_local_experts", path),
                          "top_k": _need(cfg, "num_experts_per_tok", path)}
        return out
    if mt in ("t5", "mt5"):
        proj = cfg.get("feed_forward_proj", "relu")
        return dict(
            name=name, source=src, arch="encoder-decoder", d_model=_need(cfg, "d_model", path),
            n_layers=cfg.get("num_decoder_layers") or _need(cfg, "num_layers", path),
            n_encoder_layers=_need(cfg, "num_layers", path), n_heads=_need(cfg, "num_heads", path),
            head_dim=_need(cfg, "d_kv", path), d_ff=_need(cfg, "d_ff", path),
            ffn="gated_gelu" if "gated" in proj else "relu_mlp", norm="rmsnorm", positions="relative",
            relative_buckets=cfg.get("relative_attention_num_buckets", 32), vocab_size=_need(cfg, "vocab_size", path),
            max_positions=cfg.get("n_positions", 512), tied_embeddings=cfg.get("tie_word_embeddings", True),
            bias=False,
        )
    raise ConfigError(f"{path}: unsupported Hugging Face model_type {mt!r} "
                      "(gpt2, opt, llama, mistral, qwen2, mixtral, t5)")
