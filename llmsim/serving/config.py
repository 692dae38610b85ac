"""Serving knobs: the engine limits and the KV-cache sizing rule, with vLLM's defaults.

Every field can be set with ``--set serve.FIELD=VALUE``. Defaults are vLLM's (``EngineArgs``,
vLLM 0.4–0.6): ``gpu_memory_utilization`` 0.9, ``block_size`` 16, ``max_num_seqs`` 256,
``max_num_batched_tokens`` 2048 (raised to the longest request when prefill is not chunked, as
vLLM does); Sarathi-Serve's token budget is one of the two its paper evaluates (512 and 2048;
Agrawal et al., OSDI'24).
"""

from __future__ import annotations

from pydantic import Field

from llmsim.config.base import Spec


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
