"""Re-score saved CPU validation runs against the current model, without re-measuring.

    python benchmarks/cpu_rescore.py [DIR ...] [--set FIELD=VALUE] [--json OUT]
    # default DIRs: every run under benchmarks/data/cpu_validation

A run directory holds the ``calibrated.yaml`` that ``llmsim calibrate`` wrote and the ``val-*.json`` files that
``llmsim validate --json`` wrote on the same host (one per model, or one per model and pass: a case's measured time
is then the median over the passes, and each pass is also scored alone). The measured seconds are read back from
the JSON; the prediction is recomputed with the code as it is now (so a change to ``llmsim/devices/cpu.py`` is
scored on the same references). Prints per case measured / saved prediction / new prediction / error, the MAPE per
phase and over all cases, and the worst decode-B1 error (the issue's acceptance: MAPE <= 15%, no decode-B1 case >
20%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "data" / "cpu_validation"


def runs(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    return sorted({p.parent for p in HERE.rglob("calibrated.yaml")})


def rescore(run: Path, overrides: list[str] = ()) -> list[dict]:
    """One row per case: its measured seconds (the median over the run's passes, ``val-<model>-p<k>.json``;
    one file per model is one pass), each pass's in ``passes``, and the prediction of the code as it is now."""
    from llmsim.config.loader import load_hardware, load_model, parse_set
    from llmsim.reference.compare import predict

    hw = load_hardware(run / "calibrated.yaml", parse_set(list(overrides)))
    cases: dict[tuple, dict] = {}
    for f in sorted(run.glob("val-*.json")):
        d = json.loads(f.read_text())
        for r in d["rows"]:
            key = (d["model"], r["phase"], r["batch"], r["seq"], r["mode"], r["dtype"])
            c = cases.setdefault(key, {"saved_s": r["predicted_s"], "passes": []})
            c["passes"].append(r["measured_s"])
    rows = []
    for (model, phase, batch, seq, mode, dtype), c in cases.items():
        p = predict(hw, load_model(model), phase, batch, seq, mode, dtype)
        measured = statistics.median(c["passes"])
        rows.append({"model": model, "case": f"{phase}:{batch}x{seq}", "phase": phase, "batch": batch,
                     "measured_s": measured, "passes": c["passes"], "saved_s": c["saved_s"],
                     "predicted_s": p["seconds"], "error": p["seconds"] / measured - 1.0})
    return rows


def pass_rows(rows: list[dict], k: int) -> list[dict]:
    """The rows as pass ``k`` alone measured them."""
    return [r | {"measured_s": r["passes"][k], "error": r["predicted_s"] / r["passes"][k] - 1.0} for r in rows]


def summary(rows: list[dict]) -> dict[str, float]:
    out = {f"mape_{ph}": statistics.mean(abs(r["error"]) for r in rows if r["phase"] == ph)
           for ph in ("prefill", "decode") if any(r["phase"] == ph for r in rows)}
    out["mape_all"] = statistics.mean(abs(r["error"]) for r in rows)
    b1 = [abs(r["error"]) for r in rows if r["phase"] == "decode" and r["batch"] == 1]
    out["worst_decode_b1"] = max(b1) if b1 else 0.0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", help="run directories (calibrated.yaml + val-*.json)")
    ap.add_argument("--json", help="write the rows and summaries here")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a calibrated field (a what-if; the saved yaml is not changed)")
    a = ap.parse_args(argv)
    report = {}
    for run in runs(a.dirs):
        rows = rescore(run, a.set)
        s = summary(rows)
        n = min(len(r["passes"]) for r in rows)
        per_pass = [summary(pass_rows(rows, k)) for k in range(n)] if n > 1 else []
        report[str(run)] = {"rows": rows, "summary": s, "pass_summaries": per_pass}
        print(f"{run}" + (f"  (measured: median of {n} passes)" if n > 1 else ""))
        print(f"  {'model':12s} {'case':16s} {'measured':>10s} {'saved':>10s} {'new':>10s} {'error':>8s}"
              + ("  passes" if n > 1 else ""))
        for r in rows:
            print(f"  {r['model']:12s} {r['case']:16s} {r['measured_s'] * 1e3:8.2f}ms {r['saved_s'] * 1e3:8.2f}ms "
                  f"{r['predicted_s'] * 1e3:8.2f}ms {r['error']:+8.1%}"
                  + ("  " + " ".join(f"{x * 1e3:.1f}" for x in r["passes"]) if n > 1 else ""))
        print("  " + ", ".join(f"{k} {v:.1%}" for k, v in s.items()))
        for k, ps in enumerate(per_pass):
            print(f"  pass {k + 1} alone: " + ", ".join(f"{key} {v:.1%}" for key, v in ps.items()))
        if (run / "probe.jsonl").is_file():  # benchmarks/cpu_probe.py: the machine's own speed over the run
            probes = [json.loads(line) for line in (run / "probe.jsonl").read_text().splitlines() if line.strip()]
            report[str(run)]["probes"] = probes
            print("  machine probe (GEMV chain GB/s): "
                  + ", ".join(f"{p['label']} {p['gemv_gb_per_s']:.1f}" for p in probes))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
