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
            samples = [self._timed(fn) for _ in range(iters)]
            prof = profile_step(fn, self.device.type) if profile else {}
        return Measurement(phase, batch, seq, self.device.type, mode, self.dtype_name, statistics.median(samples),
                           samples, prof)

    def _timed(self, fn) -> float:
        if self.device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            return a.elapsed_time(b) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


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


def profile_step(fn, device_type: str) -> dict[str, float]:
    """Seconds per llmsim op kind of one step, from torch.profiler: CUDA kernel time on CUDA,
    self CPU time of ATen ops on CPU."""
    from torch.profiler import ProfilerActivity, profile

    from llmsim.reference.opclass import op_class

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device_type == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
        if device_type == "cuda":
            torch.cuda.synchronize()
    out: dict[str, float] = {}
    for e in prof.key_averages():
        if device_type == "cuda":
            t = getattr(e, "self_device_time_total", 0.0) or getattr(e, "self_cuda_time_total", 0.0)
            if t <= 0 or e.key.startswith(("aten::", "cuda", "Memcpy", "Memset")) and "kernel" not in e.key.lower():
                continue
        else:
            t = e.self_cpu_time_total
            if not e.key.startswith("aten::") or t <= 0:
                continue
        cls = op_class(e.key)
        if cls is not None:
            out[cls] = out.get(cls, 0.0) + t * 1e-6
    return out
