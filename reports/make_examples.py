"""Regenerate the example reports in this folder (not committed: each inlines plotly.js, ~5 MB).

    PYTHONPATH=. python reports/make_examples.py [--validation VALIDATE.json] [--check]

Writes ``run_pim_gpt2.html`` (one generation of gpt2 on the PIM preset), ``sweep_pim_gpt2.html``
(a small channels x MAC-lanes sweep) and, when a validation JSON is given (``llmsim validate
--json``), ``validation.html``. ``--check`` loads each in headless Chromium and saves a PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.engine import simulate
from llmsim.report import load_input, write_report
from llmsim.sweep import SweepSpec, run_sweep

HERE = Path(__file__).resolve().parent
SWEEP = {"hw": "pim", "model": "gpt2", "scenario": {"batch": 1, "prompt": 64, "gen": 8}, "fidelity": "cycle",
         "axes": {"hw.memory.channels": [1, 2, 4, 8, 16], "hw.mac_lanes_per_bank": [16, 32],
                  "scenario.batch": [1, 4]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validation", default=None, help="a validation JSON to render")
    ap.add_argument("--check", action="store_true", help="render each in headless Chromium, save PNGs")
    args = ap.parse_args()
    out = []
    res = simulate(load_hardware("pim"), load_model("gpt2"), make_scenario({"batch": 1, "prompt": 64, "gen": 8}))
    out.append(write_report(res.to_dict(), HERE / "run_pim_gpt2.html"))
    with tempfile.TemporaryDirectory() as d:
        run_sweep(SweepSpec.from_dict(SWEEP, source="reports/make_examples.py"), d)
        out.append(write_report(load_input(d), HERE / "sweep_pim_gpt2.html"))
    if args.validation:
        out.append(write_report(json.loads(Path(args.validation).read_text()), HERE / "validation.html"))
    ok = True
    for p in out:
        line = f"wrote {p.relative_to(HERE.parent)} ({p.stat().st_size / 1e6:.1f} MB)"
        if args.check:
            from llmsim.report.browser import check_report, screenshot

            c = check_report(p)
            screenshot(p, p.with_suffix(".png"))
            ok &= c.ok
            line += f": {c.rendered}/{c.charts} charts rendered, {len(c.console_errors)} console errors"
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
