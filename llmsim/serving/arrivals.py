"""Request streams: when requests arrive and how long their prompts and outputs are.

A stream is a tuple of :class:`Request` built once, before the simulation, from a seeded
``numpy.random.Generator`` (PCG64): the same seed gives the same stream, to the byte. Arrivals
are Poisson at a rate (exponential gaps) or read from a trace (CSV or JSONL with
``arrival_s``, ``prompt_tokens``, ``output_tokens``). Lengths are ``fixed:N``, ``uniform:A,B``
(inclusive), ``lognormal:MEDIAN,SIGMA`` (clipped to ``[1, max]``) or ``trace:FILE`` (sampled
with replacement from a trace's column).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmsim.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    arrival_s: float
    prompt: int
    output: int


TRACE_FIELDS = ("arrival_s", "prompt_tokens", "output_tokens")


def read_trace(path: str | Path, option: str = "--trace") -> list[tuple[float, int, int]]:
    """Rows ``(arrival_s, prompt_tokens, output_tokens)`` of a CSV (header row) or JSONL trace."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{option} {path}: no such file")
    rows: list[dict] = []
    try:
        if p.suffix == ".jsonl":
            for n, line in enumerate(p.read_text().splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise ConfigError(f"{option} {path}: line {n} is not JSON") from None
        elif p.suffix == ".csv":
            rows = list(csv.DictReader(p.read_text().splitlines()))
        else:
            raise ConfigError(f"{option} {path}: expected a .csv or .jsonl file")
    except UnicodeDecodeError:
        raise ConfigError(f"{option} {path}: not a text file") from None
    out = []
    for i, r in enumerate(rows, 1):
        missing = [k for k in TRACE_FIELDS if k not in r]
        if missing:
            raise ConfigError(f"{option} {path}: row {i} lacks {', '.join(missing)} (need {', '.join(TRACE_FIELDS)})")
        try:
            t, pr, ou = float(r["arrival_s"]), int(r["prompt_tokens"]), int(r["output_tokens"])
        except (TypeError, ValueError):
            raise ConfigError(f"{option} {path}: row {i}: arrival_s must be a number, token counts integers") \
                from None
        if not (t >= 0 and np.isfinite(t)) or pr < 1 or ou < 1:
            raise ConfigError(f"{option} {path}: row {i}: need arrival_s >= 0 and token counts >= 1")
        out.append((t, pr, ou))
    if not out:
        raise ConfigError(f"{option} {path}: the trace holds no requests")
    if any(b[0] < a[0] for a, b in zip(out, out[1:], strict=False)):
        raise ConfigError(f"{option} {path}: arrival_s must not decrease from row to row")
    return out


@dataclass(frozen=True)
class LengthDist:
    """A token-length distribution (see the module docstring for the forms)."""

    kind: str
    a: float = 0.0
    b: float = 0.0
    values: tuple[int, ...] = ()

    def sample(self, rng: np.random.Generator, n: int, cap: int) -> np.ndarray:
        if self.kind == "fixed":
            x = np.full(n, int(self.a))
        elif self.kind == "uniform":
            x = rng.integers(int(self.a), int(self.b) + 1, size=n)
        elif self.kind == "lognormal":
            x = np.rint(rng.lognormal(np.log(self.a), self.b, size=n)).astype(np.int64)
        else:  # trace
            x = np.asarray(self.values)[rng.integers(0, len(self.values), size=n)]
        return np.clip(x, 1, cap).astype(np.int64)


def parse_dist(text: str, option: str, column: str) -> LengthDist:
    """``fixed:512``, ``uniform:100,900``, ``lognormal:300,0.8`` or ``trace:FILE`` (its ``column``)."""
    kind, _, arg = text.partition(":")
    try:
        if kind == "fixed":
            d = LengthDist("fixed", int(arg))
            ok = d.a >= 1
        elif kind == "uniform":
            lo, hi = (int(v) for v in arg.split(","))
            d, ok = LengthDist("uniform", lo, hi), 1 <= lo <= hi
        elif kind == "lognormal":
            med, sigma = (float(v) for v in arg.split(","))
            d, ok = LengthDist("lognormal", med, sigma), med >= 1 and sigma >= 0
        elif kind == "trace":
            col = 1 if column == "prompt" else 2
            return LengthDist("trace", values=tuple(r[col] for r in read_trace(arg, option)))
        else:
            ok, d = False, None
    except ValueError:
        ok, d = False, None
    if not ok:
        raise ConfigError(f"{option} '{text}': expected fixed:N, uniform:MIN,MAX, lognormal:MEDIAN,SIGMA or "
                          "trace:FILE with positive token counts")
    return d


def poisson_stream(rate_per_s: float, n: int, prompt: LengthDist, output: LengthDist, seed: int,
                   max_tokens: int) -> tuple[Request, ...]:
    """``n`` requests, exponential gaps of mean ``1 / rate``; prompt + output clipped to ``max_tokens``."""
    if not (rate_per_s > 0 and np.isfinite(rate_per_s)):
        raise ConfigError(f"--rate {rate_per_s}: must be a positive number of requests per second")
    if n < 1:
        raise ConfigError(f"--requests {n}: must be at least 1")
    if seed < 0:
        raise ConfigError(f"--seed {seed}: must be a non-negative integer")
    rng = np.random.Generator(np.random.PCG64(seed))
    t = np.cumsum(rng.exponential(1.0 / rate_per_s, size=n))
    p = prompt.sample(rng, n, max_tokens - 1)
    o = np.minimum(output.sample(rng, n, max_tokens - 1), max_tokens - p)
    return tuple(Request(i, float(t[i]), int(p[i]), int(o[i])) for i in range(n))


def trace_stream(path: str | Path, max_tokens: int, n: int | None = None) -> tuple[Request, ...]:
    """The trace's requests (the first ``n``), each refused if prompt + output exceeds ``max_tokens``."""
    rows = read_trace(path)[:n]
    for i, (_, p, o) in enumerate(rows, 1):
        if p + o > max_tokens:
            raise ConfigError(f"--trace {path}: row {i}: {p} prompt + {o} output tokens exceed the model's "
                              f"{max_tokens} positions")
    return tuple(Request(i, t, p, o) for i, (t, p, o) in enumerate(rows))
