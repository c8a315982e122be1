"""`replicator sync`: analyze → migrate (safe steps) → copy → verify, from the config, in one run.

Exit codes: 0 the replica is in line; 1 differences remain (a check failed, a table could not be
copied); 2 error."""

from __future__ import annotations

import shlex
import sys

import click

from ..constants import Policy
from . import main
from .options import RunContext, common_options, selection_options, subset_options


def _command(ctx: click.Context) -> str:
    """This sync's command line, for `replicator status` to offer as the way to resume it; URLs are
    left out (they may hold a password): they come from the environment or the config again."""
    p = ctx.params
    parts = ["replicator", "sync"]
    src = ctx.get_parameter_source
    for name, flag in (("config_path", "--config"), ("out_dir", "--out-dir")):
        if p.get(name) is not None and src(name) == click.core.ParameterSource.COMMANDLINE:
            parts += [flag, str(p[name])]
    for name, flag in (("tables", "--table"), ("exclude", "--exclude"), ("subset", "--subset")):
        for v in p.get(name) or ():
            parts += [flag, v]
    if p.get("policy"):
        parts += ["--policy", p["policy"]]
    for name, flag in (("with_referencing", "--with-referencing"), ("allow_destructive", "--allow-destructive"),
                       ("deep", "--deep"), ("require_readonly_role", "--require-readonly-role"),
                       ("replica_of_new_master", "--replica-of-new-master")):
        if p.get(name):
            parts.append(flag)
    text = shlex.join(parts)
    if p.get("master") or p.get("replica"):
        text += "  (with the same --master / --replica)"
    return text


@main.command("sync")
@common_options
@selection_options
@subset_options
@click.option("--allow-destructive", is_flag=True,
              help="also apply destructive and data-dependent schema steps (backed up first).")
@click.option("--policy", type=click.Choice([p.value for p in Policy]), default=None,
              help="conflict policy for every table (default: per table in the config, then [copy] policy).")
@click.option("--deep", is_flag=True, help="verify content too (key-range checksums), not only counts and keys.")
@click.option("--require-readonly-role", is_flag=True, help="fail (not warn) when the master credentials could write.")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON on stdout.")
def sync_cmd(run: RunContext, tables, exclude, subset, with_referencing, allow_destructive, policy, deep,
             require_readonly_role, as_json) -> None:
    """Bring the replica in line with the master: analyze, migrate (safe steps), copy, verify.

    A second sync with nothing changed writes nothing to the replica."""
    from rich.console import Console
    from rich.table import Table

    from ..sync import SUMMARY_HEADERS, SyncOptions, run_sync, summary_rows

    run.ensure_out_dir()
    err = Console(stderr=True)
    opts = SyncOptions(tables=list(tables), exclude=list(exclude), subset=list(subset), with_referencing=with_referencing,
                       allow_destructive=allow_destructive, policy=Policy(policy) if policy else None, deep=deep,
                       require_readonly_role=require_readonly_role, command=_command(click.get_current_context()))
    say = (lambda msg: err.log(msg)) if err.is_terminal and not as_json else None
    res = run_sync(run.config, run.out_dir, opts, progress=say)
    if as_json:
        click.echo(res.model_dump_json(indent=2))
    else:
        out = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
        if res.selection:
            out.print(f"note: {res.selection}", highlight=False, soft_wrap=True)
        if res.subset:
            out.print(f"subset: {res.subset}: " + ", ".join(
                f"{t} {'(by condition)' if n is None else n}" for t, n in res.subset_rows.items()), highlight=False,
                soft_wrap=True)
        if res.applied:
            out.print(f"schema: applied {len(res.applied)} statement(s) (backup: {res.backup_dir})", highlight=False)
        for s in res.skipped:
            out.print(f"schema: skipped [{s['step']}] {s['object']}: {s['reason']}", highlight=False, soft_wrap=True)
        t = Table(title="sync", title_justify="left")
        for h in SUMMARY_HEADERS:
            t.add_column(h, justify="right" if h in ("inserted", "updated", "deleted", "skipped", "seconds") else "left",
                         overflow="fold")
        for row in summary_rows(res):
            t.add_row(*[str(v) for v in row])
        out.print(t)
        for q in res.sequences:
            out.print(f"sequence {q}", highlight=False)
        for n in res.notes:
            out.print(f"note: {n}", highlight=False, soft_wrap=True)
        if res.verify is not None:
            c = res.verify.counts
            failed = sorted({f"{x.name} {x.table or ''}".strip() for x in res.verify.failures()})
            out.print(f"verify: {'green' if res.verify.ok else 'FAILED'}: {c['pass']} passed, {c['warn']} warnings, "
                      f"{c['fail']} failed" + (f" ({', '.join(failed[:8])})" if failed else ""), highlight=False)
        state = "error" if res.error else ("in line" if res.in_line else "differences remain")
        out.print(f"sync: {state} in {res.seconds:.2f} s", highlight=False)
    click.echo(f"report: {res.report}", err=True)
    if res.error:
        click.echo(f"error: {res.error}", err=True)
    sys.exit(res.exit_code)


__all__ = ["sync_cmd"]
