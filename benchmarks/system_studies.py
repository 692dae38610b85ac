"""Study-style tables for systems (docs/validation.md): AttAcc's trend and CENT's throughput ratio.

1. AttAcc-like (attacc-dgx-h100: attention and the KV cache on HBM3-PIM beside each GPU) against
   GPUs only (dgx-h100), llama-2-70b decode, TP 8, over batch x context: the decode-step speed-up and
   energy ratio should grow with batch x context (AttAcc: up to 2.81x / 2.67x on 175 B models).
   Analytic fidelity, then cycle fidelity (the PIM device's batch-parallel attention,
   ``llmsim/devices/pim_batch.py``) for llama-2-70b as it is (GQA: 8 query heads per KV head), with
   the GQA-aware what-if PIM (``hbm3-pim-gqa``), and for an MHA variant of it (one KV head per query
   head; the first MHA_LAYERS layers, so that the GPU-only baseline holds the 8x larger KV cache).
2. CENT-like (32 CXL devices of GDDR6-AiM PIM, TP 8 x PP 4) against dgx-h100 (TP 8): decode tokens/s
   and energy per token (CENT: 2.3x throughput, 2.3x lower energy than its GPU baseline).

Run: ``PYTHONPATH=. python benchmarks/system_studies.py`` (about a minute).
"""

from __future__ import annotations

from llmsim.config.base import DType
from llmsim.config.loader import load_model, make_scenario
from llmsim.devices.base import build_device
from llmsim.devices.pim_batch import attention_plan
from llmsim.graph import factory as f
from llmsim.system import load_system, simulate_system_step
from llmsim.system.spec import load_group_device_spec

GRID = ((1, 512), (8, 1024), (32, 2048), (64, 4096), (128, 4096))
MHA_LAYERS = 20  # deepest multiple of 10 whose MHA KV cache (B 128 x 4096) fits an H100 beside its weights
GQA_AWARE = [(["devices", "pim", "preset"], "hbm3-pim-gqa")]


def step(system, model, batch: int, context: int, fidelity: str = "analytic", **par):
    sc = make_scenario({"batch": batch, "prompt": context, "gen": 2}, [])
    st, _ = simulate_system_step(system, model, sc, "decode", batch, context=context, fidelity=fidelity, **par)
    return st


def pim_split(system, st) -> str:
    """The channel groups the PIM device's attention used: G x channels (x vectors per K/V burst)."""
    rec = next(r for r in st.records if r.kind == "attention")
    s = rec.shape
    dev = build_device(load_group_device_spec(system, "pim"))
    op = f.attention("a", s["B"], s["H"], s["Hkv"], s["Sq"], s["Skv"], s["D"], dtype=DType.fp16, causal=True)
    p = attention_plan(dev, op)
    chans = sorted({k.channels for k in p.kinds})
    txt = f"{p.groups} x {'/'.join(map(str, chans))} ch"
    return txt + (f", {p.vectors} vec/burst" if p.vectors > 1 else "")


def attacc_table(title: str, model, fidelity: str, pim_sets=()) -> None:
    gpus, attacc = load_system("dgx-h100"), load_system("attacc-dgx-h100", pim_sets)
    print(f"{title}\n")
    print("| batch | context | GPUs only (ms) | AttAcc-like (ms) | speed-up | energy ratio | PIM attention split |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for b, c in GRID:
        g, a = step(gpus, model, b, c, fidelity, tp=8), step(attacc, model, b, c, fidelity, tp=8)
        split = pim_split(attacc, a) if fidelity == "cycle" else "(bandwidth bound)"
        print(f"| {b} | {c} | {g.latency_s * 1e3:.2f} | {a.latency_s * 1e3:.2f} | {g.latency_s / a.latency_s:.2f} | "
              f"{g.energy_j / a.energy_j:.2f} | {split} |")
    print()


def main() -> None:
    m = load_model("llama-2-70b")
    mha = m.model_copy(update={"n_kv_heads": None, "n_layers": MHA_LAYERS, "name": "llama-2-70b-mha"})
    attacc_table("AttAcc-like vs GPUs only, llama-2-70b (GQA), analytic", m, "analytic")
    attacc_table("AttAcc-like vs GPUs only, llama-2-70b (GQA), cycle", m, "cycle")
    attacc_table("AttAcc-like with GQA-aware PIM (hbm3-pim-gqa, what-if), llama-2-70b, cycle", m, "cycle",
                 GQA_AWARE)
    attacc_table(f"AttAcc-like vs GPUs only, MHA variant of llama-2-70b ({MHA_LAYERS} layers), cycle", mha, "cycle")
    gpus, cent = load_system("dgx-h100"), load_system("cent-like")
    print("| batch | dgx-h100 tok/s | cent-like tok/s | throughput ratio | J/token dgx | J/token cent | energy ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for b in (1, 8, 32):
        g = step(gpus, m, b, 1024, tp=8)
        c = step(cent, m, b, 1024, tp=8, pp=4, micro=min(b, 4))
        print(f"| {b} | {b / g.latency_s:.0f} | {b / c.latency_s:.0f} | {g.latency_s / c.latency_s:.2f} | "
              f"{g.energy_j / b:.3f} | {c.energy_j / b:.3f} | {g.energy_j / c.energy_j:.2f} |")


if __name__ == "__main__":
    main()
