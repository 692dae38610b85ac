"""Memory models: cycle-level DRAM (channels, bank groups, banks, row buffers) and its energy.

Names are loaded on first use (PEP 562): the DRAM model pulls in Numba, which a run that never
simulates DRAM (analytic fidelity) should not pay for at import."""

import importlib

_NAMES = {
    "DramModel": "dram", "DramStats": "dram", "Requests": "dram",
    "CMD_NAMES": "timing", "CONSTRAINTS": "timing", "TimingViolation": "timing", "check_trace": "timing",
}


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CMD_NAMES", "CONSTRAINTS", "DramModel", "DramStats", "Requests", "TimingViolation", "check_trace"]
