"""Where a generation's main memory goes: weights, KV cache, activations, what is left free,
and the largest batch and context that would still fit.

Weights and the KV cache use the same formulas the pre-simulation capacity check uses
(:func:`llmsim.engine.make_device`); activations are the largest activation working set of
one op of the prefill step (its activation inputs plus outputs), read from the lowered graph,
so they grow with batch × prompt as the graph does.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from llmsim.config.model import ModelSpec
from llmsim.config.quant import stored_weight_bytes
from llmsim.config.scenario import Scenario


def _kv_bytes(model: ModelSpec, sc: Scenario, batch: int, context: int) -> float:
    per_tok = model.kv_bytes_per_token(sc.kv_dtype.bytes)
    kv = batch * context * per_tok
    if model.arch == "encoder-decoder":
        kv += batch * sc.prompt * per_tok
    return kv


def peak_activation_bytes(graph: nx.DiGraph) -> float:
    """The largest activation bytes (read + written) of any single op of a step graph."""
    best = 0.0
    for _, data in graph.nodes(data=True):
        op = data.get("op")
        if op is not None:
            best = max(best, op.read.activation + op.write.activation)
    return best


def memory_footprint(hw: Any, model: ModelSpec, sc: Scenario, prefill: nx.DiGraph) -> dict[str, Any]:
    """Bytes of main memory by use, free bytes, and the largest batch (at this context) and the
    largest context (at this batch) that fit. ``prefill``: the scenario's lowered prefill graph."""
    cap = float(hw.memory.capacity_bytes)
    weights = stored_weight_bytes(model, sc)  # quantised weights with their scales and zero points
    context = sc.prompt + sc.gen
    kv = _kv_bytes(model, sc, sc.batch, context)
    act = peak_activation_bytes(prefill)
    free = cap - weights - kv - act
    per_seq = (kv + act) / sc.batch
    max_batch = int((cap - weights) // per_seq) if per_seq > 0 and cap > weights else 0
    kv_tok = sc.batch * model.kv_bytes_per_token(sc.kv_dtype.bytes)
    room = cap - weights - act - (_kv_bytes(model, sc, sc.batch, 0) if model.arch == "encoder-decoder" else 0.0)
    max_context = int(room // kv_tok) if kv_tok > 0 and room > 0 else 0
    limit = "memory"
    if model.positions != "relative" and max_context > model.max_positions:
        max_context, limit = model.max_positions, "max_positions"
    return {
        "capacity_bytes": cap, "weights_bytes": weights, "kv_cache_bytes": kv, "activations_bytes": act,
        "free_bytes": free, "max_batch": max_batch, "max_context": max_context, "max_context_limit": limit,
        "context": context,
    }


def step_footprint(hw: Any, model: ModelSpec, sc: Scenario, phase: str, batch: int, seq: int | None = None,
                   context: int | None = None) -> dict[str, Any]:
    """:func:`memory_footprint` of one step (``llmsim step``), counted as ``llmsim run`` counts a
    generation that has reached it: ``batch`` sequences of ``seq`` prompt tokens (a prefill) or of
    ``context`` + 1 tokens (a decode step writes its token's K/V; an encoder-decoder's decoder tokens
    on top of its encoder length, the scenario's prompt); activations from that step's own graph."""
    from llmsim.graph.lower import lower_decode, lower_prefill

    if phase == "prefill":
        g = lower_prefill(model, sc, batch=batch, seq=seq)
        step_sc = sc.model_copy(update={"batch": batch, "prompt": int(seq), "gen": 0})
    else:
        c = int(context or sc.prompt)
        g = lower_decode(model, sc, context=c, batch=batch)
        if model.arch == "encoder-decoder":
            step_sc = sc.model_copy(update={"batch": batch, "gen": c + 1})
        else:
            step_sc = sc.model_copy(update={"batch": batch, "prompt": c + 1, "gen": 0})
    return memory_footprint(hw, model, step_sc, g)
