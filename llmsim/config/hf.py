"""Hugging Face ``config.json`` → :class:`ModelSpec` field mapping.

Families: GPT-2, OPT, Llama (and Mistral, Qwen2, Mixtral, Phi-3), OLMoE, T5. Only the
architecture is read; no weights are loaded. Field meanings follow the ``transformers``
configuration classes of each family. Every key the mapping does not read is named in one
warning line (:class:`HfKeysNotUsed`), so nothing in a config is dropped silently.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from llmsim.errors import ConfigError

FAMILIES = ("gpt2", "opt", "llama", "mistral", "qwen2", "mixtral", "phi3", "olmoe", "t5", "mt5")


class HfKeysNotUsed(UserWarning):
    """A Hugging Face config held keys the mapping does not read (named in the message)."""


class _Cfg:
    """The config mapping, remembering which keys were read."""

    def __init__(self, cfg: dict, path: Path):
        self.cfg, self.path, self.used = cfg, path, {"model_type"}

    def need(self, key: str) -> Any:
        if key not in self.cfg:
            raise ConfigError(f"{self.path}: Hugging Face config lacks '{key}' "
                              f"(model_type {self.cfg.get('model_type')!r})")
        self.used.add(key)
        return self.cfg[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        v = self.cfg.get(key)
        return default if v is None else v

    def unused(self) -> list[str]:
        return sorted(k for k in self.cfg if k not in self.used)


def _act(c: _Cfg, key: str, default: str, allowed: dict[str, str]) -> str:
    act = c.get(key, default)
    if act not in allowed:
        raise ConfigError(f"{c.path}: {key} '{act}' is not modelled (one of {', '.join(allowed)})")
    return allowed[act]


def _llama_like(c: _Cfg, mt: str) -> dict:
    heads = c.need("num_attention_heads")
    ffn = _act(c, "hidden_act", "silu", {"silu": "swiglu", "gelu": "gated_gelu", "gelu_pytorch_tanh": "gated_gelu"})
    out = dict(
        d_model=c.need("hidden_size"), n_layers=c.need("num_hidden_layers"), n_heads=heads,
        n_kv_heads=c.get("num_key_value_heads", heads), head_dim=c.get("head_dim"),
        d_ff=c.need("intermediate_size"), ffn=ffn, norm="rmsnorm", positions="rotary",
        vocab_size=c.need("vocab_size"), max_positions=c.need("max_position_embeddings"),
        tied_embeddings=c.get("tie_word_embeddings", False), bias=False,
    )
    if mt == "qwen2":  # Qwen2 always biases q, k and v (not o, not the MLP)
        out["qkv_bias"] = True
    elif c.get("attention_bias", False):
        raise ConfigError(f"{c.path}: attention_bias (biases on q, k, v and o but not the MLP) is not modelled")
    if mt == "qwen2":  # the window applies only where use_sliding_window, to layers >= max_window_layers
        if c.get("use_sliding_window", False):
            first = c.get("max_window_layers", 0)
            if 0 < first < out["n_layers"]:
                raise ConfigError(f"{c.path}: sliding window on layers >= max_window_layers ({first}) only: "
                                  "per-layer windows are not modelled")
            if first == 0:
                out["sliding_window"] = c.get("sliding_window")
        else:
            c.used.update({"sliding_window", "max_window_layers"})
    elif mt in ("mistral", "mixtral", "phi3"):
        out["sliding_window"] = c.get("sliding_window")
    if mt == "mixtral":
        out["moe"] = {"experts": c.need("num_local_experts"), "top_k": c.need("num_experts_per_tok")}
    if mt == "olmoe":
        out["moe"] = {"experts": c.need("num_experts"), "top_k": c.need("num_experts_per_tok")}
        out["qk_norm"] = True
    return out


def from_hf_config(cfg: Any, path: Path) -> dict:
    """Map a Hugging Face config mapping to ModelSpec fields; warn naming every key not read."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    c = _Cfg(cfg, path)
    mt = cfg.get("model_type")
    name = c.get("_name_or_path") or path.parent.name or path.stem
    src = f"Hugging Face config.json at {path}"
    if mt == "gpt2":
        d = c.need("n_embd")
        out = dict(
            d_model=d, n_layers=c.need("n_layer"), n_heads=c.need("n_head"), d_ff=c.get("n_inner") or 4 * d,
            ffn=_act(c, "activation_function", "gelu_new", {"gelu_new": "gelu_mlp", "gelu": "gelu_mlp",
                                                             "relu": "relu_mlp"}),
            norm="layernorm", positions="learned", vocab_size=c.need("vocab_size"),
            max_positions=c.need("n_positions"), tied_embeddings=c.get("tie_word_embeddings", True), bias=True,
        )
    elif mt == "opt":
        d = c.need("hidden_size")
        pre = c.get("do_layer_norm_before", True)
        proj = c.get("word_embed_proj_dim", d)
        out = dict(
            d_model=d, n_layers=c.need("num_hidden_layers"), n_heads=c.need("num_attention_heads"),
            d_ff=c.need("ffn_dim"), ffn=_act(c, "activation_function", "relu", {"relu": "relu_mlp",
                                                                                  "gelu": "gelu_mlp"}),
            norm="layernorm", norm_position="pre" if pre else "post", final_norm=bool(pre),
            positions="learned", position_offset=2, vocab_size=c.need("vocab_size"),
            max_positions=c.need("max_position_embeddings"),
            embed_dim=proj if proj != d else None, tied_embeddings=c.get("tie_word_embeddings", True),
            bias=c.get("enable_bias", True),
        )
    elif mt in ("llama", "mistral", "qwen2", "mixtral", "phi3", "olmoe"):
        out = _llama_like(c, mt)
    elif mt in ("t5", "mt5"):
        proj = c.get("feed_forward_proj", "relu")
        out = dict(
            arch="encoder-decoder", d_model=c.need("d_model"),
            n_layers=c.get("num_decoder_layers") or c.need("num_layers"),
            n_encoder_layers=c.need("num_layers"), n_heads=c.need("num_heads"),
            head_dim=c.need("d_kv"), d_ff=c.need("d_ff"),
            ffn="gated_gelu" if "gated" in proj else "relu_mlp", norm="rmsnorm", positions="relative",
            relative_buckets=c.get("relative_attention_num_buckets", 32), vocab_size=c.need("vocab_size"),
            max_positions=c.get("n_positions", 512), tied_embeddings=c.get("tie_word_embeddings", True),
            bias=False,
        )
    else:
        raise ConfigError(f"{path}: unsupported Hugging Face model_type {mt!r} ({', '.join(FAMILIES)})")
    unused = c.unused()
    if unused:
        warnings.warn(f"{path}: Hugging Face keys not used by llmsim: {', '.join(unused)}", HfKeysNotUsed,
                      stacklevel=2)
    return {"name": name, "source": src, **{k: v for k, v in out.items() if v is not None}}
