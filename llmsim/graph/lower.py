"""Lowering a model + scenario to op graphs, one networkx DiGraph per phase step.

* prefill: ``batch × prompt`` tokens through every layer (encoder-decoder: the encoder over
  the prompt, the cross-attention K/V of every decoder layer, then the first decoder token);
* decode step k: ``batch × 1`` new token attending ``context`` keys (the new one included).

Nodes are op names; ``G.nodes[name]["op"]`` is the frozen :class:`Op`. Edges are data
dependencies. ``G.graph`` holds ``phase``, ``batch``, ``seq_len`` (prefill) or
``context_len`` (decode) and ``step``. The LM head runs on the last position only.
"""

from __future__ import annotations

import math

import networkx as nx

from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.errors import ConfigError
from llmsim.graph import factory as f
from llmsim.graph.moe import routing as moe_routing
from llmsim.graph.ops import Op


class _Builder:
    def __init__(self, model: ModelSpec, sc: Scenario, graph_attrs: dict):
        self.m, self.sc = model, sc
        self.g = nx.DiGraph(**graph_attrs)
        self.dt = dict(dtype=sc.act_dtype)
        # norm scales and embedding tables stay at the activation dtype when GEMM weights are quantised
        self.wdt = dict(dtype=sc.act_dtype, weight_dtype=sc.act_dtype if sc.weights_quantised else sc.weight_dtype)
        self.wmm = dict(dtype=sc.matmul_dtype, weight_dtype=sc.weight_dtype)  # weighted GEMMs
        if sc.weights_quantised:
            self.wmm |= dict(group_size=sc.group_size, scale_dtype=sc.scale_dtype, zero_point=sc.zero_point)
        if sc.matmul_dtype != sc.act_dtype:
            self.wmm["out_dtype"] = sc.act_dtype

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
            qkv = self.add(f.matmul(f"{p}.{tag}.qkv", rows, m.d_model, m.q_dim + 2 * kv, bias=m.has_qkv_bias,
                                    weights=(f"{p}.{tag}.qkv",), **self.wmm, **meta), x)
            if m.qk_norm:
                qkv = self.add(f.norm(f"{p}.{tag}.qk_norm", rows, m.q_dim + kv, m.norm, weights=(f"{p}.{tag}.qk_norm",),
                                      **self.wdt, **meta), qkv)
            q_src = qkv
            if m.positions == "rotary":
                q_src = self.add(f.elementwise(f"{p}.{tag}.rope", rows, m.q_dim + kv, "rope", **self.dt, **meta), qkv)
            kvw = self.add(f.kv_write(f"{p}.{tag}.kv_write", rows, kv, kv_dtype=self.sc.kv_dtype, **self.dt, **meta),
                           q_src)
            deps = (q_src, kvw)
        else:  # cross-attention: K/V of the encoder output were cached in prefill
            q = self.add(f.matmul(f"{p}.{tag}.q", rows, m.d_model, m.q_dim, bias=m.bias,
                                  weights=(f"{p}.{tag}.q",), **self.wmm, **meta), x)
            deps = (q,)
        window = m.sliding_window if cross_rows is None and causal else None
        att = self.add(f.attention(f"{p}.{tag}.sdpa", B, m.n_heads, m.kv_heads, Sq, Skv, m.hd, causal=causal,
                                   window=window, kv_dtype=self.sc.kv_dtype, **self.dt, **meta), *deps)
        return self.add(f.matmul(f"{p}.{tag}.out", rows, m.q_dim, m.d_model, bias=m.bias,
                                 weights=(f"{p}.{tag}.out",), **self.wmm, **meta), att)

    def ffn_block(self, x: str, p: str, stack: str, layer: int, rows: int) -> str:
        m, meta = self.m, dict(layer=layer, stack=stack)
        rows_e, experts, route = rows, 1, {}
        if m.moe:  # router logits, softmax, top-k as k arg-max passes; expert GEMMs grouped by expert
            E, k = m.moe.experts, m.moe.top_k
            logits = self.add(f.matmul(f"{p}.ffn.router", rows, m.d_model, E, weights=(f"{p}.ffn.router",),
                                       **self.wmm, **meta), x)
            probs = self.add(f.activation(f"{p}.ffn.router_softmax", rows, E, "softmax", **self.dt, **meta), logits)
            topk = self.add(f.activation(f"{p}.ffn.router_topk", rows * k, E, "max", **self.dt, **meta), probs)
            x = topk  # the experts read the normed input once the routes are known
            r = moe_routing(E, k, rows, self.sc.moe_skew)
            rows_e = rows * k
            experts = max(1, min(E, round(r.distinct_experts)))
            route = {"expert_rows": math.ceil(r.max_expert_rows - 1e-9)}
        mm = dict(bias=m.bias, experts=experts, **self.wmm, **meta) | route
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
                                  **self.wmm), x)
        return x

    def head(self, x: str, B: int) -> str:
        m = self.m
        if m.final_norm:
            x = self.add(f.norm("decoder.final_norm", B, m.d_model, m.norm, weights=("final_norm",), **self.wdt), x)
        if m.d_embed != m.d_model:
            x = self.add(f.matmul("decoder.project_out", B, m.d_model, m.d_embed, weights=("project_out",),
                                  **self.wmm), x)
        if m.tied_embeddings:  # the head reads the embedding table, stored as the table is
            return self.add(f.matmul("decoder.lm_head", B, m.d_embed, m.vocab_size, weights=("tok_embed",),
                                     **self.wdt), x)
        return self.add(f.matmul("decoder.lm_head", B, m.d_embed, m.vocab_size, weights=("lm_head",), **self.wmm), x)


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
                                weights=(f"{p}.kv",), **b.wmm, layer=i, stack="decoder"), x)
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


def lower_verify(model: ModelSpec, sc: Scenario, context: int, tokens: int, batch: int | None = None,
                 heads: int = 0, step: int = 1) -> nx.DiGraph:
    """A speculative-decoding verification step: ``tokens`` new positions per sequence (the last
    accepted token and the drafted ones), the last attending ``context`` keys; logits for every
    position. ``heads``: Medusa heads (a residual SiLU block and an LM head each, Cai et al.
    2024, arXiv 2401.10774) run on the last position to draft the next iteration."""
    B = batch or sc.batch
    if model.arch != "decoder":
        raise ConfigError(f"speculative decoding needs a decoder-only model, {model.name} is {model.arch}")
    if context < tokens:
        raise ConfigError(f"verification of {tokens} tokens needs context >= {tokens}, got {context}")
    _check_len(model, context, "verification context")
    b = _Builder(model, sc, dict(phase="decode", step=step, batch=B, context_len=context, tokens=tokens))
    x = b.embed("decoder", B * tokens)
    for i in range(model.n_layers):
        x = b.layer(x, "decoder", i, B, tokens, context, causal=True, cross_len=None)
    b.head(x, B * tokens)
    d = model.d_model
    for j in range(heads):
        p = f"medusa.H{j}"
        r = b.add(f.matmul(f"{p}.res", B, d, d, bias=True, weights=(f"{p}.res",), **b.wmm), x)
        a = b.add(f.activation(f"{p}.act", B, d, "silu", **b.dt), r)
        s = b.add(f.elementwise(f"{p}.residual", B, d, "add", **b.dt), a)
        b.add(f.matmul(f"{p}.lm_head", B, d, model.vocab_size, weights=(f"{p}.lm_head",), **b.wmm), s)
    return b.g


def lower_decode_exit(model: ModelSpec, sc: Scenario, context: int, depth: int, batch: int | None = None,
                      step: int = 1) -> nx.DiGraph:
    """A decode step whose tokens exit after the first ``depth`` layers (early exit, CALM: Schuster
    et al. 2022, arXiv 2207.07061; SkipDecode: Del Corro et al. 2023, arXiv 2307.02628). The
    skipped layers still get the new token's K and V, projected from the exited hidden state
    (state copying), so later tokens that run those layers find a complete cache."""
    m, B = model, batch or sc.batch
    if m.arch != "decoder":
        raise ConfigError(f"early exit needs a decoder-only model, {m.name} is {m.arch}")
    if not 1 <= depth <= m.n_layers:
        raise ConfigError(f"--exit: depth {depth} is outside 1..{m.n_layers} ({m.name}'s layers)")
    if context < 1:
        raise ConfigError(f"decode context must be >= 1, got {context}")
    _check_len(m, context, "decode context")
    b = _Builder(m, sc, dict(phase="decode", step=step, batch=B, context_len=context, layers_run=depth))
    x = b.embed("decoder", B)
    for i in range(depth):
        x = b.layer(x, "decoder", i, B, 1, context, causal=True, cross_len=None)
    for i in range(depth, m.n_layers):
        p, meta = f"decoder.L{i}.self.attn", dict(layer=i, stack="decoder")
        h = b.add(f.norm(f"decoder.L{i}.self.norm", B, m.d_model, m.norm, weights=(f"decoder.L{i}.self.norm",),
                         **b.wdt, **meta), x) if m.norm_position == "pre" else x
        kv = b.add(f.matmul(f"{p}.kv_copy", B, m.d_model, 2 * m.kv_dim, bias=m.has_qkv_bias,
                            weights=(f"{p}.qkv",), **b.wmm, **meta), h)
        if m.positions == "rotary":
            kv = b.add(f.elementwise(f"{p}.k_rope", B, m.kv_dim, "rope", **b.dt, **meta), kv)
        b.add(f.kv_write(f"{p}.kv_write", B, m.kv_dim, kv_dtype=sc.kv_dtype, **b.dt, **meta), kv)
    b.head(x, B)
    return b.g


def phase_steps(model: ModelSpec, sc: Scenario):
    """Yield every step graph of a generation: prefill, then decode steps 1 .. gen − 1."""
    yield lower_prefill(model, sc)
    for k, ctx in decode_contexts(model, sc):
        yield lower_decode(model, sc, context=ctx, step=k)
