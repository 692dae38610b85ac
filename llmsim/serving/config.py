"""Serving knobs: the engine limits and the KV-cache sizing rule, with vLLM's defaults.

Every field can be set with ``--set serve.FIELD=VALUE``. Defaults are vLLM's (``EngineArgs``,
vLLM 0.4–0.6): ``gpu_memory_utilization`` 0.9, ``block_size`` 16, ``max_num_seqs`` 256,
``max_num_batched_tokens`` 2048 (raised to the longest request when prefill is not chunked, as
vLLM does); Sarathi-Serve's token budget is one of the two its paper evaluates (512 and 2048;
Agrawal et al., OSDI'24).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from llmsim.config.base import Spec
from llmsim.errors import ConfigError


class ServeConfig(Spec):
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1, description="share of device memory the "
                                          "engine may use (vLLM gpu_memory_utilization)")
    block_size: int = Field(default=16, gt=0, description="tokens per KV block (vLLM block_size)")
    max_num_seqs: int = Field(default=256, gt=0, description="sequences per iteration (vLLM max_num_seqs)")
    max_num_batched_tokens: int = Field(default=2048, gt=0, description="tokens per iteration (vLLM)")
    chunk_tokens: int = Field(default=512, gt=0, description="sarathi: token budget per iteration (decodes + "
                              "prefill chunks)")
    runtime_reserve_bytes: int = Field(default=0, ge=0, description="memory outside the KV cache, weights and "
                                       "activations (CUDA context, NCCL buffers); measure it on the target")
    kv_blocks: int | None = Field(default=None, gt=0, description="force the number of KV blocks (default: "
                                  "derived from memory as vLLM does)")


LAYOUT_FIELDS = ("tp", "pp", "ep", "dp", "micro_batches")  # ServeRun's system layout


TRACE_FIELDS = ("trace", "trace_sha256")  # ServeRun's recorded stream (omitted from the dump when unset)


class ServeRun(ServeConfig):
    """One serve scenario: the ``serve:`` block of a sweep spec (``llmsim serve``'s options: one
    Poisson rate or a recorded trace, and on a system preset its layout: ``tp``, ``pp``, ``ep``,
    ``dp``, ``micro_batches``), with every :class:`ServeConfig` knob beside them (``serve.block_size``, ...)."""

    rate: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                               description="Poisson arrivals, requests/s (--rate); or give trace")
    trace: str | None = Field(default=None, description="CSV/JSONL trace of arrival_s, prompt_tokens, "
                              "output_tokens (--trace; a path relative to the sweep spec); or give rate")
    trace_sha256: str | None = Field(default=None, description="the trace file's SHA-256, set when a sweep "
                                     "resolves its points (a point's key changes with the file)")
    requests: int = Field(default=1000, ge=1, description="requests in the stream (--requests; a trace's first "
                          "rows)")
    prompt_dist: str = Field(default="fixed:512", description="--prompt-dist")
    output_dist: str = Field(default="fixed:128", description="--output-dist")
    scheduler: Literal["vllm", "sarathi", "static"] = Field(default="vllm", description="--scheduler")
    replicas: int = Field(default=1, ge=1, description="copies of the device, round-robin (--replicas)")
    slo: str | None = Field(default=None, description="latency targets for goodput, e.g. ttft=200ms,tpot=50ms")
    seed: int = Field(default=0, ge=0, description="the stream's seed (--seed)")
    # a system preset's parallel layout (as llmsim serve's flags; checked, with their messages, when the point runs)
    tp: int | None = Field(default=None, description="tensor-parallel ranks (--tp; a system preset)")
    pp: int | None = Field(default=None, description="pipeline stages (--pp; a system preset)")
    ep: int | None = Field(default=None, description="expert-parallel ranks (--ep; a system preset)")
    dp: int | None = Field(default=None, description="data-parallel serving replicas (--dp; a system preset)")
    micro_batches: int | None = Field(default=None, description="pipeline micro-batches per iteration "
                                      "(--micro-batches; a system preset)")

    @field_validator("prompt_dist", "output_dist")
    @classmethod
    def _dist(cls, v: str, info: ValidationInfo) -> str:
        from llmsim.serving.arrivals import parse_dist

        try:
            parse_dist(v, info.field_name or "", "prompt" if info.field_name == "prompt_dist" else "output")
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return v

    @field_validator("slo")
    @classmethod
    def _slo(cls, v: str | None) -> str | None:
        from llmsim.serving.metrics import parse_slo

        try:
            v is None or parse_slo(v)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return v

    @model_validator(mode="after")
    def _stream(self) -> ServeRun:
        if (self.rate is None) == (self.trace is None):
            raise ValueError("give one of rate or trace")
        if self.trace is not None and (self.prompt_dist != "fixed:512" or self.output_dist != "fixed:128"):
            raise ValueError("trace gives the lengths: prompt_dist/output_dist apply to rate only")
        return self

    def dump(self) -> dict:
        """The JSON dump a sweep stores and hashes; layout and trace fields left unset are omitted, so a
        device's Poisson serve points keep the hashes they had before those fields existed (a resumed
        store reruns nothing)."""
        d = self.model_dump(mode="json")
        return {k: v for k, v in d.items() if not (k in LAYOUT_FIELDS + TRACE_FIELDS and v is None)}

    def engine(self) -> ServeConfig:
        """The engine knobs alone."""
        return ServeConfig(**{k: getattr(self, k) for k in ServeConfig.model_fields})
