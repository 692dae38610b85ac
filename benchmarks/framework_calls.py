"""What PyTorch eager runs per llmsim op, counted from a profile of the reference, and what a host-only call costs.

    python benchmarks/framework_calls.py [--models gpt2,gpt2-medium,...] [--device cpu|cuda]

Prints, per model and phase, kernels and host-only calls (views, reshapes, slices) per llmsim op
kind, next to ``hw_configs/framework/pytorch-eager.yaml``; then the host time of one host-only call
(:func:`llmsim.calibrate.framework.host_call_seconds`) on ``--device`` tensors. Counts come from
CPU runs of the reference (a count does not depend on the host); on a GPU host, run with
``--device cuda`` to time the host-only calls against CUDA tensors.
"""

from __future__ import annotations

import argparse

from llmsim.calibrate.framework import calls_per_op, host_call_seconds
from llmsim.config.loader import load_hardware, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="gpt2,gpt2-medium,gpt2-large,gpt2-xl,opt-125m,opt-1.3b,tinyllama-1.1b")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seq", type=int, default=128)
    a = ap.parse_args()
    fw = load_hardware("h100").framework
    print(f"{'model':<14}{'phase':<9}{'kind':<13}{'ops':>5}{'kernels/op':>12}{'host calls/op':>15}{'preset':>12}")
    for name in a.models.split(","):
        model = load_model(name)
        for phase in ("decode", "prefill"):
            for kind, c in calls_per_op(model, phase, 1, a.seq).items():
                want = fw.calls(*kind.split("."))
                if "kernels" not in c:
                    print(f"{name:<14}{phase:<9}{kind:<13}{0:>5}  {c['unattributed_calls']} calls in no op")
                    continue
                same = (c["kernels"], round(c["host_calls"])) == (want.kernels, want.host_calls)
                flag = "" if same else "  <- differs"
                print(f"{name:<14}{phase:<9}{kind:<13}{c['ops']:>5}{c['kernels']:>12g}{c['host_calls']:>15g}"
                      f"{f'{want.kernels}/{want.host_calls}':>12}{flag}")
    t = [host_call_seconds(a.device) for _ in range(3)]
    print(f"\nhost-only call on {a.device} tensors: {min(t) * 1e6:.2f} .. {max(t) * 1e6:.2f} us "
          f"(preset eager_host_call_s {fw.eager_host_call_s * 1e6:.2f} us)")


if __name__ == "__main__":
    main()
