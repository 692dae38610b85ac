"""Re-score saved CPU validation runs against the current model, without re-measuring.

    python benchmarks/cpu_rescore.py [DIR ...] [--set FIELD=VALUE] [--json OUT]
    # default DIRs: every run under benchmarks/data/cpu_validation

A run directory holds the ``calibrated.yaml`` that ``llmsim calibrate`` wrote and the ``val-*.json`` files that
``llmsim validate --json`` wrote on the same host. The measured seconds are read back from the JSON; the
prediction is recomputed with the code as it is now (so a change to ``llmsim/devices/cpu.py`` is scored on the
same references). Prints per case measured / saved prediction / new prediction / error, the MAPE per phase and
over all cases, and the worst decode-B1 error (the issue's acceptance: MAPE <= 15%, no decode-B1 case > 20%).
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
    from llmsim.config.loader import load_hardware, load_model, parse_set
    from llmsim.reference.compare import predict

    hw = load_hardware(run / "calibrated.yaml", parse_set(list(overrides)))
    rows = []
    for f in sorted(run.glob("val-*.json")):
        d = json.loads(f.read_text())
        model = load_model(d["model"])
        for r in d["rows"]:
            p = predict(hw, model, r["phase"], r["batch"], r["seq"], r["mode"], r["dtype"])
            rows.append({"model": d["model"], "case": f"{r['phase']}:{r['batch']}x{r['seq']}", "phase": r["phase"],
                         "batch": r["batch"], "measured_s": r["measured_s"], "saved_s": r["predicted_s"],
                         "predicted_s": p["seconds"], "error": p["seconds"] / r["measured_s"] - 1.0})
    return rows


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
        report[str(run)] = {"rows": rows, "summary": s}
        print(f"{run}")
        print(f"  {'model':12s} {'case':16s} {'measured':>10s} {'saved':>10s} {'new':>10s} {'error':>8s}")
        for r in rows:
            print(f"  {r['model']:12s} {r['case']:16s} {r['measured_s'] * 1e3:8.2f}ms {r['saved_s'] * 1e3:8.2f}ms "
                  f"{r['predicted_s'] * 1e3:8.2f}ms {r['error']:+8.1%}")
        print("  " + ", ".join(f"{k} {v:.1%}" for k, v in s.items()))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
