"""What every check shares: both connections (one snapshot each), both schemas, and the table pairs.

Both sides run one `REPEATABLE READ READ ONLY` transaction for the whole run, so every check sees
the same state. Each check runs inside a savepoint, so an error in one check (say, a type mismatch in
an anti-join) is reported against that check and the others still run. Work on the two sides can run
concurrently (`both`), one thread per connection.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any, Callable, Iterator, TypeVar

import psycopg
from psycopg import sql

from ..collation import default_ordering, orderings_differ
from ..config import Config, Policy
from ..introspect import Column, Schema, Table
# The settings that change how values are rendered as text: the replica's session is aligned to the
# master's so both sides produce the same text (timestamptz, floats, bytea...).
from ..connect import LIFT_TIMEOUTS_LOCALLY, batch
from ..rowhash import RENDER_SETTINGS, follow_sql, render_settings_query

T = TypeVar("T")


@cache
def load_sql(name: str) -> str:
    """Text of `sql/<name>.sql` next to this module."""
    return resources.files(__package__).joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def ident(qualified_schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(qualified_schema, name)


# keep-replica never changes or deletes replica rows; master-wins never deletes them. Under mirror,
# replace or no policy the replica must match exactly.
TOLERATED_BY_POLICY: dict[Policy | None, frozenset[str]] = {
    Policy.KEEP_REPLICA: frozenset({"extra on replica", "changed"}),
    Policy.MASTER_WINS: frozenset({"extra on replica"}),
}


@dataclass
class TablePair:
    """A table present on both sides, with the mapping of its columns."""

    key: str  # master key, e.g. public.leads
    label: str  # schema.name, unquoted, for reports and config lookups
    master: Table
    replica: Table
    columns: dict[str, str]  # master column -> replica column, shared columns in master order
    masked: list[str] = field(default_factory=list)  # master columns excluded from content comparison
    only_master: list[str] = field(default_factory=list)
    only_replica: list[str] = field(default_factory=list)
    policy: Policy | None = None  # the copy policy configured for this table
    #: Master rows this table is a copy of (`[tables.X] where`, or a subset's key list): the master side
    #: is read through it, the replica side whole. Raw SQL text: verify's statements bind no parameters.
    where: str | None = None
    subset: bool = False  # the filter is a subset's key list (shown as such, not spelled out)

    @property
    def master_filter(self) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(self.where)) if self.where else sql.SQL("true")

    def filter_evidence(self) -> dict[str, str]:
        if not self.where:
            return {}
        return {"master_filter": "subset (the rows a --subset chose)" if self.subset else self.where}

    def tolerated(self) -> frozenset[str]:
        """Content differences the table's copy policy keeps on purpose, so they warn rather than fail."""
        return TOLERATED_BY_POLICY.get(self.policy, frozenset())

    @property
    def master_ident(self) -> sql.Identifier:
        return ident(self.master.schema_name, self.master.name)

    @property
    def replica_ident(self) -> sql.Identifier:
        return ident(self.replica.schema_name, self.replica.name)

    def key_columns(self) -> list[str] | None:
        """The master's key (primary key, else a unique not-null index), if every column is shared."""
        key = self.master.key_columns()
        if not key or any(c not in self.columns for c in key):
            return None
        return key

    def master_column(self, name: str) -> Column:
        return self.master.columns[name]

    def replica_column(self, master_name: str) -> Column:
        return self.replica.columns[self.columns[master_name]]


def pair_tables(cfg: Config, master: Schema, replica: Schema, subset_tables: frozenset[str] = frozenset(),
                policy: Policy | None = None, *, partitioned: bool = False) -> dict[str, TablePair]:
    """Tables on both sides (same schema and name), keyed by the master's table key. A partition
    is read through the `where` of its partitioned table; ``subset_tables`` (labels) have a subset's
    key list as their `where`. Each pair carries the policy copy applies to it: the table's own, else
    ``policy`` (a run's --policy), else `[copy] policy` (a table set to replace keeps it). Partitioned
    tables hold no rows of their own and are left out, unless ``partitioned`` (foreign keys reference
    them)."""
    from ..order import partition_root

    pairs: dict[str, TablePair] = {}
    for key, mt in master.tables.items():
        if mt.kind == "partitioned table" and not partitioned:
            continue  # its partitions are checked
        rt = replica.find_table(mt.schema_name, mt.name)
        if rt is None:
            continue
        label = f"{mt.schema_name}.{mt.name}"
        tc = cfg.table(label)
        columns: dict[str, str] = {}
        only_master = []
        for c in mt.columns:
            rc = tc.replica_column(c, rt.columns)
            if rc in rt.columns:
                columns[c] = rc
            else:
                only_master.append(c)
        used = set(columns.values())
        only_replica = [c for c in rt.columns if c not in used]
        masked = [c for c in tc.mask if c in mt.columns]
        root = master.tables.get(partition_root(master, key), mt)
        root_label = f"{root.schema_name}.{root.name}"
        where = tc.where or cfg.table(root_label).where
        root_tc = cfg.table(root_label)
        own = tc.policy or root_tc.policy
        effective = Policy.REPLACE if own == Policy.REPLACE else (policy or own or cfg.copy_.policy)
        pairs[key] = TablePair(key, label, mt, rt, columns, masked, only_master, only_replica, effective, where,
                               root_label in subset_tables)
    return pairs


class Sides:
    """The two connections of a run, with a helper to work on both at once."""

    def __init__(self, master: psycopg.Connection, replica: psycopg.Connection, *, parallel: bool = True):
        self.master = master
        self.replica = replica
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") if parallel else None

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True)

    @cached_property
    def text_orders_differ(self) -> bool:
        """The two databases sort text differently by default (`replicator.collation`)."""
        m, r = self.both(default_ordering, default_ordering)
        return orderings_differ(m, r)

    def both(self, on_master: Callable[[psycopg.Connection], T], on_replica: Callable[[psycopg.Connection], T]) -> tuple[T, T]:
        """Run one function per side, concurrently when allowed; both finish before any error is raised."""
        if self._pool is None:
            return on_master(self.master), on_replica(self.replica)
        fm = self._pool.submit(on_master, self.master)
        fr = self._pool.submit(on_replica, self.replica)
        errors = []
        results = []
        for f in (fm, fr):
            try:
                results.append(f.result())
            except BaseException as e:  # noqa: BLE001 - re-raised below once both sides are done
                errors.append(e)
                results.append(None)
        if errors:
            raise errors[0]
        return results[0], results[1]

    @contextmanager
    def savepoint(self, *, master: bool = True) -> Iterator[None]:
        """A savepoint on both sides (on the replica alone for a check that reads only the replica: a
        distant master's round trips are spared): an error inside rolls back to it, the snapshot is kept."""
        with ExitStack() as stack:
            if master:
                stack.enter_context(self.master.transaction())
            stack.enter_context(self.replica.transaction())
            yield


def fetchall(conn: psycopg.Connection, query: Any, params: Any = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def fetchone(conn: psycopg.Connection, query: Any, params: Any = None) -> tuple | None:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone()


def align_render_settings(sides: Sides) -> dict[str, Any]:
    """Make the replica session render values like the master's; returns both sides' settings, and
    the master transaction's `transaction_read_only` (read with them: one round trip). Both transactions
    lift the timeouts their startup options could not (`LIFT_TIMEOUTS_LOCALLY`)."""
    _, (master_row,), ((read_only,),) = batch(sides.master, [
        (LIFT_TIMEOUTS_LOCALLY, None), (render_settings_query(), None),
        ("SELECT pg_catalog.current_setting('transaction_read_only')", None)])
    _, (replica_row,) = batch(sides.replica, [(LIFT_TIMEOUTS_LOCALLY, None), (render_settings_query(), None)])
    master_vals = dict(zip(RENDER_SETTINGS, master_row))
    sides.replica.execute(follow_sql(master_vals, local=True))
    return {"master": master_vals, "replica_before": dict(zip(RENDER_SETTINGS, replica_row)), "read_only": read_only}
