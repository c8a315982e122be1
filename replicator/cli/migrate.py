"""`replicator migrate`: bring the replica's schema in line with the master's."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import main
from .options import RunContext, common_options, schema_options, selection_options


@main.command()
@common_options
@schema_options
@selection_options
@click.option("--allow-destructive", is_flag=True, help="apply drops and lossy changes (the affected tables are backed up first).")
@click.option("--force", is_flag=True, help="attempt data-dependent steps whose pre-check found offending rows.")
@click.option("--dry-run", is_flag=True, help="print what would run; change nothing.")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="apply this reviewed plan file as written instead of recomputing the plan.")
@click.option("--json", "as_json", is_flag=True, help="print a machine-readable summary on stdout.")
def migrate(run: RunContext, schemas, all_schemas, with_privileges, tables, exclude, allow_destructive, force, dry_run,
            plan_file, as_json) -> None:
    """Apply the migration plan to the replica in one transaction, after a backup.

    Without --plan the plan is recomputed from live introspection of both sides."""
    from ..migrate import MigrateOptions, run_migrate

    run.ensure_out_dir()
    if plan_file and (tables or exclude):
        raise click.UsageError("--plan applies a reviewed plan file as written: --table and --exclude do not apply")
    opts = MigrateOptions(schemas=list(schemas) or None, all_schemas=all_schemas, with_privileges=with_privileges,
                          tables=list(tables), exclude=list(exclude),
                          allow_destructive=allow_destructive, force=force, dry_run=dry_run, plan_file=plan_file,
                          key_overlap=False)
    res = run_migrate(run.config, run.out_dir, opts)
    if as_json:
        click.echo(json.dumps(res.model_dump(mode="json", exclude={"plan"}), indent=2, default=str))
        return
    unhandled = [f"not handled (migrate it by hand): {u}" for u in res.plan.unsupported] if res.plan else []
    if res.nothing_to_do:
        if unhandled:
            click.echo("nothing migrate can apply, but the schemas still differ:")
            click.echo("\n".join(unhandled))
        else:
            click.echo("nothing to do: the replica's schema matches the master's")
        return
    if res.dry_run:
        click.echo(f"-- dry run: {len(res.statements)} statements would run")
        for st in res.statements:
            click.echo(st.rstrip().rstrip(";") + ";")
    elif res.plan_file:
        click.echo(f"applied plan file {res.plan_file}")
    else:
        click.echo(f"applied {len(res.applied)} statements to the replica")
    for s in res.skipped:
        click.echo(f"skipped [{s['step']}] {s['object']}: {s['reason']}")
    for s in res.forced:
        click.echo(f"forced [{s['step']}] {s['object']} past a failing pre-check ({s['rows']} rows)")
    for line in unhandled:
        click.echo(line)
    if res.backup_dir:
        click.echo(f"backup: {res.backup_dir}")
