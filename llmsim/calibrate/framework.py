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


def calls_per_op(model, phase: str = "decode", batch: int = 1, seq: int = 128) -> dict[str, dict[str, Any]]:
    """Per op kind: llmsim ops in the step, and kernels / host-only calls per op (2 decimals)."""
    import collections

    from llmsim.config.loader import make_scenario
    from llmsim.graph.lower import lower_decode, lower_prefill
    from llmsim.reference.timing import Runner

    sc = make_scenario({"batch": batch, "prompt": seq, "gen": 2})
    g = lower_prefill(model, sc) if phase == "prefill" else lower_decode(model, sc, context=seq)
    n_ops = collections.Counter(g.nodes[n]["op"].kind.value for n in g.nodes)
    seen = Runner(model, device="cpu").calls(phase, batch, seq)
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
        n = block()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(loops):
                block()
            best = min(best, (time.perf_counter() - t0) / loops)
    return best / n
