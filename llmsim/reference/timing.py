"""Timing prefill and decode steps of the reference model (median of repeated runs after warm-up).

* prefill (B, S): ``B × S`` prompt tokens into an empty static cache; returns last-position logits.
* decode (B, C): one new token per sequence at position ``C − 1`` attending ``C`` keys (the
  cache holds ``C − 1`` earlier positions, filled with random values: timing does not depend
  on their content) — the same step llmsim's ``lower_decode(context=C)`` describes.

CUDA: eager or CUDA-graph replay (``torch.cuda.graph``), timed with CUDA events. CPU: eager
only, timed with ``time.perf_counter``; CPU defaults to fp32 (fp16 GEMMs are slow or missing
on CPUs), and the dtype used is recorded with every measurement.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from llmsim.config.model import ModelSpec
from llmsim.errors import LlmsimError
from llmsim.reference.model import ReferenceModel

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Measurement:
    """One timed case. ``seconds`` is the median; ``samples`` every timed run."""

    phase: str
    batch: int
    seq: int  # prompt length (prefill) or context C (decode)
    device: str
    mode: str
    dtype: str
    seconds: float
    samples: list[float] = field(default_factory=list)
    profile_s: dict[str, float] = field(default_factory=dict)
    host_s: float | None = None  # CUDA: median host time to issue the step (returns before the GPU finishes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Runner:
    """Holds one reference model on one device/dtype and times its steps."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", dtype: str | None = None, seed: int = 0):
        if device == "cuda" and not torch.cuda.is_available():
            raise LlmsimError("--device cuda: no CUDA device is visible to PyTorch")
        if device not in ("cpu", "cuda"):
            raise LlmsimError(f"--device {device}: expected cpu or cuda")
        self.dtype_name = dtype or ("fp16" if device == "cuda" else "fp32")
        if self.dtype_name not in DTYPES:
            raise LlmsimError(f"reference dtype {self.dtype_name}: one of {', '.join(DTYPES)}")
        self.spec, self.device = spec, torch.device(device)
        self.model = ReferenceModel(spec, seed=seed).to(self.device, DTYPES[self.dtype_name]).eval()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def step_fn(self, phase: str, batch: int, seq: int):
        """A no-argument callable running one step on static inputs (a fresh cache per case)."""
        s = self.spec
        if phase == "prefill":
            cache = self.model.new_cache(batch, seq)
            ids = torch.randint(0, s.vocab_size, (batch, seq), device=self.device)
            start = 0
        elif phase == "decode":
            cache = self.model.new_cache(batch, seq)
            cache.normal_()
            ids = torch.randint(0, s.vocab_size, (batch, 1), device=self.device)
            start = seq - 1
        else:
            raise LlmsimError(f"phase {phase}: expected prefill or decode")

        def run():
            return self.model(ids, cache, start)

        return run

    def time(self, phase: str, batch: int, seq: int, mode: str = "eager", warmup: int = 3, iters: int = 10,
             profile: bool = False) -> Measurement:
        if mode == "graph" and self.device.type != "cuda":
            raise LlmsimError("--mode graph needs --device cuda (CUDA graphs); use --mode eager on CPU")
        fn = self.step_fn(phase, batch, seq)
        with torch.inference_mode():
            if mode == "graph":
                fn = _capture(fn, warmup)
            for _ in range(warmup):
                fn()
            self._sync()
            timed = [self._timed(fn) for _ in range(iters)]
            prof = self.profile(phase, batch, seq) if profile else {}
        samples = [t for t, _ in timed]
        host = statistics.median(h for _, h in timed) if self.device.type == "cuda" else None
        return Measurement(phase, batch, seq, self.device.type, mode, self.dtype_name, statistics.median(samples),
                           samples, prof, host)

    def profile(self, phase: str, batch: int, seq: int) -> dict[str, float]:
        """Seconds per op kind of one eager step, from an annotated profile (the kernels a CUDA-graph
        replay runs are the eager step's, so graph-mode cases share this attribution)."""
        return seconds_by_kind(self.calls(phase, batch, seq))

    def calls(self, phase: str, batch: int, seq: int) -> dict[str, dict[str, float]]:
        """Framework calls and kernels per op kind of one eager step (:func:`profile_calls`)."""
        from llmsim.reference.model import annotated

        fn = self.step_fn(phase, batch, seq)
        with torch.inference_mode(), annotated():
            fn()
            self._sync()
            return profile_calls(fn, self.device.type)

    def _timed(self, fn) -> tuple[float, float]:
        """(step seconds, host seconds to issue it). On CUDA the step is timed with events and
        the host time is until ``fn`` returns (before the GPU finishes); on CPU both are wall time."""
        if self.device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            t0 = time.perf_counter()
            fn()
            host = time.perf_counter() - t0
            b.record()
            b.synchronize()
            return a.elapsed_time(b) / 1e3, host
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        return t, t


def _capture(fn, warmup: int):
    """Capture ``fn`` in a CUDA graph (after warm-up on a side stream); returns ``graph.replay``."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(max(2, warmup)):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


def seconds_by_kind(calls: dict[str, dict[str, float]]) -> dict[str, float]:
    """Seconds per llmsim op kind of a :func:`profile_calls` result (``kind.fn`` labels count as ``kind``)."""
    out: dict[str, float] = {}
    for k, v in calls.items():
        if v["seconds"] > 0:
            kind = k.split(".")[0]
            out[kind] = out.get(kind, 0.0) + v["seconds"]
    return out


def profile_calls(fn, device_type: str) -> dict[str, dict[str, float]]:
    """Per llmsim op kind, from one torch.profiler run of ``fn`` (run it under
    :func:`llmsim.reference.model.annotated` so every framework call sits in a ``llmsim::<kind>`` range):

    * ``seconds``: CUDA kernel time on CUDA (each kernel counted once, on the ATen op that launched
      it), self CPU time of ATen ops on CPU;
    * ``calls``: top-level ATen calls the framework dispatched (those with no ATen op above them);
    * ``host_only``: the calls among them that launch no kernel (views, reshapes, slices: every op
      below is a view op);
    * ``kernels``: CUDA kernels launched (on CPU: the calls that are not host-only).

    Work outside any range is attributed by name (:func:`llmsim.reference.opclass.op_class`), as
    for a model that carries no annotation."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device_type == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
        if device_type == "cuda":
            torch.cuda.synchronize()
    return attribute(prof.events(), device_type)


def attribute(events, device_type: str) -> dict[str, dict[str, float]]:
    """:func:`profile_calls` on a list of profiler events (``torch.autograd.profiler_util.FunctionEvent``:
    ``name``, ``device_type``, ``cpu_parent``, ``cpu_children``, ``kernels``, ``self_cpu_time_total``)."""
    from llmsim.reference.model import LABEL
    from llmsim.reference.opclass import is_view_op, op_class

    def label_of(e) -> str | None:
        p = e
        while p is not None:
            if p.name.startswith(LABEL):
                return p.name[len(LABEL):]
            p = p.cpu_parent
        return op_class(e.name)

    def aten_parent(e):
        p = e.cpu_parent
        while p is not None and not p.name.startswith("aten::"):
            p = p.cpu_parent
        return p

    def host_only(e) -> bool:
        return is_view_op(e.name) and all(host_only(c) for c in e.cpu_children if c.name.startswith("aten::"))

    out: dict[str, dict[str, float]] = {}

    def add(kind: str | None, key: str, v: float) -> None:
        if kind is not None:
            d = out.setdefault(kind, {"seconds": 0.0, "calls": 0, "host_only": 0, "kernels": 0})
            d[key] += v

    for e in events:
        if e.device_type != torch.autograd.DeviceType.CPU:
            continue
        ks = getattr(e, "kernels", []) if device_type == "cuda" else []
        if ks:  # kernels hang on the CPU event that launched them (an ATen op, almost always)
            kind = label_of(e) or op_class(ks[0].name)
            add(kind, "seconds", sum(k.duration for k in ks) * 1e-6)
            add(kind, "kernels", len(ks))
        if not e.name.startswith("aten::"):
            continue
        kind = label_of(e)
        if device_type != "cuda" and e.self_cpu_time_total > 0:
            add(kind, "seconds", e.self_cpu_time_total * 1e-6)
        if aten_parent(e) is None:
            h = host_only(e)
            add(kind, "calls", 1)
            add(kind, "host_only", int(h))
            if device_type != "cuda":
                add(kind, "kernels", int(not h))
    return out
