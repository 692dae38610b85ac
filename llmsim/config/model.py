"""Model layer specs: decoder-only and encoder-decoder transformers.

A :class:`ModelSpec` is the *architecture* only (no weights). It is what
``workloads/<name>.yaml`` holds and what a Hugging Face ``config.json`` is turned into
(:mod:`llmsim.config.hf`). Parameter counts are exact: the bundled zoo is tested against
the counts Hugging Face reports for the same checkpoints.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llmsim.config.base import Spec


class MoESpec(Spec):
    """Mixture-of-Experts feed-forward: ``experts`` FFNs per layer, ``top_k`` used per token."""

    experts: int = Field(gt=1)
    top_k: int = Field(gt=0)

    @model_validator(mode="after")
    def _k_le_e(self) -> MoESpec:
        if self.top_k > self.experts:
            raise ValueError(f"moe.top_k ({self.top_k}) exceeds moe.experts ({self.experts})")
        return self


class ModelSpec(Spec):
    """Transformer architecture.

    ``n_layers`` counts decoder layers; ``n_encoder_layers`` is non-zero only for
    ``arch: encoder-decoder`` (T5-style: the prompt is encoded once, every decoder layer
    cross-attends to the encoder output).
    """

    name: str
    source: str = ""
    arch: Literal["decoder", "encoder-decoder"] = "decoder"
    d_model: int = Field(gt=0)
    n_layers: int = Field(gt=0)
    n_encoder_layers: int = Field(default=0, ge=0)
    n_heads: int = Field(gt=0)
    n_kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    d_ff: int = Field(gt=0)
    ffn: Literal["gelu_mlp", "relu_mlp", "swiglu", "gated_gelu"] = "gelu_mlp"
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_position: Literal["pre", "post"] = "pre"
    final_norm: bool = True
    positions: Literal["learned", "rotary", "relative"] = "learned"
    position_offset: int = Field(default=0, ge=0, description="extra rows in the learned position table (OPT: 2)")
    relative_buckets: int = Field(default=32, gt=0, description="T5 relative-attention buckets")
    vocab_size: int = Field(gt=0)
    max_positions: int = Field(gt=0)
    embed_dim: int | None = Field(default=None, gt=0, description="token-embedding width if != d_model (OPT-350m)")
    tied_embeddings: bool = True
    bias: bool = True
    qkv_bias: bool | None = Field(default=None, description="bias on the Q/K/V projections only (Qwen2: true "
                                  "while bias is false); None: same as bias")
    qk_norm: bool = Field(default=False, description="a norm over the q and k projections (OLMoE)")
    sliding_window: int | None = Field(default=None, gt=0, description="keys a query attends to at most, itself "
                                       "included (Mistral's sliding-window attention); None: the whole context")
    moe: MoESpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        if self.head_dim is None and self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) is not divisible by n_heads ({self.n_heads}); set head_dim")
        if self.arch == "encoder-decoder" and self.n_encoder_layers == 0:
            raise ValueError("arch 'encoder-decoder' needs n_encoder_layers > 0")
        if self.arch == "decoder" and self.n_encoder_layers:
            raise ValueError("n_encoder_layers is only valid with arch 'encoder-decoder'")
        return self

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def hd(self) -> int:
        """Head dimension."""
        return self.head_dim or self.d_model // self.n_heads

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.hd

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.hd

    @property
    def d_embed(self) -> int:
        return self.embed_dim or self.d_model

    @property
    def is_gated(self) -> bool:
        return self.ffn in ("swiglu", "gated_gelu")

    @property
    def has_qkv_bias(self) -> bool:
        return self.bias if self.qkv_bias is None else self.qkv_bias

    @property
    def experts(self) -> int:
        return self.moe.experts if self.moe else 1

    # ---- parameters ------------------------------------------------------------------------
    def norm_params(self) -> int:
        """One norm's parameters: scale (+ shift for LayerNorm)."""
        return self.d_model * (2 if self.norm == "layernorm" else 1)

    def attention_params(self) -> int:
        w = self.d_model * (self.q_dim + 2 * self.kv_dim) + self.q_dim * self.d_model
        b = (self.q_dim + 2 * self.kv_dim if self.has_qkv_bias else 0) + (self.d_model if self.bias else 0)
        return w + b + self.qk_norm_params()

    def qk_norm_params(self) -> int:
        """The q and k norms' parameters (one scale per element, + shift for LayerNorm)."""
        return (2 if self.norm == "layernorm" else 1) * (self.q_dim + self.kv_dim) if self.qk_norm else 0

    def ffn_params(self) -> int:
        """All experts' FFN weights (+ the router for MoE)."""
        n_in = 2 if self.is_gated else 1
        w = n_in * self.d_model * self.d_ff + self.d_ff * self.d_model
        b = (n_in * self.d_ff + self.d_model) if self.bias else 0
        router = self.d_model * self.moe.experts if self.moe else 0
        return self.experts * (w + b) + router

    def decoder_layer_params(self) -> int:
        cross = self.arch == "encoder-decoder"
        n_norms = 3 if cross else 2
        return self.attention_params() * (2 if cross else 1) + self.ffn_params() + n_norms * self.norm_params()

    def encoder_layer_params(self) -> int:
        return self.attention_params() + self.ffn_params() + 2 * self.norm_params()

    def embedding_params(self) -> dict[str, int]:
        """Parameters outside the layers, by tensor."""
        p = {"tok_embed": self.vocab_size * self.d_embed}
        if self.positions == "learned":
            p["pos_embed"] = (self.max_positions + self.position_offset) * self.d_model
        if self.positions == "relative":
            stacks = 2 if self.arch == "encoder-decoder" else 1
            p["rel_bias"] = stacks * self.relative_buckets * self.n_heads
        if self.d_embed != self.d_model:
            p["project_in"] = self.d_embed * self.d_model
            p["project_out"] = self.d_model * self.d_embed
        if not self.tied_embeddings:
            p["lm_head"] = self.d_embed * self.vocab_size
        n_final = (2 if self.arch == "encoder-decoder" else 1) if self.final_norm else 0
        if n_final:
            p["final_norm"] = n_final * self.norm_params()
        return p

    def gemm_shapes(self) -> list[tuple[int, int, int]]:
        """Every GEMM weight matrix as (K, N, how many): what quantisation applies to."""
        d, q, kv, E = self.d_model, self.q_dim, self.kv_dim, self.experts
        attn = [(d, q + 2 * kv, 1), (q, d, 1)]
        cross = [(d, q, 1), (d, 2 * kv, 1), (q, d, 1)] if self.arch == "encoder-decoder" else []
        ffn = [(d, self.d_ff, E * (2 if self.is_gated else 1)), (self.d_ff, d, E)]
        if self.moe:
            ffn.append((d, self.moe.experts, 1))
        out = [(k, n, c * self.n_layers) for k, n, c in attn + cross + ffn]
        out += [(k, n, c * self.n_encoder_layers) for k, n, c in attn + ffn if self.n_encoder_layers]
        if self.d_embed != d:
            out += [(self.d_embed, d, 1), (d, self.d_embed, 1)]
        if not self.tied_embeddings:
            out.append((self.d_embed, self.vocab_size, 1))
        return out

    def unquantised_params(self) -> int:
        """Parameters outside the GEMM weights: embedding tables and norm scales (kept at the activation
        dtype when the GEMM weights are quantised)."""
        emb = self.embedding_params()
        tables = emb["tok_embed"] + emb.get("pos_embed", 0) + emb.get("rel_bias", 0)
        per_layer = (3 if self.arch == "encoder-decoder" else 2) * self.norm_params() + self.qk_norm_params()
        enc = self.n_encoder_layers * (2 * self.norm_params() + self.qk_norm_params())
        return tables + self.n_layers * per_layer + enc + emb.get("final_norm", 0)

    def parameter_count(self) -> int:
        """Exact parameter count (what ``sum(p.numel() for p in model.parameters())`` gives in HF)."""
        return (
            self.n_layers * self.decoder_layer_params()
            + self.n_encoder_layers * self.encoder_layer_params()
            + sum(self.embedding_params().values())
        )

    def kv_bytes_per_token(self, kv_bytes: float) -> float:
        """KV-cache bytes one token adds across all decoder layers (self-attention K and V)."""
        return 2 * self.n_layers * self.kv_dim * kv_bytes
