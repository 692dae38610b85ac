"""Checking a report in a real headless browser (Chromium), with no extra Python packages.

:func:`check_report` loads the page with ``--dump-dom`` after a virtual-time budget (so all
scripts have run), captures the browser's console on stderr, and returns the rendered DOM's
verdict: every chart div must hold a drawn plot (``svg.main-svg``) and the console must show
no JavaScript errors. :func:`screenshot` saves a PNG for a human to look at. Used by the
report tests and by ``reports/make_examples.py``; not imported by llmsim itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]
#: how the test set-up installs it (Debian/Ubuntu, as root)
INSTALL = "apt-get update && apt-get install -y chromium"


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    charts: int
    rendered: int
    console_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.charts > 0 and self.rendered == self.charts and not self.console_errors


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="llmsim-chromium-") as profile:
        return subprocess.run([find_chromium() or "chromium", *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def check_report(html_path: str | Path, budget_ms: int = 8000, timeout: float = 120) -> PageCheck:
    """Load ``html_path`` headless; count chart divs and those holding a rendered plot."""
    url = Path(html_path).resolve().as_uri()
    p = _run(["--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout)
    dom = p.stdout
    # each chart: <div id="chart-N" class="plotly-graph-div ..."> ... up to the next chart
    starts = [m.start() for m in re.finditer(r'<div[^>]*id="chart-\d+"', dom)]
    pieces = [dom[a:b] for a, b in zip(starts, starts[1:] + [len(dom)], strict=False)]
    rendered = sum('class="main-svg"' in piece for piece in pieces)
    errors = [ln for ln in p.stderr.splitlines() if "CONSOLE" in ln and
              re.search(r"(Uncaught|Error|error)", ln)]
    return PageCheck(len(starts), rendered, errors)


def screenshot(html_path: str | Path, png_path: str | Path, size: tuple[int, int] = (1400, 2400),
               budget_ms: int = 8000, timeout: float = 120) -> Path:
    """Save a PNG of the page (``size`` = window width, height in px)."""
    png = Path(png_path).resolve()
    _run([f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={budget_ms}", f"--screenshot={png}",
          Path(html_path).resolve().as_uri()], timeout)
    return png
