"""Keeping the replica's own logic out of the way while copy writes, as `pg_dump --disable-triggers`
does, and checking afterwards the foreign keys that were skipped that way.

A `BEFORE INSERT/UPDATE` trigger on the replica (`last_update = now()`, a tsvector recomputed) would
rewrite the rows copy brings in; a rule could redirect them. So:

1. Where the role may set it (superuser, or `GRANT SET ON PARAMETER session_replication_role`, from
   PostgreSQL 15), every copy transaction runs with `session_replication_role = replica`: ordinary
   triggers and rules do not fire, nor do the internal triggers behind foreign keys, which is why those
   are checked after the copy (:func:`foreign_key_orphans`). Triggers and rules enabled ALWAYS or
   REPLICA still fire under that role: those are disabled inside each write transaction (step 2).
2. Otherwise the user triggers and rules that would fire are disabled by name inside each write
   transaction (`ALTER TABLE … DISABLE TRIGGER …`, re-enabled in their former state before the commit,
   so a crash leaves them as they were). That needs the role to own the table; foreign keys keep
   being enforced, so tables are loaded parents first.
3. If neither is allowed for a table that has such logic, the copy refuses up front, naming the
   privilege that is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ..introspect import Constraint, Schema
from . import queries
from .models import Orphans

_ENABLE = {"O": "ENABLE", "A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}


@dataclass
class Firing:
    """Triggers and rules that would fire on one replica table (or its partitions)."""

    relation: str  # quoted key of the table or partition that carries them
    kind: str  # trigger | rule
    name: str
    state: str  # O | A | R
    owned: bool


def cascading_references(schema: Schema, key: str) -> list[tuple[str, Constraint]]:
    """The replica's foreign keys referencing table ``key`` (its own included) whose delete action
    writes: CASCADE, SET NULL, SET DEFAULT. Deleting a row of ``key`` fires them unless
    session_replication_role is replica. As (referencing table, constraint)."""
    return [(t.key, c) for t in schema.tables.values() for c in t.foreign_keys
            if c.referenced_table == key and (c.on_delete or "NO ACTION").upper() not in ("NO ACTION", "RESTRICT")]


@dataclass
class ReplicaLogic:
    replication_role: bool  # session_replication_role = replica is set on the writing session
    firing: dict[str, list[Firing]] = field(default_factory=dict)  # by replica table key

    @property
    def description(self) -> str:
        if self.replication_role:
            return ("session_replication_role = replica (replica triggers, rules and foreign-key checks off "
                    "while writing; foreign keys checked after)")
        return "replica triggers and rules disabled by name inside each write transaction (foreign keys enforced)"

    def problems(self) -> list[str]:
        out = []
        for table, items in self.firing.items():
            blocked = [f for f in items if not f.owned]
            if blocked:
                names = ", ".join(f"{f.kind} {f.name}" for f in blocked[:4]) + (" …" if len(blocked) > 4 else "")
                how = ("" if self.replication_role else
                       "set session_replication_role (superuser, or GRANT SET ON PARAMETER session_replication_role "
                       "TO <role> on PostgreSQL 15+) or ")
                out.append(f"replica table {table} has {names} that would fire on copied rows: the copy's role must "
                           f"{how}own the table to switch them off")
        return out

    def disable(self, conn: psycopg.Connection, table: str) -> None:
        """Inside a write transaction, before writing into ``table``."""
        for f in self.firing.get(table, ()):
            conn.execute(sql.SQL("ALTER TABLE {} DISABLE {} {}").format(
                sql.SQL(f.relation), sql.SQL(f.kind.upper()), sql.Identifier(f.name)))

    def restore(self, conn: psycopg.Connection, table: str) -> None:
        """Inside the same transaction, just before its commit."""
        for f in self.firing.get(table, ()):
            conn.execute(sql.SQL("ALTER TABLE {} {} {} {}").format(
                sql.SQL(f.relation), sql.SQL(_ENABLE[f.state]), sql.SQL(f.kind.upper()), sql.Identifier(f.name)))


def setup(conn: psycopg.Connection, tables: list[str]) -> ReplicaLogic:
    """Switch the writing session to session_replication_role = replica where allowed, and list what
    would still fire on ``tables`` (quoted keys). Commits."""
    try:
        conn.execute("SET session_replication_role = replica")
        conn.commit()
        role = True
    except psycopg.errors.InsufficientPrivilege:
        conn.rollback()
        role = False
    logic = ReplicaLogic(replication_role=role)
    if tables:
        states = ["A", "R"] if role else ["O", "A"]
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(queries.load("firing_logic"), {"tables": tables, "states": states})
            for r in cur.fetchall():
                logic.firing.setdefault(r["root"], []).append(
                    Firing(r["relation"], r["kind"], r["name"], r["state"], r["owned"]))
        conn.commit()
    return logic


def foreign_key_orphans(conn: psycopg.Connection, tables: list[str], copied: set[str], examples: int = 5) -> list[Orphans]:
    """Rows of validated foreign keys involving ``tables`` that reference no row (read-only)."""
    out: list[Orphans] = []
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(queries.load("foreign_keys"), {"tables": tables})
        fks = cur.fetchall()
    for fk in fks:
        child = sql.Identifier(fk["child_schema"], fk["child_name"])
        parent = sql.Identifier(fk["parent_schema"], fk["parent_name"])
        cols = fk["columns"]
        present = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c)) for c in cols)
        if fk["match_full"]:
            present = sql.SQL("NOT ({})").format(sql.SQL(" AND ").join(
                sql.SQL("c.{} IS NULL").format(sql.Identifier(c)) for c in cols))
        match = sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(sql.Identifier(p), sql.Identifier(c))
                                      for p, c in zip(fk["parent_columns"], cols))
        base = sql.SQL("FROM {c} c WHERE {n} AND NOT EXISTS (SELECT 1 FROM {p} p WHERE {m})").format(
            c=child, n=present, p=parent, m=match)
        n = conn.execute(sql.SQL("SELECT count(*) ") + base).fetchone()[0]
        if not n:
            continue
        shown = sql.SQL(", ").join(sql.SQL("c.{}::text").format(sql.Identifier(c)) for c in cols)
        rows = conn.execute(sql.SQL("SELECT {} ").format(shown) + base + sql.SQL(" LIMIT %s"), [examples]).fetchall()
        parent_label = f"{fk['parent_schema']}.{fk['parent_name']}"
        if fk["parent"] not in copied:
            # a parent holding rows is refused by a copy with no policy: the hint gives one that adds rows
            filled = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(parent)).fetchone()[0]
            hint = (f"copy {parent_label} first (replicator copy --table {parent_label}"
                    f"{' --policy master-wins' if filled else ''})")
        else:
            hint = f"rows of {parent_label} that {fk['child_schema']}.{fk['child_name']} references are missing on the replica"
        out.append(Orphans(table=f"{fk['child_schema']}.{fk['child_name']}", constraint=fk["name"],
                           references=parent_label, rows=int(n), hint=hint,
                           examples=[dict(zip(cols, r)) for r in rows]))
    conn.rollback()
    return out
