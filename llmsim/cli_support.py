"""Small helpers of the ``llmsim`` command line: early output-path checks, plain progress lines,
the first-run compile notice, and positive-integer options that show their default."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from llmsim.io import check_writable


def check_out(path: str | None, flag: str) -> str | None:
    """Check an output path before any work (a folder, a missing or read-only folder fail now)."""
    if path is not None:
        check_writable(path, flag)
    return path


def progress_lines(label: str, every_s: float = 5.0) -> Callable[[int, int], None]:
    """Plain progress lines on stderr for when it is not a terminal (logs, CI): at most one
    every ``every_s`` seconds, plus the last."""
    last = [time.monotonic()]

    def tick(i: int, n: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or (n and i == n and now - last[0] > 0.5):
            last[0] = now
            click.echo(f"{label}: {i}/{n}", err=True)

    return tick


def compile_notice() -> None:
    from llmsim.kernels import jit_cache_ready

    if not jit_cache_ready():
        click.echo("compiling kernels (first run only, ~10 s)...", err=True)


def positive_option(name: str, help_: str, default: int | None = None) -> Any:
    """A positive integer option; its default (the scenario's when None) shown in --help."""
    from llmsim.config.scenario import Scenario

    shown = default if default is not None else Scenario.model_fields[name.lstrip("-")].default
    return click.option(name, type=click.IntRange(min=1), default=default, help=f"{help_}  [default: {shown}]")
