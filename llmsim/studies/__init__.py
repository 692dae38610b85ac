"""Studies: the seed papers' own results reproduced with llmsim (``llmsim study NAME``).

Each study module exposes ``run(quick: bool) -> Study``: it runs the simulator over the paper's
grid (``quick``: a reduced grid, for tests) and returns the numbers, a markdown table and an HTML
page with the paper's values drawn beside llmsim's. :func:`write` stores them in a folder as
``results.json``, ``results.md`` and ``report.html``. Nothing here models hardware.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmsim.errors import ConfigError

STUDIES = {"leanattention": "leanattention", "encoder": "encoder", "pim-gpt": "pim_gpt"}


@dataclass
class Study:
    name: str
    results: dict[str, Any]
    markdown: str
    page: Any = None  # llmsim.report.page.Page
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def run_study(name: str, quick: bool = False) -> Study:
    if name not in STUDIES:
        raise ConfigError(f"study: unknown study '{name}' (known: {', '.join(STUDIES)})")
    import time

    mod = importlib.import_module(f"llmsim.studies.{STUDIES[name]}")
    t0 = time.perf_counter()
    st = mod.run(quick=quick)
    st.seconds = time.perf_counter() - t0
    return st


def write(st: Study, out: str | Path) -> list[Path]:
    """``results.json``, ``results.md`` and ``report.html`` under ``out``; returns their paths."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / "results.json", d / "results.md"]
    paths[0].write_text(json.dumps({"study": st.name, "seconds": st.seconds, **st.results}, indent=1, default=str))
    paths[1].write_text(st.markdown + "\n")
    if st.page is not None:
        paths.append(d / "report.html")
        paths[2].write_text(st.page.render())
    return paths
