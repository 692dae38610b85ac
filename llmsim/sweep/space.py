"""Design spaces: a base configuration, axes over any field path, sampling and constraints.

A sweep spec (YAML) names a base and the axes to vary::

    hw: pim.yaml                  # preset name or path (relative to the spec file first)
    model: gpt2-xl
    scenario: {batch: 1, prompt: 64, gen: 8}
    fidelity: analytic            # optional, default cycle
    set: [hw.static_power_w=1]    # optional base overrides, as --set
    axes:                         # field path -> values
      hw.memory.channels: [1, 2, 4, 8, 16, 32]        # a list
      scenario.batch: {range: [1, 4, 1]}              # start, stop (inclusive), step
      hw.asic.clock_hz: {logrange: [5.0e8, 2.0e9], num: 3}   # geometric; or factor: 2
      hw.memory.tck_ns: {range: [0.2, 0.4]}           # no step: continuous (random/lhs only)
    derived:                      # optional: fields computed from others after the axes
      hw.bank_mac.count: "hw.memory.channels * hw.memory.bank_groups * hw.memory.banks_per_group"
    sample: {method: grid}        # grid (default) | random | lhs, with n: and seed:
    constraints:                  # points failing a config constraint never run;
      - "hw.memory.channels * hw.asic.clock_hz <= 3.2e10"   # result constraints mark rows infeasible
      - "avg_power_w <= 5"
    objectives: [total_s, energy_per_token_j]   # Pareto; "max:tokens_per_s" to maximise

With a ``serve:`` block every point is an ``llmsim serve`` run instead (one Poisson rate, or a recorded
``trace:`` file, its path relative to the spec; the block is :class:`llmsim.serving.config.ServeRun`: rate or
trace, requests, prompt_dist, output_dist, scheduler, replicas, slo, seed and the engine knobs), axes may also
name ``serve.FIELD``, and rows hold :data:`SERVE_METRICS`. A trace's SHA-256 is part of each point's config, so
editing the file gives new keys::

    serve: {rate: 2, requests: 200, prompt_dist: "fixed:64", output_dist: "fixed:16", slo: "ttft=50ms"}
    axes: {serve.rate: [1, 2, 4], serve.replicas: [1, 2]}
    objectives: ["max:goodput_rps", energy_per_token_j]

``hw`` may then name a system preset (``dgx-h100``): the block's ``tp``, ``pp``, ``ep``, ``dp`` and
``micro_batches`` lay it out as ``llmsim serve``'s flags do (:func:`llmsim.system.serve.serve_target`),
so ``axes: {serve.tp: [1, 2, 4, 8]}`` compares layouts; a layout the flags would refuse (``--tp 3`` on
a model with 32 heads, more ranks than devices, weights that do not fit) is a failed point with that
message. Without a ``serve:`` block a sweep runs on a system with a ``layout:`` block instead: every point
is an ``llmsim run`` at that layout (``tp``, ``pp``, ``ep``, ``dp``, ``micro_batches``, as ``run``'s flags;
unset ones are 1), axes may name ``layout.FIELD``, and rows hold :data:`METRICS`::

    hw: dgx-h100
    model: llama-2-7b
    layout: {tp: 1}
    axes: {layout.tp: [1, 2, 4, 8], scenario.batch: [1, 8]}

Axis paths start with ``hw.``, ``model.``, ``scenario.``, ``serve.`` or ``layout.`` (or are ``fidelity``); they are
applied with :func:`llmsim.config.loader.apply_set`, so any existing field works and a
misspelled path fails before anything runs. Every point is resolved and validated up front.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from llmsim.config.loader import (
    apply_set,
    hardware_dict,
    make_scenario,
    model_dict,
    read_yaml,
    resolve_path,
    split_overrides,
    validate,
    validate_hardware,
)
from llmsim.config.model import ModelSpec
from llmsim.errors import ConfigError
from llmsim.sweep.expr import evaluate, names_in

SPEC_KEYS = {"hw", "model", "scenario", "fidelity", "set", "axes", "derived", "sample", "constraints", "objectives",
             "serve", "layout"}
#: result metrics a constraint or objective may name (columns of every result row)
#: values one axis may expand to, and the default cap on a sweep's points (``--max-points``
#: raises it): both are checked from the counts, before any list is built.
MAX_AXIS_VALUES = 1_000_000
MAX_POINTS = 100_000
METRICS = ("ttft_s", "tpot_s", "total_s", "tokens_per_s", "energy_j", "energy_per_token_j", "avg_power_w",
           "area_mm2", "cost_usd")
#: the metrics of a serve point's row (a spec with a ``serve:`` block)
SERVE_METRICS = ("throughput_rps", "throughput_tokens_per_s", "goodput_rps", "slo_attained", "ttft_p50_s",
                 "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s", "e2e_p99_s", "queueing_mean_s",
                 "preemptions", "batch_size_mean", "kv_use_mean", "busy_fraction", "energy_j",
                 "energy_per_request_j", "energy_per_token_j", "energy_per_token_with_idle_j", "area_mm2",
                 "cost_usd")


@dataclass(frozen=True)
class Axis:
    """One axis: ``values`` (discrete) or a continuous interval ``[lo, hi]`` (``log``, ``integer``)."""

    path: str
    values: tuple[Any, ...] | None = None
    lo: float = 0.0
    hi: float = 0.0
    log: bool = False
    integer: bool = False

    def pick(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1): an index into ``values`` or a point of the interval."""
        if self.values is not None:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        x = math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo))) if self.log \
            else self.lo + u * (self.hi - self.lo)
        return int(round(x)) if self.integer else x


@dataclass(frozen=True)
class Point:
    """One resolved design point: its axis values, validated spec dicts and their hash."""

    values: dict[str, Any]
    hw: dict
    model: dict
    scenario: dict
    fidelity: str
    key: str = field(default="")
    serve: dict | None = None
    devices: dict | None = None  # a system's device groups, their presets resolved (hashed and saved with it)
    layout: dict | None = None  # a run sweep's system layout (tp, pp, ep, dp, micro_batches)

    def config(self) -> dict[str, Any]:
        cfg = {"hw": self.hw, "model": self.model, "scenario": self.scenario, "fidelity": self.fidelity}
        if self.serve is not None:
            cfg["serve"] = self.serve
        if self.layout is not None:
            cfg["layout"] = self.layout
        if self.devices is not None:
            cfg["devices"] = self.devices
        return cfg

    def context(self) -> dict[str, Any]:
        """The names a constraint may read about the point's config."""
        ctx = {"hw": self.hw, "model": self.model, "scenario": self.scenario}
        if self.layout is not None:
            ctx["layout"] = self.layout
        return ctx if self.serve is None else ctx | {"serve": self.serve}


def _trace_path(value: Any, base_dir: Path, where: str) -> str:
    """A serve trace's absolute path (relative ones from the spec's folder); it must be a file."""
    p = Path(str(value)).expanduser()
    p = (p if p.is_absolute() else base_dir / p).resolve()
    if not p.is_file():
        raise ConfigError(f"{where}: {value}: no such file")
    return str(p)


def trace_sha256(path: str) -> str:
    """The SHA-256 of a trace file's bytes (a serve point's config holds it; the point checks it when it runs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _layout(layout: dict[str, Any], where: str) -> dict[str, int]:
    """A run sweep's system layout: every LAYOUT_FIELDS key, each an integer (``llmsim run``'s flags
    check the values when the point runs, so a layout they refuse is a failed point with their message)."""
    from llmsim.serving.config import LAYOUT_FIELDS

    unknown = set(layout) - set(LAYOUT_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} (known: {', '.join(LAYOUT_FIELDS)})")
    for k, v in layout.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where}.{k}: expected an integer, got {v!r}")
    return {k: layout[k] for k in LAYOUT_FIELDS}


def config_hash(config: dict[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the canonical JSON of a resolved config."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_int(*xs: Any) -> bool:
    return all(isinstance(x, int) and not isinstance(x, bool) for x in xs)


def parse_axis(path: str, raw: Any, where: str) -> Axis:
    """Read one axis: a list, ``{range: [a, b, step]}``, ``{range: [a, b]}`` (continuous),
    ``{logrange: [a, b], num: N | factor: F}`` or ``{logrange: [a, b]}`` (continuous, log)."""
    w = f"{where}: axis '{path}'"
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{w}: empty list")
        return Axis(path, tuple(raw))
    if not isinstance(raw, dict) or len({"range", "logrange"} & raw.keys()) != 1:
        raise ConfigError(f"{w}: expected a list, {{range: [start, stop, step]}} or {{logrange: [start, stop]}}")
    extra = set(raw) - {"range", "logrange", "num", "factor", "int"}
    if extra:
        raise ConfigError(f"{w}: unknown key(s) {sorted(extra)}")
    kind = "range" if "range" in raw else "logrange"
    bounds = raw[kind]
    if not isinstance(bounds, list) or len(bounds) not in (2, 3) or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
        raise ConfigError(f"{w}: {kind} needs [start, stop] or [start, stop, {'step' if kind == 'range' else 'num'}]")
    lo, hi = bounds[0], bounds[1]
    if not all(math.isfinite(b) for b in bounds):
        raise ConfigError(f"{w}: {kind} bounds must be finite numbers")
    if hi < lo:
        raise ConfigError(f"{w}: stop {hi} < start {lo}")
    integer = bool(raw.get("int", _is_int(lo, hi)))
    if kind == "range":
        if len(bounds) == 2:
            return Axis(path, None, float(lo), float(hi), False, integer)
        step = bounds[2]
        if step <= 0:
            raise ConfigError(f"{w}: step must be > 0")
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1
        if n > MAX_AXIS_VALUES:
            raise ConfigError(f"{w}: range gives {n:,} values (at most {MAX_AXIS_VALUES:,}); use a larger step or "
                              "a continuous range with sample: random|lhs")
        vals = [lo + i * step for i in range(n)]
        return Axis(path, tuple(int(round(v)) if _is_int(lo, hi, step) else v for v in vals))
    if lo <= 0:
        raise ConfigError(f"{w}: logrange needs start > 0")
    num = bounds[2] if len(bounds) == 3 else raw.get("num")
    factor = raw.get("factor")
    if num is not None and factor is not None:
        raise ConfigError(f"{w}: give num or factor, not both")
    if num is None and factor is None:
        return Axis(path, None, float(lo), float(hi), True, integer)
    if factor is not None:
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 1:
            raise ConfigError(f"{w}: factor must be a number > 1")
        n = int(math.log(hi / lo) / math.log(factor) + 1e-9) + 1 if hi > lo else 1
        if n > MAX_AXIS_VALUES:
            raise ConfigError(f"{w}: logrange gives {n:,} values (at most {MAX_AXIS_VALUES:,}); use a larger factor")
        vals, v = [], lo
        while v <= hi * (1 + 1e-9):
            vals.append(v)
            v = v * factor
    else:
        if not isinstance(num, int) or isinstance(num, bool) or num < 1:
            raise ConfigError(f"{w}: num must be a positive integer")
        if num > MAX_AXIS_VALUES:
            raise ConfigError(f"{w}: num {num:,} is over {MAX_AXIS_VALUES:,} values per axis")
        vals = [lo * (hi / lo) ** (i / (num - 1)) if num > 1 else lo for i in range(num)]
    if integer:
        vals = list(dict.fromkeys(int(round(v)) for v in vals))
    return Axis(path, tuple(vals))


@dataclass
class SweepSpec:
    """A parsed sweep spec; :meth:`points` resolves and validates every design point."""

    hw: str
    model: str
    scenario: dict[str, Any]
    fidelity: str
    sets: list[str]
    axes: list[Axis]
    derived: dict[str, str]
    sample: dict[str, Any]
    constraints: list[str]
    objectives: list[str]
    base_dir: Path
    source: str = "<spec>"
    serve: dict[str, Any] | None = None   # a validated ServeRun dump: every point is a serve run
    layout: dict[str, Any] | None = None  # a run sweep on a system: its layout (LAYOUT_FIELDS, unset ones 1)
    # a system's resolved device presets by (preset, set:), loaded once per spec, not once per point
    _devices: dict[tuple[str, str], dict] = field(default_factory=dict, init=False, repr=False, compare=False)
    # serve traces' SHA-256 by path, read once per spec
    _traces: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS if self.serve is None else SERVE_METRICS

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        path = Path(path)
        data = read_yaml(path)
        return cls.from_dict(data, base_dir=path.resolve().parent, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, base_dir: Path = Path("."), source: str = "<spec>") -> SweepSpec:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        unknown = set(data) - SPEC_KEYS
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)} (known: {sorted(SPEC_KEYS)})")
        for k in ("hw", "model"):
            if k not in data:
                raise ConfigError(f"{source}: missing '{k}'")
        axes_raw = data.get("axes") or {}
        if not isinstance(axes_raw, dict):
            raise ConfigError(f"{source}: axes must map a field path to values")
        for key, kind in (("scenario", dict), ("serve", dict), ("layout", dict), ("sample", dict), ("derived", dict),
                          ("set", (list, dict)), ("constraints", list), ("objectives", list)):
            if data.get(key) is not None and not isinstance(data[key], kind):
                want = "a mapping" if kind is dict else "a list" if kind is list else "a list or a mapping"
                raise ConfigError(f"{source}: {key}: expected {want}, got {type(data[key]).__name__}")
        for key in ("hw", "model"):
            if not isinstance(data[key], str):
                raise ConfigError(f"{source}: {key}: expected a preset name or path, got {type(data[key]).__name__}")
        sample = dict(data.get("sample") or {"method": "grid"})
        method = sample.setdefault("method", "grid")
        if method not in ("grid", "random", "lhs"):
            raise ConfigError(f"{source}: sample.method '{method}' (expected grid, random or lhs)")
        if set(sample) - {"method", "n", "seed"}:
            raise ConfigError(f"{source}: sample: unknown key(s) {sorted(set(sample) - {'method', 'n', 'seed'})}")
        if method != "grid" and not (isinstance(sample.get("n"), int) and sample["n"] > 0):
            raise ConfigError(f"{source}: sample.method {method} needs a positive integer n")
        fidelity = data.get("fidelity", "cycle")
        if fidelity not in ("cycle", "analytic"):
            raise ConfigError(f"{source}: fidelity '{fidelity}' (expected cycle or analytic)")
        sets = data.get("set") or []
        if isinstance(sets, dict):
            sets = [f"{k}={json.dumps(v)}" for k, v in sets.items()]
        from llmsim.serving.config import LAYOUT_FIELDS, ServeRun

        serve = None
        if data.get("serve") is not None:
            block = dict(data["serve"])
            if block.get("trace") is not None:  # absolute, so the spec saved beside the results still finds it
                block["trace"] = _trace_path(block["trace"], base_dir, f"{source}: serve.trace")
            serve = validate(ServeRun, block, f"{source}: serve").dump()
        layout = None
        if data.get("layout") is not None:
            if serve is not None:
                raise ConfigError(f"{source}: layout: is for run sweeps; a serve sweep lays a system out in its "
                                  "serve: block (serve.tp, serve.pp, ...)")
            layout = _layout(dict.fromkeys(LAYOUT_FIELDS, 1) | data["layout"], f"{source}: layout")
        axes = [parse_axis(str(p), v, source) for p, v in axes_raw.items()]
        axes = [replace(a, values=tuple(_trace_path(v, base_dir, f"{source}: axis 'serve.trace'") for v in a.values))
                if a.path == "serve.trace" and a.values is not None else a for a in axes]
        spec = cls(
            hw=str(data["hw"]), model=str(data["model"]), scenario=dict(data.get("scenario") or {}),
            fidelity=fidelity, sets=list(sets),
            axes=axes,
            derived={str(k): str(v) for k, v in (data.get("derived") or {}).items()}, sample=sample,
            constraints=[str(c) for c in data.get("constraints") or []],
            objectives=[str(o) for o in data.get("objectives") or []], base_dir=base_dir, source=source,
            serve=serve, layout=layout,
        )
        known = ServeRun.model_fields
        for a in spec.axes:
            if a.path.split(".")[0] == "serve" and serve is None:
                raise ConfigError(f"{source}: axis '{a.path}': needs a serve: block")
            if a.path.split(".")[0] == "layout" and (layout is None or len(a.path.split(".")) != 2
                                                     or a.path[7:] not in LAYOUT_FIELDS):
                raise ConfigError(f"{source}: axis '{a.path}': needs a layout: block and one of "
                                  f"{', '.join(f'layout.{f}' for f in LAYOUT_FIELDS)}")
            if a.path != "fidelity" and a.path.split(".")[0] not in ("hw", "model", "scenario", "serve", "layout"):
                raise ConfigError(f"{source}: axis '{a.path}': must start with hw., model. or scenario. "
                                  "(or serve. with a serve: block, layout. with a layout: block)")
            if a.path.split(".")[0] == "serve" and (len(a.path.split(".")) != 2 or a.path[6:] not in known):
                raise ConfigError(f"{source}: axis '{a.path}': no such field (known: {', '.join(sorted(known))})")
        for o in spec.objectives:
            if o.removeprefix("max:").removeprefix("min:") not in spec.metrics:
                raise ConfigError(f"{source}: objective '{o}' (known: {', '.join(spec.metrics)})")
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The spec with every axis expanded to its values (what ``sweep_spec.yaml`` holds)."""
        axes = {a.path: list(a.values) if a.values is not None else
                {"logrange" if a.log else "range": [a.lo, a.hi], "int": a.integer} for a in self.axes}
        return {"hw": str(self._hw_source()[1]),
                "model": str(resolve_path(self.model, "workloads", self.base_dir)), "scenario": self.scenario,
                "fidelity": self.fidelity, "set": self.sets, "axes": axes, "derived": self.derived,
                "sample": self.sample, "constraints": self.constraints, "objectives": self.objectives} | (
                    {} if self.serve is None else {"serve": self.serve}) | (
                    {} if self.layout is None else {"layout": self.layout})

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # -- sampling -------------------------------------------------------------------------
    def size(self) -> int:
        """How many points sampling gives (before constraints and dedup), computed without sampling."""
        if self.sample["method"] != "grid":
            return self.sample["n"]
        return math.prod(len(a.values) if a.values is not None else 1 for a in self.axes)

    def raw_points(self, max_points: int = MAX_POINTS) -> list[dict[str, Any]]:
        """Axis-value assignments in a deterministic order (before constraints and dedup);
        refused when there would be more than ``max_points``."""
        if not self.axes:
            return [{}]
        n = self.size()
        if n > max_points:
            sizes = " x ".join(f"{len(a.values)} ({a.path})" for a in self.axes if a.values is not None)
            what = f"grid {sizes}" if self.sample["method"] == "grid" else f"sample.n {n:,}"
            raise ConfigError(f"{self.source}: {what} = {n:,} points is over the limit of {max_points:,}; "
                              "raise it with --max-points N if you mean it")
        method = self.sample["method"]
        if method == "grid":
            for a in self.axes:
                if a.values is None:
                    raise ConfigError(f"{self.source}: axis '{a.path}' is continuous; give a step/num for a "
                                      f"grid or use sample: {{method: random|lhs, n: N}}")
            return [dict(zip([a.path for a in self.axes], combo, strict=False))
                    for combo in itertools.product(*[a.values for a in self.axes])]
        n, rng = self.sample["n"], random.Random(self.sample.get("seed", 0))
        if method == "random":
            return [{a.path: a.pick(rng.random()) for a in self.axes} for _ in range(n)]
        # Latin hypercube: each axis's [0, 1) is cut into n strata, each used exactly once.
        cols = {}
        for a in self.axes:
            strata = list(range(n))
            rng.shuffle(strata)
            cols[a.path] = [a.pick((s + rng.random()) / n) for s in strata]
        return [{p: cols[p][i] for p in cols} for i in range(n)]

    # -- resolution -----------------------------------------------------------------------
    def _hw_source(self) -> tuple[dict, Path]:
        """The hardware preset's dict and file: a device, or a system (``kind: system``, bundled ones
        under ``hw_configs/system/``), which a sweep serves on (a ``serve:`` block) or runs on at a
        layout (a ``layout:`` block)."""
        from llmsim.system.spec import system_dict

        try:
            path: Path | None = resolve_path(self.hw, "hw_configs", self.base_dir)
        except ConfigError:
            path = None
        found = system_dict(path if path is not None else self.hw)
        if found is not None:
            if self.serve is None and self.layout is None:
                raise ConfigError(f"hw: '{self.hw}' is a system preset: a sweep runs on it at a layout (a layout: "
                                  "block, e.g. layout: {tp: 2}, axes layout.tp, ...) or serves on it (a serve: block, "
                                  "its layout as serve.tp, ...)")
            return found
        if self.layout is not None:
            raise ConfigError(f"layout: needs a system preset (kind: system, e.g. hw: dgx-h100); '{self.hw}' is one "
                              "device")
        return hardware_dict(path if path is not None else resolve_path(self.hw, "hw_configs", self.base_dir))

    def _base(self) -> tuple[dict, dict, dict[str, list]]:
        try:
            hw, _ = self._hw_source()
            model, _ = model_dict(resolve_path(self.model, "workloads", self.base_dir))
            routed = split_overrides(self.sets)
        except ConfigError as e:
            raise ConfigError(f"{self.source}: {e}") from None
        return hw, model, routed

    def resolve(self, values: dict[str, Any], base: tuple[dict, dict, dict[str, list]] | None = None) -> Point:
        """Apply one point's axis values (and ``derived:``) to the base; validate; hash."""
        import copy

        hw0, model0, routed = base or self._base()
        dicts = {"hw": copy.deepcopy(hw0), "model": copy.deepcopy(model0)}
        sc_over = list(routed["scenario"])
        fidelity = values.get("fidelity", self.fidelity)
        try:
            for label in ("hw", "model"):
                for p, v in routed[label]:
                    apply_set(dicts[label], p, v, label)
            serve = None
            if self.serve is not None:
                from llmsim.serving.config import LAYOUT_FIELDS

                serve = dict.fromkeys(LAYOUT_FIELDS) | self.serve  # unset layout fields are omitted from the dump
            layout = None if self.layout is None else dict(self.layout)
            for path, v in values.items():
                if path == "fidelity":
                    continue
                label, *rest = path.split(".")
                if label == "serve" and serve is not None:
                    apply_set(serve, rest, v, label)
                elif label == "layout" and layout is not None:
                    layout = _layout(layout | {rest[0]: v}, "layout")
                elif label == "scenario":
                    sc_over.append((rest, v))
                else:
                    apply_set(dicts[label], rest, v, label)
            scenario = make_scenario(self.scenario, sc_over).model_dump(mode="json")
            dicts["scenario"] = scenario
            for path, expr in self.derived.items():
                label, *rest = path.split(".")
                if label not in dicts:
                    raise ConfigError(f"derived '{path}': must start with hw., model. or scenario.")
                apply_set(dicts[label], rest, evaluate(expr, dicts, f"derived '{path}'"), label)
            devices = None
            if dicts["hw"].get("kind") == "system":
                from llmsim.system.spec import SystemSpec, load_group_device_spec

                system = validate(SystemSpec, dicts["hw"], "hw")
                hw = system.model_dump(mode="json")
                # a system names its devices' presets: the point's key must change when a preset does
                devices = {}
                for g, grp in system.devices.items():
                    k = (grp.preset, json.dumps(grp.set, sort_keys=True, default=str))
                    if k not in self._devices:
                        self._devices[k] = load_group_device_spec(system, g).model_dump(mode="json")
                    devices[g] = self._devices[k]
            else:
                hw = validate_hardware(dicts["hw"], "hw").model_dump(mode="json")
            model = validate(ModelSpec, dicts["model"], "model").model_dump(mode="json")
            scenario = make_scenario(dicts["scenario"]).model_dump(mode="json")
            if serve is not None:
                from llmsim.serving.config import ServeRun

                serve = validate(ServeRun, serve, "serve").dump()
                if serve.get("trace") is not None:
                    t = serve["trace"]
                    if t not in self._traces:
                        self._traces[t] = trace_sha256(_trace_path(t, self.base_dir, "serve.trace"))
                    serve["trace_sha256"] = self._traces[t]
        except ConfigError as e:
            point = ", ".join(f"{k}={v}" for k, v in values.items())
            raise ConfigError(f"{self.source}: point ({point}): {e}") from None
        point = Point(values, hw, model, scenario, fidelity, "", serve, devices, layout)
        return replace(point, key=config_hash(point.config()))

    def config_constraints(self) -> list[str]:
        return [c for c in self.constraints if not (names_in(c) & set(self.metrics))]

    def result_constraints(self) -> list[str]:
        return [c for c in self.constraints if names_in(c) & set(self.metrics)]

    def points(self, max_points: int = MAX_POINTS) -> tuple[list[Point], dict[str, int]]:
        """Every unique design point that meets the config constraints, and counts
        (``sampled``, ``filtered`` by constraints, ``duplicates`` with an identical config)."""
        base = self._base()
        pre = self.config_constraints()
        out: dict[str, Point] = {}
        counts = {"sampled": 0, "filtered": 0, "duplicates": 0}
        for values in self.raw_points(max_points):
            counts["sampled"] += 1
            pt = self.resolve(values, base)
            ctx = pt.context()
            if not all(evaluate(c, ctx, f"constraint '{c}'") for c in pre):
                counts["filtered"] += 1
                continue
            if pt.key in out:
                counts["duplicates"] += 1
                continue
            out[pt.key] = pt
        return list(out.values()), counts
