"""The checkpoint table on the replica (`_replicator.checkpoints`), read and written as `Checkpoint`."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg.rows import class_row

from . import indexes, queries
from .models import Checkpoint

SCHEMA_DDL = "CREATE SCHEMA _replicator"

DDL = """
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

_WRITTEN = (
    "table_name", "master_table", "run_id", "mode", "policy", "status", "key_columns", "last_key",
    "rows_copied", "inserted", "updated", "deleted", "batches", "was_empty", "snapshot_at",
    "watermark", "run_watermark",
)

_SAVE = (
    f"INSERT INTO _replicator.checkpoints ({', '.join(_WRITTEN)}, started_at, updated_at) "
    f"VALUES ({', '.join(f'%({c})s' for c in _WRITTEN)}, COALESCE(%(started_at)s, now()), clock_timestamp()) "
    f"ON CONFLICT (table_name) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _WRITTEN if c != "table_name")
    + ", started_at = EXCLUDED.started_at, updated_at = clock_timestamp()"
    # the transaction's id: a baseline lists the transactions of a sync that wrote the table
    + " RETURNING txid_current()"
)


def exists(conn: psycopg.Connection) -> bool:
    return bool(conn.execute("SELECT to_regclass('_replicator.checkpoints') IS NOT NULL").fetchone()[0])


def ensure(conn: psycopg.Connection) -> None:
    """Create the schema and whichever of its tables are missing (committed on its own). Only the missing
    ones: CREATE TABLE IF NOT EXISTS still needs CREATE on the schema, which a role given only the
    tables has not got."""
    have_checkpoints, have_baselines, have_deferred = conn.execute(
        "SELECT to_regclass('_replicator.checkpoints') IS NOT NULL, to_regclass('_replicator.baselines') IS NOT NULL, "
        "to_regclass('_replicator.deferred_indexes') IS NOT NULL").fetchone()
    if not (have_checkpoints and have_baselines):
        try:
            # CREATE SCHEMA IF NOT EXISTS would still need CREATE on the database: a role given the
            # schema (CREATE SCHEMA _replicator AUTHORIZATION role) has not got that.
            if conn.execute("SELECT to_regnamespace('_replicator') IS NULL").fetchone()[0]:
                conn.execute(SCHEMA_DDL)
            if not have_checkpoints:
                conn.execute(DDL)
            if not have_baselines:
                conn.execute(queries.load("baselines_ddl"))
            conn.commit()
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):  # a concurrent run was first
            conn.rollback()
    if not have_deferred:
        try:
            conn.execute(indexes.DDL)
            conn.commit()
        # without it (a role given only the older tables), loads keep the indexes in place
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject, psycopg.errors.InsufficientPrivilege):
            conn.rollback()
    conn.commit()


def load(conn: psycopg.Connection, table_name: str) -> Checkpoint | None:
    if not exists(conn):
        return None
    with conn.cursor(row_factory=class_row(Checkpoint)) as cur:
        cur.execute("SELECT table_name, master_table, run_id::text AS run_id, mode, policy, status, key_columns, "
                    "last_key, rows_copied, inserted, updated, deleted, batches, was_empty, snapshot_at, watermark, "
                    "run_watermark, started_at, updated_at FROM _replicator.checkpoints WHERE table_name = %s",
                    (table_name,))
        return cur.fetchone()


def save(conn: psycopg.Connection, cp: Checkpoint) -> int:
    """Upsert the checkpoint; call inside the batch's transaction, before its commit. Returns the
    transaction's id."""
    return int(conn.execute(_SAVE, cp.model_dump(include=set(_WRITTEN) | {"started_at"})).fetchone()[0])


_TURN = "SELECT pg_catalog.pg_advisory_xact_lock(hashtextextended('replicator checkpoint ' || %s, 0))"


def take_turn(conn: psycopg.Connection, table_name: str) -> None:
    """Inside a batch's transaction, before its checkpoint: wait until no other connection sharing the
    table is between writing the checkpoint and committing, and hold that turn to this transaction's
    end. The wait is a lock the server sees: a cycle through it (a deferred constraint, checked at
    commit, waiting for rows another connection has not committed) is a deadlock the server detects
    and fails, where a lock held only in the process would hang the run."""
    conn.execute(_TURN, (table_name,))


def owned(checkpoints: Iterable[Checkpoint], tables: Iterable[str]) -> set[str]:
    """Of ``tables``, those a copy of ours with no policy began in the empty table, committed batches
    into, and was stopped in (`running`): a rerun with no policy makes them equal to the master
    (mirror), whatever was written into them since. A `queued` table confers nothing (nobody of ours
    wrote into it), nor does a finished one."""
    tables = set(tables)
    return {c.table_name for c in checkpoints
            if c.table_name in tables and c.status == "running" and c.policy is None and c.was_empty}


def stopped_runs(checkpoints: Iterable[Checkpoint], tables: Iterable[str]) -> set[str]:
    """The runs that left some of ``tables`` unfinished (`queued` or `running`, whatever their policy):
    stopped, since the caller holds those tables' copy locks."""
    tables = set(tables)
    return {c.run_id for c in checkpoints if c.table_name in tables and c.status in ("queued", "running")}


def kept(checkpoints: Iterable[Checkpoint], tables: Iterable[str]) -> dict[str, Checkpoint]:
    """Of ``tables``, those a stopped run (`stopped_runs`) finished with no policy into the empty table:
    a rerun with no policy resumes that run and keeps them while they still equal the master
    (engine._keep), where it would refuse a table holding rows."""
    tables = set(tables)
    stopped = stopped_runs(checkpoints, tables)
    return {c.table_name: c for c in checkpoints if c.table_name in tables and c.policy is None
            and c.status == "done" and c.was_empty and c.run_id in stopped}


def adopt(conn: psycopg.Connection, tables: list[str], runs: set[str], run_id: str) -> None:
    """The checkpoints the stopped ``runs`` left on ``tables`` now name the run resuming them, so a rerun
    of this one, stopped in turn (even before it commits in a table it resumes), keeps what they
    finished too. The caller commits."""
    if runs:
        conn.execute("UPDATE _replicator.checkpoints SET run_id = %s WHERE table_name = ANY(%s) "
                     "AND run_id = ANY(%s::uuid[])", (run_id, tables, sorted(runs)))


def queue(conn: psycopg.Connection, cps: list[Checkpoint]) -> None:
    """Write the checkpoint rows of the tables a run is about to copy, `queued` (one round trip): a run
    killed between two tables then still shows what it had not reached. Call before the first write;
    the caller commits."""
    if cps:
        with conn.cursor() as cur:
            cur.executemany(_SAVE, [cp.model_dump(include=set(_WRITTEN) | {"started_at"}) for cp in cps])


def list_all(conn: psycopg.Connection) -> list[Checkpoint]:
    """Every checkpoint (empty when no copy has run against this replica)."""
    if not exists(conn):
        return []
    with conn.cursor(row_factory=class_row(Checkpoint)) as cur:
        cur.execute("SELECT table_name, master_table, run_id::text AS run_id, mode, policy, status, key_columns, "
                    "last_key, rows_copied, inserted, updated, deleted, batches, was_empty, snapshot_at, watermark, "
                    "run_watermark, started_at, updated_at FROM _replicator.checkpoints ORDER BY table_name")
        return cur.fetchall()
