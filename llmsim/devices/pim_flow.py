"""PIM-GPT's data flow as step-graph dependencies: the FFN as a pipeline of tiles.

The lowering gives one op per matrix product, so on PIM an FFN is a chain: FFN-up on the banks,
GELU on the ASIC, FFN-down on the banks, and the ASIC waits for the banks and the banks for the
ASIC. The data do not require that. Output column n of FFN-up is finished when its own MACs are;
GELU is element-wise; and FFN-down's K is tiled to the global buffer anyway (the buffer holds one
``tile``-element slice of its input vector), so its K-tile j needs only GELU's slice j. Hence,
with ``tile`` = the global buffer in elements (docs/pim.md):

    up_j  (banks: columns j·tile … (j+1)·tile of FFN-up)          after the FFN's input
    act_j (ASIC: GELU of that slice)                               after up_j
    down_j (banks: FFN-down over K-slice j, a partial output)      after act_j
    acc_j (ASIC: add partial output j to the running sum)          after down_j and acc_{j-1}

The banks run up_{j+1} while the ASIC runs act_j, and down_{j+1} while it adds acc_j; what still
waits is real: the residual add needs the whole sum, the norm a whole vector. The engine's units
and dependencies decide the overlap; nothing here computes a time.

Only plain FFNs are rewritten (one expert, unquantised weights, a pointwise activation between two
weighted products); anything else keeps its chain.
"""

from __future__ import annotations

import networkx as nx

from llmsim.graph import factory as f
from llmsim.graph.ops import Op, OpKind

_POINTWISE = ("gelu", "relu", "silu")


def _plain_matmul(op: Op) -> bool:
    return (op.kind == OpKind.matmul and op.dim("experts") == 1 and op.attr("weighted", True)
            and op.attr("scale_dtype") is None and op.attr("expert_rows") is None and op.attr("out_dtype") is None)


def _ffn_at(g: nx.DiGraph, up: str) -> tuple[str, str] | None:
    """(activation, down) when ``up`` starts a plain FFN chain, else None."""
    u = g.nodes[up]["op"]
    if not _plain_matmul(u) or g.out_degree(up) != 1:
        return None
    act = next(iter(g.successors(up)))
    a = g.nodes[act]["op"]
    if a.kind != OpKind.activation or a.attr("fn") not in _POINTWISE or g.in_degree(act) != 1 \
            or a.dim("width") != u.dim("N") or g.out_degree(act) != 1:
        return None
    down = next(iter(g.successors(act)))
    d = g.nodes[down]["op"]
    if not _plain_matmul(d) or d.dim("K") != u.dim("N") or g.in_degree(down) != 1:
        return None
    return act, down


def _mm(op: Op, name: str, K: int, N: int, bias: bool) -> Op:
    return f.matmul(name, op.dim("M"), K, N, dtype=op.dtype, weight_dtype=op.weight_dtype, bias=bias,
                    weights=op.attr("weights", ()), layer=op.layer, stack=op.stack)


def _tiles(up: Op, act: Op, down: Op, tile: int) -> list[tuple[Op, tuple[str, ...]]]:
    """The FFN's tile ops in issue order, each with its in-FFN dependencies."""
    N, bounds = up.dim("N"), list(range(0, up.dim("N"), tile))
    out: list[tuple[Op, tuple[str, ...]]] = []
    acc = None
    for j, lo in enumerate(bounds):
        w, last = min(tile, N - lo), j == len(bounds) - 1
        u = _mm(up, f"{up.name}#{j:03d}", up.dim("K"), w, bool(up.attr("bias")))
        a = f.activation(f"{act.name}#{j:03d}", act.dim("rows"), w, act.attr("fn"), dtype=act.dtype,
                         layer=act.layer, stack=act.stack)
        d = _mm(down, f"{down.name}#{j:03d}", w, down.dim("N"), bool(down.attr("bias")) and last)
        out += [(u, ()), (a, (u.name,)), (d, (a.name,))]
        if acc is None:
            acc = d.name
        else:
            s = f.elementwise(f"{down.name}.acc#{j:03d}", down.dim("M"), down.dim("N"), "add", dtype=down.dtype,
                              layer=down.layer, stack=down.stack)
            out.append((s, (acc, d.name)))
            acc = s.name
    return out


def pipeline_ffn(g: nx.DiGraph, buffer_bytes: float, keep: set[str] = frozenset()) -> nx.DiGraph:
    """A copy of ``g`` with every plain FFN (none of whose ops is in ``keep``) split into tiles of one
    global buffer (``buffer_bytes`` / activation bytes elements); ``g`` itself when there is none."""
    found, tiles = {}, {}
    for v in g.nodes:
        if v in keep or g.nodes[v]["op"].kind != OpKind.matmul:
            continue
        hit = _ffn_at(g, v)
        op = g.nodes[v]["op"]
        tile = int(buffer_bytes // op.dtype.bytes)
        if hit and not keep & set(hit) and 0 < tile < op.dim("N"):
            found[v], tiles[v] = hit, tile
    if not found:
        return g
    skip = {x for v, (a, d) in found.items() for x in (a, d)}
    out = nx.DiGraph(**g.graph)
    tail: dict[str, str] = {}  # replaced node -> node that now produces its output
    for v in g.nodes:
        if v in skip:
            continue
        ins = [tail.get(p, p) for p in g.predecessors(v)]
        if v not in found:
            out.add_node(v, op=g.nodes[v]["op"])
            out.add_edges_from((p, v) for p in ins)
            continue
        act, down = found[v]
        ops = _tiles(g.nodes[v]["op"], g.nodes[act]["op"], g.nodes[down]["op"], tiles[v])
        for op, deps in ops:
            out.add_node(op.name, op=op)
            out.add_edges_from((d, op.name) for d in (deps or ins))
        tail[down] = ops[-1][0].name
    return out
