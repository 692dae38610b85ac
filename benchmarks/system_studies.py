"""Study-style tables for systems (docs/validation.md): AttAcc's trend and CENT's throughput ratio.

1. AttAcc-like (attacc-dgx-h100: attention and the KV cache on HBM3-PIM beside each GPU) against
   GPUs only (dgx-h100), llama-2-70b decode, TP 8, over batch x context: the decode-step speed-up and
   energy ratio should grow with batch x context (AttAcc: up to 2.81x / 2.67x on 175 B models).
2. CENT-like (32 CXL devices of GDDR6-AiM PIM, TP 8 x PP 4) against dgx-h100 (TP 8): decode tokens/s
   and energy per token (CENT: 2.3x throughput, 2.3x lower energy than its GPU baseline).

Analytic fidelity (the PIM cycle model maps one sequence at a time; docs/systems.md). Run:
``python benchmarks/system_studies.py``.
"""

from __future__ import annotations

from llmsim.config.loader import load_model, make_scenario
from llmsim.system import load_system, simulate_system_step


def step(system: str, model, batch: int, context: int, **par):
    sc = make_scenario({"batch": batch, "prompt": context, "gen": 2}, [])
    st, _ = simulate_system_step(load_system(system), model, sc, "decode", batch, context=context,
                                 fidelity="analytic", **par)
    return st


def main() -> None:
    m = load_model("llama-2-70b")
    print("| batch | context | GPUs only (ms) | AttAcc-like (ms) | speed-up | energy ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b, c in ((1, 512), (8, 1024), (32, 2048), (64, 4096), (128, 4096)):
        g, a = step("dgx-h100", m, b, c, tp=8), step("attacc-dgx-h100", m, b, c, tp=8)
        print(f"| {b} | {c} | {g.latency_s * 1e3:.2f} | {a.latency_s * 1e3:.2f} | {g.latency_s / a.latency_s:.2f} | "
              f"{g.energy_j / a.energy_j:.2f} |")
    print()
    print("| batch | dgx-h100 tok/s | cent-like tok/s | throughput ratio | J/token dgx | J/token cent | energy ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for b in (1, 8, 32):
        g = step("dgx-h100", m, b, 1024, tp=8)
        c = step("cent-like", m, b, 1024, tp=8, pp=4, micro=min(b, 4))
        print(f"| {b} | {b / g.latency_s:.0f} | {b / c.latency_s:.0f} | {g.latency_s / c.latency_s:.2f} | "
              f"{g.energy_j / b:.3f} | {c.energy_j / b:.3f} | {g.energy_j / c.energy_j:.2f} |")


if __name__ == "__main__":
    main()
