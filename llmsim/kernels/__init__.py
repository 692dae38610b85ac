"""Numba-jitted hot loops: pure functions of arrays and scalars, each with a plain-Python twin (``.py_func``)."""

from pathlib import Path as _Path

#: the modules holding jitted kernels, relative to the llmsim package
JIT_MODULES = ("kernels/systolic.py", "memory/kernels.py")


def jit_cache_ready() -> bool:
    """Whether every jitted module already has compiled kernels in Numba's on-disk cache
    (``__pycache__/<module>.*.nbi`` beside it): when not, the first simulation compiles them
    (seconds), and the CLI says so. A cache Numba keeps elsewhere reads as not ready."""
    import os

    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        return True
    root = _Path(__file__).resolve().parent.parent
    for rel in JIT_MODULES:
        mod = root / rel
        if not any((mod.parent / "__pycache__").glob(f"{mod.stem}.*.nbi")):
            return False
    return True
