"""Loading specs: bundled names, YAML with ``extends:``, ``--set`` overrides, validation.

Resolution of a name (``pim``, ``pim.yaml``, ``./my/pim.yaml``): an existing path first,
then the bundled folder (``hw_configs/`` for hardware, ``workloads/`` for models). An
``extends:`` key may appear in any mapping (the top level or e.g. ``memory:``); it names a
file relative to the file that holds it, or a bundled preset, and the mapping around it is
merged over that file's content (mappings merge recursively, everything else replaces).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from llmsim.config.hardware import HardwareSpec
from llmsim.config.model import ModelSpec
from llmsim.config.scenario import Scenario
from llmsim.errors import ConfigError, LlmsimError

HW_ADAPTER: TypeAdapter = TypeAdapter(HardwareSpec)
_HW_ADAPTER = HW_ADAPTER  # old private name, kept for callers outside this package

#: Caps on config files (presets, model specs, HF config.json, sweep specs — all a few kB):
#: bytes read, values after YAML aliases are expanded, and nesting depth. A file past them is
#: refused before it can cost much memory or time (an alias "billion laughs", a 50 MB YAML).
MAX_CONFIG_BYTES = 2**20
MAX_CONFIG_VALUES = 200_000
MAX_CONFIG_DEPTH = 64


def bundled_dir(name: str) -> Path:
    """The folder holding bundled ``hw_configs`` or ``workloads``.

    Inside an installed wheel they live at ``llmsim/<name>``; in a source checkout (or an
    editable install) at the repository root beside the package.
    """
    pkg = Path(__file__).resolve().parent.parent
    for candidate in (pkg / name, pkg.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"bundled folder '{name}' not found next to the llmsim package ({pkg})")


def resolve_path(name: str | Path, folder: str, relative_to: Path | None = None) -> Path:
    """Find a YAML file by path or bundled name (with or without ``.yaml``)."""
    raw = str(name)
    candidates: list[Path] = []
    for stem in (raw, raw + ".yaml") if not raw.endswith((".yaml", ".yml", ".json")) else (raw,):
        p = Path(stem).expanduser()
        if relative_to is not None and not p.is_absolute():
            candidates.append(relative_to / p)
        candidates.append(p)
        candidates.append(bundled_dir(folder) / p)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    if Path(raw).expanduser().is_dir():
        raise ConfigError(f"{raw}: is a folder, expected a {folder} preset name or a YAML file")
    known = ", ".join(list_bundled(folder))
    raise ConfigError(f"no {folder} preset or file named '{raw}' (bundled: {known})")


def list_bundled(folder: str) -> list[str]:
    root = bundled_dir(folder)
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def deep_merge(base: dict, delta: dict) -> dict:
    """``delta`` over ``base``: mappings merge recursively, other values replace."""
    out = copy.deepcopy(base)
    for k, v in delta.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def check_size(data: Any, where: str) -> Any:
    """Refuse ``data`` whose expansion (aliases counted at every use) passes
    :data:`MAX_CONFIG_VALUES` values or whose nesting passes :data:`MAX_CONFIG_DEPTH`.

    YAML aliases load as shared objects, so the file itself is small; but everything after
    loading (``extends:`` merges, deep copies, validation) expands them. Sizes are counted
    once per distinct object (memoised), so the check itself stays cheap on a bomb."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, int, bool]] = [(data, 1, False)]
    while stack:
        x, depth, done = stack.pop()
        if not isinstance(x, (dict, list)):
            continue
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{where}: nested deeper than {MAX_CONFIG_DEPTH} levels")
        kids = list(x.values()) if isinstance(x, dict) else x
        if done:
            n = 1 + sum(sizes.get(id(k), 1) for k in kids)
            if n > MAX_CONFIG_VALUES:
                raise ConfigError(f"{where}: expands to over {MAX_CONFIG_VALUES:,} values "
                                  "(YAML aliases counted at each use); refusing it")
            sizes[id(x)] = n
        elif id(x) not in sizes:
            stack.append((x, depth, True))
            stack.extend((k, depth + 1, False) for k in kids if id(k) not in sizes)
    return data


def read_yaml(path: Path) -> Any:
    """One YAML (or ``.json``) file, size-, alias- and depth-capped; every failure a ConfigError."""
    from llmsim.io import read_text

    try:
        text = read_text(path, max_bytes=MAX_CONFIG_BYTES)
    except LlmsimError as e:
        raise ConfigError(str(e)) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, ValueError) as e:
        first = str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML/JSON ({first})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested deeper than the parser allows (limit {MAX_CONFIG_DEPTH})") from None
    return check_size(data, str(path))


_read_yaml = read_yaml  # old private name


def _expand(data: Any, here: Path, folder: str, chain: tuple[Path, ...]) -> Any:
    """Resolve every ``extends:`` inside ``data`` (a value read from a file in ``here``)."""
    if isinstance(data, list):
        return [_expand(x, here, folder, chain) for x in data]
    if not isinstance(data, dict):
        return data
    data = {k: _expand(v, here, folder, chain) for k, v in data.items()}
    parent = data.pop("extends", None)
    if parent is None:
        return data
    path = resolve_path(parent, folder, relative_to=here)
    if path in chain:
        raise ConfigError(f"{chain[-1]}: 'extends: {parent}' forms a cycle")
    base = load_yaml(path, folder, chain + (path,))
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return deep_merge(base, data)


def load_yaml(path: Path, folder: str, chain: tuple[Path, ...] = ()) -> Any:
    """Read a YAML file and resolve its ``extends:`` keys."""
    return check_size(_expand(read_yaml(path), path.parent, folder, chain or (path,)), str(path))


def parse_set(items: list[str] | tuple[str, ...]) -> list[tuple[list[str], Any]]:
    """Parse ``a.b.c=value`` strings; the value is read as YAML (``8``, ``1e9``, ``[1,2]``)."""
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set '{item}': expected KEY.PATH=VALUE")
        key, _, raw = item.partition("=")
        try:
            value = check_size(yaml.safe_load(raw), f"--set {key}")
        except (yaml.YAMLError, RecursionError):
            value = raw
        out.append(([p for p in key.strip().split(".") if p], value))
    return out


def apply_set(data: dict, path: list[str], value: Any, label: str) -> dict:
    """Set ``path`` in ``data`` to ``value``; the field must already exist (typos fail)."""
    node = data
    for i, key in enumerate(path):
        where = ".".join([label, *path[: i + 1]])
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            key = int(key)  # type: ignore[assignment]
        elif isinstance(node, dict) and key not in node and key.isdigit() and int(key) in node:
            key = int(key)  # type: ignore[assignment]  # a map keyed by integers (rates by row count)
        elif not isinstance(node, dict) or key not in node:
            raise ConfigError(f"--set {where}: no such field")
        if i == len(path) - 1:
            node[key] = value
        else:
            node = node[key]
    return data


def format_validation(e: ValidationError, where: str) -> str:
    # a bad value first: a missing field is often derived from it (bank_mac.flops_per_cycle from mac_lanes_per_bank)
    err = sorted(e.errors(), key=lambda x: x["type"] == "missing")[0]
    loc = ".".join(str(x) for x in err["loc"] if not (isinstance(x, str) and x in ("gpu", "npu", "cpu", "pim")))
    more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    got = err.get("input")
    shown = f" (got {got!r})" if isinstance(got, (str, int, float, bool)) and err["type"] != "missing" else ""
    if len(shown) > 80:  # a value is echoed to name it, not to print a file's contents back
        shown = shown[:72] + "...)"
    return f"{where}: {loc or '<root>'}: {err['msg']}{shown}{more}"


def validate(adapter_or_cls: Any, data: Any, where: str) -> Any:
    try:
        if isinstance(adapter_or_cls, TypeAdapter):
            return adapter_or_cls.validate_python(data)
        return adapter_or_cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation(e, where)) from None


def hardware_dict(name: str | Path) -> tuple[dict, Path]:
    path = resolve_path(name, "hw_configs")
    data = load_yaml(path, "hw_configs")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data, path


def model_dict(name: str | Path) -> tuple[dict, Path]:
    path = resolve_path(name, "workloads")
    if path.suffix == ".json":
        from llmsim.config.hf import from_hf_config

        try:
            return from_hf_config(read_yaml(path), path), path
        except (TypeError, ValueError, ArithmeticError) as e:
            raise ConfigError(f"{path}: a Hugging Face config field has the wrong type ({e})") from None
    data = load_yaml(path, "workloads")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data, path


def load_hardware(name: str | Path, overrides: list[tuple[list[str], Any]] = ()) -> Any:
    data, path = hardware_dict(name)
    for p, v in overrides:
        apply_set(data, p, v, "hw")
    return validate_hardware(data, str(path))


def validate_hardware(data: Any, where: str) -> Any:
    """A hardware dict validated into its spec; a missing ``kind:`` is said plainly."""
    if isinstance(data, dict) and "kind" not in data:
        raise ConfigError(f"{where}: missing 'kind:' (one of gpu, npu, cpu, pim); memory/ and framework/ files "
                          "are parts a preset extends, not hardware")
    return validate(HW_ADAPTER, data, where)


def load_model(name: str | Path, overrides: list[tuple[list[str], Any]] = ()) -> ModelSpec:
    data, path = model_dict(name)
    for p, v in overrides:
        apply_set(data, p, v, "model")
    return validate(ModelSpec, data, str(path))


def make_scenario(fields: dict, overrides: list[tuple[list[str], Any]] = ()) -> Scenario:
    data = Scenario().model_dump(mode="json") | {k: v for k, v in fields.items() if v is not None}
    for p, v in overrides:
        apply_set(data, p, v, "scenario")
    return validate(Scenario, data, "scenario")


def split_overrides(items: list[str] | tuple[str, ...]) -> dict[str, list[tuple[list[str], Any]]]:
    """Route ``hw.x=..``, ``model.x=..``, ``scenario.x=..`` to their spec."""
    routed: dict[str, list] = {"hw": [], "model": [], "scenario": []}
    for path, value in parse_set(items):
        if not path or path[0] not in routed or len(path) < 2:
            raise ConfigError(f"--set {'.'.join(path)}: must start with hw., model. or scenario.")
        routed[path[0]].append((path[1:], value))
    return routed


@cache
def json_schema() -> dict:
    """JSON Schema of hardware, model and scenario specs (for editor completion of YAML)."""
    return {
        "hardware": HW_ADAPTER.json_schema(),
        "model": ModelSpec.model_json_schema(),
        "scenario": Scenario.model_json_schema(),
    }


def spec_dict(spec: BaseModel) -> dict:
    return spec.model_dump(mode="json")
