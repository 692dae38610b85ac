"""Reading and writing files safely: atomic writes, early writability checks, strict JSON.

Both the CLI and the report package write through this module (it imports neither), so a
result file is never half-written, an unwritable output path is found before a simulation
starts, and JSON never carries a bare ``NaN`` or ``Infinity`` (which other tools reject).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from llmsim.errors import LlmsimError

#: largest text input llmsim reads (a config, a spec, a result JSON): presets are a few kB,
#: a full run JSON with per-op traces a few MB; 64 MiB leaves room and caps memory use.
MAX_INPUT_BYTES = 64 * 2**20


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


def check_writable(path: str | Path, flag: str) -> Path:
    """Refuse, before any work, an output ``path`` that cannot be written: a folder, a missing
    or read-only parent folder. ``flag`` names the option in the message (``--json``)."""
    path = Path(path)
    if path.is_dir():
        raise LlmsimError(f"{flag} {path}: is a folder, expected a file name")
    parent = path.parent
    if not parent.is_dir():
        raise LlmsimError(f"{flag} {path}: folder {parent} does not exist")
    try:  # a real probe: os.access misses read-only mounts and ACLs
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as e:
        raise LlmsimError(f"{flag} {path}: folder {parent} is not writable ({_why(e)})") from None
    os.close(fd)
    os.unlink(probe)
    if path.exists() and not os.access(path, os.W_OK):
        raise LlmsimError(f"{flag} {path}: file exists and is read-only")
    return path


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename: never half-written."""
    path = Path(path)
    if path.is_dir():
        raise LlmsimError(f"cannot write {path}: it is a folder")
    if not path.parent.is_dir():
        raise LlmsimError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise LlmsimError(f"cannot write {path} ({_why(e)})") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise LlmsimError(f"cannot write {path} ({_why(e)})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _non_finite(obj: Any, where: str = "") -> str | None:
    """Path of the first NaN/inf float inside ``obj`` (dicts, lists), or None."""
    stack = [(obj, where)]
    while stack:
        x, w = stack.pop()
        if isinstance(x, float) and not math.isfinite(x):
            return w or "<root>"
        if isinstance(x, dict):
            stack.extend((v, f"{w}.{k}" if w else str(k)) for k, v in x.items())
        elif isinstance(x, (list, tuple)):
            stack.extend((v, f"{w}[{i}]") for i, v in enumerate(x))
    return None


def dumps_json(obj: Any, what: str = "result") -> str:
    """Strict JSON (no NaN/Infinity): a non-finite number is an error naming its field."""
    try:
        return json.dumps(obj, sort_keys=True, indent=1, allow_nan=False)
    except ValueError:
        raise LlmsimError(f"{what}: field {_non_finite(obj)} is not a finite number; refusing to write "
                          "non-standard JSON") from None


def write_json(path: str | Path, obj: Any, what: str = "result") -> None:
    """:func:`dumps_json` then :func:`write_atomic`."""
    write_atomic(path, dumps_json(obj, what))


def read_text(path: str | Path, what: str = "", max_bytes: int = MAX_INPUT_BYTES) -> str:
    """A UTF-8 text file, refused with a one-line error when missing, binary or over ``max_bytes``."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    try:
        if path.is_dir():
            raise LlmsimError(f"{label}: is a folder, expected a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise LlmsimError(f"{label}: {size / 2**20:.1f} MiB is over the {max_bytes // 2**20} MiB input limit")
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as e:
        raise LlmsimError(f"{label}: cannot read ({_why(e)})") from None
    if len(raw) > max_bytes:  # grew, or a device/pipe whose stat size says nothing
        raise LlmsimError(f"{label}: over the {max_bytes // 2**20} MiB input limit")
    if b"\x00" in raw:
        raise LlmsimError(f"{label}: is a binary file, expected text (YAML/JSON)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LlmsimError(f"{label}: not UTF-8 text (byte {e.start})") from None
