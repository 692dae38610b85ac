"""The last-level cache this process can actually use, from a read-bandwidth sweep.

The OS reports the LLC of the whole socket (a big Xeon: 300+ MiB). A process on a 2-vCPU slice of a shared
cloud host competes for it with every other tenant and reaches only part of it; what it can hold is what the
model needs (activation homes, GEMM blocking, the level's bandwidth). So calibrate reads arrays of growing
size (from twice the private caches the threads own up to the OS figure) and the same kernel on an array in
main memory, and takes as the effective capacity the largest working set still read faster than the
geometric midpoint of the in-cache and main-memory rates (the knee of the curve), all read by one thread.
The level's bandwidth is the all-thread rate at half that capacity (not below the smallest swept set), as
for every other level. No visible step (the smallest set already reads at the main-memory rate) gives the
smallest swept size at the main-memory rate: a cache that holds nothing of use to this process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def sweep_sizes(start_bytes: int, os_bytes: int) -> list[int]:
    """Working sets start, 2·start, ... up to the OS capacity (inclusive, the last one clipped to it)."""
    out, s = [], max(1, start_bytes)
    while s < os_bytes:
        out.append(s)
        s *= 2
    out.append(os_bytes)
    return out


def effective_capacity(sizes: list[int], rates: list[float], memory_rate: float) -> int:
    """The largest working set read faster than √(in-cache rate × main-memory rate); ``sizes`` ascending,
    ``rates[0]`` the in-cache rate. The smallest size when no set beats main memory."""
    if not sizes or len(sizes) != len(rates):
        raise ValueError("effective_capacity: one rate per size, at least one")
    if rates[0] <= memory_rate:
        return sizes[0]
    knee = (rates[0] * memory_rate) ** 0.5
    best = sizes[0]
    for s, r in zip(sizes, rates, strict=True):
        if r >= knee:
            best = s
        else:
            break
    return best


def measure_llc(read_rate: Callable[[int], float], start_bytes: int, os_bytes: int,
                memory_rate: float) -> dict[str, Any]:
    """Sweep with ``read_rate(bytes) -> bytes/s`` (best of repeats, one thread: a parallel read on a shared
    2-vCPU slice stalls on the busier vCPU, which says nothing about capacity) and return the effective
    capacity (bytes), the working set whose all-thread rate is the level's bandwidth (half the capacity, not
    below the smallest swept set; 0 when no step is visible: the level then reads at main-memory speed) and
    the sweep itself for ``source:``."""
    if start_bytes >= os_bytes:
        return {"capacity_bytes": os_bytes, "bandwidth_at_bytes": max(1, os_bytes // 2), "sweep": {}}
    sizes = sweep_sizes(start_bytes, os_bytes)
    rates = [read_rate(s) for s in sizes]
    cap = effective_capacity(sizes, rates, memory_rate)
    at = 0 if rates[0] <= memory_rate else max(start_bytes, cap // 2)
    return {"capacity_bytes": cap, "bandwidth_at_bytes": at, "sweep": dict(zip(sizes, rates, strict=True))}


def llc_source(res: dict[str, Any], os_bytes: int) -> str:
    """The ``source:`` words for the last level: what the OS said, what the sweep measured."""
    if "llc_capacity_bytes" not in res:
        return "; last level: capacity from the OS, read (sum) of half of it"
    sweep = ", ".join(f"{s / 2**20:.4g} MiB {r / 1e9:.1f}" for s, r in res.get("llc_sweep", {}).items())
    return (f"; last level: the OS reports {os_bytes / 2**20:.0f} MiB, the capacity is the largest "
            "working set read (one thread) faster than the geometric midpoint of the in-cache and main-memory "
            "rates "
            f"(llmsim.calibrate.llc; sweep GB/s: {sweep or 'none'}; main memory "
            f"{res['memory_read_bytes_per_s'] / 1e9:.1f}), bandwidth the all-thread rate at half of it")
