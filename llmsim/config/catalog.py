"""The bundled catalogue ``llmsim list`` prints: hardware presets, the parts they extend
(``memory/`` DRAM standards, ``framework/`` costs) and models, one line each with its source."""

from __future__ import annotations


def catalog() -> list[str]:
    out: list[str] = []
    import yaml

    from llmsim.config.loader import bundled_dir, list_bundled, load_yaml

    def line(name: str, data: dict, kind: str, path=None) -> str:
        # the file's own source first: a preset that extends another inherits its parent's source entries,
        # and the parent's first one would describe the parent (a what-if would read as the paper it varies)
        own = yaml.safe_load(path.read_text()) if path is not None else None
        src = (own or {}).get("source") or data.get("source", "")
        if isinstance(src, dict):
            src = next(iter(src.values()), "")
        return f"  {name:<28} {kind:<8} {str(src)[:90]}"

    hw_dir = bundled_dir("hw_configs")
    names = list_bundled("hw_configs")
    parts = [n for n in names if "/" in n]
    out.append(f"hardware ({hw_dir}):")
    for name in (n for n in names if "/" not in n):
        data = load_yaml(hw_dir / f"{name}.yaml", "hw_configs")
        out.append(line(name, data, data.get("kind", "?"), hw_dir / f"{name}.yaml"))
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
