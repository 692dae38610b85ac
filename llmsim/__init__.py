"""llmsim: a hardware simulator and cost model for LLM inference (GPU, NPU, CPU, PIM-DRAM).

The Python API (:mod:`llmsim.api`)::

    from llmsim import load_hardware, load_model, simulate
    res = simulate(load_hardware("pim"), load_model("gpt2"), prompt=64, gen=8)
    res.to_frame()
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_hardware", "load_model", "simulate"]


def __getattr__(name: str):
    # imported on first use, so `import llmsim` (and the CLI's start) stays light
    if name in ("load_hardware", "load_model", "simulate"):
        from llmsim import api

        return getattr(api, name)
    raise AttributeError(f"module 'llmsim' has no attribute {name!r}")
