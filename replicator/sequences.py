"""Sequences that feed table columns, and bringing them past the data (copy) or checking it (verify).

A sequence feeds a column when the column is an identity column, is OWNED BY the sequence (serial),
or has a DEFAULT calling nextval() on it, owned or not (sql/sequence_users.sql). After rows arrive
from the master, each such sequence must hand out values past every column it feeds, or the next
insert on the replica collides with a copied row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import psycopg
from psycopg import sql
from psycopg.rows import dict_row


@cache
def _query() -> str:
    return resources.files("replicator").joinpath("sql", "sequence_users.sql").read_text(encoding="utf-8")


_INTEGER_TYPES = {"smallint", "integer", "bigint"}


@dataclass
class SequenceUse:
    """One sequence and the columns it feeds (integer columns only: the only ones it can run past)."""

    key: str
    schema: str
    name: str
    increment: int
    columns: list[tuple[str, str, str, str]] = field(default_factory=list)  # (table key, schema, table, column)
    identity: bool = False  # it backs an identity column
    partitioned: set[str] = field(default_factory=set)  # fed tables that are partitioned (read with their partitions)

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def edge_query(self, table: str | None = None) -> sql.Composable:
        """The furthest value any fed column holds (max, or min for a descending sequence); with
        ``table`` (a key), the columns of that table only. An inheritance child is a fed table of its
        own (its default is its own), so each table is read ONLY; a partitioned one stands for its
        partitions."""
        fn = sql.SQL("max" if self.increment > 0 else "min")
        parts = [sql.SQL("SELECT {}({})::bigint AS v FROM {}{}").format(
                     fn, sql.Identifier(c), sql.SQL("" if k in self.partitioned else "ONLY "), sql.Identifier(s, t))
                 for k, s, t, c in self.columns if table is None or k == table]
        return sql.SQL("SELECT {}(v) FROM ({}) edges").format(fn, sql.SQL(" UNION ALL ").join(parts))


def sequence_uses(conn: psycopg.Connection, tables: Iterable[str] | None = None) -> list[SequenceUse]:
    """Sequences feeding integer columns; with ``tables`` (quoted keys), those feeding at least one of
    them, with all the columns they feed (a shared sequence must pass every table's values)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_query())
        rows = cur.fetchall()
    by_seq: dict[str, SequenceUse] = {}
    for r in rows:
        if r["column_type"] not in _INTEGER_TYPES:
            continue
        use = by_seq.setdefault(r["sequence"], SequenceUse(r["sequence"], r["sequence_schema"], r["sequence_name"],
                                                           r["increment"]))
        use.columns.append((r["table"], r["table_schema"], r["table_name"], r["column"]))
        use.identity = use.identity or r["identity"]
        if r["partitioned"]:
            use.partitioned.add(r["table"])
    wanted = set(tables) if tables is not None else None
    return [u for u in by_seq.values() if wanted is None or any(c[0] in wanted for c in u.columns)]


@dataclass
class SequenceState:
    use: SequenceUse
    next_value: int
    edge: int | None

    @property
    def behind(self) -> bool:
        """The next value handed out would collide with (or fall inside) the data."""
        if self.edge is None:
            return False
        return self.next_value <= self.edge if self.use.increment > 0 else self.next_value >= self.edge


def sequence_state(conn: psycopg.Connection, use: SequenceUse, table: str | None = None,
                   edge: int | None = None) -> SequenceState:
    """Where the sequence stands against the data (``edge``: the furthest value, already read)."""
    last, called = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(use.ident)).fetchone()
    if edge is None:
        edge = conn.execute(use.edge_query(table)).fetchone()[0]
    return SequenceState(use, last + use.increment if called else last, edge)


#: two sessions advancing one sequence (two copy workers, a copy and a sync): the check and the setval
#: as one step, or the second could set the sequence back. Held to the commit, so no path needs to
#: unlock it.
LOCK = "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('replicator sequence ' || %s, 0))"


def advance_locked(conn: psycopg.Connection, use: SequenceUse, table: str | None = None) -> SequenceState | None:
    """`advance` under the sequence's `LOCK`, taken once the fed rows are read: no session then waits
    for the lock while holding a table another's read waits for."""
    edge = conn.execute(use.edge_query(table)).fetchone()[0]
    if edge is None:
        return None
    conn.execute(LOCK, (use.key,))
    return advance(conn, use, edge=edge)


def advance(conn: psycopg.Connection, use: SequenceUse, table: str | None = None,
            edge: int | None = None) -> SequenceState | None:
    """setval the sequence to the furthest fed value (of ``table``'s columns only, with a table key;
    or ``edge``, already read) when it is behind; returns the state it was in. Only ever forward."""
    state = sequence_state(conn, use, table, edge)
    if not state.behind:
        return None
    conn.execute("SELECT pg_catalog.setval(%s::regclass, %s, true)", (use.key, state.edge))
    return state
