"""Indexes built once after a load into an empty table, not row by row during it.

A copy into an empty replica table (the direct path) drops the table's indexes that nothing else needs
(`sql/deferrable_indexes.sql` says which) before its first batch, and builds them again in the
transaction of its last batch, as `pg_restore` and pgcopydb do: one sorted build costs a fraction of
inserting every row into every index, above all for random keys (uuid) and GIN indexes.

Nothing is lost on a crash: the drops commit together with their definitions, kept in
`_replicator.deferred_indexes`, and any later copy of the table builds what is recorded there before it
reads or writes a row (a resumed copy compares by key, which needs them). Until then the table lacks
those indexes; `replicator status` lists them.

A load that is one transaction (`--policy replace`, a keyless table into an empty one) drops and builds
them inside it (`rebuilt_after`): nothing to record, a failure rolls the drops back with the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors, sql

from . import queries
from .plan import CopyError

DDL = """
CREATE TABLE IF NOT EXISTS _replicator.deferred_indexes (
    table_name  text NOT NULL,
    name        text NOT NULL,
    position    integer NOT NULL,
    create_sql  text NOT NULL,
    comment_sql text,
    dropped_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, name))
"""

_RECORD = ("INSERT INTO _replicator.deferred_indexes (table_name, name, position, create_sql, comment_sql) "
           "VALUES (%s, %s, %s, %s, %s)")

# Where the role may not drop the index after all, or the table is busy: load with the indexes in
# place, as before.
_CANNOT_DROP = (errors.InsufficientPrivilege, errors.ObjectInUse, errors.LockNotAvailable,
                errors.DependentObjectsStillExist)

#: How long the drop may wait for its ACCESS EXCLUSIVE lock: a session reading the table (a developer's
#: client idle in a transaction) would otherwise hold the copy, and every reader queued behind it.
DROP_LOCK_TIMEOUT = "1s"

#: The build's errors that are about the rows: a unique or exclusion constraint they break.
_ROWS_BREAK_IT = (errors.UniqueViolation, errors.ExclusionViolation)


def _recorded(conn: psycopg.Connection) -> bool:
    return bool(conn.execute("SELECT to_regclass('_replicator.deferred_indexes') IS NOT NULL").fetchone()[0])


def pending_tables(conn: psycopg.Connection) -> set[str]:
    """The replica tables whose indexes an interrupted copy left unbuilt (in the caller's transaction)."""
    if not _recorded(conn):
        return set()
    return {r[0] for r in conn.execute("SELECT DISTINCT table_name FROM _replicator.deferred_indexes")}


def pending(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Per replica table, the names of the indexes waiting to be built (for `replicator status`)."""
    if not _recorded(conn):
        return {}
    out: dict[str, list[str]] = {}
    for table, name in conn.execute(
            "SELECT table_name, name FROM _replicator.deferred_indexes ORDER BY table_name, position"):
        out.setdefault(table, []).append(name)
    return out


def defer(conn: psycopg.Connection, table_name: str, table: sql.Identifier, checkpoint: Callable[[], None]) -> int:
    """Drop the table's deferrable indexes and record their definitions, committed together in a
    transaction of their own with ``checkpoint`` (which writes the table's checkpoint, still `queued`:
    a run cut short right after is listed by `replicator status`, and its next copy builds them
    first); returns how many. 0 where
    there are none, or they may not be dropped (or not within `DROP_LOCK_TIMEOUT`), or the role could
    not create the record table, or while the copy holds foreign keys dropped
    (`_replicator.dropped_constraints`, for a cycle or a self-reference, or left by an interrupted run):
    re-adding one needs the key it references, which could then be one of those dropped here, unbuilt
    if this copy were cut short."""
    if not _recorded(conn) or (
            conn.execute("SELECT to_regclass('_replicator.dropped_constraints') IS NOT NULL").fetchone()[0]
            and conn.execute("SELECT EXISTS (SELECT FROM _replicator.dropped_constraints)").fetchone()[0]):
        conn.commit()
        return 0

    def record(position: int, row: tuple) -> None:
        name, _drop, create_sql, comment_sql = row
        conn.execute(_RECORD, (table_name, name, position, create_sql, comment_sql))

    rows = _drop_deferrable(conn, table, record, checkpoint)
    conn.commit()  # (the drops ran in a savepoint: the checks before them opened the transaction)
    return len(rows)


@contextmanager
def rebuilt_after(conn: psycopg.Connection, table_name: str, table: sql.Identifier, worth: bool) -> Iterator[list[str]]:
    """For a load that is one transaction (a keyless table, `--policy replace`): in the caller's
    transaction, drop the deferrable indexes, run the block, build them again; yields the names (filled
    once built). Nothing is recorded: a failure anywhere rolls the drops back with the load."""
    built: list[str] = []
    rows = _drop_deferrable(conn, table) if worth else []
    yield built
    for name, _drop, create_sql, comment_sql in rows:
        _build_one(conn, table_name, name, create_sql, comment_sql, kept="the load was rolled back: the table is as it was")
        built.append(name)


def _drop_deferrable(conn: psycopg.Connection, table: sql.Identifier,
                     each: Callable[[int, tuple], None] | None = None, then: Callable[[], None] | None = None) -> list:
    """In a savepoint of the caller's transaction: drop the table's deferrable indexes (``each`` called
    before each drop, ``then`` after the last), and return their rows (name, drop, create, comment
    statements); none where a drop is refused or waits past `DROP_LOCK_TIMEOUT` (the savepoint is
    rolled back, the indexes stay). The definitions are read with search_path empty, so every name in
    them is schema-qualified; the caller's settings are back afterwards."""
    try:
        with conn.transaction():
            saved = conn.execute("SELECT current_setting('search_path'), current_setting('lock_timeout')").fetchone()
            conn.execute("SELECT pg_catalog.set_config('search_path', '', true), "
                         "pg_catalog.set_config('lock_timeout', %s, true)", (DROP_LOCK_TIMEOUT,))
            rows = conn.execute(queries.load("deferrable_indexes"), {"table": table.as_string(conn)}).fetchall()
            for position, row in enumerate(rows):
                if each is not None:
                    each(position, row)
                conn.execute(row[1])
            if rows and then is not None:
                then()
            conn.execute("SELECT pg_catalog.set_config('search_path', %s, true), "
                         "pg_catalog.set_config('lock_timeout', %s, true)", saved)
    except _CANNOT_DROP:
        return []
    return rows


def built_note(names: list[str]) -> str:
    return f"indexes built after the load instead of row by row: {', '.join(names)}"

def _build_one(conn: psycopg.Connection, table_name: str, name: str, create_sql: str, comment_sql: str | None,
               kept: str) -> None:
    """Create one index (and its comment); ``kept`` says what a failure the rows cause leaves behind."""
    try:
        conn.execute(create_sql)
        if comment_sql:
            conn.execute(comment_sql)
    except _ROWS_BREAK_IT as e:
        # any other error (a timeout, a full disk, a lost connection) is raised as it is: the copy
        # says which side and whether a rerun may get past it
        why = (e.diag.message_primary or str(e)).strip().splitlines()[0]
        detail = f" ({e.diag.message_detail.strip()})" if e.diag.message_detail else ""
        raise CopyError(f"{table_name}: index {name} could not be built after the load: {why}{detail}; {kept}") from e


def build(conn: psycopg.Connection, table_name: str, table: sql.Identifier) -> list[str]:
    """Build the table's recorded indexes and forget them, in the caller's transaction (the one that ends
    the load, so its checkpoint says done only with the indexes in place). An index of that name already
    on the table (`migrate` made it, or the developer) is left as it is; any other relation of that name
    fails the build, which names it. Returns the names built."""
    rows = conn.execute("SELECT name, create_sql, comment_sql FROM _replicator.deferred_indexes "
                        "WHERE table_name = %s ORDER BY position", (table_name,)).fetchall()
    built = []
    for name, create_sql, comment_sql in rows:
        there = conn.execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c "
                             "ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass AND c.relname = %s)",
                             (table.as_string(conn), name)).fetchone()[0]
        if there:
            continue
        _build_one(conn, table_name, name, create_sql, comment_sql,
                   kept="its definition waits in _replicator.deferred_indexes and the next copy of the table builds "
                        "it; remove the replica rows that break it first, or delete that row there to give the index up")
        built.append(name)
    conn.execute("DELETE FROM _replicator.deferred_indexes WHERE table_name = %s", (table_name,))
    return built
