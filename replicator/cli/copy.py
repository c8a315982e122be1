"""`replicator copy`: master rows into the replica in checkpointed batches."""

from __future__ import annotations

import json
import sys
import time

import click

from typing import TYPE_CHECKING

from ..constants import MAX_BATCH_ROWS, MAX_JOBS, Policy
from ..errors import ReplicatorError
from . import main
from .options import RunContext, common_options, selection_options, subset_options

if TYPE_CHECKING:
    from ..copy import CopyResult
    from ..copy.models import TableResult


class _Plain:
    """Progress as plain lines (no terminal)."""

    def __init__(self) -> None:
        self.t0: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, event: str, table: str, **info) -> None:
        now = time.monotonic()
        if event == "start":
            self.t0[table] = self.last[table] = now
            total = info.get("total")
            click.echo(f"{table}: copying" + (f" (~{total} rows)" if total else ""), err=True)
        elif event == "batch":
            if now - self.last.get(table, 0) >= 2:
                self.last[table] = now
                rate = info["done"] / max(now - self.t0[table], 1e-6)
                click.echo(f"{table}: {info['done']} rows ({rate:,.0f} rows/s)", err=True)
        elif event == "end":
            r: "TableResult" = info["result"]
            click.echo(f"{table}: {r.rows_copied} rows in {r.seconds:.1f}s "
                       f"(+{r.inserted} ~{r.updated} -{r.deleted})", err=True)


class _Rich:
    """One rich progress bar per table (rows, rows/s, ETA)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False)
        self.tasks: dict[str, int] = {}
        self.t0: dict[str, float] = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def __call__(self, event: str, table: str, **info) -> None:
        if event == "start":
            self.t0[table] = time.monotonic()
            self.tasks[table] = self.progress.add_task(table, total=info.get("total") or None, rate="0")
        elif event == "batch":
            rate = info["done"] / max(time.monotonic() - self.t0[table], 1e-6)
            self.progress.update(self.tasks[table], completed=info["done"], rate=f"{rate:,.0f}")
        elif event == "end":
            r: "TableResult" = info["result"]
            self.progress.update(self.tasks[table], total=r.rows_copied, completed=r.rows_copied)


def _summary_rows(result: "CopyResult") -> list[dict]:
    return [
        {"table": t.table, "policy": t.policy, "mode": t.mode, "rows_copied": t.rows_copied, "inserted": t.inserted,
         "updated": t.updated, "deleted": t.deleted, "unchanged": t.unchanged, "reconciled": t.reconciled,
         "skipped_rows": t.skipped_rows, "candidates": t.candidates, "fetched_by_key": t.fetched_by_key,
         "conflicts": t.conflicts,
         "batches": t.batches, "seconds": t.seconds, "status": t.status}
        for t in result.tables
    ]


@main.command("copy")
@common_options
@selection_options
@subset_options
@click.option("--all", "all_tables", is_flag=True,
              help="every table of the configured schemas (less the config's exclude), in FK order.")
@click.option("--policy", type=click.Choice([p.value for p in Policy]), default=None,
              help="what to do with rows whose key exists on the replica (default: per table in the config).")
@click.option("--batch-size", type=click.IntRange(min=1, max=MAX_BATCH_ROWS), default=None,
              help="rows per batch (default from config).")
@click.option("--restart", is_flag=True, help="ignore an interrupted copy's checkpoint and start over, and compare every row, not only those "
                   "changed since the last sync.")
@click.option("--incremental", is_flag=True, help="only rows whose cursor column moved past the stored watermark.")
@click.option("--dry-run", is_flag=True, help="report rows to insert/update/delete and conflicts; write nothing.")
@click.option("--no-checksum-skip", is_flag=True,
              help="transfer and compare every key range, even those whose count and checksum match.")
@click.option("--jobs", type=click.IntRange(min=1, max=MAX_JOBS), default=None, metavar="N",
              help="connection pairs, all reading one master snapshot: tables copied at once, and the page "
                   "ranges of a table copied into an empty replica, or the key ranges of one compared without a "
                   "baseline, shared (default: [copy] jobs, 1).")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary at the end.")
def copy_cmd(run: RunContext, tables, exclude, subset, with_referencing, all_tables, policy, batch_size, restart,
             incremental, dry_run, no_checksum_skip, jobs, as_json) -> None:
    """Copy rows from the master to the replica (checkpointed; rerun to resume)."""
    from ..config import require_url
    from ..copy import CopyConflict, copy_tables
    from ..guard import MasterGuard
    from ..report import utc_stamp, write_json

    from ..selection import Selection
    from ..subset import Subset

    plan = Subset.from_options(run.config, subset, with_referencing)
    if not tables and not all_tables and plan is None:
        raise ReplicatorError("name tables with --table NAME or glob (repeatable), or pass --all (or --subset)")
    if tables and all_tables:
        raise ReplicatorError("use either --table or --all, not both")
    selection = Selection.from_config(run.config, tables, exclude)
    names = list(tables)
    if selection.has_globs or plan is not None:
        # globs are matched against the master's tables inside the run; a subset copies the tables
        # its foreign keys reach, among the selected ones
        all_tables, names = True, []
    master, replica = require_url(run.config, "master"), require_url(run.config, "replica")
    guard = MasterGuard()
    kwargs = dict(all_tables=all_tables, config=run.config, policy=policy, batch_size=batch_size, restart=restart,
                  incremental=incremental, dry_run=dry_run, guard=guard, checksum_skip=not no_checksum_skip,
                  selection=selection, jobs=jobs)
    if plan is not None:
        # the subset decides, inside the copy's snapshot, which of the selected tables it reaches
        kwargs.update(selection=None, in_snapshot=plan.hook(run.config, selection))
    result: "CopyResult | None" = None
    error: ReplicatorError | None = None
    try:
        if sys.stderr.isatty() and not as_json:
            with _Rich() as bar:
                result = copy_tables(master, replica, names, progress=bar, **kwargs)
        else:
            result = copy_tables(master, replica, names, progress=_Plain(), **kwargs)
    except ReplicatorError as e:
        error = e
        result = getattr(e, "result", None)
        if isinstance(e, CopyConflict):
            for c in e.conflicts:
                key = ", ".join(f"{k}={v}" for k, v in c.key.items())
                cols = "; ".join(f"{d.column}: replica {d.replica!r} / master {d.master!r}" for d in c.columns)
                click.echo(f"  conflict {key}: {cols}", err=True)
    if result is not None:
        path = write_json(run.reports_dir / f"copy-{utc_stamp(result.started_at)}.json", result)
        if as_json:
            click.echo(json.dumps({"run_id": result.run_id, "ok": error is None, "error": result.error,
                                   "dry_run": result.dry_run, "seconds": result.seconds,
                                   "tables": _summary_rows(result), "report": str(path),
                                   "sequences": [s.model_dump() for s in result.sequences],
                                   "deferred_constraints": result.deferred_constraints,
                                   "replica_logic": result.replica_logic, "notes": result.notes,
                                   "orphans": [o.model_dump() for o in result.orphans]}, indent=2, default=str))
        elif error is None:
            for n in result.notes:
                click.echo(f"note: {n}")
            for t in result.tables:
                if t.mode == "kept":  # a stopped run's table, resumed around: its note says it all
                    click.echo(f"{t.table}: {t.notes[0]}")
                    continue
                verb = "would" if dry_run else ""
                fixed = f" ({t.reconciled} of them fixing rows an interrupted run had committed)" if t.reconciled else ""
                click.echo(f"{t.table}: {t.rows_copied} rows read; {verb} insert {t.inserted}, update {t.updated}, "
                           f"delete {t.deleted}{fixed}; conflicts {t.conflicts}; {t.seconds:.1f}s".replace(";  insert", "; insert"))
                for n in t.notes:
                    click.echo(f"  note: {n}")
                for c in t.conflict_details[:5]:
                    click.echo(f"  conflict {c.key}: " + ", ".join(d.column for d in c.columns))
            for s in result.sequences:
                click.echo(f"sequence {s.sequence} set to {s.value}")
            for d in result.deferred_constraints:
                click.echo(f"constraint {d}")
            if result.replica_logic:
                click.echo(f"replica logic: {result.replica_logic}")
            for o in result.orphans:
                ex = "; ".join(", ".join(f"{k}={v}" for k, v in e.items()) for e in o.examples[:3])
                click.echo(f"foreign key {o.table}.{o.constraint}: {o.rows} row(s) reference no row of {o.references} "
                           f"(e.g. {ex}): {o.hint}", err=True)
            click.echo(f"report: {path}")
    if error is not None:
        raise error
    if result is not None and result.orphans:
        # Copied, but the replica's foreign keys do not hold: like verify, a finding, not an error.
        sys.exit(1)
