"""Changes → an ordered, classified migration plan for the replica, with rollback SQL.

Order (phases): drop what is in the way (dependent views, changed triggers / policies / constraints
/ indexes), extensions, schemas, types (enums, domains), sequences, functions, tables and columns,
keys / unique / check / exclusion constraints, sequence ownership, foreign keys (``NOT VALID``, then
``VALIDATE CONSTRAINT``), indexes, views (topological order over ``depends_on``), triggers, row level
security and policies, comments, and last the drops of objects that exist only on the replica.

Every statement is parsed by sqlglot (when sqlglot cannot parse it, the statement head is used and
the step says so) and classified:

* ``safe``: additive or loss-free;
* ``destructive``: drops, lossy type changes (narrowing, text → number, ...), enum label removal;
* ``data-dependent``: may fail on the replica's data (SET NOT NULL over NULLs, a new key over
  duplicates, a CHECK over violating rows, a cast that may fail, FK validation over orphans). Such
  steps carry a read-only pre-check (:func:`run_prechecks`) whose result is kept in the plan.

Every step carries rollback SQL; :meth:`Plan.rollback_sql` is the whole plan's inverse.
Identifiers come from the server-quoted keys or ``psycopg.sql.Identifier``, never spliced raw.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Iterable, Literal

import psycopg
import sqlglot
from psycopg import sql
from pydantic import BaseModel, Field
from sqlglot import exp

from .diff import Change, diff_schemas, quote, resolve_renames
from .introspect.models import Column, Constraint, Schema, Sequence, Table, View

logging.getLogger("sqlglot").setLevel(logging.ERROR)

Classification = Literal["safe", "destructive", "data-dependent"]

PHASES = {
    "drop-dependents": 10,
    "drop-old": 15,
    "extensions": 20,
    "schemas": 30,
    "types": 40,
    "sequences": 45,
    "functions": 50,
    "tables": 60,
    "columns": 62,
    "constraints": 70,
    "ownership": 75,
    "foreign-keys": 80,
    "validate": 85,
    "indexes": 90,
    "views": 100,
    "triggers": 110,
    "policies": 120,
    "comments": 130,
    "drop-extra": 140,
    "drop-types": 150,
}


class PreCheck(BaseModel):
    """A read-only query against the replica that tells whether a data-dependent step can succeed."""

    description: str
    sql: str | None = None  # None: nothing to query (e.g. the table is new, so empty)
    result: int | None = None  # rows that would make the step fail
    ok: bool | None = None  # None: not run / could not run
    error: str | None = None
    table: str | None = None
    column: str | None = None


class Step(BaseModel):
    n: int = 0
    phase: str
    object: str
    sql: str
    rollback: str | None = None  # None: not reversible (noted in the rollback file)
    classification: Classification = "safe"
    reason: str = ""
    parsed_by: Literal["sqlglot", "statement head"] = "sqlglot"
    statement_type: str = ""
    precheck: PreCheck | None = None
    table: str | None = None  # table whose data a destructive step touches (backed up by migrate)
    transaction: int = 1  # 0: committed before the rest (new enum labels must be committed to be used)


class Plan(BaseModel):
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    master_database: str = ""
    replica_database: str = ""
    changes: list[Change] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    unsupported: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.steps

    def counts(self) -> dict[str, int]:
        out = {"safe": 0, "destructive": 0, "data-dependent": 0}
        for s in self.steps:
            out[s.classification] += 1
        return out

    def failed_prechecks(self) -> list[Step]:
        return [s for s in self.steps if s.precheck is not None and s.precheck.ok is False]

    def rollback_sql(self) -> str:
        lines = [
            "-- Rollback of the replica migration plan: inverse statements in reverse order.",
            "-- Data removed by destructive steps comes back only from the backup taken by `replicator migrate`.",
            "BEGIN;",
        ]
        for s in reversed(self.steps):
            if s.rollback is None:
                lines.append(f"-- [{s.n}] not reversible: {_one_line(s.sql)}")
            else:
                lines.append(f"-- [{s.n}] undo {s.phase} {s.object}")
                lines.append(s.rollback.rstrip(";") + ";")
        lines.append("COMMIT;")
        return "\n".join(lines) + "\n"

    def to_sql(self, allow_destructive: bool = False, header: Iterable[str] = ()) -> str:
        """The plan as a reviewable SQL file. Destructive statements are commented out unless
        ``allow_destructive``. Statements are grouped in transactions (new enum labels first)."""
        c = self.counts()
        out = [
            "-- replicator migration plan: turns the replica's schema into the master's.",
            f"-- generated {self.created_at.strftime('%Y-%m-%d %H:%M:%S UTC')}"
            f" master={self.master_database} replica={self.replica_database}",
            f"-- {len(self.steps)} statements: {c['safe']} safe, {c['destructive']} destructive,"
            f" {c['data-dependent']} data-dependent; {len(self.changes)} differences.",
            "-- Destructive statements are " + ("INCLUDED (--allow-destructive)." if allow_destructive
                                                 else "commented out (rerun with --allow-destructive to include them)."),
        ]
        out += [f"-- {h}" for h in header]
        for u in self.unsupported:
            out.append(f"-- NOT HANDLED: {u}")
        if not self.steps:
            out.append("-- No differences: nothing to do.")
            return "\n".join(out) + "\n"
        for txn in sorted({s.transaction for s in self.steps}):
            out += ["", "BEGIN;", "SET LOCAL check_function_bodies = off;"]
            for s in (s for s in self.steps if s.transaction == txn):
                out.append("")
                out.append(f"-- [{s.n}] {s.classification.upper()} {s.phase}: {s.object}"
                           + (f" ({s.reason})" if s.reason else ""))
                if s.parsed_by != "sqlglot":
                    out.append(f"--   sqlglot could not parse this statement; classified by its head ({s.statement_type})")
                if s.precheck is not None:
                    out.append(f"--   pre-check: {_precheck_text(s.precheck)}")
                body = s.sql.rstrip().rstrip(";") + ";"
                if s.classification == "destructive" and not allow_destructive:
                    out += ["-- " + ln for ln in body.splitlines()]
                else:
                    out.append(body)
            out.append("COMMIT;")
        out += ["", "-- ===================== rollback (whole plan) =====================", ""]
        out += ["-- " + ln if ln and not ln.startswith("--") else ln for ln in self.rollback_sql().splitlines()]
        return "\n".join(out) + "\n"


def _precheck_text(p: PreCheck) -> str:
    if p.ok is None:
        state = f"not run{': ' + p.error if p.error else ''}"
    elif p.ok:
        state = f"OK ({p.result} offending rows)"
    else:
        state = f"FAILS: {p.result} offending rows"
    return f"{p.description} -> {state}"


def _one_line(s: str) -> str:
    return " ".join(s.split())[:160]


# ----------------------------------------------------------------------------------------------
# SQL text helpers (identifiers via psycopg.sql / server-quoted keys only)


def ident(*parts: str) -> str:
    return ".".join(quote(p) for p in parts)


def lit(value: Any) -> str:
    return sql.Literal(value).as_string(None)


def table_ref(t: Table | View) -> str:
    return t.key


def index_ref(t: Table | View, index_name: str) -> str:
    return ident(t.schema_name, index_name)


_NOT_VALID = re.compile(r"\s+NOT VALID\s*$")


def strip_not_valid(definition: str) -> str:
    return _NOT_VALID.sub("", definition)


# ----------------------------------------------------------------------------------------------
# type change classification

_INT_RANK = {"smallint": 1, "integer": 2, "bigint": 3}
_TEXTY = {"text", "character varying", "character", "citext", "varchar"}
_NUMERIC_SAFE_FROM_INT = {"numeric", "bigint", "integer", "double precision", "real"}


def _split_type(t: str) -> tuple[str, list[int], bool]:
    arr = t.endswith("[]")
    base = t[:-2] if arr else t
    m = re.match(r"^(.*?)\((\d+)(?:,\s*(\d+))?\)(.*)$", base)
    if m:
        name = (m.group(1) + m.group(4)).strip()
        mods = [int(m.group(2))] + ([int(m.group(3))] if m.group(3) else [])
        return name, mods, arr
    return base.strip(), [], arr


def classify_type_change(old: str, new: str) -> tuple[Classification, str]:
    """Whether ``ALTER COLUMN ... TYPE new USING col::new`` from ``old`` keeps every value."""
    on, om, oa = _split_type(old)
    nn, nm, na = _split_type(new)
    if oa != na:
        return "destructive", "array-ness changes"
    if on == nn:
        if not nm:
            return "safe", "modifier removed (widening)"
        if not om:
            return "destructive", f"narrowing {old} to {new}"
        if on == "numeric":
            (op, os_), (np_, ns) = (om + [0])[:2], (nm + [0])[:2]
            if np_ - ns >= op - os_ and ns >= os_:
                return "safe", "widening numeric"
            return "destructive", f"narrowing {old} to {new}"
        if nm[0] >= om[0]:
            return "safe", "widening"
        return "destructive", f"narrowing {old} to {new}"
    if on in _INT_RANK and nn in _INT_RANK:
        if _INT_RANK[nn] > _INT_RANK[on]:
            return "safe", "widening integer"
        return "destructive", f"narrowing {old} to {new}"
    if on in _INT_RANK and nn == "numeric" and not nm:
        return "safe", "integer to numeric"
    if on in {*_INT_RANK, "numeric", "real", "double precision"} and nn in {"double precision"} and on != "numeric":
        return "safe", "widening to double precision"
    if nn in {"text"} or (nn in _TEXTY and not nm):
        return "safe", "any value has a text form"
    if on in {"character varying", "character", "varchar"} and nn in _TEXTY and nm and om and nm[0] >= om[0]:
        return "safe", "widening"
    if on in _TEXTY and nn in _TEXTY:
        return "destructive", f"narrowing {old} to {new}"
    if on == "timestamp without time zone" and nn == "timestamp with time zone":
        return "data-dependent", "reinterpreted in the session time zone"
    if on in _TEXTY:
        return "destructive", f"lossy cast {old} to {new} (values that do not parse fail, formatting is lost)"
    if nn in _INT_RANK or (nn == "numeric" and nm) or nn in {"date", "real"}:
        return "destructive", f"lossy cast {old} to {new}"
    return "data-dependent", f"cast {old} to {new} may fail"


# ----------------------------------------------------------------------------------------------
# statement parsing

_PARSE_HEAD = re.compile(r"^\s*((?:[A-Za-z]+\s+){0,3}[A-Za-z]+)")


def parse_statement(text: str) -> tuple[str, str]:
    """(parsed_by, statement type): sqlglot's node type, else the statement head."""
    try:
        tree = sqlglot.parse_one(text, read="postgres")
        if tree is not None and not isinstance(tree, exp.Command):
            kind = type(tree).__name__
            if isinstance(tree, (exp.Create, exp.Drop)) and tree.args.get("kind"):
                kind += f" {tree.args['kind']}"
            return "sqlglot", kind
    except Exception:  # sqlglot raises several error types on PostgreSQL it does not know
        pass
    words = text.split()
    head = " ".join(w.upper() for w in words[:2])
    if head in ("ALTER TABLE", "ALTER TYPE", "ALTER DOMAIN", "ALTER SEQUENCE", "ALTER EXTENSION") and len(words) > 3:
        # ALTER TABLE <name> <action ...>: keep the action's first keywords
        action = [w.upper() for w in words[3:5] if w.isalpha()]
        head += " … " + " ".join(action)
    elif head.startswith("CREATE") or head.startswith("COMMENT"):
        head = " ".join(w.upper() for w in words[:3] if w.replace("_", "").isalpha())
    return "statement head", head


def _check_destructive_head(s: Step) -> None:
    """A drop is destructive whatever the generator thought (belt and braces)."""
    head = s.statement_type.upper()
    if (head.startswith("DROP") or head.startswith("TRUNCATE")) and s.phase in ("drop-extra", "drop-types") and s.classification == "safe":
        s.classification = "destructive"


# ----------------------------------------------------------------------------------------------
# the builder


class _Builder:
    def __init__(self, master: Schema, replica: Schema, changes: list[Change], renames: dict[str, dict[str, str]]):
        self.m = master
        self.r = replica
        self.changes = changes
        self.renames = renames
        self.steps: list[Step] = []
        self.unsupported: list[str] = []

    def add(self, phase: str, obj: str, text: str, rollback: str | None, cls: Classification = "safe",
            reason: str = "", precheck: PreCheck | None = None, table: str | None = None, transaction: int = 1) -> Step:
        st = Step(phase=phase, object=obj, sql=text, rollback=rollback, classification=cls, reason=reason,
                  precheck=precheck, table=table, transaction=transaction)
        self.steps.append(st)
        return st

    # -- helpers -------------------------------------------------------------------------------

    def replica_rows(self, tkey: str) -> int | None:
        return self.r.row_count(tkey)

    def replica_col(self, tkey: str, mcol: str) -> str | None:
        """The replica's name of a master column (after renames), None when absent on the replica."""
        t = self.r.tables.get(tkey)
        if t is None:
            return None
        if mcol in t.columns:
            return mcol
        for rname, target in self.renames.get(tkey, {}).items():
            if target == mcol and rname in t.columns:
                return rname
        return None

    def col_def(self, t: Table, c: Column) -> str:
        parts = [quote(c.name), c.type]
        if c.collation:
            parts.append(f"COLLATE {c.collation}")
        if c.generated:
            parts.append(f"GENERATED ALWAYS AS ({c.generated}) STORED")
        elif c.identity:
            parts.append(f"GENERATED {c.identity.upper()} AS IDENTITY{self.identity_options(t, c)}")
        elif c.default is not None:
            parts.append(f"DEFAULT {c.default}")
        if not c.nullable:
            parts.append("NOT NULL")
        return " ".join(parts)

    def identity_seq(self, schema: Schema, t: Table, c: Column) -> Sequence | None:
        for s in schema.sequences.values():
            if s.identity and s.owned_by_table == t.key and s.owned_by_column == c.name:
                return s
        return None

    def identity_options(self, t: Table, c: Column) -> str:
        s = self.identity_seq(self.m, t, c)
        if s is None:
            return ""
        return f" ({self.seq_options(s, name=True)})"

    def seq_options(self, s: Sequence, name: bool = False, as_type: bool = False) -> str:
        parts = []
        if name:
            parts.append(f"SEQUENCE NAME {s.key}")
        if as_type:
            parts.append(f"AS {s.data_type}")
        parts += [f"INCREMENT BY {s.increment}", f"MINVALUE {s.min_value}", f"MAXVALUE {s.max_value}",
                  f"START WITH {s.start}", f"CACHE {s.cache}", "CYCLE" if s.cycle else "NO CYCLE"]
        return " ".join(parts)

    def create_table_sql(self, t: Table) -> str:
        head = "CREATE UNLOGGED TABLE" if t.unlogged else "CREATE TABLE"
        if t.partition_of:
            body = f"{head} {t.key} PARTITION OF {t.partition_of}"
            local = [c for c in t.columns.values() if c.is_local]
            text = body + (" (" + ", ".join(self.col_def(t, c) for c in local) + ")" if local else "")
            text += f" {t.partition_bound}"
        else:
            cols = [self.col_def(t, c) for c in t.columns.values() if c.is_local or not t.inherits]
            text = f"{head} {t.key} (\n    " + ",\n    ".join(cols) + "\n)"
            if t.inherits:
                text += f" INHERITS ({', '.join(t.inherits)})"
        if t.partition_key:
            text += f" PARTITION BY {t.partition_key}"
        if t.options:
            text += f" WITH ({', '.join(t.options)})"
        return text

    def drop_table_rollback(self, t: Table) -> str:
        parts = [self.create_table_sql_from(self.r, t)]
        for con in t.constraints.values():
            if not con.inherited:
                parts.append(f"ALTER TABLE {t.key} ADD CONSTRAINT {quote(con.name)} {con.definition}")
        for idx in t.indexes.values():
            if idx.constraint is None and not idx.inherited:
                parts.append(idx.definition)
        return ";\n".join(parts)

    def create_table_sql_from(self, schema: Schema, t: Table) -> str:
        saved = self.m
        self.m = schema
        try:
            return self.create_table_sql(t)
        finally:
            self.m = saved

    # -- build ---------------------------------------------------------------------------------

    def build(self) -> list[Step]:
        by_kind: dict[str, list[Change]] = defaultdict(list)
        for c in self.changes:
            by_kind[c.kind].append(c)
        self.by_kind = by_kind
        new_tables = {c.object for c in by_kind["table_missing"]}
        self.new_tables = new_tables

        self.enum_recreates = self.plan_enum_recreates(by_kind["enum_labels"])
        self.drop_dependents(by_kind)
        self.drop_old(by_kind)
        self.extensions(by_kind)
        self.schemas(by_kind)
        self.types(by_kind)
        self.sequences(by_kind)
        self.functions(by_kind)
        self.tables(by_kind)
        self.columns(by_kind)
        self.constraints(by_kind)
        self.ownership(by_kind)
        self.indexes(by_kind)
        self.views(by_kind)
        self.triggers(by_kind)
        self.policies(by_kind)
        self.comments(by_kind)
        self.grants(by_kind)
        self.drop_extra(by_kind)
        self.steps.sort(key=lambda s: PHASES[s.phase])  # stable: keeps the order within a phase
        for i, s in enumerate(self.steps, 1):
            s.n = i
            s.parsed_by, s.statement_type = parse_statement(s.sql)
            _check_destructive_head(s)
        return self.steps

    # enums whose labels were removed or reordered are recreated
    def plan_enum_recreates(self, changes: list[Change]) -> dict[str, Change]:
        out = {}
        for c in changes:
            m, r = c.master, c.replica
            # pure additions keeping the replica's order: ALTER TYPE ... ADD VALUE
            pos = [m.index(x) for x in r if x in m]
            if set(r) <= set(m) and pos == sorted(pos):
                continue
            out[c.object] = c
        return out

    def enum_columns(self, enum_key: str) -> list[tuple[Table, Column]]:
        out = []
        for t in self.r.tables.values():
            for col in t.columns.values():
                if col.type in (enum_key, enum_key + "[]") and (col.is_local or t.partition_of is None):
                    out.append((t, col))
        return out

    def altered_tables(self, by_kind: dict[str, list[Change]]) -> set[str]:
        """Tables whose columns change in ways that views and policies depending on them block."""
        out = set()
        for k in ("column_type", "column_extra", "column_generated", "column_collation"):
            out |= {c.table for c in by_kind[k] if c.table}
        for c in by_kind["table_extra"]:
            out.add(c.object)
        for c in by_kind["table_changed"]:
            out.add(c.object)
        for ek in self.enum_recreates:
            out |= {t.key for t, _ in self.enum_columns(ek)}
        return out

    def drop_dependents(self, by_kind: dict[str, list[Change]]) -> None:
        altered = self.altered_tables(by_kind)
        changed_fns = {c.object for c in by_kind["function_changed"]} | {c.object for c in by_kind["function_extra"]}
        drop: set[str] = {c.object for c in by_kind["view_changed"]} | {c.object for c in by_kind["view_extra"]}
        for v in self.r.views.values():
            if set(v.depends_on) & altered or set(v.depends_on_functions) & changed_fns:
                drop.add(v.key)
        # transitively: views over dropped views
        grew = True
        while grew:
            grew = False
            for v in self.r.views.values():
                if v.key not in drop and set(v.depends_on) & drop:
                    drop.add(v.key)
                    grew = True
        self.dropped_views = drop
        extra = {c.object for c in by_kind["view_extra"]}
        for key in reversed(_topo(self.r.views, drop)):
            v = self.r.views[key]
            kind = "MATERIALIZED VIEW" if v.materialized else "VIEW"
            cls: Classification = "destructive" if key in extra else "safe"
            self.add("drop-dependents", key, f"DROP {kind} {key}", self.view_sql(v, self.r),
                     cls, "only on the replica" if key in extra else "recreated from the master's definition")

    def drop_old(self, by_kind: dict[str, list[Change]]) -> None:
        # triggers and policies that change are dropped and recreated; extra ones dropped
        for c in by_kind["trigger_changed"] + by_kind["trigger_extra"]:
            r = c.replica
            owner = self.r.tables.get(c.table) or self.r.views.get(c.table)
            if c.table in self.dropped_views:
                continue
            extra = c.kind == "trigger_extra"
            self.add("drop-old", c.object, f"DROP TRIGGER {quote(c.name)} ON {c.table}", r["definition"],
                     "destructive" if extra else "safe", "only on the replica" if extra else "recreated", table=owner.key if owner else None)
        for c in by_kind["policy_changed"] + by_kind["policy_extra"]:
            extra = c.kind == "policy_extra"
            self.add("drop-old", c.object, f"DROP POLICY {quote(c.name)} ON {c.table}", self.policy_sql(c.table, c.replica),
                     "destructive" if extra else "safe", "only on the replica" if extra else "recreated")
        # foreign keys first (a key they reference may be dropped next)
        cons = by_kind["constraint_changed"] + by_kind["constraint_extra"]
        cons.sort(key=lambda c: 0 if c.replica["kind"] == "foreign key" else 1)
        for c in cons:
            if c.table in {x.object for x in by_kind["table_extra"]}:
                continue
            extra = c.kind == "constraint_extra"
            if c.kind == "constraint_changed" and c.diff.keys() == {"validated"} and c.master["validated"]:
                continue  # only needs VALIDATE (constraints phase)
            self.add("drop-old", c.object, f"ALTER TABLE {c.table} DROP CONSTRAINT {quote(c.name)}",
                     f"ALTER TABLE {c.table} ADD CONSTRAINT {quote(c.name)} {c.replica['definition']}",
                     "destructive" if extra else "safe", "only on the replica" if extra else "recreated from the master's definition")
        for c in by_kind["index_changed"] + by_kind["index_extra"]:
            owner = self.r.tables.get(c.table) or self.r.views.get(c.table)
            if owner is None or c.table in {x.object for x in by_kind["table_extra"]} or c.table in self.dropped_views:
                continue
            extra = c.kind == "index_extra"
            self.add("drop-old", c.object, f"DROP INDEX {index_ref(owner, c.name)}", c.replica["definition"],
                     "destructive" if extra else "safe", "only on the replica" if extra else "recreated")

    def extensions(self, by_kind):
        for c in by_kind["extension_missing"]:
            e = c.master
            self.add("extensions", c.object, f"CREATE EXTENSION IF NOT EXISTS {quote(e['name'])} WITH SCHEMA {quote(e['schema_name'])}",
                     f"DROP EXTENSION {quote(e['name'])}")
        for c in by_kind["extension_version"]:
            self.add("extensions", c.object, f"ALTER EXTENSION {c.object} UPDATE TO {lit(c.master)}",
                     f"ALTER EXTENSION {c.object} UPDATE TO {lit(c.replica)}", "data-dependent", "needs the version installed on the replica's server")

    def schemas(self, by_kind):
        for c in by_kind["schema_missing"]:
            self.add("schemas", c.object, f"CREATE SCHEMA {c.object}", f"DROP SCHEMA {c.object}")

    def types(self, by_kind):
        for c in by_kind["enum_missing"]:
            labels = ", ".join(lit(x) for x in c.master["labels"])
            self.add("types", c.object, f"CREATE TYPE {c.object} AS ENUM ({labels})", f"DROP TYPE {c.object}")
        for c in by_kind["enum_labels"]:
            m, r = c.master, c.replica
            if c.object in self.enum_recreates:
                self.recreate_enum(c)
                continue
            have = list(r)
            for i, label in enumerate(m):
                if label in have:
                    continue
                # place it after its predecessor in the master's order, else before its successor
                prev = next((x for x in reversed(m[:i]) if x in have), None)
                if prev is not None:
                    where = f" AFTER {lit(prev)}"
                    have.insert(have.index(prev) + 1, label)
                else:
                    nxt = next((x for x in m[i + 1:] if x in have), None)
                    where = f" BEFORE {lit(nxt)}" if nxt is not None else ""
                    have.insert(have.index(nxt) if nxt is not None else len(have), label)
                self.add("types", c.object, f"ALTER TYPE {c.object} ADD VALUE {lit(label)}{where}", None,
                         reason="enum labels cannot be removed without recreating the type", transaction=0)
        for c in by_kind["domain_missing"]:
            self.add("types", c.object, self.domain_sql(c.master), f"DROP DOMAIN {c.object}")
        for c in by_kind["domain_changed"]:
            self.alter_domain(c)

    def domain_sql(self, d: dict) -> str:
        text = f"CREATE DOMAIN {d['key']} AS {d['base_type']}"
        if d.get("collation"):
            text += f" COLLATE {d['collation']}"
        if d.get("default") is not None:
            text += f" DEFAULT {d['default']}"
        if d.get("not_null"):
            text += " NOT NULL"
        for con in d.get("constraints", []):
            text += f" CONSTRAINT {quote(con['name'])} {strip_not_valid(con['definition'])}"
        return text

    def alter_domain(self, c: Change) -> None:
        m, r, k = c.master, c.replica, c.object
        if m["base_type"] != r["base_type"] or m.get("collation") != r.get("collation"):
            self.unsupported.append(f"domain {k}: base type/collation change ({r['base_type']} -> {m['base_type']}) needs a manual migration")
        if m.get("default") != r.get("default"):
            new = f"ALTER DOMAIN {k} SET DEFAULT {m['default']}" if m.get("default") is not None else f"ALTER DOMAIN {k} DROP DEFAULT"
            old = f"ALTER DOMAIN {k} SET DEFAULT {r['default']}" if r.get("default") is not None else f"ALTER DOMAIN {k} DROP DEFAULT"
            self.add("types", k, new, old)
        if m.get("not_null") != r.get("not_null"):
            if m["not_null"]:
                self.add("types", k, f"ALTER DOMAIN {k} SET NOT NULL", f"ALTER DOMAIN {k} DROP NOT NULL", "data-dependent",
                         "columns of this domain may hold NULLs", PreCheck(description="NULLs in columns of the domain", sql=None))
            else:
                self.add("types", k, f"ALTER DOMAIN {k} DROP NOT NULL", f"ALTER DOMAIN {k} SET NOT NULL")
        mc = {x["name"]: x for x in m.get("constraints", [])}
        rc = {x["name"]: x for x in r.get("constraints", [])}
        for n, x in rc.items():
            if n not in mc or mc[n]["definition"] != x["definition"]:
                self.add("types", k, f"ALTER DOMAIN {k} DROP CONSTRAINT {quote(n)}",
                         f"ALTER DOMAIN {k} ADD CONSTRAINT {quote(n)} {x['definition']}",
                         "safe" if n in mc else "destructive", "recreated" if n in mc else "only on the replica")
        for n, x in mc.items():
            if n not in rc or rc[n]["definition"] != x["definition"]:
                self.add("types", k, f"ALTER DOMAIN {k} ADD CONSTRAINT {quote(n)} {x['definition']}",
                         f"ALTER DOMAIN {k} DROP CONSTRAINT {quote(n)}", "data-dependent",
                         "values in columns of the domain may violate it",
                         PreCheck(description="values violating the new domain constraint", sql=None))

    def recreate_enum(self, c: Change) -> None:
        k = c.object
        e = self.r.enums[k]
        tmp_name = f"{e.name}__replicator_old"
        tmp = ident(e.schema_name, tmp_name)
        removed = [x for x in c.replica if x not in c.master]
        labels = ", ".join(lit(x) for x in c.master)
        cls: Classification = "destructive" if removed else "safe"
        reason = f"labels removed: {', '.join(removed)}" if removed else "labels reordered: the type is recreated"
        self.add("types", k, f"ALTER TYPE {k} RENAME TO {quote(tmp_name)}", f"ALTER TYPE {tmp} RENAME TO {quote(e.name)}", cls, reason)
        self.add("types", k, f"CREATE TYPE {k} AS ENUM ({labels})", f"DROP TYPE {k}")
        for t, col in self.enum_columns(k):
            arr = "[]" if col.type.endswith("[]") else ""
            colk = ident(col.name)
            pre = None
            if removed:
                q = sql.SQL("SELECT count(*) FROM {} WHERE {}::text{} && ARRAY[{}]::text[]" if arr else
                            "SELECT count(*) FROM {} WHERE {}::text{} = ANY (ARRAY[{}]::text[])")
                inner = sql.SQL(", ").join(sql.Literal(x) for x in removed)
                pre = PreCheck(description=f"rows of {t.key}.{colk} holding a removed label",
                               sql=q.format(sql.SQL(t.key), sql.Identifier(col.name), sql.SQL("[]" if arr else ""), inner).as_string(None),
                               table=t.key, column=col.name)
            if col.default is not None:
                self.add("columns", f"{t.key}.{colk}", f"ALTER TABLE {t.key} ALTER COLUMN {colk} DROP DEFAULT",
                         f"ALTER TABLE {t.key} ALTER COLUMN {colk} SET DEFAULT {col.default}")
            self.add("columns", f"{t.key}.{colk}",
                     f"ALTER TABLE {t.key} ALTER COLUMN {colk} TYPE {k}{arr} USING {colk}::text{arr}::{k}{arr}",
                     f"ALTER TABLE {t.key} ALTER COLUMN {colk} TYPE {tmp}{arr} USING {colk}::text{arr}::{tmp}{arr}",
                     "data-dependent" if removed else "safe", reason, pre, table=t.key)
            mt = self.m.tables.get(t.key)
            mcol = mt.columns.get(col.name) if mt else None
            newdef = mcol.default if mcol is not None else col.default
            if newdef is not None:
                self.add("columns", f"{t.key}.{colk}", f"ALTER TABLE {t.key} ALTER COLUMN {colk} SET DEFAULT {newdef}",
                         f"ALTER TABLE {t.key} ALTER COLUMN {colk} DROP DEFAULT")
        self.add("drop-types", tmp, f"DROP TYPE {tmp}", f"CREATE TYPE {tmp} AS ENUM ({', '.join(lit(x) for x in c.replica)})",
                 "safe", "the old type, no longer used")

    def sequences(self, by_kind):
        for c in by_kind["sequence_missing"]:
            s = Sequence(**c.master)
            self.add("sequences", c.object, f"CREATE SEQUENCE {s.key} {self.seq_options(s, as_type=True)}", f"DROP SEQUENCE {s.key}")
        for c in by_kind["sequence_changed"]:
            s, r = Sequence(**c.master), Sequence(**c.replica)
            if set(c.diff) - {"owned_by_table", "owned_by_column", "owned_by"}:
                self.add("sequences", c.object, f"ALTER SEQUENCE {s.key} {self.seq_options(s, as_type=True)}",
                         f"ALTER SEQUENCE {s.key} {self.seq_options(r, as_type=True)}",
                         "data-dependent" if s.max_value < r.max_value or s.min_value > r.min_value else "safe",
                         "narrower range: the current value may not fit" if s.max_value < r.max_value or s.min_value > r.min_value else "")

    def ownership(self, by_kind):
        for c in by_kind["sequence_missing"] + by_kind["sequence_changed"]:
            s = Sequence(**c.master)
            r = Sequence(**c.replica) if c.replica else None
            if (r is None and s.owned_by) or (r is not None and r.owned_by != s.owned_by):
                new = s.owned_by or "NONE"
                old = (r.owned_by if r and r.owned_by else "NONE")
                self.add("ownership", c.object, f"ALTER SEQUENCE {s.key} OWNED BY {new}", f"ALTER SEQUENCE {s.key} OWNED BY {old}")

    def functions(self, by_kind):
        for c in by_kind["function_missing"] + by_kind["function_changed"]:
            f = c.master
            if f.get("definition") is None:
                self.unsupported.append(f"{f['kind']} {c.object}: no definition to recreate (aggregates are not handled)")
                continue
            kw = "PROCEDURE" if f["kind"] == "procedure" else "FUNCTION"
            if c.kind == "function_changed":
                r = c.replica
                needs_drop = f.get("result") != r.get("result") or f.get("arguments") != r.get("arguments") or f["kind"] != r["kind"]
                if needs_drop:
                    self.add("functions", c.object, f"DROP {kw} {c.object}", r["definition"], "safe", "recreated: signature or result changes")
                    self.add("functions", c.object, f["definition"], f"DROP {kw} {c.object}")
                else:
                    self.add("functions", c.object, f["definition"], r["definition"])
            else:
                self.add("functions", c.object, f["definition"], f"DROP {kw} {c.object}")

    def tables(self, by_kind):
        missing = [self.m.tables[c.object] for c in by_kind["table_missing"]]
        # parents (partitioned / inherited) before children
        order = _topo_tables(missing)
        for t in order:
            self.add("tables", t.key, self.create_table_sql(t), f"DROP TABLE {t.key}")
            if t.rls_enabled:
                self.add("policies", t.key, f"ALTER TABLE {t.key} ENABLE ROW LEVEL SECURITY", f"ALTER TABLE {t.key} DISABLE ROW LEVEL SECURITY")
            if t.rls_forced:
                self.add("policies", t.key, f"ALTER TABLE {t.key} FORCE ROW LEVEL SECURITY", f"ALTER TABLE {t.key} NO FORCE ROW LEVEL SECURITY")
            for con in t.constraints.values():
                if not con.inherited:
                    self.add_constraint(t, con, new_table=True)
            for idx in t.indexes.values():
                if idx.constraint is None and not idx.inherited:
                    self.add("indexes", f"{t.key}/{idx.name}", idx.definition, f"DROP INDEX {index_ref(t, idx.name)}")
            for trg in t.triggers.values():
                if not trg.inherited and not trg.is_constraint:
                    self.add_trigger(t, trg.model_dump(mode="json"))
            for pol in t.policies.values():
                self.add("policies", f"{t.key}/{pol.name}", self.policy_sql(t.key, pol.model_dump(mode="json")),
                         f"DROP POLICY {quote(pol.name)} ON {t.key}")
            self.table_comments(t)
        for c in by_kind["table_changed"]:
            self.unsupported.append(f"table {c.object}: {c.detail} (partitioning/inheritance/storage changes need a manual migration)")
        for c in by_kind["table_rls"]:
            m, r = c.master, c.replica
            k = c.object
            if m["enabled"] != r["enabled"]:
                on, off = f"ALTER TABLE {k} ENABLE ROW LEVEL SECURITY", f"ALTER TABLE {k} DISABLE ROW LEVEL SECURITY"
                self.add("policies", k, on if m["enabled"] else off, off if m["enabled"] else on)
            if m["forced"] != r["forced"]:
                on, off = f"ALTER TABLE {k} FORCE ROW LEVEL SECURITY", f"ALTER TABLE {k} NO FORCE ROW LEVEL SECURITY"
                self.add("policies", k, on if m["forced"] else off, off if m["forced"] else on)

    def table_comments(self, t: Table) -> None:
        if t.comment is not None:
            self.add("comments", t.key, f"COMMENT ON TABLE {t.key} IS {lit(t.comment)}", f"COMMENT ON TABLE {t.key} IS NULL")
        for c in t.columns.values():
            if c.comment is not None and (c.is_local or t.partition_of is None):
                ck = f"{t.key}.{quote(c.name)}"
                self.add("comments", ck, f"COMMENT ON COLUMN {ck} IS {lit(c.comment)}", f"COMMENT ON COLUMN {ck} IS NULL")
        for con in t.constraints.values():
            if con.comment is not None and not con.inherited:
                self.add("comments", f"{t.key}/{con.name}", f"COMMENT ON CONSTRAINT {quote(con.name)} ON {t.key} IS {lit(con.comment)}",
                         f"COMMENT ON CONSTRAINT {quote(con.name)} ON {t.key} IS NULL")
        for idx in t.indexes.values():
            if idx.comment is not None and not idx.inherited:
                self.add("comments", f"{t.key}/{idx.name}", f"COMMENT ON INDEX {index_ref(t, idx.name)} IS {lit(idx.comment)}",
                         f"COMMENT ON INDEX {index_ref(t, idx.name)} IS NULL")
        for trg in t.triggers.values():
            if trg.comment is not None and not trg.inherited:
                self.add("comments", f"{t.key}/{trg.name}", f"COMMENT ON TRIGGER {quote(trg.name)} ON {t.key} IS {lit(trg.comment)}",
                         f"COMMENT ON TRIGGER {quote(trg.name)} ON {t.key} IS NULL")
        for pol in t.policies.values():
            if pol.comment is not None:
                self.add("comments", f"{t.key}/{pol.name}", f"COMMENT ON POLICY {quote(pol.name)} ON {t.key} IS {lit(pol.comment)}",
                         f"COMMENT ON POLICY {quote(pol.name)} ON {t.key} IS NULL")

    # -- columns -------------------------------------------------------------------------------

    def columns(self, by_kind):
        extra_tables = {c.object for c in by_kind["table_extra"]}
        for c in by_kind["column_renamed"]:
            k = c.table
            self.add("columns", c.object, f"ALTER TABLE {k} RENAME COLUMN {quote(c.replica_name)} TO {quote(c.name)}",
                     f"ALTER TABLE {k} RENAME COLUMN {quote(c.name)} TO {quote(c.replica_name)}", reason="rename from config")
        for c in by_kind["column_missing"]:
            t = self.m.tables[c.table]
            col = Column(**c.master)
            k = c.table
            rows = self.replica_rows(k)
            pre = None
            cls: Classification = "safe"
            reason = ""
            if not col.nullable and col.default is None and not col.identity and not col.generated:
                cls, reason = "data-dependent", "NOT NULL without a default: the replica's table must be empty"
                pre = PreCheck(description=f"rows in {k} (a NOT NULL column without default needs an empty table)",
                               sql=f"SELECT count(*) FROM {k}", table=k, column=col.name)
            self.add("columns", c.object, f"ALTER TABLE {k} ADD COLUMN {self.col_def(t, col)}",
                     f"ALTER TABLE {k} DROP COLUMN {quote(col.name)}", cls, reason, pre)
            del rows
        for c in by_kind["column_type"]:
            self.alter_type(c)
        for c in by_kind["column_generated"]:
            self.unsupported.append(f"column {c.object}: generated expression changes need the column recreated by hand")
        for c in by_kind["column_collation"]:
            col = Column(**c.diff["column"][0])
            k = c.table
            rn = quote(c.replica_name or c.name)
            coll = f" COLLATE {col.collation}" if col.collation else ""
            old = Column(**c.diff["column"][1])
            ocoll = f" COLLATE {old.collation}" if old.collation else ""
            self.add("columns", c.object, f"ALTER TABLE {k} ALTER COLUMN {rn} TYPE {col.type}{coll}",
                     f"ALTER TABLE {k} ALTER COLUMN {rn} TYPE {old.type}{ocoll}", "data-dependent",
                     "collation change reorders and may break unique indexes")
        for c in by_kind["column_identity"]:
            k = c.table
            cn = quote(c.name)
            t = self.m.tables[k]
            mcol = Column(**c.diff["column"][0])
            if c.replica and c.master:
                self.add("columns", c.object, f"ALTER TABLE {k} ALTER COLUMN {cn} SET GENERATED {c.master.upper()}",
                         f"ALTER TABLE {k} ALTER COLUMN {cn} SET GENERATED {c.replica.upper()}")
            elif c.master:
                rcol = Column(**c.diff["column"][1])
                if rcol.default is not None:
                    self.add("columns", c.object, f"ALTER TABLE {k} ALTER COLUMN {cn} DROP DEFAULT",
                             f"ALTER TABLE {k} ALTER COLUMN {cn} SET DEFAULT {rcol.default}")
                self.add("columns", c.object, f"ALTER TABLE {k} ALTER COLUMN {cn} ADD GENERATED {c.master.upper()} AS IDENTITY{self.identity_options(t, mcol)}",
                         f"ALTER TABLE {k} ALTER COLUMN {cn} DROP IDENTITY", "data-dependent",
                         "the identity starts at its START value: existing rows may collide",
                         PreCheck(description=f"max({c.name}) on the replica vs the identity start", sql=None))
            else:
                self.add("columns", c.object, f"ALTER TABLE {k} ALTER COLUMN {cn} DROP IDENTITY",
                         f"ALTER TABLE {k} ALTER COLUMN {cn} ADD GENERATED {c.replica.upper()} AS IDENTITY")
        for c in by_kind["column_default"]:
            k = c.table
            cn = quote(c.name)
            mcol = Column(**c.diff["column"][0])
            if mcol.identity or mcol.generated:
                continue
            new = f"ALTER TABLE {k} ALTER COLUMN {cn} SET DEFAULT {c.master}" if c.master is not None else f"ALTER TABLE {k} ALTER COLUMN {cn} DROP DEFAULT"
            old = f"ALTER TABLE {k} ALTER COLUMN {cn} SET DEFAULT {c.replica}" if c.replica is not None else f"ALTER TABLE {k} ALTER COLUMN {cn} DROP DEFAULT"
            if c.replica is not None and re.match(r"^nextval\(", c.replica or "") and c.master is None:
                pass
            self.add("columns", c.object, new, old)
        for c in by_kind["column_nullable"]:
            k = c.table
            cn = quote(c.name)
            rn = c.replica_name or c.name
            if c.master is False:  # master NOT NULL
                pre = PreCheck(description=f"NULLs in {k}.{quote(c.name)}",
                               sql=sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(sql.SQL(k), sql.Identifier(rn)).as_string(None),
                               table=k, column=c.name)
                self.add("columns", c.object, f"ALTER TABLE {k} ALTER COLUMN {cn} SET NOT NULL",
                         f"ALTER TABLE {k} ALTER COLUMN {cn} DROP NOT NULL", "data-dependent", "the column may hold NULLs", pre)
            else:
                self.add("columns", c.object, f"ALTER TABLE {k} ALTER COLUMN {cn} DROP NOT NULL",
                         f"ALTER TABLE {k} ALTER COLUMN {cn} SET NOT NULL")
        for c in by_kind["column_extra"]:
            if c.table in extra_tables:
                continue
            col = Column(**c.replica)
            t = self.r.tables[c.table]
            self.add("drop-extra", c.object, f"ALTER TABLE {c.table} DROP COLUMN {quote(col.name)}",
                     f"ALTER TABLE {c.table} ADD COLUMN {self.col_def_replica(t, col)}", "destructive",
                     f"column only on the replica; its values are lost (rows: {self.replica_rows(c.table)})", table=c.table)

    def col_def_replica(self, t: Table, c: Column) -> str:
        saved = self.m
        self.m = self.r
        try:
            return self.col_def(t, c)
        finally:
            self.m = saved

    def alter_type(self, c: Change) -> None:
        k = c.table
        cn = quote(c.name)
        rn = c.replica_name or c.name
        old, new = c.replica, c.master
        cls, reason = classify_type_change(old, new)
        mcol = Column(**c.diff["column"][0])
        rcol = Column(**c.diff["column"][1])
        pre = None
        if cls != "safe":
            pre = self.type_precheck(k, rn, old, new)
        steps_before, steps_after = [], []
        if rcol.default is not None and not rcol.identity:
            # a default of the old type may not cast; it is set again by the default step
            steps_before.append((f"ALTER TABLE {k} ALTER COLUMN {cn} DROP DEFAULT", f"ALTER TABLE {k} ALTER COLUMN {cn} SET DEFAULT {rcol.default}"))
            if mcol.default is not None and mcol.default == rcol.default:
                steps_after.append((f"ALTER TABLE {k} ALTER COLUMN {cn} SET DEFAULT {mcol.default}", f"ALTER TABLE {k} ALTER COLUMN {cn} DROP DEFAULT"))
        for s, rb in steps_before:
            self.add("columns", c.object, s, rb)
        coll = f" COLLATE {mcol.collation}" if mcol.collation else ""
        self.add("columns", c.object, f"ALTER TABLE {k} ALTER COLUMN {cn} TYPE {new}{coll} USING {cn}::{new}",
                 f"ALTER TABLE {k} ALTER COLUMN {cn} TYPE {old} USING {cn}::{old}", cls, reason, pre, table=k)
        for s, rb in steps_after:
            self.add("columns", c.object, s, rb)

    def type_precheck(self, k: str, col: str, old: str, new: str) -> PreCheck:
        name, mods, arr = _split_type(new)
        cid = sql.Identifier(col)
        desc = f"values of {k}.{quote(col)} that do not fit {new}"
        q: sql.Composable | None = None
        if not arr:
            if name in ("character varying", "character", "varchar") and mods:
                q = sql.SQL("SELECT count(*) FROM {} WHERE length({}::text) > {}").format(sql.SQL(k), cid, sql.Literal(mods[0]))
            elif name in _INT_RANK or name == "numeric":
                if name in _INT_RANK:
                    lo, hi = {1: (-32768, 32767), 2: (-2147483648, 2147483647), 3: (-9223372036854775808, 9223372036854775807)}[_INT_RANK[name]]
                    test = sql.SQL("NOT ({c}::text ~ '^\\s*[-+]?[0-9]+\\s*$') OR {c}::text::numeric NOT BETWEEN {lo} AND {hi}").format(
                        c=cid, lo=sql.Literal(lo), hi=sql.Literal(hi))
                    if _split_type(old)[0] in {*_INT_RANK, "numeric", "real", "double precision"}:
                        test = sql.SQL("round({c}::numeric) NOT BETWEEN {lo} AND {hi}").format(c=cid, lo=sql.Literal(lo), hi=sql.Literal(hi))
                else:
                    num = sql.SQL("NOT ({c}::text ~ '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?\\s*$')").format(c=cid)
                    if mods:
                        p, s = (mods + [0])[:2]
                        fit = sql.SQL("abs(round({c}::text::numeric, {s})) >= {lim}").format(c=cid, s=sql.Literal(s), lim=sql.Literal(10 ** (p - s)))
                        test = sql.SQL("{} OR ({})").format(num, fit) if _split_type(old)[0] in _TEXTY else fit
                    else:
                        test = num
                q = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL AND ({})").format(sql.SQL(k), cid, test)
        if q is None and self.r.server_version >= 160000:
            q = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL AND NOT pg_input_is_valid({}::text, {})").format(
                sql.SQL(k), cid, cid, sql.Literal(new))
        if q is None:
            desc = f"non-NULL values of {k}.{quote(col)} to cast to {new} (cannot test the cast before PostgreSQL 16)"
            return PreCheck(description=desc, sql=None, table=k, column=col)
        return PreCheck(description=desc, sql=q.as_string(None), table=k, column=col)

    # -- constraints ---------------------------------------------------------------------------

    def constraints(self, by_kind):
        for c in by_kind["constraint_missing"] + by_kind["constraint_changed"]:
            if c.table in self.new_tables:
                continue
            t = self.m.tables[c.table]
            con = Constraint(**c.master)
            if c.kind == "constraint_changed" and c.diff.keys() == {"validated"}:
                if con.validated:
                    self.add_validate(t, con)
                continue
            self.add_constraint(t, con, new_table=False)

    def add_constraint(self, t: Table, con: Constraint, new_table: bool) -> None:
        k = t.key
        obj = f"{k}/{con.name}"
        cn = quote(con.name)
        drop = f"ALTER TABLE {k} DROP CONSTRAINT {cn}"
        definition = strip_not_valid(con.definition)
        if con.kind == "foreign key":
            partitioned = t.kind == "partitioned table"
            if partitioned or new_table:
                self.add("foreign-keys", obj, f"ALTER TABLE {k} ADD CONSTRAINT {cn} {definition}" + ("" if con.validated or partitioned else " NOT VALID"), drop)
                return
            self.add("foreign-keys", obj, f"ALTER TABLE {k} ADD CONSTRAINT {cn} {definition} NOT VALID", drop,
                     reason="added NOT VALID, validated separately")
            if con.validated:
                self.add_validate(t, con)
            return
        pre = None
        cls: Classification = "safe"
        reason = ""
        if not new_table:
            cols = [self.replica_col(k, x) for x in con.columns]
            if con.kind in ("primary key", "unique"):
                cls, reason = "data-dependent", "existing rows may hold duplicates" + (" or NULLs" if con.kind == "primary key" else "")
                pre = self.dup_precheck(k, con, cols)
            elif con.kind == "check":
                cls, reason = "data-dependent", "existing rows may violate the check"
                if con.validated:
                    pre = self.check_precheck(k, con, cols)
                else:
                    cls, reason = "safe", "NOT VALID on the master: existing rows are not checked"
            elif con.kind == "exclusion":
                cls, reason = "data-dependent", "existing rows may conflict"
                pre = PreCheck(description=f"conflicting rows for exclusion constraint {con.name} (not pre-checked: any conflict fails the migration, which then rolls back)", sql=None, table=k)
        suffix = "" if con.validated or con.kind != "check" else " NOT VALID"
        self.add("constraints", obj, f"ALTER TABLE {k} ADD CONSTRAINT {cn} {definition}{suffix}", drop, cls, reason, pre)

    def add_validate(self, t: Table, con: Constraint) -> None:
        k = t.key
        cn = quote(con.name)
        pre = None
        if con.kind == "foreign key":
            pre = self.orphan_precheck(k, con)
        self.add("validate", f"{k}/{con.name}", f"ALTER TABLE {k} VALIDATE CONSTRAINT {cn}", None,
                 "data-dependent", "existing rows may violate it" if con.kind != "foreign key" else "replica rows may reference missing keys (orphans)", pre)

    def dup_precheck(self, k: str, con: Constraint, cols: list[str | None]) -> PreCheck:
        if k in self.new_tables or not cols:
            return PreCheck(description="new table: empty", sql=None, ok=True, result=0)
        present = [c for c in cols if c is not None]
        if len(present) < len(cols):
            # a new column is NULL everywhere: no duplicates for UNIQUE, every row a NULL for a PK
            if con.kind == "primary key":
                return PreCheck(description=f"rows of {k} (a new key column is NULL in every existing row)", sql=f"SELECT count(*) FROM {k}", table=k)
            return PreCheck(description="a new column is NULL everywhere: no duplicates", sql=None, ok=True, result=0)
        idents = sql.SQL(", ").join(sql.Identifier(c) for c in present)
        notnull = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in present)
        q = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {nn} GROUP BY {c} HAVING count(*) > 1) d").format(t=sql.SQL(k), nn=notnull, c=idents)
        desc = f"duplicate ({', '.join(present)}) groups in {k}"
        if con.kind == "primary key":
            anynull = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in present)
            q = sql.SQL("SELECT ({}) + (SELECT count(*) FROM {} WHERE {})").format(q, sql.SQL(k), anynull)
            desc += " plus rows with a NULL key"
        return PreCheck(description=desc, sql=q.as_string(None), table=k, column=",".join(present))

    def check_precheck(self, k: str, con: Constraint, cols: list[str | None]) -> PreCheck:
        m = re.match(r"^CHECK\s*\((.*)\)\s*$", strip_not_valid(con.definition), re.S)
        if not m:
            return PreCheck(description=f"rows violating {con.name} (not pre-checked)", sql=None, table=k)
        expr = m.group(1)
        if any(c is None for c in cols) or any(self.replica_col(k, x) != x for x in con.columns):
            return PreCheck(description=f"rows violating {con.name} (refers to new or renamed columns: checked when applied)", sql=None, table=k)
        return PreCheck(description=f"rows of {k} violating {con.name}",
                        sql=f"SELECT count(*) FROM {k} WHERE NOT coalesce(({expr}), true)", table=k)

    def orphan_precheck(self, k: str, con: Constraint) -> PreCheck:
        cols = [self.replica_col(k, x) for x in con.columns]
        ref = con.referenced_table or ""
        if k in self.new_tables:
            return PreCheck(description="new table: empty", sql=None, ok=True, result=0)
        if any(c is None for c in cols):
            return PreCheck(description="a new column is NULL everywhere: no orphans", sql=None, ok=True, result=0)
        child = [sql.Identifier(c) for c in cols if c]
        notnull = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(c) for c in child)
        desc = f"rows of {k} whose ({', '.join(c for c in cols if c)}) has no match in {ref}"
        if ref in self.new_tables or ref not in self.r.tables:
            q = sql.SQL("SELECT count(*) FROM {} c WHERE {}").format(sql.SQL(k), notnull)
            return PreCheck(description=desc + " (new, empty on the replica)", sql=q.as_string(None), table=k, column=",".join(c for c in cols if c))
        rcols = [self.replica_col(ref, x) for x in (con.referenced_columns or [])]
        if any(x is None for x in rcols):
            q = sql.SQL("SELECT count(*) FROM {} c WHERE {}").format(sql.SQL(k), notnull)
            return PreCheck(description=desc, sql=q.as_string(None), table=k)
        match = sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(sql.Identifier(pc), cc) for pc, cc in zip(rcols, child))  # type: ignore[arg-type]
        q = sql.SQL("SELECT count(*) FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(sql.SQL(k), notnull, sql.SQL(ref), match)
        return PreCheck(description=desc, sql=q.as_string(None), table=k, column=",".join(c for c in cols if c))

    # -- indexes, views, triggers, policies, comments ------------------------------------------

    def indexes(self, by_kind):
        for c in by_kind["index_missing"] + by_kind["index_changed"]:
            if c.table in self.new_tables or c.table in self.dropped_views:
                continue
            owner = self.m.tables.get(c.table) or self.m.views.get(c.table)
            cls: Classification = "data-dependent" if c.master.get("unique") else "safe"
            pre = None
            if c.master.get("unique") and not c.master.get("predicate") and None not in c.master.get("columns", []) and isinstance(owner, Table):
                fake = Constraint(name=c.name, kind="unique", definition="", columns=[x for x in c.master["columns"]])
                pre = self.dup_precheck(c.table, fake, [self.replica_col(c.table, x) for x in fake.columns])
            self.add("indexes", c.object, c.master["definition"], f"DROP INDEX {index_ref(owner, c.name)}", cls,
                     "existing rows may hold duplicates" if cls != "safe" else "", pre)

    def view_sql(self, v: View, schema: Schema) -> str:
        kind = "MATERIALIZED VIEW" if v.materialized else "VIEW"
        opts = f" WITH ({', '.join(v.options)})" if v.options else ""
        body = v.definition.rstrip().rstrip(";")
        text = f"CREATE {kind} {v.key}{opts} AS\n{body}"
        if v.materialized:
            text += "\nWITH DATA" if v.populated is not False else "\nWITH NO DATA"
        return text

    def views(self, by_kind):
        create = {c.object for c in by_kind["view_missing"]} | {k for k in self.dropped_views if k in self.m.views}
        for key in _topo(self.m.views, create):
            v = self.m.views[key]
            kind = "MATERIALIZED VIEW" if v.materialized else "VIEW"
            self.add("views", key, self.view_sql(v, self.m), f"DROP {kind} {key}")
            if v.comment is not None:
                self.add("comments", key, f"COMMENT ON {kind} {key} IS {lit(v.comment)}", f"COMMENT ON {kind} {key} IS NULL")
            for cn, col in v.columns.items():
                if col.comment is not None:
                    self.add("comments", f"{key}.{quote(cn)}", f"COMMENT ON COLUMN {key}.{quote(cn)} IS {lit(col.comment)}",
                             f"COMMENT ON COLUMN {key}.{quote(cn)} IS NULL")
            for idx in v.indexes.values():
                self.add("views", f"{key}/{idx.name}", idx.definition, f"DROP INDEX {index_ref(v, idx.name)}")
            for trg in v.triggers.values():
                self.add_trigger(v, trg.model_dump(mode="json"))

    def add_trigger(self, owner: Table | View, trg: dict) -> None:
        k = owner.key
        self.add("triggers", f"{k}/{trg['name']}", trg["definition"], f"DROP TRIGGER {quote(trg['name'])} ON {k}")
        state = {"disabled": "DISABLE", "replica": "ENABLE REPLICA", "always": "ENABLE ALWAYS"}.get(trg.get("enabled", "origin"))
        if state:
            self.add("triggers", f"{k}/{trg['name']}", f"ALTER TABLE {k} {state} TRIGGER {quote(trg['name'])}",
                     f"ALTER TABLE {k} ENABLE TRIGGER {quote(trg['name'])}")

    def triggers(self, by_kind):
        for c in by_kind["trigger_missing"] + by_kind["trigger_changed"]:
            if c.table in self.new_tables or c.table in self.dropped_views:
                continue
            owner = self.m.tables.get(c.table) or self.m.views.get(c.table)
            self.add_trigger(owner, c.master)

    def policy_sql(self, tkey: str, p: dict) -> str:
        text = f"CREATE POLICY {quote(p['name'])} ON {tkey} AS {'PERMISSIVE' if p['permissive'] else 'RESTRICTIVE'} FOR {p['command']}"
        roles = p.get("roles") or ["public"]
        text += " TO " + ", ".join("PUBLIC" if r == "public" else quote(r) for r in roles)
        if p.get("using") is not None:
            text += f" USING ({p['using']})"
        if p.get("with_check") is not None:
            text += f" WITH CHECK ({p['with_check']})"
        return text

    def policies(self, by_kind):
        for c in by_kind["policy_missing"] + by_kind["policy_changed"]:
            if c.table in self.new_tables:
                continue
            self.add("policies", c.object, self.policy_sql(c.table, c.master), f"DROP POLICY {quote(c.name)} ON {c.table}")

    def comments(self, by_kind):
        def stmt(target: str, value: str | None) -> str:
            return f"COMMENT ON {target} IS {lit(value) if value is not None else 'NULL'}"

        for c in by_kind["table_comment"]:
            self.add("comments", c.object, stmt(f"TABLE {c.object}", c.master), stmt(f"TABLE {c.object}", c.replica))
        for c in by_kind["column_comment"]:
            self.add("comments", c.object, stmt(f"COLUMN {c.table}.{quote(c.name)}", c.master), stmt(f"COLUMN {c.table}.{quote(c.name)}", c.replica))
        for c in by_kind["view_comment"]:
            kind = "MATERIALIZED VIEW" if self.m.views[c.object].materialized else "VIEW"
            self.add("comments", c.object, stmt(f"{kind} {c.object}", c.master), stmt(f"{kind} {c.object}", c.replica))
        for what, kw in (("schema", "SCHEMA"), ("enum", "TYPE"), ("domain", "DOMAIN"), ("sequence", "SEQUENCE"), ("function", "FUNCTION")):
            for c in by_kind[f"{what}_comment"]:
                if what == "function" and self.m.functions[c.object].kind == "procedure":
                    kw = "PROCEDURE"
                self.add("comments", c.object, stmt(f"{kw} {c.object}", c.master), stmt(f"{kw} {c.object}", c.replica))
        for c in by_kind["constraint_comment"]:
            self.add("comments", c.object, stmt(f"CONSTRAINT {quote(c.name)} ON {c.table}", c.master), stmt(f"CONSTRAINT {quote(c.name)} ON {c.table}", c.replica))
        for c in by_kind["index_comment"]:
            owner = self.m.tables.get(c.table) or self.m.views.get(c.table)
            self.add("comments", c.object, stmt(f"INDEX {index_ref(owner, c.name)}", c.master), stmt(f"INDEX {index_ref(owner, c.name)}", c.replica))
        for c in by_kind["trigger_comment"]:
            self.add("comments", c.object, stmt(f"TRIGGER {quote(c.name)} ON {c.table}", c.master), stmt(f"TRIGGER {quote(c.name)} ON {c.table}", c.replica))
        # comments of recreated objects
        for c in by_kind["function_missing"] + by_kind["function_changed"]:
            if c.master.get("comment") is not None and c.master.get("definition"):
                kw = "PROCEDURE" if c.master["kind"] == "procedure" else "FUNCTION"
                self.add("comments", c.object, stmt(f"{kw} {c.object}", c.master["comment"]), stmt(f"{kw} {c.object}", None))
        for kind, kw in (("enum_missing", "TYPE"), ("domain_missing", "DOMAIN"), ("sequence_missing", "SEQUENCE"), ("schema_missing", "SCHEMA")):
            for c in by_kind[kind]:
                if c.master.get("comment") is not None:
                    self.add("comments", c.object, stmt(f"{kw} {c.object}", c.master["comment"]), stmt(f"{kw} {c.object}", None))
        for c in by_kind["enum_labels"]:
            if c.object in self.enum_recreates and self.m.enums[c.object].comment is not None:
                self.add("comments", c.object, stmt(f"TYPE {c.object}", self.m.enums[c.object].comment), stmt(f"TYPE {c.object}", None))
        for c in by_kind["column_missing"]:
            if c.master.get("comment") is not None:
                self.add("comments", c.object, stmt(f"COLUMN {c.table}.{quote(c.name)}", c.master["comment"]), stmt(f"COLUMN {c.table}.{quote(c.name)}", None))
        for what in ("constraint", "index", "trigger", "policy"):
            for c in by_kind[f"{what}_missing"] + by_kind[f"{what}_changed"]:
                if c.table in self.new_tables or not c.master.get("comment"):
                    continue
                if what == "index":
                    owner = self.m.tables.get(c.table) or self.m.views.get(c.table)
                    target = f"INDEX {index_ref(owner, c.name)}"
                else:
                    target = f"{what.upper()} {quote(c.name)} ON {c.table}"
                self.add("comments", c.object, stmt(target, c.master["comment"]), stmt(target, None))

    def grants(self, by_kind):
        kw = {"table": "TABLE", "view": "TABLE", "sequence": "SEQUENCE", "function": "FUNCTION", "schema": "SCHEMA"}
        for c in by_kind["grant_missing"]:
            g = c.master
            who = "PUBLIC" if g["grantee"] == "PUBLIC" else quote(g["grantee"])
            on = f"{kw[g['on']]} {c.object}"
            self.add("comments", c.object, f"GRANT {g['privilege']} ON {on} TO {who}" + (" WITH GRANT OPTION" if g["grantable"] else ""),
                     f"REVOKE {g['privilege']} ON {on} FROM {who}", reason="privilege", )
        for c in by_kind["grant_extra"]:
            g = c.replica
            who = "PUBLIC" if g["grantee"] == "PUBLIC" else quote(g["grantee"])
            on = f"{kw[g['on']]} {c.object}"
            self.add("comments", c.object, f"REVOKE {g['privilege']} ON {on} FROM {who}",
                     f"GRANT {g['privilege']} ON {on} TO {who}", "destructive", "privilege only on the replica")

    def drop_extra(self, by_kind):
        extra_tables = [self.r.tables[c.object] for c in by_kind["table_extra"]]
        # children before parents
        for t in reversed(_topo_tables(extra_tables)):
            if t.partition_of and t.partition_of in {x.key for x in extra_tables}:
                continue  # dropped with its parent
            rows = self.replica_rows(t.key)
            self.add("drop-extra", t.key, f"DROP TABLE {t.key}", self.drop_table_rollback(t), "destructive",
                     f"table only on the replica ({rows if rows is not None else '?'} rows)", table=t.key)
        for c in by_kind["function_extra"]:
            f = c.replica
            kw = "PROCEDURE" if f["kind"] == "procedure" else ("AGGREGATE" if f["kind"] == "aggregate" else "FUNCTION")
            self.add("drop-extra", c.object, f"DROP {kw} {c.object}", f.get("definition"), "destructive", "only on the replica")
        for c in by_kind["sequence_extra"]:
            s = Sequence(**c.replica)
            if s.owned_by_table and s.owned_by_table in {x.key for x in extra_tables}:
                continue
            self.add("drop-extra", c.object, f"DROP SEQUENCE {c.object}", f"CREATE SEQUENCE {s.key} {self.seq_options(s, as_type=True)}",
                     "destructive", "only on the replica")
        for c in by_kind["domain_extra"]:
            self.add("drop-types", c.object, f"DROP DOMAIN {c.object}", self.domain_sql(c.replica), "destructive", "only on the replica")
        for c in by_kind["enum_extra"]:
            labels = ", ".join(lit(x) for x in c.replica["labels"])
            self.add("drop-types", c.object, f"DROP TYPE {c.object}", f"CREATE TYPE {c.object} AS ENUM ({labels})", "destructive", "only on the replica")
        for c in by_kind["schema_extra"]:
            self.add("drop-types", c.object, f"DROP SCHEMA {c.object}", f"CREATE SCHEMA {c.object}", "destructive", "only on the replica")
        for c in by_kind["extension_extra"]:
            e = c.replica
            self.add("drop-types", c.object, f"DROP EXTENSION {quote(e['name'])}",
                     f"CREATE EXTENSION {quote(e['name'])} WITH SCHEMA {quote(e['schema_name'])}", "destructive", "only on the replica")


def _topo(views: dict[str, View], wanted: set[str]) -> list[str]:
    """``wanted`` view keys ordered so that a view comes after the views it reads."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(k: str, stack: tuple[str, ...] = ()) -> None:
        if k in seen or k in stack:
            return
        for d in views[k].depends_on:
            if d in wanted and d in views:
                visit(d, stack + (k,))
        seen.add(k)
        out.append(k)

    for k in sorted(wanted):
        if k in views:
            visit(k)
    return out


def _topo_tables(tables: list[Table]) -> list[Table]:
    by_key = {t.key: t for t in tables}
    out: list[Table] = []
    seen: set[str] = set()

    def visit(t: Table) -> None:
        if t.key in seen:
            return
        seen.add(t.key)
        for p in ([t.partition_of] if t.partition_of else []) + list(t.inherits):
            if p in by_key:
                visit(by_key[p])
        out.append(t)

    for t in tables:
        visit(t)
    return out


def build_plan(
    master: Schema,
    replica: Schema,
    renames: dict[str, dict[str, str]] | None = None,
    changes: list[Change] | None = None,
) -> Plan:
    """The ordered, classified statements that turn ``replica``'s schema into ``master``'s."""
    if changes is None:
        changes = diff_schemas(master, replica, renames)
    b = _Builder(master, replica, changes, resolve_renames(renames, master))
    steps = b.build()
    return Plan(master_database=master.database, replica_database=replica.database, changes=changes,
                steps=steps, unsupported=b.unsupported)


def run_prechecks(plan: Plan, replica_conn: psycopg.Connection) -> Plan:
    """Run every pre-check against the replica in one READ ONLY transaction that is rolled back."""
    checks = [s.precheck for s in plan.steps if s.precheck is not None and s.precheck.sql and s.precheck.ok is None]
    if not checks:
        return plan
    was_autocommit = replica_conn.autocommit
    if replica_conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        replica_conn.rollback()
    replica_conn.autocommit = False
    try:
        with replica_conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            for p in checks:
                try:
                    cur.execute("SAVEPOINT precheck")
                    cur.execute(p.sql)  # type: ignore[arg-type]
                    row = cur.fetchone()
                    p.result = int(row[0]) if row and row[0] is not None else 0
                    p.ok = p.result == 0
                    cur.execute("RELEASE SAVEPOINT precheck")
                except psycopg.Error as e:
                    cur.execute("ROLLBACK TO SAVEPOINT precheck")
                    p.error = " ".join(str(e).split())[:200]
        replica_conn.rollback()
    finally:
        replica_conn.autocommit = was_autocommit
    return plan
