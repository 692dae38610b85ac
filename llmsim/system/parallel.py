"""Parallelism as graph transforms (Megatron-LM's tensor and pipeline parallelism).

* **Tensor parallel** over ``tp`` ranks: QKV and the FFN's gate/up GEMMs are split by columns,
  the attention output and FFN down GEMMs by rows, attention by heads (query and KV heads), the
  vocabulary of the embedding and the LM head by rows (Shoeybi et al., "Megatron-LM", 2019).
  One rank's step is the step of the *shard model* (heads, KV heads, d_ff and vocabulary / tp;
  norms and residuals replicated), lowered by the ordinary lowering, plus an all-reduce after
  the attention output GEMM, after the FFN down GEMM and after the embedding lookup, and an
  all-gather of the logits. Every rank runs the same graph, so the system simulates one.
* **Pipeline parallel** over ``pp`` stages and ``micro`` micro-batches: layer ``l`` of ``L`` runs
  on stage ``l·pp // L`` (ops outside the layers follow their producers: the embedding on the
  first stage, the head on the last); the batch is split into micro-batches, each a copy of
  the graph, and every value crossing a stage boundary is sent point to point. Stages are
  separate units, so micro-batch j's stage s overlaps micro-batch j+1's stage s−1 as data
  allows (GPipe's schedule, Huang et al. 2019); the bubble is what the engine leaves idle.

Transformed ops carry attrs ``stage`` (which stage's devices run them) and, for collectives,
``fn``, ``ranks``, ``port`` (``tp``: the TP group's fabric, ``pp``: the link to the next stage).
"""

from __future__ import annotations

import math
from dataclasses import replace

import networkx as nx

from llmsim.config.base import DType
from llmsim.config.model import ModelSpec
from llmsim.errors import ConfigError
from llmsim.graph.ops import Op, OpKind, TensorBytes


def collective(name: str, fn: str, nbytes: float, ranks: int, port: str, *, dtype: DType, layer: int = -1,
               stack: str = "", stage: int = 0) -> Op:
    """A collective (or point-to-point send) of ``nbytes`` per rank over ``ranks`` ranks."""
    return Op(name, OpKind.collective, (("bytes", int(nbytes)), ("ranks", ranks)), dtype, 0.0,
              TensorBytes(activation=nbytes), TensorBytes(activation=nbytes), layer=layer, stack=stack,
              attrs=(("fn", fn), ("port", port), ("stage", stage)))


def check_tp(model: ModelSpec, tp: int) -> None:
    if tp < 1:
        raise ConfigError(f"--tp must be >= 1, got {tp}")
    for what, n in (("n_heads", model.n_heads), ("n_kv_heads", model.kv_heads), ("d_ff", model.d_ff)):
        if n % tp:
            raise ConfigError(f"--tp {tp}: {model.name} has {what} = {n}, not divisible by {tp}")


def shard_model(model: ModelSpec, tp: int) -> ModelSpec:
    """What one of ``tp`` ranks holds and computes (see the module docstring)."""
    check_tp(model, tp)
    if tp == 1:
        return model
    return model.model_copy(update={
        "name": f"{model.name}/tp{tp}", "n_heads": model.n_heads // tp, "n_kv_heads": model.kv_heads // tp,
        "head_dim": model.hd, "d_ff": model.d_ff // tp, "vocab_size": -(-model.vocab_size // tp),
    })


def _insert_after(g: nx.DiGraph, v: str, op: Op) -> None:
    succ = list(g.successors(v))
    g.add_node(op.name, op=op)
    g.add_edge(v, op.name)
    for s in succ:
        g.remove_edge(v, s)
        g.add_edge(op.name, s)


def _row_parallel(name: str) -> bool:
    return name.endswith((".attn.out", ".ffn.down"))


def tensor_parallel(g: nx.DiGraph, tp: int) -> nx.DiGraph:
    """Add the TP collectives to the shard model's step graph ``g`` (in place; returns it)."""
    if tp == 1:
        return g
    for v in list(g.nodes):
        op: Op = g.nodes[v]["op"]
        out = op.write.activation
        if op.kind == OpKind.embedding or (op.kind == OpKind.matmul and _row_parallel(v)):
            fn, nbytes = "all_reduce", out
        elif v.endswith("lm_head"):
            fn, nbytes = "all_gather", out * tp
        else:
            continue
        _insert_after(g, v, collective(f"{v}.{fn}", fn, nbytes, tp, "tp", dtype=op.dtype, layer=op.layer,
                                       stack=op.stack))
    return g


def check_ep(model: ModelSpec, ep: int, batch: int) -> None:
    if ep < 1:
        raise ConfigError(f"--ep must be >= 1, got {ep}")
    if ep == 1:
        return
    if model.moe is None:
        raise ConfigError(f"--ep {ep}: {model.name} has no experts (expert parallel needs a MoE model)")
    if model.moe.experts % ep:
        raise ConfigError(f"--ep {ep}: {model.name} has {model.moe.experts} experts, not divisible by {ep}")
    if batch % ep:
        raise ConfigError(f"--ep {ep}: the batch ({batch}) must split evenly over the expert-parallel ranks")


def _requant(op: Op, M: int, experts: int, expert_rows: int) -> Op:
    """The expert GEMM ``op`` with ``M`` rows over ``experts`` local weight sets (through the factory)."""
    from llmsim.graph import factory as f

    keep = {k: op.attr(k) for k in ("group_size", "scale_dtype", "zero_point", "out_dtype") if op.attr(k) is not None}
    return f.matmul(op.name, M, op.dim("K"), op.dim("N"), dtype=op.dtype, weight_dtype=op.weight_dtype,
                    bias=op.attr("bias"), experts=experts, weights=op.attr("weights"),
                    expert_rows=min(M, expert_rows), layer=op.layer, stack=op.stack, **keep)


def expert_parallel(g: nx.DiGraph, model: ModelSpec, ep: int, tokens: int, skew: float,
                    local: int | None = None) -> nx.DiGraph:
    """Experts over ``ep`` ranks, attention data-parallel (DeepSpeed-MoE; Rajbhandari et al. 2022).

    ``g`` is one rank's step (its ``tokens / ep`` tokens). The rank holding the most popular experts
    (rank 0 under a Zipf ``skew``) sets the time: its expert GEMMs take the rows routed to its
    ``E/ep`` experts from all ``tokens`` tokens (``llmsim.graph.moe`` statistics), between two
    all-to-alls (dispatch, combine) sized by that rank's larger direction: its local tokens' ``top_k``
    copies of ``d_model`` out, or the rows routed to its experts in. ``local``: that rank's own tokens
    (default ``tokens / ep``; a serving iteration's sequences need not split evenly)."""
    if ep == 1:
        return g
    from llmsim.graph.moe import routing

    E, k = model.moe.experts, model.moe.top_k
    r = routing(E, k, tokens, skew)
    mine = r.pick_probability[: E // ep]
    rows = max(1, math.ceil(tokens * sum(mine) - 1e-9))
    distinct = max(1, min(E // ep, round(sum(1.0 - (1.0 - q) ** tokens for q in mine))))
    busiest = max(1, math.ceil(tokens * max(mine) - 1e-9))
    for v in list(g.nodes):
        op: Op = g.nodes[v]["op"]
        if op.kind == OpKind.matmul and v.endswith((".ffn.gate", ".ffn.up", ".ffn.down")):
            g.nodes[v]["op"] = _requant(op, rows, distinct, busiest)
        elif op.kind == OpKind.activation and v.endswith(".ffn.act"):
            from llmsim.graph import factory as f

            g.nodes[v]["op"] = f.activation(v, rows, op.dim("width"), op.attr("fn"), dtype=op.dtype,
                                            layer=op.layer, stack=op.stack)
    for v in list(g.nodes):
        op = g.nodes[v]["op"]
        if v.endswith((".ffn.router_topk", ".ffn.down")):
            # the busiest rank sends its tokens' k copies and receives the rows routed to its experts
            mine_in = tokens // ep if local is None else local
            nbytes = max(mine_in * k, rows) * model.d_model * op.dtype.bytes
            _insert_after(g, v, collective(f"{v}.all_to_all", "all_to_all", nbytes, ep, "tp", dtype=op.dtype,
                                           layer=op.layer, stack=op.stack))
    return g


def place(g: nx.DiGraph, placement: dict[str, str], main: str) -> nx.DiGraph:
    """Heterogeneous placement (AttAcc-style): ops run on the device group their kind is placed on
    (``placement``: op kind -> group, else ``main``), and every value crossing between groups is
    sent point to point on the crossing link. An edge carries what the consumer reads of the
    producer's output: min(producer's activation output, consumer's activation input)."""
    if not placement:
        return g

    def grp(v: str) -> str:
        op = g.nodes[v]["op"]
        return main if op.kind == OpKind.collective else placement.get(op.kind.value, main)

    for a, b in list(g.edges):
        ga, gb = grp(a), grp(b)
        if ga == gb:
            continue
        pa, pb = g.nodes[a]["op"], g.nodes[b]["op"]
        name = f"{b}.from_{ga}" if f"{b}.from_{ga}" not in g else f"{a}.to_{b}"
        g.add_node(name, op=collective(name, "p2p", min(pa.write.activation, pb.read.activation), 2, "cross",
                                       dtype=pa.dtype, layer=pb.layer, stack=pb.stack))
        g.remove_edge(a, b)
        g.add_edge(a, name)
        g.add_edge(name, b)
    return g


def _with_stage(op: Op, name: str, stage: int) -> Op:
    attrs = tuple((k, v) for k, v in op.attrs if k != "stage") + (("stage", stage),)
    return replace(op, name=name, attrs=attrs)


def stage_of_layers(n_layers: int, pp: int) -> list[int]:
    if not 1 <= pp <= n_layers:
        raise ConfigError(f"--pp must be in 1..{n_layers} (the model's layers), got {pp}")
    return [layer * pp // n_layers for layer in range(n_layers)]


def pipeline(graphs: list[nx.DiGraph], pp: int, n_layers: int) -> nx.DiGraph:
    """One step of ``len(graphs)`` micro-batches over ``pp`` stages (see the module docstring)."""
    stages = stage_of_layers(n_layers, pp)
    out = nx.DiGraph(**graphs[0].graph)
    prev_tail: dict[int, list[str]] = {}  # per stage: the previous micro-batch's last ops there
    out.graph["batch"] = sum(g.graph["batch"] for g in graphs)
    out.graph["micro_batches"], out.graph["pp"] = len(graphs), pp
    for j, g in enumerate(graphs):
        pre = f"mb{j}." if len(graphs) > 1 else ""
        stage: dict[str, int] = {}
        for v in nx.lexicographical_topological_sort(g):
            op: Op = g.nodes[v]["op"]
            preds = [stage[p] for p in g.predecessors(v)]
            stage[v] = stages[op.layer] if op.layer >= 0 and op.stack != "encoder" else max(preds, default=0)
            out.add_node(pre + v, op=_with_stage(op, pre + v, stage[v]))
        sent: dict[tuple[str, int], str] = {}
        for a, b in g.edges:
            sa, sb = stage[a], stage[b]
            src = pre + a
            for s in range(sa, sb):  # a value skipping stages is forwarded stage by stage
                key = (a, s)
                if key not in sent:
                    op, name = g.nodes[a]["op"], f"{pre}{a}.send{s}"
                    out.add_node(name, op=collective(name, "p2p", op.write.activation, 2, "pp", dtype=op.dtype,
                                                     layer=op.layer, stack=op.stack, stage=s))
                    out.add_edge(src, name)
                    sent[key] = name
                src = sent[key]
            out.add_edge(src, pre + b)
        # a stage runs its micro-batches in order, as one stream issues them: micro-batch j's first ops
        # on a stage wait for micro-batch j-1's last ops there (GPipe's schedule, not an op-by-op interleave)
        for s in range(pp if pp > 1 else 0):  # one stage: micro-batches interleave (GPU/PIM ping-pong)
            mine = [v for v in g.nodes if stage[v] == s]
            head = [pre + v for v in mine if all(stage[u] != s for u in g.predecessors(v))]
            for t in prev_tail.get(s, []):
                for h in head:
                    out.add_edge(t, h)
            prev_tail[s] = [pre + v for v in mine if all(stage[u] != s for u in g.successors(v))]
    return out


def micro_batch_sizes(batch: int, micro: int) -> list[int]:
    if not 1 <= micro <= batch:
        raise ConfigError(f"--micro-batches must be in 1..{batch} (the batch), got {micro}")
    base = batch // micro
    return [base + (1 if j < batch % micro else 0) for j in range(micro)]


def bubble_closed_form(pp: int, micro: int) -> float:
    """GPipe's bubble fraction with equal stages and free links: (p − 1)/(m + p − 1)."""
    return (pp - 1) / (micro + pp - 1)


__all__ = ["bubble_closed_form", "check_ep", "check_tp", "collective", "expert_parallel", "micro_batch_sizes",
           "pipeline", "place", "shard_model", "stage_of_layers", "tensor_parallel"]
