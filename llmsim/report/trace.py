"""The per-op, per-unit timeline of a run in Chrome trace-event format.

Opens in Perfetto (ui.perfetto.dev) and chrome://tracing. Each step is laid after the one
before it; a ``steps`` track holds one event per step (its latency), and each device unit
(``host``, ``gpu``, ``banks``, ``asic``, ...) a track with one event per op segment that held
it. Times are microseconds (``ts``, ``dur``), as the format requires.
Format: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSxKchNAySU
"""

from __future__ import annotations

from typing import Any

US = 1e6


def chrome_trace(steps: list[dict[str, Any]], label: str = "llmsim") -> dict[str, Any]:
    """Trace-event JSON object from step dicts that carry ``trace`` (per-op records with
    ``segments``), ``latency_s``, ``phase`` and ``index``/``step``, and optionally ``start_s`` (the
    step's start on the run's timeline; default: right after the previous step)."""
    events: list[dict[str, Any]] = [{"ph": "M", "pid": 1, "name": "process_name", "args": {"name": label}},
                                    {"ph": "M", "pid": 1, "tid": 0, "name": "thread_name", "args": {"name": "steps"}}]
    tids: dict[str, int] = {}
    t0 = 0.0
    for s in steps:
        t0 = s.get("start_s", t0)  # a step kept out of a longer run sits where the run had it
        idx = s.get("index", s.get("step"))
        name = f"{s['phase']} {idx}"
        events.append({"ph": "X", "pid": 1, "tid": 0, "name": name, "cat": "step", "ts": t0 * US,
                       "dur": s["latency_s"] * US, "args": {"energy_j": s["energy_j"]}})
        for r in s.get("trace") or ():
            for seg in r["segments"]:
                tid = tids.setdefault(seg["unit"], len(tids) + 1)
                events.append({"ph": "X", "pid": 1, "tid": tid, "name": r["name"], "cat": r["kind"],
                               "ts": (t0 + seg["start"]) * US, "dur": (seg["end"] - seg["start"]) * US,
                               "args": {"step": name, "flops": r["flops"], "bytes": r["bytes_total"],
                                        "energy_j": sum(r["energy_j"].values()), "issue": seg.get("issue", False)}})
        t0 += s["latency_s"]
    for unit, tid in tids.items():
        events.append({"ph": "M", "pid": 1, "tid": tid, "name": "thread_name", "args": {"name": unit}})
    return {"traceEvents": events, "displayTimeUnit": "ns"}


def select_steps(spec: str, n: int) -> list[int]:
    """Step indices of a run of ``n`` steps that ``--trace-steps`` keeps: ``all``, ``representative``
    (the prefill, first and last decode step, as ``--json`` keeps their traces), ``A:B`` (steps A to
    B - 1; either end may be left out) or ``I,J,...``; an error naming the option otherwise."""
    from llmsim.errors import LlmsimError

    spec = spec.strip()
    if spec == "all":
        return list(range(n))
    if spec == "representative":
        return sorted({0, min(1, n - 1), n - 1})
    try:
        if ":" in spec:
            a, _, b = spec.partition(":")
            keep = list(range(n))[slice(int(a) if a else None, int(b) if b else None)]
        else:
            keep = sorted({int(x) for x in spec.split(",")})
    except ValueError:
        raise LlmsimError(f"--trace-steps {spec!r}: expected all, representative, A:B or I,J,...") from None
    if not keep or keep[0] < 0 or keep[-1] >= n:
        raise LlmsimError(f"--trace-steps {spec!r}: this run has steps 0..{n - 1} (0 = the prefill)")
    return keep


def write_run_trace(res: Any, steps_spec: str, out: str, label: str) -> str:
    """Write the ``--trace`` file of a generation ``res`` (a :class:`~llmsim.engine.result.SimResult`,
    one device's or a system's): the steps ``steps_spec`` keeps (:func:`select_steps`), each at its
    place on the run's timeline. Returns the line the CLI prints."""
    import json

    from llmsim.io import write_atomic

    keep = select_steps(steps_spec, len(res.steps))
    starts = [0.0]
    for s in res.steps[:-1]:
        starts.append(starts[-1] + s.latency_s)
    steps = [res.steps[i].to_dict(trace=True) | {"index": i, "start_s": starts[i]} for i in keep]
    write_atomic(out, json.dumps(chrome_trace(steps, label), allow_nan=False, separators=(",", ":")))
    more = "" if len(keep) < 64 else " (--trace-steps keeps fewer)"
    return f"wrote {out}: {len(keep)} of {len(res.steps)} steps{more}"
