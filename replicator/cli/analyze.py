"""`replicator analyze`: compare the replica's schema with the master's and write the plan and reports."""

from __future__ import annotations

import json
import sys

import click

from . import main
from .options import RunContext, common_options, schema_options, selection_options


@main.command()
@common_options
@schema_options
@selection_options
@click.option("--exact-counts", is_flag=True, help="count(*) every table instead of using planner estimates for big ones.")
@click.option("--allow-destructive", is_flag=True, help="write destructive statements uncommented in the plan.")
@click.option("--no-key-overlap", is_flag=True, help="skip reading key values to measure key overlap.")
@click.option("--json", "as_json", is_flag=True, help="print a machine-readable summary on stdout.")
@click.option("--exit-code", is_flag=True, help="exit 2 when differences exist, 0 when none.")
def analyze(run: RunContext, schemas, all_schemas, with_privileges, tables, exclude, exact_counts, allow_destructive,
            no_key_overlap, as_json, exit_code) -> None:
    """Diff master vs replica; write the migration plan, the master snapshot and the reports."""
    from ..analyze import AnalyzeOptions, run_analyze

    run.ensure_out_dir()
    opts = AnalyzeOptions(schemas=list(schemas) or None, all_schemas=all_schemas, with_privileges=with_privileges,
                          tables=list(tables), exclude=list(exclude),
                          exact_counts=exact_counts, allow_destructive=allow_destructive, key_overlap=not no_key_overlap)
    res = run_analyze(run.config, run.out_dir, opts)
    summary = res.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        for n in res.notes:
            click.echo(f"note: {n}")
        c = res.plan.counts()
        if res.changes:
            click.echo(f"{len(res.changes)} differences between master and replica")
            for kind, n in summary["by_kind"].items():
                click.echo(f"  {kind}: {n}")
        else:
            click.echo("no differences: the replica's schema matches the master's")
        click.echo(f"plan: {len(res.plan.steps)} statements ({c['safe']} safe, {c['destructive']} destructive, "
                   f"{c['data-dependent']} data-dependent)")
        for s in res.plan.failed_prechecks():
            assert s.precheck is not None
            click.echo(f"  pre-check fails: [{s.n}] {s.object}: {s.precheck.description}: {s.precheck.result} rows")
        for u in res.plan.unsupported:
            click.echo(f"  not handled: {u}")
        for n in res.plan.notes:
            click.echo(f"  note: {n}")
        if res.outside:
            missing = [f"{o.kind} {o.object}" for o in res.outside if not o.on_replica]
            click.echo(f"used outside the compared schemas: {len(res.outside)} object(s) "
                       f"({', '.join(sorted({o.kind for o in res.outside}))})"
                       + (f"; missing on the replica: {', '.join(missing)}" if missing else "; all present on the replica"))
        for label, path in res.files.items():
            click.echo(f"wrote {path}")
        click.echo(f"master statements: {summary['master_statements']} (refused: {summary['master_statements_refused']})")
    if exit_code and res.changes:
        sys.exit(2)
