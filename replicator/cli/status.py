"""`replicator status`: the copy checkpoints stored on the replica."""

from __future__ import annotations

import json

import click

from .. import identity
from ..config import require_url
from ..connect import replica_session
from ..copy import checkpoint
from . import main
from .options import RunContext, common_options


@main.command("status")
@common_options
@click.option("--json", "as_json", is_flag=True, help="print the checkpoints as JSON.")
def status_cmd(run: RunContext, as_json: bool) -> None:
    """Show copy checkpoints (per table: run, last key, rows, policy, snapshot time)."""
    with replica_session(require_url(run.config, "replica")) as conn:
        rows = [c.model_dump(mode="json") for c in checkpoint.list_all(conn)]
        marker = identity.replica_marker(conn)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    click.echo(f"replica of {marker.describe()}" if marker else "not marked as a replica yet (copy and migrate mark it)")
    if not rows:
        click.echo("no copy checkpoints on the replica")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="copy checkpoints (_replicator.checkpoints)")
    for h in ("table", "status", "mode", "policy", "rows", "+ins", "~upd", "-del", "batches", "last key",
              "snapshot", "run"):
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(r["table_name"], r["status"], r["mode"], r["policy"] or "-", str(r["rows_copied"]),
                  str(r["inserted"]), str(r["updated"]), str(r["deleted"]), str(r["batches"]),
                  ", ".join(r["last_key"] or []) or "-", str(r["snapshot_at"] or "-")[:19],
                  r["run_id"][:8])
    Console().print(t)
