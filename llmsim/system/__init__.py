"""Systems of devices and links: specs, parallelism as graph transforms, collectives on link units.

Submodules are imported on first use (``llmsim.system.cli`` is imported by the CLI at start-up)."""

import importlib
from typing import Any

_WHERE = {"SystemRun": "run", "bubble_fraction": "run", "memory_plan": "run", "simulate_system": "run",
          "simulate_system_step": "run", "SystemSpec": "spec", "is_system": "spec", "load_system": "spec"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"llmsim.system.{_WHERE[name]}"), name)
