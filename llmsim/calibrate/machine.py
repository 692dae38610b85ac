"""What the operating system says about the CPU it runs on: cores, clock, ISA, caches.

Linux: ``/proc/cpuinfo`` and ``/sys/devices/system/cpu``; macOS: ``sysctl``. Every fact
carries how it was obtained, so the preset's ``source:`` can say so (an unknown clock is
*assumed* and says it).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from llmsim.errors import LlmsimError


class CalibrationError(LlmsimError):
    """The machine could not be measured (a fact the OS does not expose, a failed benchmark)."""


# Fallback clock when neither cpufreq, /proc/cpuinfo nor lscpu report one; always flagged "assumed".
ASSUMED_CLOCK_HZ = 2.0e9

# GEMM micro-kernel register tiles of BLIS's sgemm per ISA family (config/skx, config/haswell,
# config/armv8a): the model's ``register_tile`` for a calibrated preset.
REGISTER_TILE_BY_ISA = {"avx512": (32, 12), "avx2": (6, 16), "neon": (8, 12), "sse": (8, 4)}
# SIMD vector width in bytes per ISA family, for the L1 bandwidth estimate (2 loads per cycle).
VECTOR_BYTES_BY_ISA = {"avx512": 64, "avx2": 32, "neon": 16, "sse": 16}


@dataclass
class CacheLevel:
    level: int
    size_bytes: int
    sharers: int  # logical CPUs sharing one instance


@dataclass
class MachineFacts:
    model_name: str
    cores: int
    clock_hz: float
    clock_how: str
    isa: str
    caches: list[CacheLevel] = field(default_factory=list)
    memory_bytes: int = 0


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _cpu_list_len(text: str) -> int:
    n = 0
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            n += int(b) - int(a) + 1
        elif part.strip():
            n += 1
    return max(n, 1)


def _size(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([KMG]?)i?B?", text.strip(), re.I)
    if not m:
        return 0
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2).upper()]


def _sysctl(key: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _clock() -> tuple[float, str]:
    f = _read(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))
    if f.isdigit():
        return int(f) * 1e3, "cpufreq cpuinfo_max_freq"
    mhz = re.findall(r"^cpu MHz\s*:\s*([\d.]+)", _read(Path("/proc/cpuinfo")), re.M)
    if mhz:
        return max(float(x) for x in mhz) * 1e6, "/proc/cpuinfo 'cpu MHz' (current, not max)"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        m = re.search(r"CPU max MHz:\s*([\d.]+)", out)
        if m:
            return float(m.group(1)) * 1e6, "lscpu 'CPU max MHz'"
    except (OSError, subprocess.SubprocessError):
        pass
    hz = _sysctl("hw.cpufrequency_max")
    if hz.isdigit():
        return float(hz), "sysctl hw.cpufrequency_max"
    return ASSUMED_CLOCK_HZ, f"ASSUMED {ASSUMED_CLOCK_HZ / 1e9:.1f} GHz (the OS reports no clock)"


def _isa(flags: str) -> str:
    fl = set(flags.split())
    if "avx512f" in fl:
        return "avx512"
    if "avx2" in fl and "fma" in fl:
        return "avx2"
    if "asimd" in fl or platform.machine() in ("arm64", "aarch64"):
        return "neon"
    return "sse"


def _linux_caches() -> list[CacheLevel]:
    out = []
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        if _read(d / "type") not in ("Data", "Unified"):
            continue
        size = _size(_read(d / "size"))
        if size:
            out.append(CacheLevel(int(_read(d / "level") or 0), size, _cpu_list_len(_read(d / "shared_cpu_list"))))
    return sorted(out, key=lambda c: c.level)


def _darwin_caches() -> list[CacheLevel]:
    out = []
    for lvl, key in ((1, "hw.perflevel0.l1dcachesize"), (2, "hw.perflevel0.l2cachesize"), (3, "hw.l3cachesize")):
        v = _sysctl(key)
        if v.isdigit() and int(v) > 0:
            sharers = _sysctl("hw.perflevel0.cpusperl2") if lvl == 2 else "1"
            out.append(CacheLevel(lvl, int(v), int(sharers) if sharers.isdigit() else 1))
    return out


def machine_facts() -> MachineFacts:
    """Read the machine's CPU facts; raise :class:`CalibrationError` when the caches are unknown."""
    info = _read(Path("/proc/cpuinfo"))
    names = re.findall(r"^(?:model name|Hardware|Model)\s*:\s*(.+)$", info, re.M)
    model = names[0].strip() if names else (_sysctl("machdep.cpu.brand_string") or platform.processor() or "cpu")
    flags = " ".join(re.findall(r"^(?:flags|Features)\s*:\s*(.+)$", info, re.M)[:1])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    caches = _linux_caches() if Path("/sys/devices/system/cpu/cpu0/cache").exists() else _darwin_caches()
    if not caches or caches[0].level != 1 or len(caches) < 2:
        raise CalibrationError("cannot read the cache hierarchy (need L1 and L2 in /sys/devices/system/cpu/cpu0/cache "
                               "or sysctl hw.*cachesize)")
    mem = 0
    m = re.search(r"^MemTotal:\s*(\d+) kB", _read(Path("/proc/meminfo")), re.M)
    if m:
        mem = int(m.group(1)) * 1024
    elif _sysctl("hw.memsize").isdigit():
        mem = int(_sysctl("hw.memsize"))
    clock, how = _clock()
    return MachineFacts(model, cores, clock, how, _isa(flags), caches, mem)
