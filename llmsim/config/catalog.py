"""The bundled catalogue ``llmsim list`` prints: hardware presets, the parts they extend
(``memory/`` DRAM standards, ``framework/`` costs) and models, one line each with its source."""

from __future__ import annotations


def catalog() -> list[str]:
    out: list[str] = []
    from llmsim.config.loader import bundled_dir, list_bundled, load_yaml

    def line(name: str, data: dict, kind: str) -> str:
        src = data.get("source", "")
        if isinstance(src, dict):
            src = next(iter(src.values()), "")
        return f"  {name:<22} {kind:<16} {str(src)[:90]}"

    hw_dir = bundled_dir("hw_configs")
    names = list_bundled("hw_configs")
    parts = [n for n in names if "/" in n]
    out.append(f"hardware ({hw_dir}):")
    for name in (n for n in names if "/" not in n):
        data = load_yaml(hw_dir / f"{name}.yaml", "hw_configs")
        out.append(line(name, data, data.get("kind", "?")))
    out.append("parts presets extend (memory standards, framework costs; not hardware):")
    for name in parts:
        data = load_yaml(hw_dir / f"{name}.yaml", "hw_configs")
        kind = data.get("standard") or name.split("/")[0]
        out.append(line(name, data, str(kind)))
    out.append(f"models ({bundled_dir('workloads')}):")
    for name in list_bundled("workloads"):
        data = load_yaml(bundled_dir("workloads") / f"{name}.yaml", "workloads")
        out.append(line(name, data, data.get("arch", "decoder")))
    return out
