"""The ``llmsim study`` command (registered on the main group by :mod:`llmsim.cli`)."""

from __future__ import annotations

import click


@click.command("study")
@click.argument("name")
@click.option("--out", default=None, metavar="DIR", help="folder for results.json, results.md, report.html "
              "(default: study-NAME)")
@click.option("--quick", is_flag=True, help="the reduced grid the tests use (seconds)")
def study(name, out, quick):
    """Reproduce a seed paper's result: leanattention, encoder or pim-gpt."""
    from llmsim.studies import run_study, write

    st = run_study(name, quick=quick)
    paths = write(st, out or f"study-{name}")
    click.echo(st.markdown)
    click.echo(f"\n({st.seconds:.1f} s) wrote " + ", ".join(str(p) for p in paths))
