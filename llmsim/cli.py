"""``llmsim`` command line: one command per step of the workflow, no business logic here."""

from __future__ import annotations

import atexit
import gc
import json
import sys
from pathlib import Path
from typing import Any

import click

from llmsim.cli_support import check_out as _out
from llmsim.cli_support import compile_notice as _compile_notice
from llmsim.cli_support import positive_option as _pos
from llmsim.cli_support import progress_lines as _progress
from llmsim.errors import LlmsimError
from llmsim.io import write_atomic, write_json
from llmsim.report.text import fmt_j as _fmt_j
from llmsim.report.text import fmt_s as _fmt_s
from llmsim.system.cli import parallel_options, run_system, step_system, system_specs

__all__ = ["main", "write_atomic"]


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def _cheap_exit() -> None:
    """Freeze the heap at interpreter exit: the final cyclic collection then skips it (it would
    traverse every object of numba, pydantic and the run's results: ~0.1 s of a 2 s run, for
    memory the process is about to give back). Registered once per process."""
    if not getattr(_cheap_exit, "registered", False):
        atexit.register(gc.freeze)
        _cheap_exit.registered = True  # type: ignore[attr-defined]


class _Group(click.Group):
    """Turn user errors into one line on stderr and exit code 2 — never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        _cheap_exit()
        try:
            return super().invoke(ctx)
        except LlmsimError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)


def _common(f):
    for opt in reversed([
        click.option("--hw", required=True, help="hardware preset name or YAML path"),
        click.option("--model", "model_name", required=True, help="model name, YAML path or HF config.json"),
        click.option("--dtype", default=None, help="weights, activations and KV dtype (fp32 fp16 bf16 fp8 int8 int4)"
                     "  [default: fp16]"),
        click.option("--mode", type=click.Choice(["graph", "eager"]), default=None,
                     help="framework execution mode  [default: graph]"),
        click.option("--fidelity", type=click.Choice(["cycle", "analytic"]), default="cycle", show_default=True),
        click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE",
                     help="override any field: hw.memory.channels=16, model.n_layers=4, scenario.kv_dtype=int8"),
        click.option("--json", "json_out", default=None, metavar="OUT", help="write the full result as JSON"),
    ]):
        f = opt(f)
    return f


def _specs(hw: str, model_name: str, sets: tuple[str, ...], scenario_fields: dict[str, Any], dtype: str | None,
           quant: str | None = None):
    from llmsim.config.loader import load_hardware, load_model, make_scenario, split_overrides

    routed = split_overrides(sets)
    if dtype is not None:
        scenario_fields = scenario_fields | {"weight_dtype": dtype, "act_dtype": dtype, "kv_dtype": dtype}
    if quant is not None:
        from llmsim.config.quant import quant_fields

        if dtype is not None:
            raise LlmsimError(f"--quant {quant} and --dtype {dtype} both set the weight format: use one "
                              "(--set scenario.act_dtype=... changes the activations under --quant)")
        scenario_fields = scenario_fields | quant_fields(quant)
    return (load_hardware(hw, routed["hw"]), load_model(model_name, routed["model"]),
            make_scenario(scenario_fields, routed["scenario"]))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmsim")
def main() -> None:
    """llmsim: a hardware simulator and cost model for LLM inference."""
    import warnings

    warnings.formatwarning = _one_line_warning


@main.command()
@_common
@_pos("--batch", "sequences per batch")
@_pos("--prompt", "prompt tokens")
@_pos("--gen", "generated tokens")
@click.option("--report", "report_out", default=None, metavar="OUT.html", help="also write an HTML report")
@click.option("--quant", default=None, metavar="SCHEME",
              help="w16a16, w8a16, w4a16, w8a8 or fp8 (parts: --set scenario.group_size=64, scenario.kv_dtype=fp8)")
@click.option("--speculative", default=None, metavar="SPEC",
              help="speculative decoding: draft=MODEL,k=K,accept=A or heads=N,k=K,accept=A[,tree=W]")
@click.option("--exit", "exit_spec", default=None, metavar="SCHEDULE",
              help="early exit: depth=L, min=A,max=B (SkipDecode) or dist=L1:p1/L2:p2")
@click.option("--prompts", default=None, metavar="LENS|FILE",
              help="ragged batch: per-request prompt lengths (128,512,900) or a file of them; padded vs packed")
@click.option("--trace", "trace_out", default=None, metavar="OUT.json",
              help="write the per-op, per-unit timeline (Chrome trace events: Perfetto, chrome://tracing)")
@click.option("--trace-steps", default="all", show_default=True, metavar="all|representative|A:B|I,J,...",
              help="steps --trace keeps (0 = the prefill; representative: the prefill, first and last decode; "
                   "A:B: steps A to B-1), each at its place on the run's timeline")
@parallel_options
def run(hw, model_name, dtype, mode, fidelity, sets, json_out, batch, prompt, gen, report_out, quant, speculative,
        exit_spec, prompts, trace_out, trace_steps="all", tp=None, pp=None, ep=None, dp=None, micro=None):
    """Simulate a whole generation: prefill, then every decode step."""
    from llmsim.engine import simulate
    from llmsim.graph.lower import check_generation

    for path, flag in ((json_out, "--json"), (report_out, "--report"), (trace_out, "--trace")):
        _out(path, flag)
    system = system_specs(hw, model_name, sets, {"batch": batch, "prompt": prompt, "gen": gen, "mode": mode},
                          dtype, quant, tp, pp, micro, ep, dp)
    if trace_steps != "all" and not trace_out:
        raise LlmsimError("--trace-steps selects the steps of --trace OUT.json; give --trace too")
    if system is not None:
        if speculative or exit_spec or prompts:
            raise LlmsimError("--speculative, --exit and --prompts are not available on a system yet")
        if trace_out:
            from llmsim.report.trace import select_steps

            select_steps(trace_steps, system[2].gen)  # refused before the run, not after it
        run_system(system, fidelity, tp, pp, micro, json_out, ep, dp, report_out=report_out, trace_out=trace_out,
                   trace_steps=trace_steps)
        return
    hw_spec, model, sc = _specs(hw, model_name, sets, {"batch": batch, "prompt": prompt, "gen": gen, "mode": mode},
                                dtype, quant)
    chosen = [o for o, v in (("--speculative", speculative), ("--exit", exit_spec), ("--prompts", prompts)) if v]
    if len(chosen) > 1:
        raise LlmsimError(f"{' and '.join(chosen)} cannot be combined")
    if trace_steps != "all":
        from llmsim.report.trace import select_steps

        select_steps(trace_steps, sc.gen)  # refused before the run, not after it (gen steps: prefill + decodes)
    if chosen and (report_out or trace_out):
        flag = "--report" if report_out else "--trace"
        raise LlmsimError(f"{flag} is not available with {chosen[0]} yet (its --json holds the comparison)")
    _compile_notice()
    if prompts is not None:
        return _run_ragged(hw_spec, model, sc, fidelity, prompts, batch, prompt, json_out)
    if speculative is not None:
        return _run_speculative(hw_spec, model, sc, fidelity, speculative, json_out)
    if exit_spec is not None:
        return _run_exit(hw_spec, model, sc, fidelity, exit_spec, json_out)
    check_generation(model, sc)
    if sys.stderr.isatty():
        from rich.progress import Progress  # imported only for a terminal (~50 ms)

        with Progress(transient=True) as bar:
            task = bar.add_task(f"{model.name} on {hw_spec.name}", total=sc.gen)
            res = simulate(hw_spec, model, sc, fidelity=fidelity, progress=lambda i, n: bar.update(task, completed=i))
    else:
        res = simulate(hw_spec, model, sc, fidelity=fidelity,
                       progress=_progress(f"{model.name} on {hw_spec.name}: steps"))
    # the text summary reads aggregates only: per-op traces are built when a file needs them
    d = res.to_dict(trace_steps="representative" if json_out or report_out else "none")
    from llmsim.report.text import run_summary

    q = f" (group {sc.group_size or 'per column'})" if sc.weights_quantised else ""
    gemm = f", GEMMs {sc.matmul_dtype.value}" if sc.matmul_dtype != sc.act_dtype else ""
    title = (f"{model.name} on {hw_spec.name} ({hw_spec.kind}, {fidelity}) — batch {sc.batch}, prompt {sc.prompt}, "
             f"gen {sc.gen}, weights {sc.weight_dtype.value}{q}{gemm}, KV {sc.kv_dtype.value}, mode {sc.mode}")
    click.echo("\n".join(run_summary(d, title)))
    if json_out:
        write_json(json_out, d)
        click.echo(f"wrote {json_out}")
    if trace_out:
        from llmsim.report.trace import write_run_trace

        click.echo(write_run_trace(res, trace_steps, trace_out, f"{model.name} on {hw_spec.name}"))
    if report_out:
        _report(d, report_out)


def _run_speculative(hw_spec, model, sc, fidelity: str, text: str, json_out: str | None) -> None:
    from llmsim.config.loader import load_model
    from llmsim.engine.speculative import parse_speculative, simulate_speculative

    spec = parse_speculative(text)
    draft = load_model(spec.draft) if spec.draft else None
    r = simulate_speculative(hw_spec, model, sc, spec, draft=draft, fidelity=fidelity)
    tree = f", tree {spec.tree}" if spec.tree > 1 else ""
    by = f"draft {draft.name}" if draft else f"{spec.heads} Medusa heads{tree}"
    click.echo(f"{model.name} on {hw_spec.name} ({hw_spec.kind}, {fidelity}) — batch {sc.batch}, prompt {sc.prompt}, "
               f"gen {sc.gen}; speculative: {by}, k {spec.k}, acceptance {spec.accept:g}")
    click.echo(f"  tokens/iteration {r.tokens_per_iteration:.3f}  ({r.iterations:.2f} iterations for {sc.gen - 1} "
               "decode tokens)")
    click.echo(f"  iteration       {_fmt_s(r.draft_s_per_iteration)} drafting + {_fmt_s(r.verify_s_per_iteration)} "
               f"verifying {spec.verify_tokens} tokens")
    click.echo(f"  TTFT            {_fmt_s(r.ttft_s)}")
    click.echo(f"  TPOT            {_fmt_s(r.tpot_s)} effective  (plain decoding {_fmt_s(r.baseline_tpot_s)}: "
               f"speed-up {r.speedup:.2f}x)")
    click.echo(f"  energy/token    {_fmt_j(r.energy_per_token_j)}  (plain {_fmt_j(r.baseline_energy_per_token_j)})")
    if json_out:
        write_json(json_out, r.to_dict())
        click.echo(f"wrote {json_out}")


def _run_ragged(hw_spec, model, sc, fidelity: str, text: str, batch, prompt, json_out: str | None) -> None:
    from llmsim.engine.ragged import parse_prompts, simulate_ragged

    lens = parse_prompts(text)
    if batch is not None and batch != len(lens):
        raise LlmsimError(f"--batch {batch} disagrees with --prompts ({len(lens)} lengths): give one")
    if prompt is not None:
        raise LlmsimError("--prompt and --prompts both give the prompt length: use one")
    r = simulate_ragged(hw_spec, model, sc, lens, fidelity=fidelity)
    click.echo(f"{model.name} on {hw_spec.name} ({hw_spec.kind}, {fidelity}) — {len(lens)} requests, prompts "
               f"{min(lens)}..{max(lens)} (mean {sum(lens) / len(lens):.1f}), gen {sc.gen}")
    for label, s in (("padded", r.padded), ("packed", r.packed)):
        click.echo(f"  {label:<8} TTFT {_fmt_s(s.ttft_s):>12}  TPOT {_fmt_s(s.tpot_s):>12}  total "
                   f"{_fmt_s(s.total_s):>12}  energy {_fmt_j(s.energy_j)}")
    click.echo(f"  padding waste   {100 * r.padding_token_fraction:.1f}% of prompt tokens, "
               f"{100 * r.padding_time_fraction:.1f}% of the padded time")
    if json_out:
        write_json(json_out, r.to_dict())
        click.echo(f"wrote {json_out}")


def _run_exit(hw_spec, model, sc, fidelity: str, text: str, json_out: str | None) -> None:
    from llmsim.engine.early_exit import parse_exit, simulate_early_exit

    r = simulate_early_exit(hw_spec, model, sc, parse_exit(text), fidelity=fidelity)
    click.echo(f"{model.name} on {hw_spec.name} ({hw_spec.kind}, {fidelity}) — batch {sc.batch}, prompt {sc.prompt}, "
               f"gen {sc.gen}; early exit {text}")
    first, last = r.layers_run[0], r.layers_run[-1]
    click.echo(f"  layers run      {r.mean_layers:.2f} of {model.n_layers} on average (first decode step "
               f"{first:.2f}, last {last:.2f}); skipped layers still write K and V")
    click.echo(f"  TTFT            {_fmt_s(r.ttft_s)}")
    click.echo(f"  TPOT            {_fmt_s(r.tpot_s)}  (every layer {_fmt_s(r.baseline_tpot_s)}: "
               f"speed-up {r.speedup:.2f}x)")
    click.echo(f"  energy/token    {_fmt_j(r.energy_per_token_j)}  (every layer "
               f"{_fmt_j(r.baseline_energy_per_token_j)})")
    if json_out:
        write_json(json_out, r.to_dict())
        click.echo(f"wrote {json_out}")


def _report(d: dict, out: str) -> None:
    try:
        from llmsim.report import write_report
    except ImportError:
        raise LlmsimError("HTML reports are not available in this build (llmsim.report missing)") from None
    write_report(d, out)
    click.echo(f"wrote {out}")


@main.command()
@_common
@click.option("--phase", type=click.Choice(["prefill", "decode"]), required=True)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seq", type=click.IntRange(min=1), default=None, help="prompt tokens (prefill)")
@click.option("--context", type=click.IntRange(min=1), default=None,
              help="keys attended, the new token included (decode)")
@click.option("--prompt", type=click.IntRange(min=1), default=None,
              help="encoder length for encoder-decoder decode steps")
@click.option("--quant", default=None, metavar="SCHEME", help="w16a16, w8a16, w4a16, w8a8 or fp8")
@parallel_options
def step(hw, model_name, dtype, mode, fidelity, sets, json_out, phase, batch, seq, context, prompt, quant,
         tp=None, pp=None, ep=None, dp=None, micro=None):
    """Simulate one phase step (a prefill of B x S, or one decode step at context C)."""
    from llmsim.engine import simulate_one_step

    if phase == "prefill" and seq is None:
        raise LlmsimError("--phase prefill needs --seq S")
    if phase == "decode" and context is None:
        raise LlmsimError("--phase decode needs --context C")
    _out(json_out, "--json")
    fields = {"batch": batch, "mode": mode, "prompt": prompt if prompt is not None else seq}
    system = system_specs(hw, model_name, sets, fields, dtype, quant, tp, pp, micro, ep, dp)
    if system is not None:
        step_system(system, fidelity, phase, batch, seq, context, tp, pp, micro, json_out, ep, dp)
        return
    hw_spec, model, sc = _specs(hw, model_name, sets, fields, dtype, quant)
    _compile_notice()
    res, cfg = simulate_one_step(hw_spec, model, sc, phase, batch, seq=seq, context=context, fidelity=fidelity)
    from llmsim.engine.footprint import step_footprint
    from llmsim.report.text import memory_line

    mem = step_footprint(hw_spec, model, sc, phase, batch, seq=seq, context=context)
    d = res.to_dict(trace=True) | {"memory_footprint": mem, "config": cfg}
    click.echo(f"{model.name} {phase} step on {hw_spec.name}: latency {_fmt_s(res.latency_s)}, "
               f"energy {_fmt_j(res.energy_j)}, {res.flops / 1e9:.2f} GFLOP")
    for k, v in sorted(res.latency_breakdown_s.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {k:<12} {_fmt_s(v):>12}  {100 * v / res.latency_s:5.1f}%")
    click.echo(memory_line(mem))
    if json_out:
        write_json(json_out, d)
        click.echo(f"wrote {json_out}")


@main.command()
@click.option("--hw", required=True)
@click.option("--kind", required=True, help="matmul, attention, norm, activation, elementwise, embedding, kv_write")
@click.option("--shape", required=True, help="matmul M,K,N; attention B,H,Sq,Skv,D[,Hkv]; others rows,width")
@click.option("--dtype", default="fp16", show_default=True)
@click.option("--fn", default=None, help="norm/activation/elementwise function (layernorm, gelu, add, ...)")
@click.option("--fidelity", type=click.Choice(["cycle", "analytic"]), default="cycle", show_default=True)
@click.option("--mode", type=click.Choice(["graph", "eager"]), default="graph", show_default=True)
@click.option("--set", "sets", multiple=True, metavar="hw.KEY.PATH=VALUE")
@click.option("--json", "json_out", default=None)
def op(hw, kind, shape, dtype, fn, fidelity, mode, sets, json_out):
    """Simulate a single op on a device."""
    from llmsim.config.base import DType
    from llmsim.config.loader import load_hardware, split_overrides, validate
    from llmsim.devices.base import build_device
    from llmsim.graph.factory import parse_shape, single_op

    _out(json_out, "--json")
    routed = split_overrides(sets)
    spec = load_hardware(hw, routed["hw"])
    dt = validate(_dtype_adapter(), dtype, "--dtype")
    o = single_op(kind, parse_shape(shape), DType(dt), fn)
    cap = spec.memory.capacity_bytes
    if o.bytes_total > cap:  # the op's operands must be resident in main memory (also caps the models' work)
        raise LlmsimError(f"--shape {shape}: the op's operands ({o.bytes_total / 1e9:.3g} GB) exceed {spec.name}'s "
                          f"memory ({cap / 1e9:.3g} GB)")
    _compile_notice()
    dev = build_device(spec, fidelity=fidelity, mode=mode)
    c = dev.cost(o)
    bound = dev.bound(o)
    d = {
        "op": o.describe(), "latency_s": c.seconds + sum(p.seconds for p in c.phases if p.issue),
        "device_s": c.device_seconds, "cycles": c.cycles, "compute_cycles": c.compute_cycles,
        "energy_j": c.energy_total_j, "energy_breakdown_j": c.energy_j, "bytes_by_level": c.bytes_by_level,
        "bound_s": bound.seconds, "stats": c.stats, "fidelity": fidelity, "hw": spec.name,
    }
    click.echo(f"{kind} {shape} {dtype} on {spec.name}: {_fmt_s(d['latency_s'])}, {c.cycles:,.0f} cycles "
               f"({c.compute_cycles:,.0f} compute), {_fmt_j(d['energy_j'])}; roofline bound {_fmt_s(bound.seconds)}")
    if json_out:
        write_json(json_out, d)
        click.echo(f"wrote {json_out}")


def _dtype_adapter():
    from pydantic import TypeAdapter

    from llmsim.config.base import DType

    return TypeAdapter(DType)


@main.command(name="list")
def list_cmd():
    """Bundled hardware presets, the parts they extend (memory/, framework/) and models, with their source."""
    from llmsim.config.catalog import catalog

    for line in catalog():
        click.echo(line)


@main.command()
@click.argument("topic", required=False, type=click.Choice(["metrics", "energy", "memory", "eager"]))
def explain(topic):
    """What the printed numbers mean: metrics (TTFT, TPOT, per token), energy components, memory, eager."""
    from llmsim.report.text import TOPICS

    for name in [topic] if topic else list(TOPICS):
        click.echo(f"{name}:\n{TOPICS[name]}\n")


@main.command()
@click.argument("a_path", metavar="A.json")
@click.argument("b_path", metavar="B.json")
@click.option("--json", "json_out", default=None, metavar="OUT", help="also write the comparison as JSON")
def diff(a_path, b_path, json_out):
    """Two saved runs (llmsim run --json) side by side: latency, energy, bytes, units, top changed ops."""
    from llmsim.report import load_input
    from llmsim.report.diff import diff_runs, format_diff

    _out(json_out, "--json")
    d = diff_runs(load_input(a_path), load_input(b_path))
    click.echo("\n".join(format_diff(d, a_path, b_path)))
    if json_out:
        write_json(json_out, d, "diff")
        click.echo(f"wrote {json_out}")


@main.command()
@click.option("-o", "--out", default=None, help="write to a file instead of stdout")
def schema(out):
    """JSON Schema of the hardware, model and scenario specs (for YAML editor completion)."""
    from llmsim.config.loader import json_schema

    _out(out, "-o")
    text = json.dumps(json_schema(), indent=1, sort_keys=True)
    if out:
        write_atomic(out, text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text)


# ---- validate (GPU/reference helper) ------------------------------------------------------------
@main.command()
@click.option("--hw", required=True, help="hardware preset name or YAML path")
@click.option("--model", "model_name", required=True, help="model name or YAML path (decoder-only)")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--mode", type=click.Choice(["graph", "eager"]), default=None,
              help="default: graph on cuda, eager on cpu")
@click.option("--dtype", default=None, help="reference dtype (default fp16 on cuda, fp32 on cpu)")
@click.option("--cases", multiple=True,
              help="prefill:BxS and decode:BxC, comma-separated (default prefill:1x128,decode:1x128)")
@click.option("--iters", type=int, default=10, show_default=True, help="timed runs per case (median)")
@click.option("--warmup", type=int, default=3, show_default=True)
@click.option("--no-profile", is_flag=True, help="skip the per-op-class torch.profiler pass")
@click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE", help="hw.* and model.* overrides")
@click.option("--json", "json_out", default=None, metavar="OUT")
@click.option("--report", "report_out", default=None, metavar="OUT.html")
def validate(hw, model_name, device, mode, dtype, cases, iters, warmup, no_profile, sets, json_out, report_out):
    """Run the PyTorch reference and the simulator on the same cases; print measured, predicted, error."""
    from llmsim.config.loader import load_hardware, load_model, split_overrides
    from llmsim.reference import require_torch

    require_torch()
    _out(json_out, "--json")
    _out(report_out, "--report")
    from llmsim.reference.compare import DEFAULT_CASES, format_table, parse_cases, run_validation

    routed = split_overrides(sets)
    hw_spec, model = load_hardware(hw, routed["hw"]), load_model(model_name, routed["model"])
    mode = mode or ("graph" if device == "cuda" else "eager")
    res = run_validation(hw_spec, model, parse_cases(cases or DEFAULT_CASES), device, mode, dtype, warmup=warmup,
                         iters=iters, profile=not no_profile)
    res["config"] = {"hw": hw_spec.model_dump(mode="json"), "model": model.model_dump(mode="json"), "device": device,
                     "mode": mode}
    click.echo(format_table(res))
    if json_out:
        write_json(json_out, res, "validation")
        click.echo(f"wrote {json_out}")
    if report_out:
        _report(res, report_out)
# ---- end validate ---------------------------------------------------------------------------------

# ---- sweep and report (llmsim/sweep, llmsim/report) -----------------------------------------
@main.command()
@click.argument("spec_path", metavar="SPEC.yaml")
@click.option("--out", "out_dir", required=True, help="result folder (created; rerun with it to resume)")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=int, default=None, help="parallel points (default: all cores)")
@click.option("--ray-address", default=None, help="address of an existing Ray cluster (default: start a local one)")
@click.option("--force", is_flag=True, help="reuse DIR's rows even though its sweep_spec.yaml differs")
@click.option("--max-points", type=click.IntRange(min=1), default=None,
              help="refuse a spec with more points than this  [default: 100000]")
@click.option("--parquet", "parquet_out", default=None, metavar="OUT.parquet",
              help="also write the rows as Parquet (needs pyarrow: pip install 'llmsim[parquet]')")
@click.option("--report", "report_out", default=None, metavar="OUT.html", help="also write an HTML report")
def sweep(spec_path, out_dir, backend, workers, ray_address, force, max_points, parquet_out, report_out):
    """Run a design-space sweep; interrupted sweeps resume where they stopped."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from llmsim.sweep import SweepSpec, run_sweep

    _out(report_out, "--report")
    if parquet_out:
        from llmsim.sweep.parquet import require_pyarrow

        require_pyarrow()
        _out(parquet_out, "--parquet")
    spec = SweepSpec.load(spec_path)
    _compile_notice()
    tty = sys.stderr.isatty()
    lines = _progress("sweep: points")
    cols = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*cols, transient=False, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("sweep", total=None)
        try:
            res = run_sweep(spec, out_dir, backend=backend, workers=workers, ray_address=ray_address, force=force,
                            max_points=max_points, progress=lambda i, n: bar.update(task, completed=i, total=n)
                            if tty else lines(i, n))
        except KeyboardInterrupt:
            from llmsim.sweep import read_rows

            n = len(read_rows(Path(out_dir) / "results.jsonl"))
            click.echo(f"interrupted: {n} points stored in {out_dir}; run the same command again to resume", err=True)
            sys.exit(130)
    c = res.counts
    click.echo(f"{res.total} points ({c['sampled']} sampled, {c['filtered']} filtered by constraints, "
               f"{c['duplicates']} duplicates): ran {res.ran} in {res.seconds:.1f} s "
               f"({res.points_per_s:.2f} points/s, {backend}), {res.skipped} already stored, {res.errors} failed")
    for r in [r for r in res.rows if r["status"] != "ok"][:3]:
        click.echo(f"  failed {r['axes']}: {r['error']}")
    click.echo(f"Pareto front over {', '.join(res.objectives)}: {len(res.front)} points")
    for r in res.front[:10]:
        click.echo("  " + ", ".join(f"{k}={v}" for k, v in r["axes"].items()) + "  " +
                   ", ".join(f"{o.removeprefix('max:')}={r[o.removeprefix('max:')]:.4g}" for o in res.objectives))
    click.echo(f"wrote {Path(out_dir) / 'results.jsonl'}")
    if parquet_out:
        from llmsim.sweep.parquet import write_parquet

        write_parquet(res.rows, parquet_out)
        click.echo(f"wrote {parquet_out}")
    if report_out:
        from llmsim.report import load_input

        _report(load_input(out_dir), report_out)


@main.command()
@click.argument("input_path", metavar="RESULT.json|SWEEP_DIR|VALIDATE.json|SERVE.json")
@click.option("-o", "--out", "out", required=True, metavar="OUT.html")
def report(input_path, out):
    """Write one self-contained HTML report (works offline) for a run, a sweep, a validation or a serve run."""
    from llmsim.report import load_input

    _out(out, "-o")
    _report(load_input(input_path), out)

# ==== CPU calibration (branch cpu) ===========================================================
@main.command()
@click.option("--out", "out", required=True, metavar="FILE.yaml", help="where to write the measured CPU preset")
@click.option("--name", default=None, help="preset name (default: calibrated-<hostname>)")
@click.option("--quick", is_flag=True, help="small sizes and few repeats (seconds; for tests, not for use)")
@click.option("--numpy", "use_numpy", is_flag=True, help="time with numpy even when PyTorch is installed")
def calibrate(out, name, quick, use_numpy):
    """Measure this machine's CPU (cores, GEMM rate per dtype, memory bandwidth, dispatch cost)
    and write a `kind: cpu` preset that `--hw FILE.yaml` loads."""
    import yaml
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from llmsim.calibrate.cpu import calibrate_cpu

    _out(out, "--out")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True,
                  disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("calibrating", total=None)
        preset = calibrate_cpu(quick=quick, name=name, prefer_torch=not use_numpy,
                               progress=lambda msg: bar.update(task, description=msg))
    header = "# Written by `llmsim calibrate`; see source: for what was measured, when and how.\n"
    write_atomic(out, header + yaml.safe_dump(preset, sort_keys=False, width=120))
    fpc = preset["cores"]["flops_per_cycle"]
    click.echo(f"{preset['name']}: {preset['cores']['count']} cores, {preset['threads']} threads, "
               f"{preset['cores']['clock_hz'] / 1e9:.2f} GHz, FLOP/cycle/core "
               + ", ".join(f"{k} {v:g}" for k, v in fpc.items())
               + f"; memory_efficiency {preset['memory_efficiency']:.2f}; dispatch "
               f"{preset['framework']['eager_dispatch_s'] * 1e6:.1f} us")
    click.echo(f"wrote {out}")
# ==== end CPU calibration =====================================================================


# ==== studies (llmsim/studies) ================================================================
from llmsim.studies.cli import study as _study  # noqa: E402

main.add_command(_study)


# ==== serve (llmsim/serving) ====================================================================
from llmsim.serving.cli import serve as _serve  # noqa: E402

main.add_command(_serve)


if __name__ == "__main__":
    main()

