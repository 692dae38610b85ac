"""The Python API: load specs, simulate, get tables.

    from llmsim import load_hardware, load_model, simulate

    hw = load_hardware("h100", set={"memory.channels": 8})
    model = load_model("gpt2")
    res = simulate(hw, model, batch=4, prompt=256, gen=64)
    res.ttft_s, res.tpot_s, res.energy_j, res.memory["max_batch"]
    res.to_frame()          # one row per step (pandas; install pandas)
    res.to_frame("op")      # one row per op of every step

Everything the CLI does goes through these same functions; errors are
:class:`llmsim.errors.LlmsimError` with the one-line message the CLI prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmsim.config.model import ModelSpec
from llmsim.engine.result import SimResult


def _overrides(set: Mapping[str, Any] | list[str] | tuple[str, ...] | None) -> list[tuple[list[str], Any]]:
    from llmsim.config.loader import parse_set

    if set is None:
        return []
    if isinstance(set, Mapping):
        return [([p for p in k.split(".") if p], v) for k, v in set.items()]
    return parse_set(list(set))


def load_hardware(name: str | Path, set: Mapping[str, Any] | list[str] | None = None) -> Any:
    """A validated hardware spec: a bundled preset name (``h100``, ``pim``) or a YAML path.
    ``set``: overrides by field path (``{"memory.channels": 16}`` or ``["memory.channels=16"]``)."""
    from llmsim.config.loader import load_hardware as _load

    return _load(name, _overrides(set))


def load_model(name: str | Path, set: Mapping[str, Any] | list[str] | None = None) -> ModelSpec:
    """A validated model spec: a bundled name (``gpt2``), a YAML path or a Hugging Face ``config.json``."""
    from llmsim.config.loader import load_model as _load

    return _load(name, _overrides(set))


def simulate(hw: Any, model: ModelSpec, batch: int | None = None, prompt: int | None = None,
             gen: int | None = None, dtype: str | None = None, mode: str | None = None,
             fidelity: str = "cycle", scenario: Mapping[str, Any] | None = None) -> SimResult:
    """Simulate a whole generation (prefill, then ``gen - 1`` decode steps) of ``model`` on ``hw``.

    ``dtype`` sets weights, activations and KV cache at once; ``scenario`` gives any other
    :class:`~llmsim.config.scenario.Scenario` field (``{"kv_dtype": "int8"}``)."""
    from llmsim.config.loader import make_scenario
    from llmsim.engine import simulate as _simulate
    from llmsim.errors import LlmsimError

    if fidelity not in ("cycle", "analytic"):
        raise LlmsimError(f"fidelity '{fidelity}' (expected cycle or analytic)")
    fields = dict(scenario or {}) | {k: v for k, v in
                                     {"batch": batch, "prompt": prompt, "gen": gen, "mode": mode}.items()
                                     if v is not None}
    if dtype is not None:
        fields |= {"weight_dtype": dtype, "act_dtype": dtype, "kv_dtype": dtype}
    return _simulate(hw, model, make_scenario(fields), fidelity=fidelity)  # type: ignore[arg-type]


def require_pandas() -> Any:
    try:
        import pandas
    except ImportError:
        from llmsim.errors import LlmsimError

        raise LlmsimError("to_frame() needs pandas: pip install pandas") from None
    return pandas
