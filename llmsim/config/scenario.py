"""The inference scenario: how many sequences, how long, in which number formats."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmsim.config.base import DType, Spec


class Scenario(Spec):
    """One generation request shape.

    ``prompt`` tokens are processed in the prefill step (for encoder-decoder models they are
    the encoder input and the decoder starts from one token); ``gen`` tokens are generated:
    the first by prefill, the remaining ``gen - 1`` by decode steps. ``mode`` is the
    execution mode of framework-hosted devices: ``eager`` pays a host dispatch cost per
    kernel, ``graph`` replays a captured graph (CUDA graphs).
    """

    batch: int = Field(default=1, gt=0)
    prompt: int = Field(default=128, gt=0)
    gen: int = Field(default=32, gt=0)
    weight_dtype: DType = DType.fp16
    act_dtype: DType = DType.fp16
    kv_dtype: DType = DType.fp16
    mode: Literal["graph", "eager"] = "graph"
