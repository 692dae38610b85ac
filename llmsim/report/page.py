"""One self-contained HTML page: summary cards, sections of Plotly charts, small tables.

plotly.js is inlined once (so the file works offline, with no CDN); each chart is a
``<div id="chart-N" class="plotly-graph-div">`` drawn by ``Plotly.newPlot``. Nothing here knows what the
charts show — the run, sweep and validation modules build the figures.
"""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

PLOT_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "svg"}}
LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "font": {"size": 12}}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#b8c0d0;font-size:13px}main{padding:18px 28px;max-width:1500px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:18px}
.card{background:#fff;border-radius:8px;padding:12px 16px;min-width:140px;box-shadow:0 1px 3px #0002}
.card .v{font-size:20px;font-weight:600}.card .l{font-size:12px;color:#667}
section{background:#fff;border-radius:8px;padding:12px 16px;margin-bottom:18px;box-shadow:0 1px 3px #0002}
section h2{font-size:16px;margin:4px 0 4px}section p.note{font-size:12px;color:#667;margin:0 0 6px}
table{border-collapse:collapse;font-size:12px}td,th{border-bottom:1px solid #e3e6ea;padding:3px 8px;text-align:left}
th{background:#f0f2f5}.grid2{display:grid;grid-template-columns:1fr 1fr;gap:18px}
"""


def fmt_s(s: float | None) -> str:
    """Seconds with an SI prefix (``12.3 ms``)."""
    if s is None:
        return "–"
    for unit, k in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(s) >= k or unit == "ns":
            return f"{s / k:.3g} {unit}"
    return f"{s:.3g} s"


def fmt_si(x: float | None, unit: str) -> str:
    """``x`` with an SI prefix and ``unit`` (``3.2 GB/s``, ``9.35 mJ``)."""
    if x is None:
        return "–"
    for p, k in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0), ("m", 1e-3), ("µ", 1e-6), ("n", 1e-9)):
        if abs(x) >= k:
            return f"{x / k:.3g} {p}{unit}"
    return f"{x:.3g} {unit}"


class Page:
    """Collects cards, charts and tables in order; :meth:`render` returns the HTML text."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title, self.subtitle = title, subtitle
        self.parts: list[str] = []
        self.n_charts = 0

    def cards(self, items: list[tuple[str, str]]) -> None:
        cells = "".join(f'<div class="card"><div class="v">{html.escape(v)}</div>'
                        f'<div class="l">{html.escape(k)}</div></div>' for k, v in items)
        self.parts.append(f'<div class="cards">{cells}</div>')

    def chart(self, title: str, fig: go.Figure, note: str = "", height: int = 420) -> None:
        """Add a section holding one Plotly figure."""
        fig.update_layout(**LAYOUT, height=height)
        self.n_charts += 1
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, config=PLOT_CONFIG,
                          div_id=f"chart-{self.n_charts}", default_width="100%",
                          default_height=f"{height}px")
        self.section(title, div, note)

    def table(self, title: str, header: list[str], rows: list[list[Any]], note: str = "") -> None:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        self.section(title, f"<table><tr>{head}</tr>{body}</table>", note)

    def section(self, title: str, inner_html: str, note: str = "") -> None:
        n = f'<p class="note">{html.escape(note)}</p>' if note else ""
        self.parts.append(f"<section><h2>{html.escape(title)}</h2>{n}{inner_html}</section>")

    def render(self) -> str:
        from plotly.offline import get_plotlyjs

        return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style>"
                f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
                f"<header><h1>{html.escape(self.title)}</h1><p>{html.escape(self.subtitle)}</p></header>"
                f"<main>{''.join(self.parts)}</main></body></html>")
