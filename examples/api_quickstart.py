"""llmsim from Python: a notebook-friendly walk through the API (each ``# %%`` is a cell).

Run it as a script (``python examples/api_quickstart.py``) or open it in Jupyter/VS Code.
Needs pandas for the tables (``pip install pandas``).
"""

# %% Load a bundled hardware preset, a model, and a Hugging Face config.json
from pathlib import Path

from llmsim import load_hardware, load_model, simulate

hw = load_hardware("pim")  # or a YAML path; overrides: load_hardware("pim", set={"memory.channels": 8})
gpt2 = load_model("gpt2")
tinyllama = load_model(Path(__file__).parent / "hf-tinyllama" / "config.json")
print(hw.name, hw.kind, "|", gpt2.name, gpt2.parameter_count(), "|", tinyllama.name, tinyllama.parameter_count())

# %% Simulate one generation and read the headline numbers
res = simulate(hw, gpt2, batch=1, prompt=64, gen=8, fidelity="analytic")
print(f"TTFT {res.ttft_s * 1e3:.3f} ms, TPOT {res.tpot_s * 1e3:.3f} ms, energy {res.energy_j:.3f} J")
print("memory:", {k: v for k, v in res.memory.items() if k in ("weights_bytes", "kv_cache_bytes", "max_batch")})

# %% Tables: one row per step, or one row per op of every step
steps = res.to_frame()
ops = res.to_frame("op")
print(steps[["phase", "step", "latency_s", "energy_j"]])
print(ops.groupby("kind")["attributed_s"].sum().sort_values(ascending=False))

# %% A small what-if: more DRAM channels
for ch in (8, 16):
    r = simulate(load_hardware("pim", set={"memory.channels": ch}), gpt2, prompt=64, gen=8, fidelity="analytic")
    print(f"channels {ch}: TPOT {r.tpot_s * 1e6:.1f} us")
