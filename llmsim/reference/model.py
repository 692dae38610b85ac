"""A decoder-only transformer in plain PyTorch, built from a :class:`ModelSpec`.

Covers GPT-2 (learned positions, pre-LayerNorm, GELU-tanh MLP, biases, tied head), OPT
(ReLU MLP, position offset 2, post-LayerNorm and project_in/out as in OPT-350m) and
Llama-style models (RoPE θ = 10000, RMSNorm, SwiGLU, grouped-query attention). Weights are
random (``init_std``); the KV cache is static and preallocated (``[layers, 2, B, Hkv, T, hd]``)
so decode steps have fixed shapes and can be captured in a CUDA graph. As in llmsim's
lowering, the LM head runs on the last position only unless ``all_logits`` is asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from llmsim.config.model import ModelSpec
from llmsim.errors import ConfigError

_EPS = 1e-5
LABEL = "llmsim::"  # profiler ranges named LABEL + op kind mark which llmsim op every framework call belongs to
_annotating = False


@contextlib.contextmanager
def annotated() -> Iterator[None]:
    """Within this block, the reference wraps the framework calls of each llmsim op in a profiler
    range ``llmsim::<op kind>`` (:func:`torch.profiler.record_function`), so a profile attributes
    kernel time and call counts to op kinds without guessing from kernel names. Off for timing."""
    global _annotating
    prev, _annotating = _annotating, True
    try:
        yield
    finally:
        _annotating = prev


def _op(kind: str):
    return torch.profiler.record_function(LABEL + kind) if _annotating else contextlib.nullcontext()


class _Norm(nn.Module):
    def __init__(self, kind: str, d: int):
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if kind == "layernorm" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _op("norm"):
            if self.kind == "layernorm":
                return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, _EPS)
            return F.rms_norm(x, (x.shape[-1],), self.weight, _EPS)


def rope_tables(start: int, S: int, hd: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [S, hd] of rotate-half RoPE (θ = 10000) at positions start .. start+S-1: computed
    once per step and shared by every layer, as Hugging Face's Llama does."""
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
    ang = torch.arange(start, start + S, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], -1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE (Llama / HF convention) of x [B, H, S, hd]."""
    hd = x.shape[-1]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class _Layer(nn.Module):
    def __init__(self, m: ModelSpec):
        super().__init__()
        self.m = m
        self.norm1, self.norm2 = _Norm(m.norm, m.d_model), _Norm(m.norm, m.d_model)
        self.qkv = nn.Linear(m.d_model, m.q_dim + 2 * m.kv_dim, bias=m.has_qkv_bias)
        self.out = nn.Linear(m.q_dim, m.d_model, bias=m.bias)
        # gated MLPs: separate gate and up projections, as in Hugging Face's Llama and llmsim's graph
        self.gate = nn.Linear(m.d_model, m.d_ff, bias=m.bias) if m.is_gated else None
        self.up = nn.Linear(m.d_model, m.d_ff, bias=m.bias)
        self.down = nn.Linear(m.d_ff, m.d_model, bias=m.bias)
        fn = {"gelu_mlp": "gelu", "relu_mlp": "relu", "swiglu": "silu_mul"}.get(m.ffn, "gelu_mul")
        self.act_label = f"activation.{fn}"  # llmsim's name of the activation function

    def act(self, h: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        """The MLP's activation of ``h``; gated: act(gate) · h."""
        f = self.m.ffn
        if f == "gelu_mlp":
            return F.gelu(h, approximate="tanh")
        if f == "relu_mlp":
            return F.relu(h)
        return (F.silu(gate) if f == "swiglu" else F.gelu(gate, approximate="tanh")) * h

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        g = None
        if self.gate is not None:
            with _op("matmul"):
                g = self.gate(x)
        with _op("matmul"):
            h = self.up(x)
        with _op(self.act_label):
            h = self.act(h, g)
        with _op("matmul"):
            return self.down(h)

    def split_heads(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as [B, heads, S, hd] views of the fused projection (part of the attention op)."""
        m = self.m
        B, S, _ = qkv.shape
        q, k, v = qkv.split([m.q_dim, m.kv_dim, m.kv_dim], dim=-1)
        return (q.view(B, S, m.n_heads, m.hd).transpose(1, 2), k.view(B, S, m.kv_heads, m.hd).transpose(1, 2),
                v.view(B, S, m.kv_heads, m.hd).transpose(1, 2))

    @staticmethod
    def write_kv(cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> None:
        S = k.shape[2]
        cache[0, :, :, start:start + S] = k
        cache[1, :, :, start:start + S] = v

    def attend(self, q: torch.Tensor, cache: torch.Tensor, start: int) -> torch.Tensor:
        """SDPA of q over the cache's first ``start + S`` positions; heads merged back to [B, S, q_dim]."""
        m = self.m
        B, _, S, _ = q.shape
        keys, vals = cache[0, :, :, : start + S], cache[1, :, :, : start + S]
        gqa = m.kv_heads != m.n_heads
        if S == 1 or start == 0:
            o = F.scaled_dot_product_attention(q, keys, vals, is_causal=S > 1, enable_gqa=gqa)
        else:  # a chunk after a cached prefix: explicit causal mask with the offset
            mask = torch.ones(S, start + S, dtype=torch.bool, device=q.device).tril(start)
            o = F.scaled_dot_product_attention(q, keys, vals, attn_mask=mask, enable_gqa=gqa)
        return o.transpose(1, 2).reshape(B, S, m.q_dim)

    def _attn(self, x: torch.Tensor, cache: torch.Tensor, start: int, rope=None) -> torch.Tensor:
        with _op("matmul"):
            qkv = self.qkv(x)
        with _op("attention"):  # the head split is views: the attention op's
            q, k, v = self.split_heads(qkv)
        if rope is not None:
            with _op("elementwise.rope"):
                q, k = _rope(q, *rope), _rope(k, *rope)
        with _op("kv_write"):
            self.write_kv(cache, k, v, start)
        with _op("attention"):
            o = self.attend(q, cache, start)
        with _op("matmul"):
            return self.out(o)

    def forward(self, x: torch.Tensor, cache: torch.Tensor, start: int, rope=None) -> torch.Tensor:
        """``rope``: (cos, sin) of the step's positions (:func:`rope_tables`) for rotary models."""
        if self.m.norm_position == "pre":
            a = self._attn(self.norm1(x), cache, start, rope)
            with _op("elementwise"):
                x = x + a
            f = self._mlp(self.norm2(x))
            with _op("elementwise"):
                return x + f
        a = self._attn(x, cache, start, rope)
        with _op("elementwise"):
            x = x + a
        x = self.norm1(x)
        f = self._mlp(x)
        with _op("elementwise"):
            x = x + f
        return self.norm2(x)


class ReferenceModel(nn.Module):
    """The decoder-only ``spec`` with random weights (normal, std ``init_std``)."""

    def __init__(self, spec: ModelSpec, init_std: float = 0.02, seed: int = 0):
        super().__init__()
        if spec.arch != "decoder":
            raise ConfigError(f"reference model: only decoder-only models are supported, {spec.name} is {spec.arch}")
        if spec.moe is not None:
            raise ConfigError(f"reference model: MoE ({spec.name}) is not supported")
        if spec.positions == "relative":
            raise ConfigError(f"reference model: relative positions ({spec.name}) are not supported")
        if spec.qk_norm:
            raise ConfigError(f"reference model: q/k norms ({spec.name}) are not supported")
        self.spec = spec
        self.tok = nn.Embedding(spec.vocab_size, spec.d_embed)
        self.pos = nn.Embedding(spec.max_positions + spec.position_offset, spec.d_model) \
            if spec.positions == "learned" else None
        proj = spec.d_embed != spec.d_model
        self.project_in = nn.Linear(spec.d_embed, spec.d_model, bias=False) if proj else None
        self.project_out = nn.Linear(spec.d_model, spec.d_embed, bias=False) if proj else None
        self.layers = nn.ModuleList(_Layer(spec) for _ in range(spec.n_layers))
        self.final_norm = _Norm(spec.norm, spec.d_model) if spec.final_norm else None
        self.lm_head = None if spec.tied_embeddings else nn.Linear(spec.d_embed, spec.vocab_size, bias=False)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() > 1:
                    p.copy_(torch.randn(p.shape, generator=g) * init_std)
                elif name.endswith("bias"):
                    p.copy_(torch.randn(p.shape, generator=g) * init_std)

    def positions(self, start: int, S: int) -> torch.Tensor:
        """Learned position embeddings of positions ``start .. start+S-1``."""
        ids = torch.arange(start, start + S, device=self.pos.weight.device) + self.spec.position_offset
        return self.pos(ids)

    def new_cache(self, batch: int, max_len: int, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None) -> torch.Tensor:
        """Static KV cache ``[layers, 2, batch, kv_heads, max_len, head_dim]`` (zeros)."""
        s = self.spec
        if max_len > s.max_positions and s.positions == "learned":
            raise ConfigError(f"reference: cache of {max_len} tokens exceeds {s.name}'s max_positions")
        if s.sliding_window is not None and max_len > s.sliding_window:
            raise ConfigError(f"reference: a cache of {max_len} tokens passes {s.name}'s sliding window "
                              f"({s.sliding_window}), which the reference does not apply")
        p = next(self.parameters())
        return torch.zeros(s.n_layers, 2, batch, s.kv_heads, max_len, s.hd, dtype=dtype or p.dtype,
                           device=device or p.device)

    def forward(self, ids: torch.Tensor, cache: torch.Tensor, start: int = 0, all_logits: bool = False) -> torch.Tensor:
        """Logits for token ids [B, S] placed at positions ``start .. start+S-1``; K/V go into ``cache``.
        Returns [B, V] (last position) or [B, S, V] with ``all_logits``."""
        s = self.spec
        S = ids.shape[1]
        if start + S > cache.shape[-2]:
            raise ConfigError(f"reference: positions up to {start + S} exceed the cache ({cache.shape[-2]})")
        emb = "embedding.tokens+positions" if self.pos is not None else "embedding.tokens"
        with _op(emb):
            x = self.tok(ids)
        if self.project_in is not None:
            with _op("matmul"):
                x = self.project_in(x)
        if self.pos is not None:
            with _op(emb):
                x = x + self.positions(start, S)
        rope = None
        if s.positions == "rotary":
            with _op("elementwise.rope"):  # once per step, for every layer's rope op
                rope = rope_tables(start, S, s.hd, x.device, x.dtype)
        for i, layer in enumerate(self.layers):
            with _op("attention"):  # the layer's cache slice (a view) serves its attention
                c = cache[i]
            x = layer(x, c, start, rope)
        if not all_logits:
            with _op("matmul"):  # the LM head reads the last position only
                x = x[:, -1]
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.project_out is not None:
            with _op("matmul"):
                x = self.project_out(x)
        with _op("matmul"):
            return F.linear(x, self.tok.weight if self.lm_head is None else self.lm_head.weight)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ReferenceModel", "param_count"]
