"""Read a database's structure from the system catalogs into a :class:`Schema`.

One query per object kind (a constant number of round-trips whatever the number of tables), all
plain SELECTs, run inside one transaction (a savepoint when the caller already has one open, so a
shared snapshot is respected). The transaction is always rolled back at the end: it only read, and
rolling back restores the caller's search_path, which is pinned to ``pg_catalog`` meanwhile so
that every name in types and definitions comes out schema-qualified.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence as Seq
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row, tuple_row

from ..connect import LIFT_TIMEOUTS_LOCALLY, batch, statements_alone
from . import queries
from .models import (
    Collation,
    Column,
    CompositeType,
    Constraint,
    Dependency,
    Domain,
    Enum,
    Extension,
    ExternalTrigger,
    Function,
    Grant,
    Index,
    Namespace,
    Policy,
    RangeType,
    Role,
    RowCount,
    Rule,
    Schema,
    Sequence,
    Table,
    Trigger,
    View,
    ViewColumn,
    present_ref,
)

DEFAULT_SCHEMAS: tuple[str, ...] = ("public",)

#: Schemas created and managed by Supabase; skipped by ``all_schemas=True``.
MANAGED_SCHEMAS: frozenset[str] = frozenset(
    {
        "auth",
        "storage",
        "realtime",
        "extensions",
        "graphql",
        "graphql_public",
        "pgsodium",
        "pgsodium_masks",
        "vault",
        "supabase_functions",
        "supabase_migrations",
        "cron",
        "net",
        "_realtime",
        "_analytics",
        "pgbouncer",
    }
)

#: PostgreSQL's own schemas (pg_temp_N / pg_toast_temp_N are matched by the ``pg_`` prefix).
SYSTEM_SCHEMAS: frozenset[str] = frozenset({"pg_catalog", "information_schema", "pg_toast"})

#: replicator's own bookkeeping schema (copy checkpoints): never part of the compared structure
#: unless named explicitly.
REPLICATOR_SCHEMA = "_replicator"

EXCLUDED_SCHEMAS: frozenset[str] = MANAGED_SCHEMAS | SYSTEM_SCHEMAS | {REPLICATOR_SCHEMA}

# At most this many count(*) subqueries per UNION ALL statement.
_COUNT_CHUNK = 500


@dataclass
class Ahead:
    """Statements of the caller's that open its transaction (a BEGIN first) and go to the server in
    the introspection's first batch, a round trip fewer to a distant master; the introspection then
    reads inside that transaction, in a savepoint. `rows` receives each statement's rows (tuples), in
    order."""

    statements: list[tuple[Any, Any]]
    rows: list[list] = field(default_factory=list)


def introspect(
    conn: psycopg.Connection,
    schemas: Iterable[str] | None = None,
    all_schemas: bool = False,
    with_privileges: bool = False,
    exact_counts: bool = False,
    count_threshold: int = 100_000,
    tables_only: bool = False,
    defer_close: list[tuple[Any, Any]] | None = None,
    defer_counts: list[Table] | None = None,
    ahead: Ahead | None = None,
) -> Schema:
    """Introspect ``conn``'s database.

    ``schemas`` defaults to ``["public"]``; ``all_schemas=True`` takes every schema except
    PostgreSQL's own, Supabase's managed ones (:data:`MANAGED_SCHEMAS`) and ``_replicator``.
    Row counts are exact (``count(*)``) when the planner estimate is below ``count_threshold``,
    when the table was never analyzed, or with ``exact_counts=True``; otherwise the estimate.
    Grants are read only with ``with_privileges=True``. ``tables_only=True`` reads only the tables
    with their columns, keys and indexes (what copying data needs), not the rest of the schema.
    Inside the caller's transaction, ``defer_close`` (a list) receives the statements ending the
    introspection's savepoint instead of sending them, when nothing else is left to read: the caller
    sends them first in its next batch, a round trip fewer to a distant master. ``defer_counts`` (a list)
    receives the tables that would be counted instead of counting them (they get no row count): a caller
    that needs only some of them counts those (:func:`count_statements`), and never scans the others.
    ``ahead`` (:class:`Ahead`): the caller's statements opening its transaction, sent first.

    Besides the compared schemas' objects, the result holds their dependencies (``pg_depend``),
    the cluster's roles, the extensions the server could install, and what the compared schemas use
    outside themselves (:class:`External`: ``auth.users``, ``auth.uid()`` in a Supabase project).
    """
    if isinstance(schemas, str):
        raise TypeError("schemas must be a list of names, not a string")
    # Introspection reads in a transaction (or a savepoint) of its own that it rolls back: it only
    # read, and rolling back restores the caller's settings it pinned. Its BEGIN/SAVEPOINT, the pins,
    # the server facts and every catalog query of a round go to the server together (`batch`), so a
    # distant master costs a few round trips, not one per query.
    # An idle connection outside autocommit is switched to it meanwhile (nothing is sent): the bracket
    # is then a BEGIN and a ROLLBACK that travel with the first and last batches, where psycopg would
    # wait on its own BEGIN and ROLLBACK.
    with statements_alone(conn):
        bracket = _Bracket(conn, defer_close, opened=ahead is not None)
        lead = [(q, p, tuple_row) for q, p in ahead.statements] if ahead else []
        try:
            # (the catalog of a large schema can take longer than a role's statement_timeout: lifted for
            # the transaction where the startup options could not, as in a run's snapshot)
            head = lead + bracket.opening() + [(LIFT_TIMEOUTS_LOCALLY, None), (queries.load("settings"), None),
                                               (queries.load("server"), None)]
            if all_schemas:
                *first, server_rows, schema_rows = batch(conn, head + [(queries.load("all_schemas"),
                                                                       {"excluded": sorted(EXCLUDED_SCHEMAS)})],
                                                         row_factory=dict_row)
                names = [r["name"] for r in schema_rows]
                head = []
            else:
                names = list(dict.fromkeys(schemas if schemas is not None else DEFAULT_SCHEMAS))
            kinds = (TABLE_QUERIES if tables_only
                     else OBJECT_QUERIES + SCHEMA_QUERIES + (("grants",) if with_privileges else ()))
            params = {"schemas": names}
            results = batch(conn, head + [(queries.load(n), params) for n in kinds], row_factory=dict_row)
            if head:
                server_rows = results[len(head) - 1]
                first = results[:len(head)]
            if ahead:
                ahead.rows = first[:len(lead)]
            fetched = dict(zip(kinds, results[len(head):]))

            def rows(name: str) -> list[dict[str, Any]]:
                return fetched.get(name, [])  # kinds not read (tables_only) are empty
            server = server_rows[0]
            result = Schema(
                server_version=server["server_version"],
                database=server["database"],
                schemas=names,
                with_privileges=with_privileges,
                search_path=server["search_path"],
                settings_pinned=True,
            )
            reltuples, countable = _read_objects(rows, result)
            for r in rows("namespaces"):
                result.namespaces[r["key"]] = Namespace(**r)
            if not tables_only:
                for r in rows("extensions"):
                    result.extensions[r["name"]] = Extension(**r)
                for r in rows("available_extensions"):
                    result.available_extensions[r["name"]] = r["versions"]
                for r in rows("roles"):
                    result.roles[r["name"]] = Role(**r)
                result.dependencies = [Dependency(**r) for r in rows("depends")]
                result.external.present = [present_ref(r["kind"], r["key"], r["name"]) for r in rows("outside")]
                _read_external(conn, result)

            if with_privileges:
                _attach_grants(result, rows("grants"))

            # the exact counts travel with the statements closing the bracket: one round trip
            result.row_counts = _row_counts(
                bracket.close,
                result,
                reltuples,
                countable,
                exact_counts=exact_counts,
                threshold=count_threshold,
                deferred=defer_counts,
                own_search_path=server.get("own_search_path") or "",
            )
        except BaseException:
            bracket.abandon()
            raise
        return result


class _Bracket:
    """Introspection's own transaction, or a savepoint inside the caller's, as plain statements:
    psycopg's `transaction()` waits for the server at each boundary, plain statements pipeline."""

    NAME = "_replicator_introspect"

    def __init__(self, conn: psycopg.Connection, deferred: list[tuple[Any, Any]] | None = None, opened: bool = False):
        """`opened`: the caller's transaction is opened by statements sent just before the bracket's."""
        self.conn, self.deferred = conn, deferred
        status = conn.info.transaction_status
        if opened or status == TransactionStatus.INTRANS:
            self.open, self.end = f"SAVEPOINT {self.NAME}", [f"ROLLBACK TO SAVEPOINT {self.NAME}", f"RELEASE SAVEPOINT {self.NAME}"]
        elif conn.autocommit:
            self.open, self.end = "BEGIN", ["ROLLBACK"]
        else:  # psycopg begins a transaction with the first statement; conn.rollback() ends it
            self.open, self.end = None, None

    def opening(self) -> list[tuple[str, None]]:
        return [(self.open, None)] if self.open else []

    def close(self, statements: list[tuple[Any, Any]] = ()) -> list[list]:  # type: ignore[assignment]
        """Run ``statements`` (reads) and end the bracket, together; returns their rows."""
        if self.end is None:
            found = batch(self.conn, list(statements), row_factory=dict_row) if statements else []
            self.conn.rollback()
            return found
        ending = [(s, None) for s in self.end]
        if not statements and self.deferred is not None and self.open.startswith("SAVEPOINT"):
            self.deferred.extend(ending)  # the caller's next batch carries them
            return []
        found = batch(self.conn, list(statements) + ending, row_factory=dict_row)
        return found[:len(statements)]

    def abandon(self) -> None:
        """After an error: undo what can be undone, quietly (the error says what went wrong)."""
        try:
            if self.end is None or self.conn.closed:
                if not self.conn.closed:
                    self.conn.rollback()
                return
            if self.conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
                for s in self.end:
                    self.conn.execute(s)
        except psycopg.Error:
            pass



#: The catalog queries of one round of introspection: objects, then what the schema as a whole holds.
OBJECT_QUERIES = ("tables", "views", "columns", "constraints", "indexes", "triggers", "rules", "policies", "sequences",
                  "enums", "domains", "composites", "ranges", "functions", "collations")
#: What copying data needs: the tables, their columns, keys and indexes, and which schemas exist.
TABLE_QUERIES = ("tables", "columns", "constraints", "indexes", "namespaces")
SCHEMA_QUERIES = ("namespaces", "extensions", "available_extensions", "roles", "depends", "outside")


def _prefetch(conn: psycopg.Connection, names: Seq[str], params: dict[str, Any]):
    """Send the named catalog queries together (one round trip, `connect.batch`); ``rows(name)`` then
    hands out each one's result."""
    results = dict(zip(names, batch(conn, [(queries.load(n), params) for n in names], row_factory=dict_row)))

    def rows(name: str) -> list[dict[str, Any]]:
        return results[name]

    return rows


def _read_objects(rows, result: Any) -> tuple[dict[str, float], set[str]]:
    """Tables, views and their members, sequences, types and functions (prefetched by ``rows``) into
    ``result`` (a :class:`Schema` or an :class:`External`-shaped holder). Returns the planner's
    reltuples per table and the tables that can be counted."""
    reltuples: dict[str, float] = {}
    countable: set[str] = set()
    views = getattr(result, "views", None)
    for r in rows("tables"):
        reltuples[r["key"]] = r.pop("reltuples")
        if r.pop("countable"):
            countable.add(r["key"])
        result.tables[r["key"]] = Table(**r)
    if views is not None:
        for r in rows("views"):
            views[r["key"]] = View(**r)

    for r in rows("columns"):
        rel = r.pop("relation")
        if (t := result.tables.get(rel)) is not None:
            t.columns[r["name"]] = Column(**r)
        elif views is not None and (v := views.get(rel)) is not None:
            v.columns[r["name"]] = ViewColumn(name=r["name"], type=r["type"], comment=r["comment"])
    for r in rows("constraints"):
        if (t := result.tables.get(r.pop("relation"))) is not None:
            t.constraints[r["name"]] = Constraint(**r)
    for r in rows("indexes"):
        rel = r.pop("relation")
        owner = result.tables.get(rel) or (views.get(rel) if views is not None else None)
        if owner is not None:
            owner.indexes[r["name"]] = Index(**r)
    for r in rows("triggers"):
        rel = r.pop("relation")
        owner = result.tables.get(rel) or (views.get(rel) if views is not None else None)
        if owner is not None:
            owner.triggers[r["name"]] = Trigger(**r)
    for r in rows("rules"):
        rel = r.pop("relation")
        owner = result.tables.get(rel) or (views.get(rel) if views is not None else None)
        if owner is not None:
            owner.rules[r["name"]] = Rule(**r)
    for r in rows("policies"):
        if (t := result.tables.get(r.pop("relation"))) is not None:
            t.policies[r["name"]] = Policy(**r)

    if isinstance(result, Schema):
        for r in rows("sequences"):
            result.sequence_values[r["key"]] = r.pop("last_value")
            result.sequences[r["key"]] = Sequence(**r)
    for r in rows("enums"):
        result.enums[r["key"]] = Enum(**r)
    for r in rows("domains"):
        result.domains[r["key"]] = Domain(**r)
    for r in rows("composites"):
        result.composites[r["key"]] = CompositeType(**r)
    for r in rows("ranges"):
        result.ranges[r["key"]] = RangeType(**r)
    for r in rows("functions"):
        result.functions[r["key"]] = Function(**r)
    if isinstance(result, Schema):
        for r in rows("collations"):
            result.collations[r["key"]] = Collation.from_catalog(**r)
    return reltuples, countable


def _read_external(conn: psycopg.Connection, result: Schema) -> None:
    """Introspect what the compared schemas use outside themselves (see :class:`External`).

    The schemas holding such objects are read like compared ones (one more round of queries, only
    when there is anything outside to read); then only the objects used are kept: the tables and
    functions the dependencies point at, the tables of outside triggers that call compared
    functions, and the outside types those tables' columns have."""
    compared = set(result.schemas)
    wanted: dict[str, set[str]] = {"table": set(), "function": set(), "type": set()}
    trigger_refs: set[tuple[str, str]] = set()
    for d in result.dependencies:
        if d.schema_name in compared and d.on_schema not in compared and d.on_extension is None:
            if d.on_kind in ("table", "function", "type"):
                wanted[d.on_kind].add(d.on_key)
            elif d.on_kind == "constraint":  # a foreign key into an outside table's key
                wanted["table"].add(d.on_key)
        elif d.kind == "trigger" and d.schema_name not in compared and d.on_schema in compared:
            trigger_refs.add((d.key, d.name or ""))
            wanted["table"].add(d.key)
    outside_schemas = sorted(
        {d.on_schema for d in result.dependencies if d.on_schema not in compared and d.on_extension is None}
        | {d.schema_name for d in result.dependencies if d.schema_name not in compared})
    if not outside_schemas or not any(wanted.values()):
        return

    class _Holder:  # the shape _read_objects fills
        def __init__(self) -> None:
            self.tables: dict[str, Table] = {}
            self.enums: dict[str, Enum] = {}
            self.domains: dict[str, Domain] = {}
            self.composites: dict[str, CompositeType] = {}
            self.ranges: dict[str, RangeType] = {}
            self.functions: dict[str, Function] = {}

    seen = _Holder()
    _read_objects(_prefetch(conn, OBJECT_QUERIES, {"schemas": outside_schemas}), seen)
    ext = result.external
    for key in sorted(wanted["table"]):
        if (t := seen.tables.get(key)) is not None:
            triggers = {n: tg for n, tg in t.triggers.items() if (key, n) in trigger_refs}
            for n, tg in triggers.items():
                ext.triggers.append(ExternalTrigger(table=key, trigger=tg))
            # the table as the replica needs it: no triggers, no policies of its own
            ext.tables[key] = t.model_copy(update={"triggers": {}, "policies": {}})
            for col in t.columns.values():
                wanted["type"].add(col.type.removesuffix("[]"))
    for key in sorted(wanted["function"]):
        if (f := seen.functions.get(key)) is not None:
            ext.functions[key] = f
    for key in sorted(wanted["type"]):
        if key in seen.enums:
            ext.enums[key] = seen.enums[key]
        elif key in seen.domains:
            ext.domains[key] = seen.domains[key]
        elif key in seen.composites:
            ext.composites[key] = seen.composites[key]
        elif key in seen.ranges:
            ext.ranges[key] = seen.ranges[key]


def _attach_grants(result: Schema, grant_rows: list[dict[str, Any]]) -> None:
    for r in grant_rows:
        kind, key = r.pop("object_type"), r.pop("object_key")
        target: Any
        if kind == "schema":
            target = result.namespaces.get(key)
        elif kind == "sequence":
            target = result.sequences.get(key)
        elif kind == "function":
            target = result.functions.get(key)
        else:
            target = result.tables.get(key) or result.views.get(key)
        if target is not None:
            target.grants.append(Grant(**r))


def _row_counts(
    run: Any,
    result: Schema,
    reltuples: dict[str, float],
    countable: set[str],
    *,
    exact_counts: bool,
    threshold: int,
    deferred: list[Table] | None,
    own_search_path: str = "",
) -> dict[str, RowCount]:
    """Decide per table between the estimate and an exact count, then run every exact count in
    one UNION ALL statement (chunked), identifiers composed with psycopg.sql; with ``deferred``, append
    the tables to count to it instead.

    Tables the role cannot read, or reads through active row-level security, keep the estimate
    (0 when never analyzed) with ``exact=False``.
    """

    children: dict[str, list[str]] = {}
    for t in result.tables.values():
        if t.partition_of is not None:
            children.setdefault(t.partition_of, []).append(t.key)

    def estimate(key: str) -> float:
        """reltuples, summed over the leaves for a partitioned table; -1 if anything is unknown."""
        table = result.tables[key]
        if table.kind != "partitioned table":
            return reltuples[key]
        total = 0.0
        for child in children.get(key, []):
            e = estimate(child)
            if e < 0:
                return -1.0
            total += e
        return total

    counts: dict[str, RowCount] = {}
    to_count: list[Table] = []
    for key, table in result.tables.items():
        est = estimate(key)
        if key not in countable:
            counts[key] = RowCount(rows=max(int(est), 0), exact=False)
        elif exact_counts or est < 0 or est < threshold:
            to_count.append(table)
        else:
            counts[key] = RowCount(rows=int(est), exact=False)

    if deferred is not None:
        deferred.extend(to_count)
        to_count = []
    if not to_count:
        run([])  # (ends the bracket all the same)
    else:
        # Planning a count inlines the SQL functions of the table's index expressions (and policies),
        # whose bodies are parsed under the search_path of the moment: the one they were written for,
        # not the pinned pg_catalog (nothing read after this needs names qualified).
        # (a path that puts a schema before pg_catalog stays pinned: the master's guard refuses it)
        path = [p.strip().strip('"').lower() for p in own_search_path.split(",")]
        if own_search_path and ("pg_catalog" not in path or path[0] == "pg_catalog"):
            unpin = sql.SQL("SELECT pg_catalog.set_config('search_path', {}, true)").format(sql.Literal(own_search_path))
            found = run([(unpin, None), *count_statements(to_count)])[1:]
        else:
            found = run(count_statements(to_count))
        counts.update(read_counts(to_count, found))
    return {k: counts[k] for k in result.tables if k in counts}


def count_statements(tables: list[Table]) -> list[tuple[sql.Composable, None]]:
    """`count(*)` of each table, a few hundred to a UNION ALL statement; :func:`read_counts` reads their
    results (as dict rows)."""
    return [
        (sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {} AS i, count(*) AS n FROM {}").format(sql.Literal(i), sql.Identifier(t.schema_name, t.name))
            for i, t in enumerate(tables[start : start + _COUNT_CHUNK], start)), None)
        for start in range(0, len(tables), _COUNT_CHUNK)
    ]


def read_counts(tables: list[Table], results: list[list[dict]]) -> dict[str, RowCount]:
    return {tables[r["i"]].key: RowCount(rows=r["n"], exact=True) for found in results for r in found}


__all__: Seq[str] = [
    "DEFAULT_SCHEMAS",
    "EXCLUDED_SCHEMAS",
    "MANAGED_SCHEMAS",
    "REPLICATOR_SCHEMA",
    "SYSTEM_SCHEMAS",
    "count_statements",
    "introspect",
    "read_counts",
]
