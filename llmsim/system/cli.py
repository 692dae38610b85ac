"""The system side of ``llmsim run`` and ``llmsim step``: ``--tp``, ``--pp``, ``--micro-batches``."""

from __future__ import annotations

from typing import Any

import click

from llmsim.errors import LlmsimError

PARALLEL_OPTIONS = [
    click.option("--tp", type=int, default=None, help="tensor-parallel ranks (a system preset: --hw dgx-h100)"),
    click.option("--pp", type=int, default=None, help="pipeline stages (a system preset)"),
    click.option("--ep", type=int, default=None, help="expert-parallel ranks for MoE models (a system preset)"),
    click.option("--dp", type=int, default=None,
                 help="data-parallel replicas (a system preset): each runs --batch (run, step) or is a serving "
                      "replica (serve)"),
    click.option("--micro-batches", "micro", type=int, default=None,
                 help="pipeline micro-batches the batch (serve: each iteration's) is split into (default 1)"),
]


def parallel_options(f):
    for opt in reversed(PARALLEL_OPTIONS):
        f = opt(f)
    return f


def system_specs(hw: str, model_name: str, sets: tuple[str, ...], fields: dict[str, Any], dtype: str | None,
                 quant: str | None, tp: int | None, pp: int | None, micro: int | None, ep: int | None = None,
                 dp: int | None = None):
    """(system, model, scenario) when ``hw`` is a system; None for a device without parallel flags."""
    from llmsim.config.loader import load_model, make_scenario, split_overrides
    from llmsim.system.spec import check_layout_flags, is_system, load_system

    system = is_system(hw)
    check_layout_flags(hw, system, tp=tp, pp=pp, ep=ep, dp=dp, micro=micro)
    if not system:
        return None
    routed = split_overrides(sets)
    if dtype is not None:
        fields = fields | {"weight_dtype": dtype, "act_dtype": dtype, "kv_dtype": dtype}
    if quant is not None:
        from llmsim.config.quant import quant_fields

        if dtype is not None:
            raise LlmsimError(f"--quant {quant} and --dtype {dtype} both set the weight format: use one")
        fields = fields | quant_fields(quant)
    return load_system(hw, routed["hw"]), load_model(model_name, routed["model"]), make_scenario(fields,
                                                                                               routed["scenario"])


def print_plan(d: dict) -> None:
    from llmsim.report.text import fmt_j as _fmt_j

    s = d["config"]["system"]
    p = s["per_device"]
    click.echo(f"  parallelism     tp {s['tp']}, pp {s['pp']}, ep {s['ep']}, dp {s['dp']}, "
               f"micro-batches {s['micro_batches']}")
    click.echo(f"  per device      weights {p['weight_bytes'] / 1e9:.2f} GB, KV cache {p['kv_bytes'] / 1e9:.3f} GB "
               f"({p['kv_group']}), activations {p['activation_bytes'] / 1e6:.2f} MB")
    link = d["energy_breakdown_j"].get("link", 0.0)
    click.echo(f"  link energy     {_fmt_j(link)}")


def run_system(specs, fidelity: str, tp: int | None, pp: int | None, micro: int | None, json_out: str | None,
               ep: int | None = None, dp: int | None = None, report_out: str | None = None,
               trace_out: str | None = None, trace_steps: str = "all") -> dict:
    from llmsim.io import write_json
    from llmsim.report.text import run_summary
    from llmsim.system.run import simulate_system

    system, model, sc = specs
    res = simulate_system(system, model, sc, tp=tp or 1, pp=pp or 1, micro=micro or 1, fidelity=fidelity, ep=ep or 1,
                          dp=dp or 1)
    d = res.to_dict()
    click.echo("\n".join(run_summary(d, f"{model.name} on {system.name} (system, {fidelity}) — batch {sc.batch}, "
                                          f"prompt {sc.prompt}, gen {sc.gen}, weights {sc.weight_dtype.value}, "
                                          f"KV {sc.kv_dtype.value}, mode {sc.mode}")))
    print_plan(d)
    if json_out:
        write_json(json_out, d)
        click.echo(f"wrote {json_out}")
    if trace_out:
        from llmsim.report.trace import write_run_trace

        click.echo(write_run_trace(res, trace_steps, trace_out, f"{model.name} on {system.name}"))
    if report_out:
        from llmsim.report import write_report

        write_report(d, report_out)
        click.echo(f"wrote {report_out}")
    return d


def step_system(specs, fidelity: str, phase: str, batch: int, seq: int | None, context: int | None,
                tp: int | None, pp: int | None, micro: int | None, json_out: str | None, ep: int | None = None,
                dp: int | None = None) -> None:
    from llmsim.io import write_json
    from llmsim.report.text import fmt_j as _fmt_j
    from llmsim.report.text import fmt_s as _fmt_s
    from llmsim.system.run import simulate_system_step

    system, model, sc = specs
    res, cfg = simulate_system_step(system, model, sc, phase, batch, seq=seq, context=context, tp=tp or 1,
                                    pp=pp or 1, micro=micro or 1, fidelity=fidelity, ep=ep or 1,
                                    dp=dp or 1)
    link = res.energy_breakdown_j.get("link", 0.0)
    click.echo(f"{model.name} {phase} step on {system.name} (tp {tp or 1}, pp {pp or 1}, ep {ep or 1}): latency "
               f"{_fmt_s(res.latency_s)}, energy {_fmt_j(res.energy_j)} (link {_fmt_j(link)})")
    for k, v in sorted(res.latency_breakdown_s.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {k:<12} {_fmt_s(v):>12}  {100 * v / res.latency_s:5.1f}%")
    if json_out:
        write_json(json_out, res.to_dict(trace=True) | {"config": cfg})
        click.echo(f"wrote {json_out}")
