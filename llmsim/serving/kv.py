"""The paged KV cache: how many blocks fit (vLLM's rule) and who holds them.

vLLM sizes its cache after a profiling forward pass: blocks = (device memory × utilisation −
weights − peak activation memory − runtime reserve) / (block size × bytes of K and V per token
over all layers) (``vllm/worker/worker.py: determine_num_available_blocks``). The peak
activation here is the largest live activation working set of one op (inputs + outputs) in a
step of ``max_num_batched_tokens`` tokens, read off the lowered graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmsim.config.model import ModelSpec
from llmsim.config.quant import stored_weight_bytes
from llmsim.config.scenario import Scenario
from llmsim.errors import CapacityError
from llmsim.graph.ragged import lower_ragged
from llmsim.serving.config import ServeConfig


@dataclass(frozen=True)
class KvSizing:
    capacity_bytes: float
    usable_bytes: float
    weight_bytes: float
    peak_activation_bytes: float
    reserve_bytes: float
    block_bytes: float
    blocks: int
    # devices whose caches make up the pool (a system's expert-parallel ranks, each holding its own
    # sequences); block_bytes are one device's share of a block
    pool_devices: int = 1

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def peak_activation_bytes(model: ModelSpec, sc: Scenario, tokens: int) -> float:
    """Largest inputs + outputs of any op when ``tokens`` prompt tokens run in one step."""
    tokens = min(tokens, model.max_positions)
    g = lower_ragged(model.model_copy(update={"n_layers": 1}), sc, [tokens], [tokens], "prefill")
    return max(op.read.activation + op.write.activation for op in (g.nodes[v]["op"] for v in g.nodes))


def size_kv_cache(capacity_bytes: float, model: ModelSpec, sc: Scenario, cfg: ServeConfig,
                  profile_tokens: int) -> KvSizing:
    """KV blocks as vLLM derives them; refuses a device that cannot hold one block per sequence."""
    weights = float(stored_weight_bytes(model, sc))
    act = peak_activation_bytes(model, sc, profile_tokens)
    usable = capacity_bytes * cfg.gpu_memory_utilization
    block = cfg.block_size * model.kv_bytes_per_token(sc.kv_dtype.bytes)
    free = usable - weights - act - cfg.runtime_reserve_bytes
    blocks = cfg.kv_blocks if cfg.kv_blocks is not None else max(0, math.floor(free / block))
    if cfg.kv_blocks is None and blocks < 1:
        raise CapacityError(f"no room for a KV cache: {capacity_bytes / 1e9:.2f} GB x utilisation "
                            f"{cfg.gpu_memory_utilization} - weights {weights / 1e9:.2f} GB - activations "
                            f"{act / 1e9:.2f} GB - reserve {cfg.runtime_reserve_bytes / 1e9:.2f} GB leaves "
                            f"{free / 1e9:.3f} GB, less than one {cfg.block_size}-token block")
    return KvSizing(capacity_bytes, usable, weights, act, float(cfg.runtime_reserve_bytes), block, blocks)


class BlockManager:
    """Blocks per request: allocated as its tokens enter the cache, freed when it leaves."""

    def __init__(self, blocks: int, block_size: int):
        self.total, self.block_size = blocks, block_size
        self.free = blocks
        self.held: dict[int, int] = {}

    def need(self, rid: int, tokens: int) -> int:
        """Blocks request ``rid`` must add to hold ``tokens`` tokens."""
        return max(0, -(-tokens // self.block_size) - self.held.get(rid, 0))

    def grow(self, rid: int, tokens: int) -> bool:
        """Hold ``tokens`` tokens for ``rid``; False (nothing allocated) when blocks run out."""
        n = self.need(rid, tokens)
        if n > self.free:
            return False
        self.free -= n
        self.held[rid] = self.held.get(rid, 0) + n
        return True

    def release(self, rid: int) -> None:
        self.free += self.held.pop(rid, 0)

    @property
    def used(self) -> int:
        return self.total - self.free
