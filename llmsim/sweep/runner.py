"""Running a sweep: the points a store lacks, on a local process pool or on Ray.

Workers only simulate (:func:`run_point` takes a resolved config, returns metrics); the
driver process alone writes the store, one durable row per finished point, so an
interrupted sweep rerun with the same spec runs exactly the missing points.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmsim.errors import ConfigError, LlmsimError
from llmsim.io import write_atomic
from llmsim.sweep.expr import evaluate
from llmsim.sweep.pareto import SERVE_OBJECTIVES, default_objectives, pareto_front
from llmsim.sweep.space import Point, SweepSpec
from llmsim.sweep.store import ResultStore

Task = dict[str, Any]

#: A worker (local or Ray) is replaced after this many points, so whatever a point leaves behind
#: in a worker cannot grow with the sweep's size. Measured (benchmarks/sweep_memory.py): a gpt2
#: point leaves ~0.5 MB of cyclic garbage that the engine's frozen-GC regime (engine.long_run_gc)
#: does not collect; without replacement two workers passed 1.4 GiB within 2,000 points. Ending
#: the process frees it for the cost of one fork; a full gc.collect() costs ~2x a point's time.
#: In-process sweeps (one worker) collect every this many points instead.
MAX_TASKS_PER_CHILD = 100
#: modules the fork server imports before forking workers (what :func:`run_point` needs)
PRELOAD = ["llmsim.config.loader", "llmsim.engine", "llmsim.devices"]
#: at most this many local workers per CPU core (more only adds memory)
WORKERS_PER_CORE = 4


def run_point(task: Task) -> dict[str, Any]:
    """Simulate one resolved config (``task["config"]``: hw, model, scenario dicts and fidelity).

    Returns the metric columns of its row, or ``status: error`` with the error's one-line
    message when the point is illegal (e.g. the model does not fit memory). Never raises
    for a bad point, so one failure does not stop a sweep.
    """
    from llmsim.config.loader import HW_ADAPTER, make_scenario, validate
    from llmsim.config.model import ModelSpec
    from llmsim.engine import simulate

    cfg = task["config"]
    t0 = time.perf_counter()
    if "serve" in cfg:
        return run_serve_point(cfg, t0)
    try:
        model, sc = validate(ModelSpec, cfg["model"], "model"), make_scenario(cfg["scenario"])
        if "layout" in cfg:  # as llmsim run --tp ... on a system, with the flags' checks and messages
            from llmsim.system.run import simulate_system
            from llmsim.system.spec import SystemSpec, check_layout_flags

            lay = cfg["layout"]
            system = cfg["hw"].get("kind") == "system"
            check_layout_flags(cfg["hw"].get("name", "hw"), system, tp=lay["tp"], pp=lay["pp"], ep=lay["ep"],
                               dp=lay["dp"], micro=lay["micro_batches"])
            res = simulate_system(validate(SystemSpec, cfg["hw"], "hw"), model, sc, tp=lay["tp"], pp=lay["pp"],
                                  micro=lay["micro_batches"], fidelity=cfg["fidelity"], ep=lay["ep"], dp=lay["dp"])
        else:
            res = simulate(validate(HW_ADAPTER, cfg["hw"], "hw"), model, sc, fidelity=cfg["fidelity"])
    except Exception as e:  # a failing point is a result, recorded with its error
        return {"status": "error", "error": f"{type(e).__name__}: {e}", "elapsed_s": time.perf_counter() - t0}
    total = res.total_s
    out: dict[str, Any] = {"ttft_s": res.ttft_s, "tpot_s": res.tpot_s, "total_s": total,
                           "tokens_per_s": res.tokens / total if total else 0.0, "energy_j": res.energy_j,
                           "energy_per_token_j": res.energy_j / res.tokens,
                           "avg_power_w": res.energy_j / total if total else 0.0,
                           "area_mm2": cfg["hw"].get("area_mm2"), "cost_usd": cfg["hw"].get("cost_usd"),
                           "memory_footprint": dict(res.memory)}
    for name in ("latency_breakdown_s", "energy_breakdown_j", "bytes_by_level"):
        acc: dict[str, float] = {}
        for step in res.steps:  # summing step breakdowns is far cheaper than SimResult.to_dict()
            for k, v in getattr(step, name).items():
                acc[k] = acc.get(k, 0.0) + v
        out[name] = acc
    return out | {"status": "ok", "error": None, "elapsed_s": time.perf_counter() - t0}


def run_serve_point(cfg: dict[str, Any], t0: float) -> dict[str, Any]:
    """One ``llmsim serve`` run (``cfg["serve"]``: a :class:`~llmsim.serving.config.ServeRun` dump) as
    the flat metric columns of its row (:data:`~llmsim.sweep.space.SERVE_METRICS`)."""
    import math

    from llmsim.config.loader import HW_ADAPTER, make_scenario, validate
    from llmsim.config.model import ModelSpec
    from llmsim.serving.arrivals import parse_dist, poisson_stream
    from llmsim.serving.config import ServeRun
    from llmsim.serving.metrics import parse_slo, summarise
    from llmsim.serving.simulate import simulate_serving
    from llmsim.system.serve import serve_target
    from llmsim.system.spec import SystemSpec

    try:
        run = validate(ServeRun, cfg["serve"], "serve")
        system = cfg["hw"].get("kind") == "system"
        hw = validate(SystemSpec, cfg["hw"], "hw") if system else validate(HW_ADAPTER, cfg["hw"], "hw")
        model = validate(ModelSpec, cfg["model"], "model")
        sc = make_scenario(cfg["scenario"])
        if run.trace is not None:  # the file the point was planned with, or none
            from llmsim.serving.arrivals import trace_stream
            from llmsim.sweep.space import trace_sha256

            if not Path(run.trace).is_file() or trace_sha256(run.trace) != run.trace_sha256:
                raise ConfigError(f"serve.trace {run.trace}: changed or gone since the sweep was planned (its key "
                                  "holds the file's SHA-256); plan the sweep again")
            reqs = trace_stream(run.trace, model.max_positions, run.requests)
        else:
            reqs = poisson_stream(run.rate, run.requests, parse_dist(run.prompt_dist, "serve.prompt_dist", "prompt"),
                                  parse_dist(run.output_dist, "serve.output_dist", "output"), run.seed,
                                  model.max_positions)
        # as llmsim serve: a system at its layout, with the flags' checks and messages
        target, _, replicas = serve_target(hw, model, sc, run.replicas, tp=run.tp, pp=run.pp, ep=run.ep, dp=run.dp,
                                           micro=run.micro_batches, fidelity=cfg["fidelity"])
        res = simulate_serving(target, model, sc, reqs, scheduler=run.scheduler, replicas=replicas,
                               cfg=run.engine(), fidelity=cfg["fidelity"])
        m = summarise(res, parse_slo(run.slo) if run.slo else {})
    except Exception as e:  # a failing point is a result, recorded with its error
        return {"status": "error", "error": f"{type(e).__name__}: {e}", "elapsed_s": time.perf_counter() - t0}
    out: dict[str, Any] = {"throughput_rps": m["throughput_requests_per_s"], "goodput_rps": m["goodput_requests_per_s"],
                           "queueing_mean_s": m["queueing_s"]["mean"], "area_mm2": cfg["hw"].get("area_mm2"),
                           "cost_usd": cfg["hw"].get("cost_usd"), "kv_blocks": m["kv_blocks"]}
    for k in ("ttft", "tpot", "e2e"):
        out |= {f"{k}_p50_s": m[f"{k}_s"]["p50"], f"{k}_p99_s": m[f"{k}_s"]["p99"]}
    for k in ("throughput_tokens_per_s", "slo_attained", "preemptions", "batch_size_mean", "kv_use_mean",
              "busy_fraction", "energy_j", "energy_per_request_j", "energy_per_token_j",
              "energy_per_token_with_idle_j", "requests", "span_s"):
        out[k] = m[k]
    # no TPOT when every request has one output token: NaN is stored as null
    out = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in out.items()}
    return out | {"status": "ok", "error": None, "elapsed_s": time.perf_counter() - t0}


# -- backends: each yields (task, result) as points finish ----------------------------------
def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the driver alone handles it and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _local(tasks: list[Task], workers: int) -> Iterator[tuple[Task, dict]]:
    if workers == 1:
        import gc

        for i, t in enumerate(tasks):
            yield t, run_point(t)
            if i % MAX_TASKS_PER_CHILD == MAX_TASKS_PER_CHILD - 1:
                gc.collect()
        return
    import multiprocessing as mp
    import sys
    from concurrent.futures.process import BrokenProcessPool

    kw: dict[str, Any] = {}
    if sys.version_info >= (3, 11):  # recycling needs a start method other than fork
        ctx = mp.get_context("forkserver")
        # the fork server imports the simulator once; each recycled worker is forked from it ready to run
        ctx.set_forkserver_preload(PRELOAD)
        kw = {"max_tasks_per_child": MAX_TASKS_PER_CHILD, "mp_context": ctx}
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint, **kw)
    pending: dict[Any, Task] = {}
    todo = iter(tasks)
    try:
        for t in todo:
            pending[pool.submit(run_point, t)] = t
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                t = pending.pop(fut)
                for nxt in todo:
                    pending[pool.submit(run_point, nxt)] = nxt
                    break
                yield t, fut.result()
    except BrokenProcessPool:
        raise LlmsimError("a sweep worker died (killed, or out of memory); the points stored so far are kept: "
                          "run the same command again to resume") from None
    finally:
        if pending:  # interrupted: drop queued work and stop the running workers now
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                p.terminate()
        pool.shutdown(wait=True)


def _ray(tasks: list[Task], workers: int, address: str | None) -> Iterator[tuple[Task, dict]]:
    try:
        import ray
    except ImportError:
        raise LlmsimError("--backend ray needs the 'ray' package: pip install 'llmsim[ray]'") from None
    if not ray.is_initialized():
        kw: dict[str, Any] = {"address": address} if address else {"num_cpus": workers}
        # Workers must import this llmsim: pass the driver's source folder on.
        src = str(Path(__file__).resolve().parents[2])
        env = {"PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
        ray.init(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env}, **kw)
    remote = ray.remote(num_cpus=1, max_calls=MAX_TASKS_PER_CHILD)(run_point)
    pending: dict[Any, Task] = {}
    todo = iter(tasks)
    limit = 2 * max(workers, int(ray.cluster_resources().get("CPU", workers)))
    try:
        for t in todo:
            pending[remote.remote(t)] = t
            if len(pending) >= limit:
                break
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                t = pending.pop(ref)
                for nxt in todo:
                    pending[remote.remote(nxt)] = nxt
                    break
                yield t, ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


# -- the driver -------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    """What a :func:`run_sweep` call did. ``rows`` are the current spec's rows, in point order."""

    out_dir: Path
    total: int
    ran: int
    skipped: int
    seconds: float
    counts: dict[str, int]
    rows: list[dict[str, Any]] = field(default_factory=list)
    front: list[dict[str, Any]] = field(default_factory=list)
    objectives: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(r["status"] != "ok" for r in self.rows)

    @property
    def points_per_s(self) -> float:
        return self.ran / self.seconds if self.seconds > 0 else 0.0

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame, nested fields flattened with dots (``axes.hw.memory.channels``)."""
        from llmsim.api import require_pandas
        from llmsim.sweep.parquet import flatten

        return require_pandas().DataFrame([flatten(r) for r in self.rows])


def _row(spec: SweepSpec, point: Point, result: dict[str, Any], cfg_file: str) -> dict[str, Any]:
    from llmsim import __version__

    row = {"key": point.key, "axes": point.values, "config_file": cfg_file, "llmsim_version": __version__} | result
    violated = []
    if result["status"] == "ok":
        ctx = point.context() | result
        violated = [c for c in spec.result_constraints() if not evaluate(c, ctx, f"constraint '{c}'")]
    return row | {"feasible": result["status"] == "ok" and not violated, "violated": violated}


def run_sweep(spec: SweepSpec, out_dir: str | Path, backend: str = "local", workers: int | None = None,
              ray_address: str | None = None, force: bool = False,
              progress: Callable[[int, int], None] | None = None, max_points: int | None = None) -> SweepOutcome:
    """Run every point of ``spec`` that ``out_dir`` does not hold yet; return the outcome.

    ``workers``: processes (local) or concurrent tasks (Ray); default all cores. ``progress``
    is called with (points done, points to run) after each stored point. Resolving and
    validating every point happens before anything runs, so a bad spec fails fast.
    ``max_points``: refuse a spec with more points (default :data:`~llmsim.sweep.space.MAX_POINTS`).
    """
    from llmsim.sweep.space import MAX_POINTS

    if backend not in ("local", "ray"):
        raise LlmsimError(f"--backend '{backend}' (expected local or ray)")
    cores = os.cpu_count() or 1
    if workers is not None and not 1 <= workers <= WORKERS_PER_CORE * cores and backend == "local":
        raise LlmsimError(f"--workers {workers}: between 1 and {WORKERS_PER_CORE * cores} "
                          f"({WORKERS_PER_CORE} per core) on this machine")
    if max_points is not None and max_points < 1:
        raise LlmsimError(f"--max-points {max_points}: must be >= 1")
    points, counts = spec.points(max_points or MAX_POINTS)
    workers = max(1, workers or cores)
    store = ResultStore(out_dir).open(spec.dump_yaml(), force=force)
    todo = [p for p in points if p.key not in store]
    by_key = {p.key: p for p in todo}
    tasks: Iterable[Task] = [{"key": p.key, "config": p.config()} for p in todo]
    results = _local(list(tasks), min(workers, max(1, len(todo)))) if backend == "local" else \
        _ray(list(tasks), workers, ray_address)
    t0 = time.perf_counter()
    done = 0
    if progress:
        progress(0, len(todo))
    for task, result in results:
        p = by_key[task["key"]]
        cfg_file = store.save_config(p.key, task["config"])
        store.append(_row(spec, p, result, cfg_file))
        done += 1
        if progress:
            progress(done, len(todo))
    seconds = time.perf_counter() - t0
    rows = [store.rows[p.key] for p in points]
    objectives = spec.objectives or (list(SERVE_OBJECTIVES) if spec.serve is not None else
                                     default_objectives([r for r in rows if r["status"] == "ok"]))
    front = pareto_front(rows, objectives)
    write_atomic(Path(out_dir) / "pareto.json", json.dumps(
        {"objectives": objectives, "keys": [r["key"] for r in front]}, indent=1, allow_nan=False))
    return SweepOutcome(Path(out_dir), len(points), done, len(points) - len(todo), seconds, counts, rows, front,
                        objectives)
