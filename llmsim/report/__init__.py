"""HTML reports from saved results: one self-contained file (plotly.js inlined) per input.

Three inputs, told apart by their keys:

* a **run** — the JSON of ``llmsim run --json`` (:meth:`llmsim.engine.result.SimResult.to_dict`;
  has ``ttft_s`` and ``step_details``);
* a **sweep** — a sweep folder (``results.jsonl``, ``sweep_spec.yaml``, ``configs/``), loaded by
  :func:`load_input` into ``{"kind": "sweep", "rows": [...], "spec": {...}, "dir": ...}``;
* a **validation** — a dict with ``cases`` (and optionally ``op_classes``); see
  :mod:`llmsim.report.validation` for the keys it reads.

Reports never simulate: they read what was saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmsim.errors import LlmsimError

__all__ = ["detect", "load_input", "render", "write_report"]


def load_input(path: str | Path) -> dict[str, Any]:
    """Read a run/validation/serve JSON file or a sweep folder into the dict :func:`write_report` takes."""
    path = Path(path)
    if path.is_dir():
        from llmsim.sweep.store import RESULTS, SPEC, read_rows

        if not (path / RESULTS).exists():
            raise LlmsimError(f"{path}: not a sweep folder (no {RESULTS})")

        from llmsim.config.loader import read_yaml

        spec = read_yaml(path / SPEC) if (path / SPEC).exists() else {}
        return {"kind": "sweep", "rows": read_rows(path / RESULTS), "spec": spec if isinstance(spec, dict) else {},
                "dir": str(path)}
    from llmsim.io import read_text

    text = read_text(path, "report input")
    def _refuse(name: str) -> Any:
        raise LlmsimError(f"{path}: holds {name}, which is not standard JSON (a result must be finite)")

    try:
        data = json.loads(text, parse_constant=_refuse)
    except json.JSONDecodeError as e:
        raise LlmsimError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise LlmsimError(f"{path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise LlmsimError(f"{path}: expected a JSON object (a run, sweep or validation result), got "
                          f"{type(data).__name__}")
    detect(data)
    return data


def detect(data: dict[str, Any]) -> str:
    """``run``, ``sweep``, ``validation`` or ``serve``; an error naming the keys looked for otherwise."""
    if not isinstance(data, dict):
        raise LlmsimError("report input must be a JSON object or a sweep folder")
    if data.get("kind") == "serve":
        return "serve"
    if data.get("kind") == "validation" or "cases" in data or "op_classes" in data:
        return "validation"
    if data.get("kind") == "sweep" or "rows" in data:
        return "sweep"
    if "ttft_s" in data and "step_details" in data:
        return "run"
    raise LlmsimError("report input not recognised: expected a run JSON (ttft_s, step_details), a sweep folder "
                      "(results.jsonl), a validation JSON (cases) or a serve JSON (kind: serve)")


def render(data: dict[str, Any]) -> str:
    """The report's HTML text."""
    kind = detect(data)
    if kind == "run":
        from llmsim.report.run import build
    elif kind == "sweep":
        from llmsim.report.sweep import build
    elif kind == "serve":
        from llmsim.serving.report import build
    else:
        from llmsim.report.validation import build
    try:
        return build(data).render()
    except KeyError as e:
        raise LlmsimError(f"{kind} report input lacks field {e.args[0]!r} (was it written by llmsim {kind}?)") from None
    except (TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as e:
        raise LlmsimError(f"{kind} report input has a field of the wrong shape ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:120]})") from None


def write_report(data: dict[str, Any], out_path: str | Path) -> Path:
    """Write the report of ``data`` (a loaded run JSON, a :func:`load_input` sweep, or a
    validation JSON) to ``out_path`` atomically; returns the path."""
    from llmsim.io import write_atomic

    out = Path(out_path)
    write_atomic(out, render(data))
    return out
