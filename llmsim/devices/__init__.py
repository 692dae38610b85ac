"""Device models, one file per kind; each registers itself on import (no central list)."""

import importlib
import pkgutil

for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_") and _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")

from llmsim.devices.base import Cost, Device, Phase, build_device  # noqa: E402

__all__ = ["Cost", "Device", "Phase", "build_device"]
