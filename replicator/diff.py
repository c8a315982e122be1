"""Compare two introspected schemas: the master's (the wanted state) and the replica's.

    from replicator.diff import diff_schemas
    changes = diff_schemas(master, replica, renames={"leads": {"project_id": "current_project_id"}})

Every difference is a typed :class:`Change`; ``object`` is the quoted, qualified key of the object
(``public."end"``, ``public.leads.current_project_id`` for a column, ``public.leads/leads_pkey``
for a constraint, index, trigger or policy). ``master`` / ``replica`` hold the object on each side
(``None`` where it is absent) and ``diff`` the attributes that differ, ``{attribute: [master,
replica]}``. Column attribute changes (``column_type``, ``column_nullable``, ...) hold the
attribute's value on each side instead, and both columns under ``diff["column"]``.

Each object kind is compared the same way (:data:`OBJECT_KINDS`, :func:`_compare`): missing on the
replica, only on the replica, different attributes, a different comment, different grants.

Renames (``replica column name = master column name``, per table) make the diff treat the pair as
one column: a ``column_renamed`` change, plus the usual attribute changes between the two, never a
missing + extra pair.

Objects that exist only because of another one are not compared on their own: columns a child
table inherits from its parent (partition or inheritance), constraints / indexes / triggers cloned
onto partitions (they follow the parent's), and the sequences behind identity columns (they follow
the column). A change to them is made once, on the parent.

Outside the compared schemas only what they use is looked at (``Schema.external``): a table or
function they use that the replica lacks is ``external_missing``; a role their policies or grants
name that the replica's cluster lacks is ``role_missing``. Extensions are compared when they live
in a compared schema, when compared objects use them, or when they live in Supabase's
``extensions`` schema and the replica's server can install them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Mapping, get_args

from psycopg import sql
from pydantic import BaseModel, Field

from . import viewdef
from .introspect.models import Column, Extension, Schema, Table, present_ref

ChangeKind = Literal[
    "extension_missing", "extension_extra", "extension_version",
    "schema_missing", "schema_extra", "schema_comment",
    "role_missing", "external_missing",
    "enum_missing", "enum_extra", "enum_labels", "enum_comment",
    "collation_missing", "collation_extra", "collation_changed", "collation_comment",
    "composite_missing", "composite_extra", "composite_changed", "composite_comment",
    "range_missing", "range_extra", "range_changed", "range_comment",
    "domain_missing", "domain_extra", "domain_changed", "domain_comment",
    "sequence_missing", "sequence_extra", "sequence_changed", "sequence_comment",
    "function_missing", "function_extra", "function_changed", "function_comment",
    "table_missing", "table_extra", "table_changed", "table_rls", "table_replica_identity", "table_comment",
    "column_missing", "column_extra", "column_renamed", "column_type", "column_nullable",
    "column_default", "column_identity", "column_generated", "column_collation", "column_comment",
    "constraint_missing", "constraint_extra", "constraint_changed", "constraint_comment",
    "index_missing", "index_extra", "index_changed", "index_comment",
    "trigger_missing", "trigger_extra", "trigger_changed", "trigger_comment",
    "rule_missing", "rule_extra", "rule_changed", "rule_comment",
    "policy_missing", "policy_extra", "policy_changed", "policy_comment",
    "view_missing", "view_extra", "view_changed", "view_comment",
    "grant_missing", "grant_extra",
]
KINDS: tuple[str, ...] = get_args(ChangeKind)

#: Supabase keeps the extensions a project installs in this schema.
EXTENSIONS_SCHEMA = "extensions"


class Change(BaseModel):
    """One difference between the master (wanted) and the replica (current)."""

    kind: ChangeKind
    object: str  # quoted qualified key
    detail: str
    master: Any = None
    replica: Any = None
    table: str | None = None  # key of the table it belongs to, if any
    name: str | None = None  # raw name of the nested object (column, constraint, ...), if any
    replica_name: str | None = None  # the replica's name of a renamed column
    diff: dict[str, Any] = Field(default_factory=dict)  # attribute -> [master, replica]

    def __str__(self) -> str:
        return f"{self.kind} {self.object}: {self.detail}"


_PLAIN = re.compile(r"[a-z_][a-z0-9_]*")  # quote_ident also quotes names containing "$"
#: PostgreSQL's reserved (and type/function-name) keywords, which quote_ident quotes.
RESERVED = frozenset(
    """ALL ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC AUTHORIZATION BETWEEN BIGINT BINARY BIT
    BOOLEAN BOTH CASE CAST CHAR CHARACTER CHECK COALESCE COLLATE COLLATION COLUMN CONCURRENTLY
    CONSTRAINT CREATE CROSS CURRENT_CATALOG CURRENT_DATE CURRENT_ROLE CURRENT_SCHEMA CURRENT_TIME
    CURRENT_TIMESTAMP CURRENT_USER DEC DECIMAL DEFAULT DEFERRABLE DESC DISTINCT DO ELSE END EXCEPT
    EXISTS EXTRACT FALSE FETCH FLOAT FOR FOREIGN FREEZE FROM FULL GRANT GREATEST GROUP GROUPING
    HAVING ILIKE IN INITIALLY INNER INOUT INT INTEGER INTERSECT INTERVAL INTO IS ISNULL JOIN
    LATERAL LEADING LEAST LEFT LIKE LIMIT LOCALTIME LOCALTIMESTAMP NATIONAL NATURAL NCHAR NONE
    NORMALIZE NOT NOTNULL NULL NULLIF NUMERIC OFFSET ON ONLY OR ORDER OUT OUTER OVERLAPS OVERLAY
    PLACING POSITION PRECISION PRIMARY REAL REFERENCES RETURNING RIGHT ROW SELECT SESSION_USER
    SETOF SIMILAR SMALLINT SOME SUBSTRING SYMMETRIC SYSTEM_USER TABLE TABLESAMPLE THEN TIME
    TIMESTAMP TO TRAILING TREAT TRIM TRUE UNION UNIQUE USER USING VALUES VARCHAR VARIADIC VERBOSE
    WHEN WHERE WINDOW WITH XMLATTRIBUTES XMLCONCAT XMLELEMENT XMLEXISTS XMLFOREST XMLNAMESPACES
    XMLPARSE XMLPI XMLROOT XMLSERIALIZE XMLTABLE JSON_ARRAY JSON_ARRAYAGG JSON_OBJECT
    JSON_OBJECTAGG JSON_SCALAR JSON_SERIALIZE JSON_QUERY JSON_VALUE JSON_EXISTS JSON_TABLE
    MERGE_ACTION""".split()
)


def quote(name: str) -> str:
    """An identifier quoted exactly as PostgreSQL's quote_ident does (via psycopg.sql)."""
    if _PLAIN.fullmatch(name) and name.upper() not in RESERVED:
        return name
    return sql.Identifier(name).as_string(None)


_CAST_LITERAL = re.compile(r"\(('(?:[^']|'')*'::[a-z][a-z0-9_ .\"]*?)\)::text\b")
_ARRAY_CAST = re.compile(r"\(ARRAY\[([^\[\]]*)\]\)::text\[\]")


def normalize_expr(text: str | None) -> str | None:
    """Canonical text of a deparsed expression, for comparison only.

    PostgreSQL does not deparse every expression to a fixed point: ``x = ANY (ARRAY['a'::varchar])``
    becomes ``ANY ((ARRAY['a'::character varying])::text[])`` on one server and
    ``ANY (ARRAY[('a'::character varying)::text])`` once recreated from that text. Both mean the same.
    """
    if text is None:
        return None
    prev = None
    while prev != text:
        prev = text
        text = _CAST_LITERAL.sub(r"\1", text)
        text = _ARRAY_CAST.sub(r"ARRAY[\1]", text)
    return text


def member_key(table_key: str, name: str) -> str:
    return f"{table_key}.{quote(name)}"


def nested_key(table_key: str, name: str) -> str:
    return f"{table_key}/{name}"


def resolve_renames(
    renames: dict[str, dict[str, str]] | None, master: Schema
) -> dict[str, dict[str, str]]:
    """Map table key -> {replica column: master column}; config keys may be bare or qualified."""
    out: dict[str, dict[str, str]] = {}
    for name, cols in (renames or {}).items():
        if not cols:
            continue
        for t in master.tables.values():
            if name in (t.key, t.name, f"{t.schema_name}.{t.name}") and (
                "." in name or t.schema_name == "public" or t.key == name
            ):
                out.setdefault(t.key, {}).update(cols)
                break
    return out


def _dump(obj: Any, exclude: Iterable[str] = ()) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", exclude=set(exclude))
    return obj


def _norm(v: Any) -> Any:
    """Deparsed expressions compare by their canonical text, at any depth."""
    if isinstance(v, str):
        return normalize_expr(v)
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


# -------------------------------------------------------------------------------------------------
# one comparison for every kind


@dataclass(frozen=True)
class ObjectKind:
    """How one kind of object is compared.

    ``compare`` names the attributes that matter (``None``: every attribute but ``ignore``);
    ``changed`` is the change kind for a difference in them (default ``<name>_changed``);
    ``comment``: comments are compared (as ``<name>_comment``); ``grants``: the GRANT object type,
    when privileges are compared; ``label`` names an object in details; ``same``: for an attribute, how
    two texts that differ may still mean the same (another release's deparsing)."""

    name: str
    compare: tuple[str, ...] | None = None
    ignore: frozenset[str] = frozenset({"comment", "grants"})
    changed: str | None = None
    comment: bool = True
    grants: str | None = None
    label: Callable[[Any], str] | None = None
    same: Mapping[str, Callable[[Any, Any], bool]] = field(default_factory=dict)

    def describe(self, obj: Any) -> str:
        return self.label(obj) if self.label else self.name

    def differing(self, m: Any, r: Any) -> dict[str, list]:
        md, rd = _dump(m), _dump(r)
        attrs = self.compare if self.compare is not None else [a for a in md if a not in self.ignore]
        return {a: [md.get(a), rd.get(a)] for a in attrs if _norm(md.get(a)) != _norm(rd.get(a))
                and not (a in self.same and self.same[a](_norm(md.get(a)), _norm(rd.get(a))))}


EXTENSION = ObjectKind("extension", compare=("version",), changed="extension_version", comment=False)
SCHEMA = ObjectKind("schema", compare=(), grants="schema")
ENUM = ObjectKind("enum", compare=("labels",), changed="enum_labels")
COMPOSITE = ObjectKind("composite", label=lambda _: "composite type")
RANGE = ObjectKind("range", label=lambda _: "range type")
DOMAIN = ObjectKind("domain")
COLLATION = ObjectKind("collation")
SEQUENCE = ObjectKind("sequence", grants="sequence")
FUNCTION = ObjectKind("function", grants="function", label=lambda f: f.kind)
TABLE = ObjectKind("table", compare=("kind", "unlogged", "partition_of", "partition_bound", "partition_key",
                                     "inherits", "options"), grants="table", label=lambda t: t.kind)
VIEW = ObjectKind("view", compare=("materialized", "definition", "options"), grants="table",
                  label=lambda v: "materialized view" if v.materialized else "view",
                  same={"definition": viewdef.same})
CONSTRAINT = ObjectKind("constraint", compare=("definition", "validated"))
INDEX = ObjectKind("index", compare=("definition",))
TRIGGER = ObjectKind("trigger", compare=("definition", "enabled"))
RULE = ObjectKind("rule", compare=("definition", "enabled"))
POLICY = ObjectKind("policy", compare=("command", "permissive", "roles", "using", "with_check"))

#: Top-level kinds compared by :func:`_compare` alone, with where each side keeps them.
OBJECT_KINDS: tuple[tuple[ObjectKind, Callable[[Schema], Mapping[str, Any]]], ...] = (
    (SCHEMA, lambda s: s.namespaces),
    (ENUM, lambda s: s.enums),
    (COLLATION, lambda s: s.collations),
    (COMPOSITE, lambda s: s.composites),
    (RANGE, lambda s: s.ranges),
    (DOMAIN, lambda s: s.domains),
    (SEQUENCE, lambda s: {k: q for k, q in s.sequences.items() if not q.identity}),
    (FUNCTION, lambda s: s.functions),
)


@dataclass
class _Diff:
    """The changes found so far, and how to add more."""

    privileges: bool
    changes: list[Change] = field(default_factory=list)

    def add(self, **kw: Any) -> None:
        self.changes.append(Change(**kw))

    def compare(self, kind: ObjectKind, m: Mapping[str, Any], r: Mapping[str, Any], *,
                table: str | None = None, key: Callable[[str], str] = lambda k: k) -> list[tuple[str, Any, Any]]:
        """Missing / extra / changed / comment / grant changes of one kind; returns the pairs that
        exist on both sides, for callers that compare deeper."""
        nested = {"table": table, "name": None} if table else {}
        both = []
        for k, obj in m.items():
            if k not in r:
                self.add(kind=f"{kind.name}_missing", object=key(k), detail=f"{kind.describe(obj)} missing on replica",
                         master=_dump(obj), **(nested | ({"name": k} if table else {})))
        for k, obj in r.items():
            if k not in m:
                self.add(kind=f"{kind.name}_extra", object=key(k), detail=f"{kind.describe(obj)} only on replica",
                         replica=_dump(obj), **(nested | ({"name": k} if table else {})))
        for k, mo in m.items():
            if k not in r:
                continue
            ro = r[k]
            both.append((k, mo, ro))
            named = nested | ({"name": k} if table else {})
            d = kind.differing(mo, ro)
            if d:
                self.add(kind=kind.changed or f"{kind.name}_changed", object=key(k),
                         detail=f"{kind.describe(mo)} differs in {', '.join(d)}: " + _brief_diff(d),
                         master=_dump(mo), replica=_dump(ro), diff=d, **named)
            if kind.comment and getattr(mo, "comment", None) != getattr(ro, "comment", None):
                self.comment(f"{kind.name}_comment", key(k), mo.comment, ro.comment, **named)
            if kind.grants and self.privileges:
                self.grants(key(k), kind.grants, mo.grants, ro.grants)
        return both

    def comment(self, kind: str, key: str, m: str | None, r: str | None, **kw: Any) -> None:
        if m != r:
            detail = ("comment differs" if m and r else
                      "comment missing on replica" if m else "comment only on replica")
            self.add(kind=kind, object=key, detail=detail, master=m, replica=r, **kw)

    def grants(self, key: str, what: str, m: list, r: list) -> None:
        ms = {(g.grantee, g.privilege, g.grantable) for g in m}
        rs = {(g.grantee, g.privilege, g.grantable) for g in r}
        for g in sorted(ms - rs):
            self.add(kind="grant_missing", object=key, detail=f"{g[1]} to {g[0]} missing on replica",
                     master={"grantee": g[0], "privilege": g[1], "grantable": g[2], "on": what})
        for g in sorted(rs - ms):
            self.add(kind="grant_extra", object=key, detail=f"{g[1]} to {g[0]} only on replica",
                     replica={"grantee": g[0], "privilege": g[1], "grantable": g[2], "on": what})


def _brief_diff(d: dict[str, list]) -> str:
    def short(v: Any) -> str:
        text = " ".join(str(v).split())
        return text if len(text) <= 60 else text[:59] + "…"

    return "; ".join(f"{a} {short(r)!s} on replica, {short(m)!s} on master" for a, (m, r) in d.items())


# -------------------------------------------------------------------------------------------------


def diff_schemas(
    master: Schema, replica: Schema, renames: dict[str, dict[str, str]] | None = None
) -> list[Change]:
    """Every structural difference that turns ``replica`` into ``master``, in a stable order."""
    d = _Diff(privileges=master.with_privileges and replica.with_privileges)
    ren = resolve_renames(renames, master)

    d.compare(EXTENSION, extensions_in_scope(master, replica), extensions_in_scope(replica, master), key=quote)
    for kind, items in OBJECT_KINDS:
        d.compare(kind, items(master), items(replica))
    _outside(d, master, replica)

    for k, mt, rt in d.compare(TABLE, master.tables, replica.tables, key=lambda k: k):
        _diff_table(d, mt, rt, ren.get(k, {}), master, replica)
        _row_type_order(d, mt, rt, ren.get(k, {}), master)
    # table_* changes carry the table they are about
    for c in d.changes:
        if c.kind.startswith("table_") and c.table is None:
            c.table = c.object

    for k, mv, rv in d.compare(VIEW, master.views, replica.views):
        mc = {n: c.type for n, c in mv.columns.items()}
        rc = {n: c.type for n, c in rv.columns.items()}
        if mc != rc and not any(c.object == k and c.kind == "view_changed" for c in d.changes):
            d.add(kind="view_changed", object=k, detail="view differs in columns", master=_dump(mv),
                  replica=_dump(rv), diff={"columns": [mc, rc]})
        if any(c.object == k and c.kind == "view_changed" for c in d.changes):
            continue  # recreated whole, with its indexes and triggers
        for cn, col in mv.columns.items():
            if (rcol := rv.columns.get(cn)) is not None:
                d.comment("column_comment", member_key(k, cn), col.comment, rcol.comment, table=k, name=cn)
        d.compare(INDEX, mv.indexes, rv.indexes, table=k, key=lambda n, k=k: nested_key(k, n))
        d.compare(TRIGGER, mv.triggers, rv.triggers, table=k, key=lambda n, k=k: nested_key(k, n))
        d.compare(RULE, mv.rules, rv.rules, table=k, key=lambda n, k=k: nested_key(k, n))
    return d.changes


def extensions_in_scope(side: Schema, other: Schema) -> dict[str, Extension]:
    """The extensions of ``side`` that are compared: those in a compared schema, those compared
    objects use, and those in Supabase's ``extensions`` schema that ``other``'s server can install
    (an extension the replica's server does not ship, that nothing uses, is not a difference)."""
    used = {d.on_extension for d in side.dependencies if d.on_extension and d.schema_name in side.schemas}
    out = {}
    for name, e in side.extensions.items():
        if e.schema_name in side.schemas or name in used:
            out[name] = e
        elif e.schema_name == EXTENSIONS_SCHEMA and (
                name in other.extensions or not other.available_extensions or name in other.available_extensions):
            out[name] = e
    return out


def _outside(d: _Diff, master: Schema, replica: Schema) -> None:
    """Roles and objects outside the compared schemas that the master's compared schemas use and
    the replica lacks (it may have them with another definition: that is its own business)."""
    for role in sorted(master.roles_used()):
        # PostgreSQL's predefined roles (pg_database_owner, pg_read_all_data...) are in every cluster and
        # never created (the name is reserved); neither side's role list holds them
        if role not in replica.roles and not role.startswith("pg_"):
            d.add(kind="role_missing", object=quote(role), master=_dump(master.roles.get(role)),
                  detail=f"role {role} (named by the compared schemas' policies or grants) missing on the "
                         "replica's server (roles are cluster-wide)")
    ext, rext = master.external, replica.external
    kinds: list[tuple[str, str, Mapping[str, Any]]] = [
        ("type", "enum", ext.enums), ("type", "domain", ext.domains), ("type", "composite type", ext.composites),
        ("type", "range type", ext.ranges), ("table", "table", ext.tables), ("function", "function", ext.functions)]
    for ref_kind, label, objects in kinds:
        for key, obj in objects.items():
            if not rext.has(ref_kind, key):
                d.add(kind="external_missing", object=key, master={"kind": label, **_dump(obj)},
                      detail=f"{label} {key} (outside the compared schemas, used by them) missing on replica")
    for et in ext.triggers:
        if not rext.has("trigger", et.table, et.trigger.name):
            d.add(kind="external_missing", object=nested_key(et.table, et.trigger.name),
                  master={"kind": "trigger", "table": et.table, **_dump(et.trigger)}, table=et.table, name=et.trigger.name,
                  detail=f"trigger {et.trigger.name} on {et.table} (calls {et.trigger.function}) missing on replica")


def _parents(t: Table) -> tuple[str | None, tuple[str, ...]]:
    return t.partition_of, tuple(t.inherits)


_COLUMN_ATTRS = (
    ("type", "column_type"),
    ("nullable", "column_nullable"),
    ("default", "column_default"),
    ("identity", "column_identity"),
    ("generated", "column_generated"),
    ("collation", "column_collation"),
    ("comment", "column_comment"),
)


def _inherited(c: Column) -> bool:
    # snapshots written before `inherited` existed only know is_local (False for partition columns)
    return c.inherited or not c.is_local


IDENTITY_OPTIONS = ("increment", "min_value", "max_value", "start", "cache", "cycle")


def identity_options(schema: Schema, table: str, column: str) -> dict[str, Any] | None:
    """The sequence options of an identity column (its implicit sequence), None when unknown."""
    for s in schema.sequences.values():
        if s.identity and s.owned_by_table == table and s.owned_by_column == column:
            return {a: getattr(s, a) for a in IDENTITY_OPTIONS}
    return None


def returning_rows(master: Schema, table: str) -> set[str]:
    """The functions whose result is ``table``'s row type (``RETURNS t`` / ``RETURNS SETOF t``); one
    taking it as an argument only reads its fields by name."""
    return {f.key for f in master.functions.values() if f.result in (table, f"SETOF {table}")}


def positional_users(master: Schema, table: str) -> list[str]:
    """What reads ``table``'s row type by position: a column or composite attribute of that type (its
    values are stored as positional lists), a view calling a function that returns it (the view's
    definition names the function's columns in order: ``FROM f() f(id, a, b)``)."""
    returning = returning_rows(master, table)
    users = {f"column {x.key}.{quote(x.name or '')}" if x.kind == "column" else f"type {x.key}"
             for x in master.dependencies
             if x.kind in ("column", "type") and x.on_kind == "table" and x.on_key == table and x.on_name is None}
    users |= {f"view {x.key} (through {x.on_key})" for x in master.dependencies
              if x.kind == "view" and x.on_kind == "function" and x.on_key in returning}
    return sorted(users)


def _row_type_order(d: _Diff, m: Table, r: Table, renames: dict[str, str], master: Schema) -> None:
    """The replica's columns in another order than the master's, once migrate has appended the missing
    ones, where something reads the row type by position: a `table_changed` in `column_order`, which
    no ALTER TABLE can make (the plan leaves it to the user)."""
    as_master = [renames.get(c, c) for c in r.columns]
    after = [c for c in as_master if c in m.columns] + [c for c in m.columns if c not in as_master]
    if after == list(m.columns):
        return
    users = positional_users(master, m.key)
    if not users:
        return
    d.add(kind="table_changed", object=m.key, table=m.key,
          detail=f"columns ordered ({', '.join(after)}) on replica, ({', '.join(m.columns)}) on master, and "
                 f"read by position by {', '.join(users)}",
          master=_dump(m), replica=_dump(r), diff={"column_order": [list(m.columns), after]})


def _diff_table(d: _Diff, m: Table, r: Table, renames: dict[str, str], ms: Schema, rs: Schema) -> None:
    k = m.key
    if (m.rls_enabled, m.rls_forced) != (r.rls_enabled, r.rls_forced):
        d.add(kind="table_rls", object=k, table=k,
              detail=f"row level security enabled={r.rls_enabled} forced={r.rls_forced} on replica, "
                     f"enabled={m.rls_enabled} forced={m.rls_forced} on master",
              master={"enabled": m.rls_enabled, "forced": m.rls_forced},
              replica={"enabled": r.rls_enabled, "forced": r.rls_forced})

    if m.replica_identity != r.replica_identity:
        d.add(kind="table_replica_identity", object=k, table=k,
              detail=f"replica identity {r.replica_identity} on replica, {m.replica_identity} on master",
              master={"replica_identity": m.replica_identity}, replica={"replica_identity": r.replica_identity})

    # A column a child inherits is changed once, on its parent: it is compared here only when the
    # child's parents differ between the sides (an attach or detach is planned).
    same_parents = _parents(m) == _parents(r)
    mcols = {n: c for n, c in m.columns.items() if not (same_parents and _inherited(c))}
    rcols: dict[str, tuple[str, Column]] = {}  # master-side name -> (replica name, column)
    for n, c in r.columns.items():
        if same_parents and _inherited(c):
            continue
        target = renames.get(n)
        if target is not None and target in mcols and target not in r.columns:
            rcols[target] = (n, c)
        else:
            rcols.setdefault(n, (n, c))
    for n, c in mcols.items():
        if n not in rcols:
            if not (_inherited(c) and n in r.columns):
                d.add(kind="column_missing", object=member_key(k, n), detail=f"column {n} {c.type} missing on replica",
                      master=_dump(c), table=k, name=n)
            continue
        rname, rc = rcols[n]
        if rname != n:
            d.add(kind="column_renamed", object=member_key(k, n), detail=f"column {rname} on replica is {n} on master",
                  master=n, replica=rname, table=k, name=n, replica_name=rname)
        for attr, kind in _COLUMN_ATTRS:
            mv, rv = getattr(c, attr), getattr(rc, attr)
            if _norm(mv) != _norm(rv):
                d.add(kind=kind, object=member_key(k, n), detail=f"{attr}: {rv!r} on replica, {mv!r} on master",
                      master=mv, replica=rv, table=k, name=n, replica_name=rname,
                      diff={"column": [_dump(c), _dump(rc)]})
        if c.identity and c.identity == rc.identity:
            mo, ro = identity_options(ms, k, n), identity_options(rs, k, rname)
            if mo is not None and ro is not None and mo != ro:
                diff = {a: [mo[a], ro[a]] for a in IDENTITY_OPTIONS if mo[a] != ro[a]}
                d.add(kind="column_identity", object=member_key(k, n), table=k, name=n, replica_name=rname,
                      detail="identity sequence differs in " + _brief_diff(diff), master=c.identity, replica=rc.identity,
                      diff={"column": [_dump(c), _dump(rc)], "options": diff})
    for n, (rname, rc) in rcols.items():
        if n not in mcols and not (_inherited(rc) and n in m.columns):
            d.add(kind="column_extra", object=member_key(k, rname), detail=f"column {rname} {rc.type} only on replica",
                  replica=_dump(rc), table=k, name=rname, replica_name=rname)

    def nested(kind: ObjectKind, mi: Mapping[str, Any], ri: Mapping[str, Any]) -> None:
        d.compare(kind, mi, ri, table=k, key=lambda n: nested_key(k, n))

    nested(CONSTRAINT, {n: c for n, c in m.constraints.items() if not c.inherited},
           {n: c for n, c in r.constraints.items() if not c.inherited})
    nested(INDEX, {n: i for n, i in m.indexes.items() if i.constraint is None and not i.inherited},
           {n: i for n, i in r.indexes.items() if i.constraint is None and not i.inherited})
    # comments on the indexes behind constraints
    for n, i in m.indexes.items():
        ri = r.indexes.get(n)
        if i.constraint is not None and ri is not None and ri.constraint is not None:
            d.comment("index_comment", nested_key(k, n), i.comment, ri.comment, table=k, name=n)
    nested(TRIGGER, {n: t for n, t in m.triggers.items() if not t.inherited},
           {n: t for n, t in r.triggers.items() if not t.inherited})
    nested(POLICY, m.policies, r.policies)
    nested(RULE, m.rules, r.rules)


def diff_snapshot(old: Schema, new: Schema) -> list[Change]:
    """What changed on the master since a stored snapshot: ``old`` plays the replica, ``new`` the master.

    ``*_missing`` then reads "added since the snapshot", ``*_extra`` "removed since"."""
    return diff_schemas(new, old)


def summarize(changes: list[Change]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in changes:
        out[c.kind] = out.get(c.kind, 0) + 1
    return dict(sorted(out.items()))


__all__ = ["Change", "ChangeKind", "KINDS", "ObjectKind", "OBJECT_KINDS", "diff_schemas", "diff_snapshot",
           "extensions_in_scope", "member_key", "nested_key", "normalize_expr", "quote", "resolve_renames",
           "summarize", "present_ref"]
