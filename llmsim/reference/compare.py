"""Measured (PyTorch reference) versus predicted (llmsim) per case and per op class.

A case is ``prefill:BxS`` (B sequences of S prompt tokens) or ``decode:BxC`` (B sequences,
one new token attending C keys). Errors are ``predicted / measured − 1``; MAPE is grouped
by (phase, mode). Op-class shares compare the fraction of the step each op kind takes:
measured from the profiler (kernel time on CUDA, ATen self time on CPU), predicted from the
simulator's wall-clock attribution by op kind (``latency_breakdown_s``, idle excluded).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from llmsim.errors import LlmsimError

DEFAULT_CASES = ("prefill:1x128", "decode:1x128")


def parse_cases(text: str | list[str] | tuple[str, ...]) -> list[tuple[str, int, int]]:
    """``"prefill:1x128,decode:8x512"`` → [("prefill", 1, 128), ("decode", 8, 512)]."""
    items = text.split(",") if isinstance(text, str) else [t for x in text for t in x.split(",")]
    out = []
    for raw in (i.strip() for i in items):
        if not raw:
            continue
        try:
            phase, dims = raw.split(":")
            b, s = (int(v) for v in dims.lower().split("x"))
        except ValueError:
            raise LlmsimError(f"--cases '{raw}': expected prefill:BxS or decode:BxC") from None
        if phase not in ("prefill", "decode") or b <= 0 or s <= 0:
            raise LlmsimError(f"--cases '{raw}': phase prefill|decode, positive B and S/C")
        out.append((phase, b, s))
    if not out:
        raise LlmsimError("--cases: no case given")
    return out


def predict(hw, model, phase: str, batch: int, seq: int, mode: str, dtype: str, fidelity: str = "cycle") -> dict:
    """The simulator's step latency and op-kind breakdown for one case."""
    from llmsim.config.loader import make_scenario
    from llmsim.engine import simulate_one_step

    sc = make_scenario({"batch": batch, "prompt": seq, "gen": 2, "mode": mode, "weight_dtype": dtype,
                        "act_dtype": dtype, "kv_dtype": dtype})
    res, _ = simulate_one_step(hw, model, sc, phase, batch, seq=seq if phase == "prefill" else None,
                               context=seq if phase == "decode" else None, fidelity=fidelity)
    by_kind = {k: v for k, v in res.latency_breakdown_s.items() if k != "idle"}
    return {"seconds": res.latency_s, "by_kind_s": by_kind, "host_s": res.busy_by_unit_s.get("host", 0.0)}


def shares(d: dict[str, float]) -> dict[str, float]:
    tot = sum(d.values())
    return {k: v / tot for k, v in d.items()} if tot > 0 else {}


def score_row(measured: dict, predicted: dict) -> dict[str, Any]:
    """One result row: measured and predicted seconds, error, and op-class share errors (points)."""
    err = predicted["seconds"] / measured["seconds"] - 1.0
    ms, ps = shares(measured.get("profile_s", {})), shares(predicted["by_kind_s"])
    share_err = {k: ps.get(k, 0.0) - ms.get(k, 0.0) for k in sorted(set(ms) | set(ps))} if ms else {}
    return {"phase": measured["phase"], "batch": measured["batch"], "seq": measured["seq"], "mode": measured["mode"],
            "device": measured["device"], "dtype": measured["dtype"], "measured_s": measured["seconds"],
            "predicted_s": predicted["seconds"], "error": err, "measured_share": ms, "predicted_share": ps,
            "share_error": share_err, "measured_host_s": measured.get("host_s"),
            "predicted_host_s": predicted.get("host_s")}


def summarize(rows: list[dict]) -> dict[str, Any]:
    """MAPE per (phase, mode) and mean absolute op-class share error (percentage points)."""
    groups: dict[str, list[float]] = {}
    share: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(f"{r['phase']}/{r['mode']}", []).append(abs(r["error"]))
        for k, v in r["share_error"].items():
            share.setdefault(k, []).append(abs(v))
    return {"mape": {k: statistics.mean(v) for k, v in groups.items()},
            "share_mae": {k: statistics.mean(v) for k, v in share.items()}}


def run_validation(hw, model, cases: list[tuple[str, int, int]], device: str, mode: str, dtype: str | None = None,
                   warmup: int = 3, iters: int = 10, profile: bool = True, seed: int = 0) -> dict[str, Any]:
    """Time every case on the reference and predict it with llmsim; returns rows and summary."""
    from llmsim.reference import require_torch

    require_torch()
    from llmsim.reference.timing import Runner

    runner = Runner(model, device=device, dtype=dtype, seed=seed)
    rows = []
    for phase, b, s in cases:
        m = runner.time(phase, b, s, mode=mode, warmup=warmup, iters=iters, profile=profile).to_dict()
        p = predict(hw, model, phase, b, s, mode, runner.dtype_name)
        rows.append(score_row(m, p))
    return report_fields({"hw": hw.name, "model": model.name, "rows": rows, "summary": summarize(rows)})


def report_fields(result: dict[str, Any]) -> dict[str, Any]:
    """Add what ``llmsim report`` reads: ``kind``, named ``cases`` and per-op-class times (each class's
    share of a case times the case's time, summed over cases, measured and predicted)."""
    cases, classes = [], defaultdict(lambda: [0.0, 0.0])
    for r in result["rows"]:
        size = f"{r['batch']}x{r.get('seq') or r.get('context')}"
        cases.append({"name": f"{r['phase']} {size} {r['mode']}", "phase": r["phase"],
                      "measured_s": r["measured_s"], "predicted_s": r["predicted_s"]})
        for k, v in (r.get("measured_share") or {}).items():
            classes[k][0] += v * r["measured_s"]
        for k, v in (r.get("predicted_share") or {}).items():
            classes[k][1] += v * r["predicted_s"]
    op_classes = [{"kind": k, "measured_s": m, "predicted_s": p} for k, (m, p) in sorted(classes.items()) if m > 0]
    return result | {"kind": "validation", "cases": cases, "op_classes": op_classes}


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{result['model']} on {result['hw']}: measured (reference) vs predicted (llmsim)",
             f"{'case':<22}{'mode':<7}{'dtype':<6}{'measured':>12}{'predicted':>12}{'error':>9}"]
    for r in result["rows"]:
        case = f"{r['phase']}:{r['batch']}x{r['seq']}"
        lines.append(f"{case:<22}{r['mode']:<7}{r['dtype']:<6}{r['measured_s'] * 1e3:>10.3f}ms"
                     f"{r['predicted_s'] * 1e3:>10.3f}ms{100 * r['error']:>+8.1f}%")
        if r["share_error"]:
            lines.append("    op-class share meas/pred: " + ", ".join(
                f"{k} {100 * r['measured_share'].get(k, 0):.0f}/{100 * r['predicted_share'].get(k, 0):.0f}%"
                for k in sorted(r["share_error"])))
    s = result["summary"]
    lines.append("MAPE: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in s["mape"].items()))
    if s["share_mae"]:
        lines.append("op-class share error (mean |pp|): " + ", ".join(f"{k} {100 * v:.1f}"
                                                                   for k, v in s["share_mae"].items()))
    return "\n".join(lines)
