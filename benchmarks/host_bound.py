"""The eager host model where the host is all there is: GPT-2-shaped decoders 64 wide, measured and predicted.

    python benchmarks/host_bound.py [--hw benchmarks/data/cpu_validation/calibrated.yaml] [--device cpu|cuda]
                                    [--layers 12,24,48] [--json OUT]

At d_model = 64 every kernel is tiny, so an eager step costs what the framework spends issuing it: the
regime of eager GPT-2 decode on a GPU. The script first measures each op kind's host time on the
reference's own blocks (``llmsim.calibrate.framework.eager_op_seconds``: ops one kind at a time, scaled to
one whole layer issued back to back), then times whole steps of 12-, 24- and 48-layer models and predicts
them four ways: the preset as it is; ``counts`` (the preset's per-kernel dispatch × the kernels and
host-only calls of ``framework/pytorch-eager.yaml``, host-only calls timed here: the GPU presets' model);
``eager_op_s`` set from the microbenchmarks; and the isolated per-kind costs without the layer scaling.
No step time enters a prediction.
"""

from __future__ import annotations

import argparse
import json
import statistics

TINY = [(["d_model"], 64), (["n_heads"], 2), (["d_ff"], 256), (["vocab_size"], 128)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="benchmarks/data/cpu_validation/calibrated.yaml")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--layers", default="12,24,48")
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    a = ap.parse_args()

    import torch

    from llmsim.calibrate.framework import eager_op_seconds, host_call_seconds
    from llmsim.config.loader import load_hardware, load_model
    from llmsim.reference.compare import predict
    from llmsim.reference.timing import Runner

    torch.set_num_threads(a.threads)  # the host side of eager is one Python thread; tiny CPU kernels gain nothing
    ops, raw = eager_op_seconds(a.device)
    print(f"host time per op on {a.device} (us, in a layer; isolated x {raw['scale']:.2f} = one layer of "
          f"{raw['layer'] * 1e6:.1f} us):")
    print("  " + ", ".join(f"{k} {v * 1e6:.2f}" for k, v in ops.items()))
    hw = load_hardware(a.hw)
    dtype = "fp16" if a.device == "cuda" else "fp32"

    def with_fw(**kw):
        return hw.model_copy(update={"framework": hw.framework.model_copy(update=kw)})

    pytorch = load_hardware("h100").framework  # extends framework/pytorch-eager.yaml
    variants = {"preset": hw,
                "counts": with_fw(calls_per_op=pytorch.calls_per_op, eager_host_call_s=host_call_seconds(a.device),
                                  eager_op_s={}),
                "eager_op_s": with_fw(eager_op_s=ops), "isolated": with_fw(eager_op_s={k: raw[k] for k in ops})}
    rows = []
    print(f"\n{'model':<18}{'case':<14}{'median/best':>14}" + "".join(f"{k:>18}" for k in variants))
    for L in (int(x) for x in a.layers.split(",")):
        model = load_model("gpt2", TINY + [(["n_layers"], L)])
        runner = Runner(model, device=a.device, dtype=dtype)
        for phase in ("decode", "prefill"):
            m = runner.time(phase, 1, a.seq, mode="eager", warmup=20, iters=100)
            best = min(m.samples)  # the per-op times are best-of-repeats too: compare like with like
            pred = {k: predict(h, model, phase, 1, a.seq, "eager", dtype)["seconds"] for k, h in variants.items()}
            rows.append({"layers": L, "phase": phase, "measured_s": m.seconds, "best_s": best, "predicted_s": pred})
            cells = "".join(f"{p * 1e6:9.0f} ({100 * (p / best - 1):+4.0f}%)" for p in pred.values())
            print(f"{f'gpt2-d64-L{L}':<18}{f'{phase}:1x{a.seq}':<14}{m.seconds * 1e6:8.0f}/{best * 1e6:.0f}us{cells}")
    for k in variants:
        err = [abs(r["predicted_s"][k] / r["best_s"] - 1) for r in rows]
        err_med = [abs(r["predicted_s"][k] / r["measured_s"] - 1) for r in rows]
        print(f"MAPE {k:<12} {100 * statistics.mean(err):5.1f}% against the best step "
              f"({100 * statistics.mean(err_med):.1f}% against the median)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"device": a.device, "hw": a.hw, "eager_op_s": ops, "raw": raw, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
