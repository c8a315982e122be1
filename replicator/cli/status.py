"""`replicator status`: the copy checkpoints stored on the replica, each table's re-sync baseline, and the
last sync.

A checkpoint whose run still holds the table's copy lock is running; one whose lock is free belongs to
a run that was killed or interrupted, and is shown as such with the command that resumes it (the same
copy, or the same sync when a sync was running it)."""

from __future__ import annotations

import json
import shlex

import click

from . import main
from .options import RunContext, common_options


def _sync_run(conn) -> dict | None:
    """The last sync's record, with whether a sync holds the sync lock now."""
    from ..sync import LOCK_KEY

    with conn.transaction():
        if not conn.execute("SELECT to_regclass('_replicator.sync_run') IS NOT NULL").fetchone()[0]:
            return None
        row = conn.execute("SELECT command, status, started_at, finished_at FROM _replicator.sync_run").fetchone()
        live = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) "
            f"AND l.classid::bigint = ({LOCK_KEY} >> 32) & 4294967295 AND l.objid::bigint = {LOCK_KEY} & 4294967295 "
            "AND l.pid <> pg_backend_pid())").fetchone()[0]
    if row is None:
        return None
    command, status, started, finished = row
    state = "running" if status == "running" and live else ("interrupted" if status == "running" else status)
    return {"command": command, "status": state, "started_at": started, "finished_at": finished}


def _copy_resume(rows: list[dict], config_path: str | None) -> list[str]:
    """`replicator copy` commands that resume the interrupted tables (one per policy and mode)."""
    groups: dict[tuple, list[str]] = {}
    for r in rows:
        groups.setdefault((r["policy"], r["mode"] == "incremental"), []).append(r["master_table"])
    out = []
    for (policy, incremental), tables in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        parts = ["replicator", "copy"]
        if config_path:
            parts += ["--config", config_path]
        for t in tables:
            parts += ["--table", t]
        if policy:
            parts += ["--policy", policy]
        if incremental:
            parts.append("--incremental")
        out.append(shlex.join(parts))
    return out


def _baseline_cell(b: dict | None) -> str:
    if b is None:
        return "-"
    return f"{str(b['recorded_at'])[:19]} ({b['policy']})"


@main.command("status")
@common_options
@click.option("--json", "as_json", is_flag=True,
              help="print it all as one JSON object: replica_of, sync, checkpoints, indexes_to_build, "
                   "foreign_keys_dropped, resume.")
def status_cmd(run: RunContext, as_json: bool) -> None:
    """Show copy checkpoints (per table: state, run, last key, rows, policy, re-sync baseline) and the last
    sync; an interrupted run is shown with the command that resumes it."""
    from .. import identity
    from ..config import require_url
    from ..connect import replica_session
    from ..copy import baseline, checkpoint, indexes

    from ..copy.lock import holder

    with replica_session(require_url(run.config, "replica")) as conn:
        rows = [c.model_dump(mode="json") for c in checkpoint.list_all(conn)]
        for r in rows:
            if r["status"] in ("running", "queued"):  # queued: a run's table it had not begun
                who = holder(conn, r["table_name"])
                r["state"] = f"{r['status']} (replica session pid {who[0]})" if who else "interrupted"
            else:
                r["state"] = r["status"]
        # whether a baseline still holds is only known against the master: status shows when and how
        baselines = baseline.load_all(conn)
        for r in rows:
            b = baselines.get(r["table_name"])
            r["baseline"] = b and {"policy": b.policy, "recorded_at": b.recorded_at.isoformat(), "run_id": b.run_id}
        conn.commit()
        marker = identity.replica_marker(conn)
        sync = _sync_run(conn)
        unbuilt = {t: (names, holder(conn, t)) for t, names in indexes.pending(conn).items()}
        dropped = {}
        for t, name in _dropped_keys(conn):
            dropped.setdefault(t, ([], holder(conn, t)))[0].append(name)
        conn.commit()
    config_path = click.get_current_context().params.get("config_path")
    interrupted = [r for r in rows if r["state"] == "interrupted"]
    sync_interrupted = sync is not None and sync["status"] == "interrupted"
    resume = [sync["command"]] if sync_interrupted else _copy_resume(interrupted, config_path)
    for r in interrupted:
        r["resume"] = resume[0] if sync_interrupted else next(c for c in resume if shlex.quote(r["master_table"]) in c)
    if as_json:
        # a table's dropped indexes or keys may have no checkpoint row (a run stopped before the table's
        # first commit): listed on their own, with the replica session holding them if a run is live
        held = [{"table": t, names_key: names, "held_by_pid": who[0] if who else None}
                for names_key, found in (("indexes", unbuilt), ("constraints", dropped))
                for t, (names, who) in found.items()]
        click.echo(json.dumps({
            "replica_of": marker.describe() if marker else None, "sync": sync, "checkpoints": rows,
            "indexes_to_build": [h for h in held if "indexes" in h],
            "foreign_keys_dropped": [h for h in held if "constraints" in h],
            "resume": resume}, indent=2, default=str))
        return
    click.echo(f"replica of {marker.describe()}" if marker else "not marked as a replica yet (copy and migrate mark it)")
    if sync is not None:
        when = sync["finished_at"] or sync["started_at"]
        click.echo(f"last sync: {sync['status']} ({str(when)[:19]}): {sync['command']}")
    if not rows:
        click.echo("no copy checkpoints on the replica")
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="copy checkpoints (_replicator.checkpoints)", title_justify="left")
        for h in ("table", "state", "mode", "policy", "rows", "+ins ~upd -del", "batches", "last key", "updated",
                  "baseline"):
            t.add_column(h, overflow="fold", justify="right" if h in ("rows", "batches") else "left")
        for r in rows:
            key = ", ".join(r["last_key"] or []) or "-"
            t.add_row(r["table_name"], r["state"], r["mode"], r["policy"] or "-", f"{r['rows_copied']:,}",
                      f"+{r['inserted']} ~{r['updated']} -{r['deleted']}", str(r["batches"]),
                      key if len(key) <= 24 else key[:23] + "…", str(r["updated_at"] or "-")[:19],
                      _baseline_cell(r["baseline"]))
        Console().print(t)
        if any(r["baseline"] for r in rows):
            click.echo("baseline: the next copy or sync of that table under a policy compares only the rows changed "
                       "on either side since then (unless its storage, columns or master changed, or with --restart)")
    for table, (names, who) in unbuilt.items():
        if who:
            click.echo(f"indexes dropped on {table} for the load in progress (replica session pid {who[0]}), built "
                       f"at its end: {', '.join(names)}")
        else:
            click.echo(f"indexes waiting to be built on {table} (an interrupted copy into the empty table dropped "
                       f"them; its next copy builds them first): {', '.join(names)}")
    for table, (names, who) in dropped.items():
        keys = ", ".join(names)
        if who:
            click.echo(f"foreign key(s) of {table} dropped for the copy in progress (replica session pid {who[0]}), "
                       f"re-added at its end: {keys}")
        else:
            click.echo(f"foreign key(s) of {table} left dropped by a stopped copy (a cycle or a self-reference): {keys}; "
                       "the next copy re-adds and validates them (replicator migrate re-adds them too)")
    if interrupted or sync_interrupted:
        what = "a sync" if sync_interrupted else f"{len(interrupted)} table copy(ies)"
        click.echo(f"interrupted: {what} stopped before the end (killed, or Ctrl-C); resume with:")
        for c in resume:
            click.echo(f"  {c}")


def _dropped_keys(conn) -> list[tuple[str, str]]:
    """(table label, constraint) of the foreign keys a copy dropped for a cycle and has not re-added yet."""
    if not conn.execute("SELECT to_regclass('_replicator.dropped_constraints') IS NOT NULL").fetchone()[0]:
        return []
    from ..copy import queries

    return conn.execute(queries.load("dropped_keys")).fetchall()
