"""Score the GPU model on an end-to-end development set (``shared/data/h100_gpt2_dev.json``).

Each case of the file is one step of a plain-PyTorch GPT-2 reference (fp16) measured on a real GPU
as one CUDA-graph replay (``graph_s``) and launched op by op from Python (``eager_s``), with the
GPU kernel time of one graph replay by kernel class (``breakdown_s``: ``gemm``, ``layernorm``,
``elementwise_other`` — everything else, attention included). This module predicts the same cases
with llmsim (no torch needed) and returns per case measured / predicted / error, MAPE per
phase × mode, and per kernel class the measured and predicted kernel time (device time of the
ops of that class, without the inter-kernel gap), plus the measured and predicted gap
(step time − kernel time).
"""

from __future__ import annotations

import statistics
from typing import Any

from llmsim.graph.ops import OpKind

CLASSES = ("gemm", "layernorm", "elementwise_other")
# SDPA kernels land in either measured class depending on the kernel PyTorch picks (flash kernels are
# "elementwise_other", cutlass/bmm paths "gemm"), so attention is predicted apart and the two classes
# are also compared together
PREDICTED = (*CLASSES, "attention")
BOTH = "gemm+elementwise_other"


def kernel_class(kind: OpKind) -> str:
    """The predicted kernel class of an llmsim op kind (``attention`` kept apart, see ``PREDICTED``)."""
    return {OpKind.matmul: "gemm", OpKind.norm: "layernorm", OpKind.attention: "attention"}.get(
        kind, "elementwise_other")


def case_size(case: dict) -> int:
    """Prompt length (prefill) or context length (decode) of a development-set case."""
    return int(case["seq"] if case["phase"] == "prefill" else case["context"])


def predict_case(hw: Any, model: Any, case: dict, mode: str) -> dict[str, Any]:
    """Predicted step seconds and, per kernel class, the device time of its ops (no gaps)."""
    from llmsim.config.loader import make_scenario
    from llmsim.engine import make_device, simulate_step
    from llmsim.graph.lower import lower_decode, lower_prefill

    phase, b, s = case["phase"], int(case["batch"]), case_size(case)
    sc = make_scenario({"batch": b, "prompt": s, "gen": 2, "mode": mode, "weight_dtype": "fp16",
                        "act_dtype": "fp16", "kv_dtype": "fp16"})
    g = lower_prefill(model, sc, batch=b, seq=s) if phase == "prefill" else lower_decode(model, sc, context=s, batch=b)
    dev = make_device(hw, model, sc, "cycle", context=s)
    res = simulate_step(g, dev)
    by_class = dict.fromkeys(PREDICTED, 0.0)
    kernels = 0
    fw = hw.framework
    for n in g.nodes:
        op = g.nodes[n]["op"]
        by_class[kernel_class(op.kind)] += dev.kernel_seconds(op) if hasattr(dev, "kernel_seconds") \
            else dev.cycle_cost(op).seconds
        kernels += fw.calls(op.kind.value, op.attr("fn")).kernels
    return {"seconds": res.latency_s, "by_class_s": by_class, "kernels": kernels}


def case_ops(model: Any, case: dict) -> list[tuple[Any, int]]:
    """The step's ops as (op, count) with one entry per distinct op signature (layers repeat)."""
    from collections import Counter

    from llmsim.config.loader import make_scenario
    from llmsim.graph.lower import lower_decode, lower_prefill

    phase, b, s = case["phase"], int(case["batch"]), case_size(case)
    sc = make_scenario({"batch": b, "prompt": s, "gen": 2, "weight_dtype": "fp16", "act_dtype": "fp16",
                        "kv_dtype": "fp16"})
    g = lower_prefill(model, sc, batch=b, seq=s) if phase == "prefill" else lower_decode(model, sc, context=s, batch=b)
    count: Counter = Counter()
    first: dict = {}
    for n in g.nodes:
        op = g.nodes[n]["op"]
        count[op.signature] += 1
        first.setdefault(op.signature, op)
    return [(first[k], v) for k, v in count.items()]


def graph_step_seconds(dev: Any, ops: list[tuple[Any, int]]) -> float:
    """A CUDA-graph step without the event engine: one GPU stream runs the ops one after another
    and graph replay issues nothing on the host, so the step is the sum of the ops' device time
    (``tests/test_gpu.py`` checks this equals :func:`llmsim.engine.simulate_step`)."""
    return sum(n * dev.cost(op).device_seconds for op, n in ops)


def score_dev_set(data: dict, hw: Any, load_model) -> dict[str, Any]:
    """Rows (one per case × mode) and summaries; ``load_model(name)`` returns a ModelSpec."""
    rows, models = [], {}
    for case in data["results"]:
        name = case["model"]
        if name not in models:
            models[name] = load_model(name)
        for mode in ("graph", "eager"):
            p = predict_case(hw, models[name], case, mode)
            meas = case[f"{mode}_s"]
            row = {"model": name, "phase": case["phase"], "batch": case["batch"], "size": case_size(case),
                   "mode": mode, "measured_s": meas, "predicted_s": p["seconds"],
                   "error": p["seconds"] / meas - 1.0}
            if mode == "graph":
                row["measured_class_s"] = dict(case.get("breakdown_s", {}))
                row["predicted_class_s"] = p["by_class_s"]
                row["kernels"] = p["kernels"]
            rows.append(row)
    mape: dict[str, list[float]] = {}
    for r in rows:
        mape.setdefault(f"{r['phase']}/{r['mode']}", []).append(abs(r["error"]))
    classes: dict[str, list[float]] = {}
    for r in rows:
        if r["mode"] != "graph" or not r["measured_class_s"]:
            continue
        meas_k = sum(r["measured_class_s"].values())
        pred_k = sum(r["predicted_class_s"].values())
        mc, pc = r["measured_class_s"], r["predicted_class_s"]
        both = (mc.get("gemm", 0.0) + mc.get("elementwise_other", 0.0),
                pc["gemm"] + pc["elementwise_other"] + pc["attention"])
        for c in (*CLASSES, BOTH, "attention", "gap"):
            m = {"gap": r["measured_s"] - meas_k, BOTH: both[0], "attention": 0.0}.get(c, mc.get(c, 0.0))
            p = {"gap": r["predicted_s"] - pred_k, BOTH: both[1]}.get(c, pc.get(c, 0.0))
            key = f"{c}/{r['phase']}"
            acc = classes.setdefault(key, [0.0, 0.0, 0.0])
            acc[0] += m
            acc[1] += p
            acc[2] += abs(p / m - 1.0) if m > 0 and c != "gap" else 0.0
    n_case = {ph: sum(1 for r in rows if r["mode"] == "graph" and r["phase"] == ph) for ph in ("prefill", "decode")}
    by_class = {k: {"measured_s": v[0], "predicted_s": v[1], "mape": v[2] / n_case[k.split("/")[1]]}
                for k, v in classes.items()}
    return {"rows": rows, "mape": {k: statistics.mean(v) for k, v in sorted(mape.items())}, "by_class": by_class}
