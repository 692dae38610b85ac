"""Device models, one file per kind; each registers itself on import (no central list).

Modules are imported when a kind is first asked for (:func:`discover`): the kind's own file
(``llmsim/devices/<kind>.py``) first, every module when that file does not register it. A run
then imports only the device it uses (and what that device needs: the cycle-level DRAM model
and Numba only where it simulates them). :func:`discover` with no kind imports every module,
which is where two classes claiming one kind collide.
"""

import importlib
import pkgutil

from llmsim.devices.base import Cost, Device, Phase, build_device


def discover(kind: str | None = None) -> None:
    """Import the module of ``kind`` (or every device module when ``kind`` is None)."""
    if kind is not None and not kind.startswith("_") and kind != "base":
        try:
            importlib.import_module(f"{__name__}.{kind}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{kind}":
                raise
        return
    for m in pkgutil.iter_modules(__path__):
        if not m.name.startswith("_") and m.name != "base":
            importlib.import_module(f"{__name__}.{m.name}")


__all__ = ["Cost", "Device", "Phase", "build_device", "discover"]
