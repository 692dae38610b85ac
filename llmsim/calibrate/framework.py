"""What an eager framework runs per llmsim op, and what a call that launches no kernel costs the host.

* :func:`calls_per_op` profiles one step of the PyTorch reference (``llmsim.reference``) with
  every framework call tagged by the llmsim op kind it serves, and divides the kernels and the
  host-only calls (views, reshapes, slices, selects) by the number of ops of that kind in
  llmsim's graph of the same step. The result is ``framework.calls_per_op`` of a preset: a
  count, not a timing, so it is the same on any host.
* :func:`host_call_seconds` times the reference attention block's host-only calls back to
  back (best of repeats): ``framework.eager_host_call_s``. Views never reach the device, so this
  runs on tensors of the device the framework drives (CPU tensors stand in when none is given).
"""

from __future__ import annotations

import time
from typing import Any


def _best_of(fn, repeats: int, loops: int, sync=lambda: None, warmup: int = 1) -> float:
    """Best over ``repeats`` of the mean time of ``loops`` back-to-back calls (``sync`` closes each run)."""
    for _ in range(warmup):
        fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        sync()
        best = min(best, (time.perf_counter() - t0) / loops)
    return best


def calls_per_op(model, phase: str = "decode", batch: int = 1, seq: int = 128) -> dict[str, dict[str, Any]]:
    """Per op kind: llmsim ops in the step, and kernels / host-only calls per op (2 decimals)."""
    import collections

    from llmsim.config.loader import make_scenario
    from llmsim.graph.lower import lower_decode, lower_prefill
    from llmsim.reference.timing import Runner

    sc = make_scenario({"batch": batch, "prompt": seq, "gen": 2})
    g = lower_prefill(model, sc) if phase == "prefill" else lower_decode(model, sc, context=seq)
    seen = Runner(model, device="cpu").calls(phase, batch, seq)
    n_ops: collections.Counter = collections.Counter()
    for n in g.nodes:  # an op counts under kind.fn when the reference labels that function apart
        op = g.nodes[n]["op"]
        key = f"{op.kind.value}.{op.attr('fn')}"
        n_ops[key if key in seen else op.kind.value] += 1
    out = {}
    for kind in sorted(set(n_ops) | set(seen)):
        n, c = n_ops.get(kind, 0), seen.get(kind, {})
        if n == 0:
            out[kind] = {"ops": 0, "unattributed_calls": int(c.get("calls", 0))}
            continue
        out[kind] = {"ops": n, "kernels": round(c.get("kernels", 0) / n, 2),
                     "host_calls": round(c.get("host_only", 0) / n, 2)}
    return out


def host_call_seconds(device: str = "cpu", repeats: int = 7, loops: int = 2000) -> float:
    """Mean host time of one host-only framework call: the reference attention block's head split
    and cache views (split, view, transpose, select, slice, reshape of a contiguous output)."""
    import torch

    dev = torch.device(device)
    B, S, H, hd, T = 1, 1, 12, 64, 256
    qkv = torch.zeros(B, S, 3 * H * hd, device=dev)
    cache = torch.zeros(2, 2, B, H, T, hd, device=dev)
    o = torch.zeros(B, H, S, hd, device=dev)

    def block() -> int:
        q, k, v = qkv.split([H * hd] * 3, dim=-1)
        q = q.view(B, S, H, hd).transpose(1, 2)
        k = k.view(B, S, H, hd).transpose(1, 2)
        v = v.view(B, S, H, hd).transpose(1, 2)
        c = cache[1]
        c[0, :, :, :T], c[1, :, :, :T]  # the keys and values views
        o.transpose(1, 2).reshape(B, S, H * hd)
        return 14  # top-level calls above: split 1, view 3, transpose 3, select 3, slice 2, transpose 1, reshape 1

    with torch.inference_mode():
        return _best_of(block, repeats, loops) / block()


_TINY = [(["n_layers"], 1), (["d_model"], 64), (["n_heads"], 2), (["d_ff"], 256), (["vocab_size"], 128)]


def op_host_seconds(device: str = "cpu", model: str = "gpt2", repeats: int = 7, loops: int = 300,
                    context: int = 16) -> dict[str, float]:
    """Back-to-back time of each op kind's framework calls, made by the reference's own code on tiny
    tensors (a 1-layer, 64-wide ``model``), one decode token at position ``context − 1``: what the host
    spends issuing one op of that kind (its kernels, views and Python), when the device keeps up.

    On a GPU the calls return once their kernels are queued, so this is the eager host cost the
    ``eager_op_s`` field holds; on a CPU the tiny kernels' own work is included (microseconds)."""
    import torch

    from llmsim.config.loader import load_model
    from llmsim.reference.model import ReferenceModel

    dev = torch.device(device)
    m = ReferenceModel(load_model(model, _TINY)).to(dev).eval()
    layer, spec = m.layers[0], m.spec
    start = context - 1
    x = torch.randn(1, 1, spec.d_model, device=dev)
    h = torch.randn(1, 1, layer.up.out_features, device=dev)
    ids = torch.randint(0, spec.vocab_size, (1, 1), device=dev)
    cache = m.new_cache(1, context)[0]
    qkv = layer.qkv(x)
    q, k, v = layer.split_heads(qkv)

    def attention():
        qq, _, _ = layer.split_heads(qkv)
        c = cache  # the layer's cache slice is taken per layer in the step: one select
        return layer.attend(qq, c, start)

    def embedding():
        e = m.tok(ids)
        return e + m.positions(start, 1) if m.pos is not None else e

    g = h if layer.gate is not None else None
    blocks = {
        "matmul": lambda: layer.out(x),
        "norm": lambda: layer.norm1(x),
        "activation": lambda: layer.act(h, g),
        "elementwise": lambda: x + x,
        "embedding": embedding,
        "kv_write": lambda: layer.write_kv(cache, k, v, start),
        "attention": attention,
    }

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    blocks["layer"] = lambda: layer(x, cache, start)
    with torch.inference_mode():
        return {kind: _best_of(fn, repeats, loops, sync, warmup=20) for kind, fn in blocks.items()}


def eager_op_seconds(device: str = "cpu", model: str = "gpt2", **kw) -> tuple[dict[str, float], dict[str, float]]:
    """``framework.eager_op_s``: each op kind's host time in the context of a decoder layer.

    A layer issued back to back costs more than its ops issued one kind at a time: the layer's own
    Python (module calls, method calls, argument handling) sits between them. The layer's ops are
    scaled by one factor so that they add up to the measured layer; ops outside layers (embedding,
    final norm, LM head) get the same factor. Returns (eager_op_s, raw measurements incl. ``layer``
    and ``scale``). Only microbenchmarks of the reference's own blocks enter; no step is fitted."""
    from llmsim.config.loader import load_model, make_scenario
    from llmsim.graph.lower import lower_decode

    raw = op_host_seconds(device, model, **kw)
    g = lower_decode(load_model(model, _TINY), make_scenario({"batch": 1, "prompt": 8, "gen": 2}), context=16)
    in_layer = [g.nodes[n]["op"].kind.value for n in g.nodes if g.nodes[n]["op"].layer == 0]
    scale = raw["layer"] / sum(raw[k] for k in in_layer)
    ops = {k: v * scale for k, v in raw.items() if k != "layer"}
    return ops, raw | {"scale": scale}
