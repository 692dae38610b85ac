"""``llmsim serve``: a request stream through a scheduler on one or more replicas of a device."""

from __future__ import annotations

import json
from pathlib import Path

import click

from llmsim.errors import ConfigError
from llmsim.system.cli import parallel_options, system_specs


def _rates(text: str) -> list[float]:
    try:
        rates = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--rate '{text}': expected a rate or comma-separated rates (requests/s)") from None
    if not rates or any(not (r > 0 and r < float("inf")) for r in rates):
        raise ConfigError(f"--rate '{text}': rates must be positive numbers of requests per second")
    return rates


def _serve_overrides(sets: tuple[str, ...]):
    from llmsim.config.loader import validate
    from llmsim.serving.config import ServeConfig

    serve, rest = {}, []
    for s in sets:
        key, eq, value = s.partition("=")
        if key.startswith("serve."):
            if not eq:
                raise ConfigError(f"--set {s}: expected serve.FIELD=VALUE")
            serve[key[6:]] = value
        else:
            rest.append(s)
    return validate(ServeConfig, serve, "--set serve"), tuple(rest)


@click.command()
@click.option("--hw", required=True, help="hardware preset name or YAML path")
@click.option("--model", "model_name", required=True, help="model name or YAML path (decoder-only)")
@click.option("--rate", default=None, metavar="R[,R...]", help="Poisson arrivals, requests/s (several: a rate curve)")
@click.option("--requests", "n_requests", type=int, default=None, help="requests per rate (default 1000)")
@click.option("--trace", default=None, metavar="FILE", help="CSV/JSONL trace: arrival_s, prompt_tokens, output_tokens")
@click.option("--prompt-dist", default="fixed:512", show_default=True,
              help="fixed:N, uniform:A,B, lognormal:MEDIAN,SIGMA or trace:FILE")
@click.option("--output-dist", default="fixed:128", show_default=True, help="as --prompt-dist, for output tokens")
@click.option("--scheduler", default="vllm", show_default=True, help="vllm, sarathi or static")
@click.option("--replicas", type=int, default=1, show_default=True, help="copies of the device or system (round-robin)")
@click.option("--slo", default=None, metavar="ttft=S,tpot=S", help="latency targets for goodput (s or ms)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dtype", default=None, help="weights, activations and KV dtype")
@click.option("--fidelity", type=click.Choice(["cycle", "analytic"]), default="cycle", show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE",
              help="hw./model./scenario. overrides and serve.FIELD (block_size, max_num_seqs, "
                   "max_num_batched_tokens, chunk_tokens, gpu_memory_utilization, runtime_reserve_bytes, kv_blocks)")
@click.option("--json", "json_out", default=None, metavar="OUT")
@click.option("--report", "report_out", default=None, metavar="OUT.html")
@parallel_options
def serve(hw, model_name, rate, n_requests, trace, prompt_dist, output_dist, scheduler, replicas, slo, seed, dtype,
          fidelity, sets, json_out, report_out, tp=None, pp=None, ep=None, dp=None, micro=None):
    """Serve a request stream: continuous batching, paged KV, TTFT/TPOT/E2E, goodput, energy.

    On a system preset (--hw dgx-h100) --tp/--pp/--ep/--micro-batches lay out each replica and --dp
    replicas are dealt requests round-robin (times --replicas copies of the system)."""
    from llmsim.cli import _specs
    from llmsim.io import write_atomic, write_json
    from llmsim.report.text import fmt_j as _fmt_j
    from llmsim.report.text import fmt_s as _fmt_s
    from llmsim.serving.arrivals import parse_dist, poisson_stream, trace_stream
    from llmsim.serving.metrics import parse_slo, summarise, time_series
    from llmsim.serving.simulate import make_coster, simulate_serving
    from llmsim.system.serve import serve_target

    if (rate is None) == (trace is None):
        raise ConfigError("give one of --rate R or --trace FILE")
    if trace is not None and (prompt_dist != "fixed:512" or output_dist != "fixed:128"):
        raise ConfigError("--trace gives the lengths: --prompt-dist/--output-dist apply to --rate only")
    if seed < 0:
        raise ConfigError(f"--seed {seed}: must be a non-negative integer")
    if n_requests is not None and n_requests < 1:
        raise ConfigError(f"--requests {n_requests}: must be at least 1")
    for flag, out in (("--json", json_out), ("--report", report_out)):
        if out is not None and not Path(out).resolve().parent.is_dir():
            raise ConfigError(f"{flag} {out}: folder {Path(out).parent} does not exist")
    cfg, rest = _serve_overrides(sets)
    slo_d = parse_slo(slo) if slo else {}
    if replicas < 1:
        raise ConfigError(f"--replicas {replicas}: must be at least 1")
    system = system_specs(hw, model_name, rest, {}, dtype, None, tp, pp, micro, ep, dp)
    base, model, sc = system if system is not None else _specs(hw, model_name, rest, {}, dtype)
    target, hw_spec, n_rep = serve_target(base, model, sc, replicas, tp=tp, pp=pp, ep=ep, dp=dp, micro=micro,
                                          fidelity=fidelity)
    if system is not None:
        title = (f"{model.name} on {base.name} x{replicas} (system: tp {target.tp}, pp {target.pp}, ep "
                 f"{target.ep}, dp {target.dp}, micro-batches {target.micro}, {fidelity})")
    else:
        title = f"{model.name} on {hw_spec.name} x{replicas} ({hw_spec.kind}, {fidelity})"
    pd = parse_dist(prompt_dist, "--prompt-dist", "prompt")
    od = parse_dist(output_dist, "--output-dist", "output")
    streams = ([(None, trace_stream(trace, model.max_positions, n_requests))] if trace else
               [(r, poisson_stream(r, n_requests or 1000, pd, od, seed, model.max_positions)) for r in _rates(rate)])
    runs = []
    coster = make_coster(target, model, sc, cfg, fidelity)  # one cost cache for every rate
    click.echo(f"{title}, scheduler {scheduler}")
    for r, reqs in streams:
        res = simulate_serving(target, model, sc, reqs, scheduler=scheduler, replicas=n_rep, cfg=cfg,
                               fidelity=fidelity, coster=coster)
        m = summarise(res, slo_d)
        if not runs:
            per = res.kv.blocks / res.kv.pool_devices * res.kv.block_bytes
            click.echo(f"  KV cache {res.kv.blocks} blocks of {cfg.block_size} tokens "
                       f"({per / 1e9:.2f} GB{' per device' if system else ''})")
            if system:
                p = res.config["per_device"]
                click.echo(f"  per device      weights {p['weight_bytes'] / 1e9:.2f} GB, KV cache "
                           f"{p['kv_bytes'] / 1e9:.2f} GB ({p['kv_group']}), activations "
                           f"{p['activation_bytes'] / 1e6:.2f} MB")
        label = f"rate {r:g}/s" if r is not None else f"trace {trace}"
        good = f", goodput {m['goodput_requests_per_s']:.3f} req/s ({100 * m['slo_attained']:.1f}% in SLO)" \
            if slo_d else ""
        click.echo(f"  {label}: {m['requests']} requests, {m['throughput_requests_per_s']:.3f} req/s, "
                   f"{m['throughput_tokens_per_s']:.1f} tok/s{good}, preemptions {m['preemptions']}")
        click.echo(f"    TTFT p50 {_fmt_s(m['ttft_s']['p50'])} p99 {_fmt_s(m['ttft_s']['p99'])}; TPOT p50 "
                   f"{_fmt_s(m['tpot_s']['p50'])} p99 {_fmt_s(m['tpot_s']['p99'])}; E2E mean "
                   f"{_fmt_s(m['e2e_s']['mean'])}; queueing mean {_fmt_s(m['queueing_s']['mean'])}; batch "
                   f"{m['batch_size_mean']:.1f}; KV use {100 * m['kv_use_mean']:.1f}%; "
                   f"{_fmt_j(m['energy_per_token_j'])}/token ({_fmt_j(m['energy_per_token_with_idle_j'])} with idle)")
        runs.append({"rate_per_s": r, "metrics": m, "kv": res.kv.to_dict(), "config": res.config,
                     "requests": res.requests, "iterations": time_series(res)})
    from llmsim.engine import resolved_config

    d = {"kind": "serve", "scheduler": scheduler, "replicas": n_rep, "seed": seed, "runs": runs,
         "config": resolved_config(hw_spec, model, sc, fidelity) | {"serve": cfg.model_dump(mode="json")}}
    if system:
        d["config"]["system"] = target.config()
    if json_out:
        write_json(json_out, d)
        click.echo(f"wrote {json_out}")
    if report_out:
        from llmsim.serving.report import build

        write_atomic(report_out, build(json.loads(json.dumps(d))).render())
        click.echo(f"wrote {report_out}")

