"""Serving: request streams, iteration scheduling with a paged KV cache, and serving metrics.

arrivals (:mod:`.arrivals`) → scheduler (:mod:`.scheduler`, the KV block manager :mod:`.kv`
beside it) → the engine costing each iteration (:mod:`.cost`) → per-request records
(:mod:`.simulate`) → metrics (:mod:`.metrics`).
"""
