"""The checkpoint table on the replica (layout in `replicator.copy`'s docstring)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

SCHEMA = "_replicator"
TABLE = "checkpoints"

DDL = """
CREATE SCHEMA IF NOT EXISTS _replicator;
CREATE TABLE IF NOT EXISTS _replicator.checkpoints (
    table_name   text PRIMARY KEY,
    master_table text NOT NULL,
    run_id       uuid NOT NULL,
    mode         text NOT NULL,
    policy       text,
    status       text NOT NULL,
    key_columns  text[] NOT NULL DEFAULT '{}',
    last_key     text[],
    rows_copied  bigint NOT NULL DEFAULT 0,
    inserted     bigint NOT NULL DEFAULT 0,
    updated      bigint NOT NULL DEFAULT 0,
    deleted      bigint NOT NULL DEFAULT 0,
    batches      integer NOT NULL DEFAULT 0,
    was_empty    boolean NOT NULL DEFAULT false,
    snapshot_at  timestamptz,
    watermark    text,
    run_watermark text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
)
"""

COLUMNS = (
    "table_name", "master_table", "run_id", "mode", "policy", "status", "key_columns", "last_key",
    "rows_copied", "inserted", "updated", "deleted", "batches", "was_empty", "snapshot_at",
    "watermark", "run_watermark", "started_at", "updated_at",
)


def ensure(conn: psycopg.Connection) -> None:
    """Create the schema and table if needed (committed on its own)."""
    exists = conn.execute("SELECT to_regclass('_replicator.checkpoints') IS NOT NULL").fetchone()[0]
    if not exists:
        try:
            conn.execute(DDL)
            conn.commit()
        except psycopg.errors.UniqueViolation:  # a concurrent run created it first
            conn.rollback()
    else:
        conn.commit()


def load(conn: psycopg.Connection, table_name: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM _replicator.checkpoints WHERE table_name = %s", (table_name,))
        return cur.fetchone()


def save(conn: psycopg.Connection, row: dict[str, Any]) -> None:
    """Upsert the checkpoint row; call inside the batch's transaction, before its commit."""
    cols = [c for c in COLUMNS if c in row and c not in ("started_at", "updated_at")]
    names = ", ".join(cols)
    ph = ", ".join(f"%({c})s" for c in cols)
    upd = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != "table_name")
    conn.execute(
        f"INSERT INTO _replicator.checkpoints ({names}, started_at, updated_at) "
        f"VALUES ({ph}, COALESCE(%(started_at)s, now()), clock_timestamp()) "
        f"ON CONFLICT (table_name) DO UPDATE SET {upd}, started_at = EXCLUDED.started_at, "
        f"updated_at = clock_timestamp()",
        {**row, "started_at": row.get("started_at")},
    )


def list_all(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every checkpoint row (empty list when no copy has run against this replica)."""
    if not conn.execute("SELECT to_regclass('_replicator.checkpoints') IS NOT NULL").fetchone()[0]:
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM _replicator.checkpoints ORDER BY table_name")
        rows = cur.fetchall()
    for r in rows:
        r["run_id"] = str(r["run_id"])
        for k in ("snapshot_at", "started_at", "updated_at"):
            if isinstance(r.get(k), datetime):
                r[k] = r[k].isoformat()
    return rows
