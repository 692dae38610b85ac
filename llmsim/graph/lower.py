"""Lowering a model + scenario to op graphs, one networkx DiGraph per phase step.

* prefill: ``batch × prompt`` tokens through every layer (encoder-decoder: the encoder over
  the prompt, the cross-attention K/V of every decoder layer, then the first decoder token);
* decode step k: ``batch × 1`` new token attending ``context`` keys (the new one included).

Nodes are op names; ``G.nodes[name]["op"]`` is the frozen :class:`Op`. Edges are data
dependencies. ``G.graph`` holds ``phase``, ``batch``, ``seq_len`` (prefill) or
``context_len`` (decode) and ``step``. The LM head runs on the last position only.
"""

from __future__ import annotations

import networkx as nx

from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.errors import ConfigError
from llmsim.graph import factory as f
from llmsim.graph.ops import Op


class _Builder:
    def __init__(self, model: ModelSpec, sc: Scenario, graph_attrs: dict):
        self.m, self.sc = model, sc
        self.g = nx.DiGraph(**graph_attrs)
        self.dt = dict(dtype=sc.act_dtype)
        self.wdt = dict(dtype=sc.act_dtype, weight_dtype=sc.weight_dtype)

    def add(self, op: Op, *deps: str | None) -> str:
        if op.name in self.g:
            raise ValueError(f"duplicate op name {op.name}")
        self.g.add_node(op.name, op=op)
        for d in deps:
            if d is not None:
                self.g.add_edge(d, op.name)
        return op.name

    # ---- blocks -------------------------------------------------------------------------
    def attention_block(self, x: str, p: str, stack: str, layer: int, rows: int, B: int, Sq: int, Skv: int,
                        causal: bool, cross_rows: int | None = None, tag: str = "attn") -> str:
        """Self- (or cross-, when ``cross_rows`` is not None) attention with its projections."""
        m, meta = self.m, dict(layer=layer, stack=stack)
        kv = m.kv_dim
        if cross_rows is None:
            qkv = self.add(f.matmul(f"{p}.{tag}.qkv", rows, m.d_model, m.q_dim + 2 * kv, bias=m.bias,
                                    weights=(f"{p}.{tag}.qkv",), **self.wdt, **meta), x)
            q_src = qkv
            if m.positions == "rotary":
                q_src = self.add(f.elementwise(f"{p}.{tag}.rope", rows, m.q_dim + kv, "rope", **self.dt, **meta), qkv)
            kvw = self.add(f.kv_write(f"{p}.{tag}.kv_write", rows, kv, kv_dtype=self.sc.kv_dtype, **self.dt, **meta),
                           q_src)
            deps = (q_src, kvw)
        else:  # cross-attention: K/V of the encoder output were cached in prefill
            q = self.add(f.matmul(f"{p}.{tag}.q", rows, m.d_model, m.q_dim, bias=m.bias,
                                  weights=(f"{p}.{tag}.q",), **self.wdt, **meta), x)
            deps = (q,)
        att = self.add(f.attention(f"{p}.{tag}.sdpa", B, m.n_heads, m.kv_heads, Sq, Skv, m.hd, causal=causal,
                                   kv_dtype=self.sc.kv_dtype, **self.dt, **meta), *deps)
        return self.add(f.matmul(f"{p}.{tag}.out", rows, m.q_dim, m.d_model, bias=m.bias,
                                 weights=(f"{p}.{tag}.out",), **self.wdt, **meta), att)

    def ffn_block(self, x: str, p: str, stack: str, layer: int, rows: int) -> str:
        m, meta = self.m, dict(layer=layer, stack=stack)
        rows_e, experts = rows, 1
        if m.moe:
            x = self.add(f.matmul(f"{p}.ffn.router", rows, m.d_model, m.moe.experts, weights=(f"{p}.ffn.router",),
                                  **self.wdt, **meta), x)
            rows_e = rows * m.moe.top_k
            experts = min(m.moe.experts, rows_e)
        mm = dict(bias=m.bias, experts=experts, **self.wdt, **meta)
        if m.is_gated:
            gate = self.add(f.matmul(f"{p}.ffn.gate", rows_e, m.d_model, m.d_ff, weights=(f"{p}.ffn.gate",), **mm), x)
            up = self.add(f.matmul(f"{p}.ffn.up", rows_e, m.d_model, m.d_ff, weights=(f"{p}.ffn.up",), **mm), x)
            fn = "silu_mul" if m.ffn == "swiglu" else "gelu_mul"
            act = self.add(f.activation(f"{p}.ffn.act", rows_e, m.d_ff, fn, **self.dt, **meta), gate, up)
        else:
            up = self.add(f.matmul(f"{p}.ffn.up", rows_e, m.d_model, m.d_ff, weights=(f"{p}.ffn.up",), **mm), x)
            fn = "gelu" if m.ffn == "gelu_mlp" else "relu"
            act = self.add(f.activation(f"{p}.ffn.act", rows_e, m.d_ff, fn, **self.dt, **meta), up)
        return self.add(f.matmul(f"{p}.ffn.down", rows_e, m.d_ff, m.d_model, weights=(f"{p}.ffn.down",), **mm), act)

    def sublayer(self, x: str, p: str, stack: str, layer: int, rows: int, body) -> str:
        """Norm + body + residual add, pre- or post-norm."""
        m, meta = self.m, dict(layer=layer, stack=stack)
        nrm = lambda src: self.add(f.norm(f"{p}.norm", rows, m.d_model, m.norm, weights=(f"{p}.norm",),  # noqa: E731
                                          **self.wdt, **meta), src)
        inner = body(nrm(x) if m.norm_position == "pre" else x)
        out = self.add(f.elementwise(f"{p}.residual", rows, m.d_model, "add", **self.dt, **meta), inner, x)
        return nrm(out) if m.norm_position == "post" else out

    def layer(self, x: str, stack: str, i: int, B: int, Sq: int, Skv: int, causal: bool,
              cross_len: int | None) -> str:
        rows, p = B * Sq, f"{stack}.L{i}"
        x = self.sublayer(x, f"{p}.self", stack, i, rows,
                          lambda h: self.attention_block(h, f"{p}.self", stack, i, rows, B, Sq, Skv, causal))
        if cross_len is not None:
            x = self.sublayer(x, f"{p}.cross", stack, i, rows,
                              lambda h: self.attention_block(h, f"{p}.cross", stack, i, rows, B, Sq, cross_len,
                                                             False, cross_rows=B * cross_len, tag="attn"))
        return self.sublayer(x, f"{p}.mlp", stack, i, rows, lambda h: self.ffn_block(h, f"{p}.mlp", stack, i, rows))

    def embed(self, stack: str, rows: int, dep: str | None = None) -> str:
        m = self.m
        tables = ("tok_embed", "pos_embed") if m.positions == "learned" else ("tok_embed",)
        width = m.d_embed if len(tables) == 1 else m.d_model
        x = self.add(f.embedding(f"{stack}.embed", rows, width, n_tables=len(tables), weights=tables, **self.wdt), dep)
        if m.d_embed != m.d_model:
            x = self.add(f.matmul(f"{stack}.project_in", rows, m.d_embed, m.d_model, weights=("project_in",),
                                  **self.wdt), x)
        return x

    def head(self, x: str, B: int) -> str:
        m = self.m
        if m.final_norm:
            x = self.add(f.norm("decoder.final_norm", B, m.d_model, m.norm, weights=("final_norm",), **self.wdt), x)
        if m.d_embed != m.d_model:
            x = self.add(f.matmul("decoder.project_out", B, m.d_model, m.d_embed, weights=("project_out",),
                                  **self.wdt), x)
        w = "tok_embed" if m.tied_embeddings else "lm_head"
        return self.add(f.matmul("decoder.lm_head", B, m.d_embed, m.vocab_size, weights=(w,), **self.wdt), x)


def _check_len(model: ModelSpec, n: int, what: str) -> None:
    if model.positions != "relative" and n > model.max_positions:
        raise ConfigError(f"{what} ({n} tokens) exceeds {model.name}'s max_positions ({model.max_positions})")


def lower_prefill(model: ModelSpec, sc: Scenario, batch: int | None = None, seq: int | None = None) -> nx.DiGraph:
    """The prefill step: ``batch × seq`` prompt tokens; returns the first generated token."""
    B, S = batch or sc.batch, seq or sc.prompt
    _check_len(model, S, "prompt")
    b = _Builder(model, sc, dict(phase="prefill", step=0, batch=B, seq_len=S))
    if model.arch == "encoder-decoder":
        x = b.embed("encoder", B * S)
        for i in range(model.n_encoder_layers):
            x = b.layer(x, "encoder", i, B, S, S, causal=False, cross_len=None)
        if model.final_norm:
            x = b.add(f.norm("encoder.final_norm", B * S, model.d_model, model.norm, weights=("final_norm",),
                             **b.wdt), x)
        cross = []
        for i in range(model.n_layers):  # cross-attention K/V of every decoder layer, cached once
            p = f"decoder.L{i}.cross.attn"
            kv = b.add(f.matmul(f"{p}.kv", B * S, model.d_model, 2 * model.kv_dim, bias=model.bias,
                                weights=(f"{p}.kv",), **b.wdt, layer=i, stack="decoder"), x)
            cross.append(b.add(f.kv_write(f"{p}.kv_write", B * S, model.kv_dim, kv_dtype=sc.kv_dtype, **b.dt,
                                          layer=i, stack="decoder"), kv))
        y = b.embed("decoder", B)
        for c in cross:
            b.g.add_edge(c, y)
        for i in range(model.n_layers):
            y = b.layer(y, "decoder", i, B, 1, 1, causal=True, cross_len=S)
        b.head(y, B)
        return b.g
    x = b.embed("decoder", B * S)
    for i in range(model.n_layers):
        x = b.layer(x, "decoder", i, B, S, S, causal=True, cross_len=None)
    b.head(x, B)
    return b.g


def lower_decode(model: ModelSpec, sc: Scenario, context: int, batch: int | None = None, step: int = 1,
                 cross_len: int | None = None) -> nx.DiGraph:
    """One decode step: ``batch`` new tokens each attending ``context`` keys (itself included).

    For encoder-decoder models ``context`` counts decoder tokens and ``cross_len`` (default:
    the scenario's prompt) the encoder positions every step cross-attends to."""
    B = batch or sc.batch
    if context < 1:
        raise ConfigError(f"decode context must be >= 1, got {context}")
    _check_len(model, context, "decode context")
    b = _Builder(model, sc, dict(phase="decode", step=step, batch=B, context_len=context))
    enc = (cross_len or sc.prompt) if model.arch == "encoder-decoder" else None
    x = b.embed("decoder", B)
    for i in range(model.n_layers):
        x = b.layer(x, "decoder", i, B, 1, context, causal=True, cross_len=enc)
    b.head(x, B)
    return b.g


def decode_contexts(model: ModelSpec, sc: Scenario) -> list[tuple[int, int]]:
    """(step, context) of every decode step of a generation: steps 1 .. gen − 1."""
    first_ctx = 1 if model.arch == "encoder-decoder" else sc.prompt
    return [(k, first_ctx + k) for k in range(1, sc.gen)]


def phase_steps(model: ModelSpec, sc: Scenario):
    """Yield every step graph of a generation: prefill, then decode steps 1 .. gen − 1."""
    yield lower_prefill(model, sc)
    for k, ctx in decode_contexts(model, sc):
        yield lower_decode(model, sc, context=ctx, step=k)
