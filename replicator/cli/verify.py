"""`replicator verify`: checks with evidence; exit 0 (all pass, warnings allowed), 1 (a check failed),
2 (usage or connection error)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from . import main
from .options import RunContext, common_options, selection_options, subset_options


@main.command("verify")
@common_options
@selection_options
@subset_options
@click.option("--deep", is_flag=True, help="compare content: key-range checksums, bisected to the differing rows.")
@click.option("--examples", type=click.IntRange(0, 1000), default=5, show_default=True,
              help="example orphan keys listed per foreign key.")
@click.option("--max-keys", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="--deep: stop after naming this many differing keys per table.")
@click.option("--require-readonly-role", is_flag=True,
              help="fail (not warn) when the master credentials could write.")
@click.option("--snapshot", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="stored master schema to compare with [default: <out-dir>/schemas/master-schema.json].")
@click.option("--json", "as_json", is_flag=True, help="also print the JSON report on stdout.")
@click.option("--serial", is_flag=True, help="query master and replica one after the other, not concurrently.")
@click.option("--show-values", is_flag=True,
              help="--deep: put the master's and replica's values of differing rows in the reports (never masked columns).")
def verify_command(run: RunContext, tables, exclude, subset, with_referencing, deep, examples, max_keys,
                   require_readonly_role, snapshot, as_json, serial, show_values) -> None:
    """Is the replica still a faithful copy, and was the master only ever read?"""
    from rich.console import Console

    from ..report import utc_stamp, write_report
    from ..verify import DEFAULT_SNAPSHOT, render_markdown, render_terminal, run_verify

    from ..subset import Subset

    run.ensure_out_dir()
    err = Console(stderr=True)
    report = run_verify(
        run.config, tables=list(tables), exclude=list(exclude),
        subset=Subset.from_options(run.config, subset, with_referencing),
        deep=deep, examples=examples, require_readonly_role=require_readonly_role,
        snapshot=snapshot or run.schemas_dir / DEFAULT_SNAPSHOT.name, max_keys=max_keys, parallel=not serial,
        progress=lambda msg: err.log(msg) if err.is_terminal else None,
    )
    if not show_values:
        report = report.without_values()  # reports are published (CI job summary): keys and columns only
    md, js = write_report(run.reports_dir, f"verify-{utc_stamp(report.started_at)}", render_markdown(report), report)
    render_terminal(report, Console(stderr=as_json))
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    click.echo(f"report: {md} and {js.name}", err=True)
    sys.exit(0 if report.ok else 1)
