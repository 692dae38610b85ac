"""Ragged batches: sequences of different lengths packed without padding (variable-length attention).

Token-wise ops (projections, norms, the MLP) run on the sum of the sequences' new tokens; attention
runs per sequence with its own query and key counts, all sequences in one variable-length attention
op (FlashAttention's varlen kernels; ByteTransformer's padding-free layout, Zhai et al. 2023,
arXiv 2210.03052). The
padded alternative is the ordinary graph of ``batch × longest``.
"""

from __future__ import annotations

import networkx as nx

from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.errors import ConfigError
from llmsim.graph import factory as f
from llmsim.graph.lower import _Builder, _check_len


class _Ragged(_Builder):
    def ragged_attention(self, x: str, p: str, layer: int, rows: int, seqs: list[tuple[int, int]]) -> str:
        m, meta = self.m, dict(layer=layer, stack="decoder")
        kv = m.kv_dim
        src = self.add(f.matmul(f"{p}.attn.qkv", rows, m.d_model, m.q_dim + 2 * kv, bias=m.has_qkv_bias,
                                weights=(f"{p}.attn.qkv",), **self.wmm, **meta), x)
        if m.qk_norm:
            src = self.add(f.norm(f"{p}.attn.qk_norm", rows, m.q_dim + kv, m.norm, weights=(f"{p}.attn.qk_norm",),
                                  **self.wdt, **meta), src)
        if m.positions == "rotary":
            src = self.add(f.elementwise(f"{p}.attn.rope", rows, m.q_dim + kv, "rope", **self.dt, **meta), src)
        kvw = self.add(f.kv_write(f"{p}.attn.kv_write", rows, kv, kv_dtype=self.sc.kv_dtype, **self.dt, **meta), src)
        att = dict(kv_dtype=self.sc.kv_dtype, window=m.sliding_window, **self.dt, **meta)
        if len(seqs) == 1:  # every sequence alike: the ordinary batched attention
            (sq, skv), n = seqs[0], len(self.g.graph["lens"])
            op = f.attention(f"{p}.attn.sdpa", n, m.n_heads, m.kv_heads, sq, skv, m.hd, causal=True, **att)
        else:
            op = f.attention_varlen(f"{p}.attn.sdpa", self.g.graph["lens"], m.n_heads, m.kv_heads, m.hd, **att)
        a = self.add(op, src, kvw)
        return self.add(f.matmul(f"{p}.attn.out", rows, m.q_dim, m.d_model, bias=m.bias,
                                 weights=(f"{p}.attn.out",), **self.wmm, **meta), a)


def lower_ragged(model: ModelSpec, sc: Scenario, new_tokens: list[int], keys: list[int], phase: str,
                 step: int = 0) -> nx.DiGraph:
    """One step of a packed batch: sequence i adds ``new_tokens[i]`` tokens attending ``keys[i]`` keys."""
    if model.arch != "decoder":
        raise ConfigError(f"ragged batches need a decoder-only model, {model.name} is {model.arch}")
    if len(new_tokens) != len(keys) or not new_tokens:
        raise ConfigError("ragged batch: one (new tokens, keys) pair per sequence")
    for q, k in zip(new_tokens, keys, strict=True):
        if not 1 <= q <= k:
            raise ConfigError(f"ragged batch: a sequence adds {q} tokens attending {k} keys (need 1 <= new <= keys)")
        _check_len(model, k, "prompt")
    B, rows = len(new_tokens), sum(new_tokens)
    lens = list(zip(new_tokens, keys, strict=True))
    seqs = sorted(set(lens))
    attrs = dict(phase=phase, step=step, batch=B, tokens=rows, lens=lens)
    attrs |= {"seq_len": max(new_tokens)} if phase == "prefill" else {"context_len": max(keys)}
    b = _Ragged(model, sc, attrs)
    x = b.embed("decoder", rows)
    for i in range(model.n_layers):
        p = f"decoder.L{i}"
        x = b.sublayer(x, f"{p}.self", "decoder", i, rows,
                       lambda h, p=p, i=i: b.ragged_attention(h, f"{p}.self", i, rows, seqs))
        x = b.sublayer(x, f"{p}.mlp", "decoder", i, rows,
                       lambda h, p=p, i=i: b.ffn_block(h, f"{p}.mlp", "decoder", i, rows))
    b.head(x, B)
    return b.g
