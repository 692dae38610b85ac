"""Serving metrics, computed from the saved per-request and per-iteration records only.

TTFT = first token − arrival; TPOT = (finish − first token) / (output tokens − 1) (requests of one
output token have none); E2E = finish − arrival; queueing delay = first scheduled − arrival.
Throughput is counted over the run (first arrival to last finish); goodput counts only requests
within the SLO on TTFT and TPOT (DistServe's definition, Zhong et al., OSDI'24). Energy is the
iterations' energy (each split among its sequences by tokens); ``idle_energy_j`` is what every replica
draws between its iterations from time 0 to the last finish (static and DRAM background power), and the
``*_with_idle_j`` figures spread it over the requests and tokens.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from llmsim.errors import ConfigError
from llmsim.serving.simulate import ITER_FIELDS, ServeResult

SLO_KEYS = ("ttft", "tpot", "e2e")


def parse_slo(text: str) -> dict[str, float]:
    """``ttft=0.5,tpot=50ms`` → seconds per key (keys: ttft, tpot, e2e; units s or ms)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        k, _, v = part.strip().partition("=")
        m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(ms|s)?", v.strip())
        if k not in SLO_KEYS or m is None or k in out:
            raise ConfigError(f"--slo '{text}': expected KEY=VALUE[s|ms] pairs with keys {', '.join(SLO_KEYS)}, "
                              "each once")
        out[k] = float(m.group(1)) * (1e-3 if m.group(2) == "ms" else 1.0)
        if out[k] <= 0:
            raise ConfigError(f"--slo '{text}': {k} must be positive")
    return out


def stats(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {"mean": float("nan"), "p50": float("nan"), "p90": float("nan"), "p99": float("nan")}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def per_request(res: ServeResult) -> dict[str, np.ndarray]:
    r = res.requests
    arr = np.array([x["arrival_s"] for x in r])
    first = np.array([x["first_token_s"] for x in r])
    fin = np.array([x["finish_s"] for x in r])
    out = np.array([x["output_tokens"] for x in r])
    tpot = np.where(out > 1, (fin - first) / np.maximum(out - 1, 1), np.nan)
    return {"arrival": arr, "ttft": first - arr, "tpot": tpot, "e2e": fin - arr,
            "queue": np.array([x["first_scheduled_s"] for x in r]) - arr, "out": out, "finish": fin,
            "energy": np.array([x["energy_j"] for x in r])}


def summarise(res: ServeResult, slo: dict[str, float] | None = None) -> dict[str, Any]:
    q = per_request(res)
    it = np.array(res.iterations, dtype=float).reshape(-1, len(ITER_FIELDS))
    col = {k: it[:, i] for i, k in enumerate(ITER_FIELDS)}
    t0, t1 = float(q["arrival"].min()), float(q["finish"].max())
    span = max(t1 - t0, 1e-12)
    n = len(res.requests)
    dur = col["end_s"] - col["start_s"]
    ok = np.ones(n, dtype=bool)
    for k, lim in (slo or {}).items():
        v = q[k]
        ok &= np.where(np.isnan(v), True, v <= lim)
    energy = float(col["energy_j"].sum())
    idle_j = res.config["idle_power_w"] * max(t1 * res.replicas - float(dur.sum()), 0.0)
    d: dict[str, Any] = {
        "requests": n, "span_s": span,
        "ttft_s": stats(q["ttft"]), "tpot_s": stats(q["tpot"][~np.isnan(q["tpot"])]), "e2e_s": stats(q["e2e"]),
        "queueing_s": stats(q["queue"]),
        "throughput_requests_per_s": n / span, "throughput_tokens_per_s": float(q["out"].sum()) / span,
        "goodput_requests_per_s": float(ok.sum()) / span, "slo": slo or {}, "slo_attained": float(ok.mean()),
        "preemptions": res.preemptions, "iterations": int(len(it)),
        "batch_size_mean": float((col["seqs"] * dur).sum() / max(dur.sum(), 1e-300)),
        "kv_blocks": res.kv.blocks, "kv_blocks_used_max": int(col["kv_blocks_used"].max(initial=0)),
        "kv_use_mean": float((col["kv_blocks_used"] * dur).sum() / max(dur.sum(), 1e-300) / max(res.kv.blocks, 1)),
        # the scheduler's own count of requests in the system, time-weighted (one replica: between its
        # iterations the system is empty)
        "mean_in_system": float((col["in_system"] * dur).sum()) / span if res.replicas == 1 else None,
        "arrival_rate_per_s": (n - 1) / max(float(q["arrival"].max()) - t0, 1e-12) if n > 1 else 0.0,
        "energy_j": energy, "energy_per_request_j": energy / n,
        "energy_per_token_j": energy / max(float(q["out"].sum()), 1),
        "idle_energy_j": idle_j, "energy_per_request_with_idle_j": (energy + idle_j) / n,
        "energy_per_token_with_idle_j": (energy + idle_j) / max(float(q["out"].sum()), 1),
        "busy_fraction": float(dur.sum()) / (span * res.replicas),
    }
    return d


def time_series(res: ServeResult) -> dict[str, list]:
    """Batch size, tokens and KV blocks in use per iteration (at its start time), per replica."""
    it = res.iterations
    return {k: [row[i] for row in it] for i, k in enumerate(ITER_FIELDS)}
