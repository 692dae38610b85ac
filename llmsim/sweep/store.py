"""The on-disk result store of a sweep: ``DIR/results.jsonl`` plus ``DIR/configs/<hash>.json``.

One JSON line per design point, appended and fsync'ed as soon as the point finishes, so a
sweep killed at any instant loses at most the point being written. The key of a row is the
hash of its resolved config (:func:`llmsim.sweep.space.config_hash`); a rerun skips every key
already present. A kill can leave a truncated last line: :meth:`ResultStore.open` drops it
(truncating the file back to the last complete line) so the next append starts clean.
Each resolved config is saved beside the rows, so every result can be reproduced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmsim.errors import LlmsimError
from llmsim.io import dumps_json, write_atomic

RESULTS = "results.jsonl"
CONFIGS = "configs"
SPEC = "sweep_spec.yaml"


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Complete rows of a ``results.jsonl`` (a trailing partial line is ignored; a corrupt
    line elsewhere is an error naming its line number)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as e:
        raise LlmsimError(f"{path}: cannot read ({e.strerror})") from None
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, too deep
            if i == len(lines) - 1:  # the unterminated tail of an interrupted write
                break
            raise LlmsimError(f"{path}: line {i + 1} is not valid JSON") from None
        if not (isinstance(row, dict) and isinstance(row.get("key"), str)):
            raise LlmsimError(f"{path}: line {i + 1} is not a sweep row (an object with a 'key')")
        rows.append(row)
    return rows


class ResultStore:
    """Append-only, resumable store of sweep rows keyed by config hash. Written only by
    the driver process (workers return results; they never touch the files)."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.path = self.dir / RESULTS
        self.rows: dict[str, dict[str, Any]] = {}

    def open(self, spec_yaml: str, force: bool = False) -> ResultStore:
        """Create the folder or reopen it. Reopening checks that it holds the same sweep
        (``sweep_spec.yaml`` identical) unless ``force``; drops a truncated tail."""
        if self.dir.exists() and not self.dir.is_dir():
            raise LlmsimError(f"--out {self.dir}: exists and is not a folder")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / CONFIGS).mkdir(exist_ok=True)
        except OSError as e:
            raise LlmsimError(f"--out {self.dir}: cannot create the result folder ({e.strerror})") from None
        from llmsim.io import check_writable

        check_writable(self.dir / RESULTS, "--out")
        spec_path = self.dir / SPEC
        if spec_path.exists() and not force and spec_path.read_text() != spec_yaml:
            raise LlmsimError(f"{self.dir} holds results of a different sweep ({SPEC} differs); "
                              "use another --out, or --force to reuse its rows")
        write_atomic(spec_path, spec_yaml)
        if self.path.exists():
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end < len(data):  # drop the partial line a kill left behind
                with open(self.path, "r+b") as fh:
                    fh.truncate(end)
                    os.fsync(fh.fileno())
        for row in read_rows(self.path):
            self.rows[row["key"]] = row
        return self

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def save_config(self, key: str, config: dict[str, Any]) -> str:
        """Write ``configs/<key>.json`` (atomically); returns its path relative to the store."""
        rel = f"{CONFIGS}/{key}.json"
        target = self.dir / rel
        if not target.exists():
            write_atomic(target, dumps_json(config, f"config of point {key}"))
        return rel

    def append(self, row: dict[str, Any]) -> None:
        """Append one row and make it durable before returning (flush + fsync)."""
        if row["key"] in self.rows:
            return
        try:
            line = json.dumps(row, sort_keys=True, default=str, allow_nan=False) + "\n"
        except ValueError:
            raise LlmsimError(f"point {row['key']}: a result is not a finite number; not stored") from None
        with open(self.path, "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.rows[row["key"]] = row
