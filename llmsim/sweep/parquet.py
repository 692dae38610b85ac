"""Sweep rows as a Parquet table (``pyarrow``, the optional ``parquet`` extra), so pandas, polars
and DuckDB read a sweep directly. Nested fields are flattened with dots (``axes.hw.memory.channels``,
``energy_breakdown_j.dram_io``); lists become JSON text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmsim.errors import LlmsimError


def require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise LlmsimError("Parquet output needs the 'pyarrow' package: pip install 'llmsim[parquet]'") from None
    return pyarrow


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def rows_table(rows: list[dict[str, Any]]) -> Any:
    """A ``pyarrow.Table``, one row per sweep point; a column a row lacks is null there."""
    pa = require_pyarrow()
    flat = [flatten(r) for r in rows]
    cols: dict[str, list[Any]] = {}
    for i, f in enumerate(flat):
        for k in f:
            cols.setdefault(k, [None] * i)
        for k, col in cols.items():
            col.append(f.get(k))
    data = {}
    for k, col in cols.items():
        kinds = {type(v) for v in col if v is not None}
        if kinds and kinds <= {int, float} and kinds != {int}:
            col = [None if v is None else float(v) for v in col]
        elif len(kinds) > 1:
            col = [None if v is None else str(v) for v in col]
        data[k] = col
    return pa.table(data)


def write_parquet(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` to ``path`` atomically (a temporary file, then a rename)."""
    import os
    import tempfile

    import pyarrow.parquet as pq

    path = Path(path)
    table = rows_table(rows)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
