"""Compare two introspected schemas: the master's (the wanted state) and the replica's.

    from replicator.diff import diff_schemas
    changes = diff_schemas(master, replica, renames={"leads": {"project_id": "current_project_id"}})

Every difference is a typed :class:`Change`; ``object`` is the quoted, qualified key of the object
(``public."end"``, ``public.leads.current_project_id`` for a column, ``public.leads/leads_pkey``
for a constraint, index, trigger or policy). ``master`` / ``replica`` hold the object (or attribute)
on each side, ``None`` where it is absent.

Renames (``replica column name = master column name``, per table) make the diff treat the pair as
one column: a ``column_renamed`` change, plus the usual attribute changes between the two, never a
missing + extra pair.

Objects that exist only because of another one are not compared on their own: columns inherited
from a parent, constraints / indexes / triggers cloned onto partitions (they follow the parent's),
and the sequences behind identity columns (they follow the column).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from deepdiff import DeepDiff
from psycopg import sql
from pydantic import BaseModel, Field

from .introspect.models import Column, Schema, Table

#: kinds, grouped by what they are about
KINDS = (
    "extension_missing", "extension_extra", "extension_version",
    "schema_missing", "schema_extra", "schema_comment",
    "enum_missing", "enum_extra", "enum_labels", "enum_comment",
    "domain_missing", "domain_extra", "domain_changed", "domain_comment",
    "sequence_missing", "sequence_extra", "sequence_changed", "sequence_comment",
    "function_missing", "function_extra", "function_changed", "function_comment",
    "table_missing", "table_extra", "table_changed", "table_rls", "table_comment",
    "column_missing", "column_extra", "column_renamed", "column_type", "column_nullable",
    "column_default", "column_identity", "column_generated", "column_collation", "column_comment",
    "constraint_missing", "constraint_extra", "constraint_changed", "constraint_comment",
    "index_missing", "index_extra", "index_changed", "index_comment",
    "trigger_missing", "trigger_extra", "trigger_changed", "trigger_comment",
    "policy_missing", "policy_extra", "policy_changed",
    "view_missing", "view_extra", "view_changed", "view_comment",
    "grant_missing", "grant_extra",
)


class Change(BaseModel):
    """One difference between the master (wanted) and the replica (current)."""

    kind: str
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


def _pairs(master: dict, replica: dict) -> tuple[list, list, list]:
    missing = [k for k in master if k not in replica]
    extra = [k for k in replica if k not in master]
    both = [k for k in master if k in replica]
    return missing, extra, both


def _dump(obj: Any, exclude: Iterable[str] = ()) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", exclude=set(exclude))
    return obj


def _normalize_tree(v: Any) -> Any:
    if isinstance(v, str):
        return normalize_expr(v)
    if isinstance(v, dict):
        return {k: _normalize_tree(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_normalize_tree(x) for x in v]
    return v


def _attr_diff(m: BaseModel, r: BaseModel, exclude: Iterable[str] = ()) -> dict[str, list]:
    """Top-level attributes that differ, as {attr: [master, replica]} (deepdiff for the walk)."""
    md, rd = _normalize_tree(_dump(m, exclude)), _normalize_tree(_dump(r, exclude))
    dd = DeepDiff(rd, md, ignore_order=False, view="tree")
    attrs: dict[str, list] = {}
    for items in dd.values():
        for item in items:
            path = item.path(output_format="list")
            if path:
                a = path[0]
                attrs[a] = [md.get(a), rd.get(a)]
    return attrs


def diff_schemas(
    master: Schema, replica: Schema, renames: dict[str, dict[str, str]] | None = None
) -> list[Change]:
    """Every structural difference that turns ``replica`` into ``master``, in a stable order."""
    ch: list[Change] = []
    add = ch.append
    ren = resolve_renames(renames, master)

    # extensions
    missing, extra, both = _pairs(master.extensions, replica.extensions)
    for k in missing:
        e = master.extensions[k]
        add(Change(kind="extension_missing", object=quote(k), detail=f"extension {k} {e.version} missing on replica", master=_dump(e)))
    for k in extra:
        add(Change(kind="extension_extra", object=quote(k), detail=f"extension {k} only on replica", replica=_dump(replica.extensions[k])))
    for k in both:
        m, r = master.extensions[k], replica.extensions[k]
        if m.version != r.version:
            add(Change(kind="extension_version", object=quote(k), detail=f"version {r.version} on replica, {m.version} on master", master=m.version, replica=r.version))

    # schemas
    missing, extra, both = _pairs(master.namespaces, replica.namespaces)
    for k in missing:
        add(Change(kind="schema_missing", object=k, detail="schema missing on replica", master=_dump(master.namespaces[k])))
    for k in extra:
        add(Change(kind="schema_extra", object=k, detail="schema only on replica", replica=_dump(replica.namespaces[k])))
    for k in both:
        _comment(ch, "schema_comment", k, master.namespaces[k].comment, replica.namespaces[k].comment)
        if master.with_privileges and replica.with_privileges:
            _grants(ch, k, "schema", master.namespaces[k].grants, replica.namespaces[k].grants)

    # enums
    missing, extra, both = _pairs(master.enums, replica.enums)
    for k in missing:
        add(Change(kind="enum_missing", object=k, detail=f"enum missing on replica ({', '.join(master.enums[k].labels)})", master=_dump(master.enums[k])))
    for k in extra:
        add(Change(kind="enum_extra", object=k, detail="enum only on replica", replica=_dump(replica.enums[k])))
    for k in both:
        m, r = master.enums[k], replica.enums[k]
        if m.labels != r.labels:
            add(Change(kind="enum_labels", object=k, detail=f"labels {r.labels} on replica, {m.labels} on master", master=m.labels, replica=r.labels))
        _comment(ch, "enum_comment", k, m.comment, r.comment)

    # domains
    missing, extra, both = _pairs(master.domains, replica.domains)
    for k in missing:
        add(Change(kind="domain_missing", object=k, detail="domain missing on replica", master=_dump(master.domains[k])))
    for k in extra:
        add(Change(kind="domain_extra", object=k, detail="domain only on replica", replica=_dump(replica.domains[k])))
    for k in both:
        m, r = master.domains[k], replica.domains[k]
        d = _attr_diff(m, r, exclude={"comment"})
        if d:
            add(Change(kind="domain_changed", object=k, detail=f"differs in {', '.join(d)}", master=_dump(m), replica=_dump(r), diff=d))
        _comment(ch, "domain_comment", k, m.comment, r.comment)

    # sequences (identity sequences follow their column)
    mseq = {k: s for k, s in master.sequences.items() if not s.identity}
    rseq = {k: s for k, s in replica.sequences.items() if not s.identity}
    missing, extra, both = _pairs(mseq, rseq)
    for k in missing:
        add(Change(kind="sequence_missing", object=k, detail="sequence missing on replica", master=_dump(mseq[k])))
    for k in extra:
        add(Change(kind="sequence_extra", object=k, detail="sequence only on replica", replica=_dump(rseq[k])))
    for k in both:
        d = _attr_diff(mseq[k], rseq[k], exclude={"comment", "grants"})
        if d:
            add(Change(kind="sequence_changed", object=k, detail=f"differs in {', '.join(d)}", master=_dump(mseq[k]), replica=_dump(rseq[k]), diff=d))
        _comment(ch, "sequence_comment", k, mseq[k].comment, rseq[k].comment)
        if master.with_privileges and replica.with_privileges:
            _grants(ch, k, "sequence", mseq[k].grants, rseq[k].grants)

    # functions
    missing, extra, both = _pairs(master.functions, replica.functions)
    for k in missing:
        add(Change(kind="function_missing", object=k, detail=f"{master.functions[k].kind} missing on replica", master=_dump(master.functions[k])))
    for k in extra:
        add(Change(kind="function_extra", object=k, detail=f"{replica.functions[k].kind} only on replica", replica=_dump(replica.functions[k])))
    for k in both:
        m, r = master.functions[k], replica.functions[k]
        d = _attr_diff(m, r, exclude={"comment", "grants"})
        if d:
            add(Change(kind="function_changed", object=k, detail=f"differs in {', '.join(d)}", master=_dump(m), replica=_dump(r), diff=d))
        _comment(ch, "function_comment", k, m.comment, r.comment)
        if master.with_privileges and replica.with_privileges:
            _grants(ch, k, "function", m.grants, r.grants)

    # tables
    missing, extra, both = _pairs(master.tables, replica.tables)
    for k in missing:
        t = master.tables[k]
        add(Change(kind="table_missing", object=k, detail=f"{t.kind} missing on replica ({len(t.columns)} columns)", master=_dump(t), table=k))
    for k in extra:
        t = replica.tables[k]
        add(Change(kind="table_extra", object=k, detail=f"{t.kind} only on replica ({len(t.columns)} columns)", replica=_dump(t), table=k))
    for k in both:
        _diff_table(ch, master.tables[k], replica.tables[k], ren.get(k, {}), master.with_privileges and replica.with_privileges)

    # views
    missing, extra, both = _pairs(master.views, replica.views)
    for k in missing:
        add(Change(kind="view_missing", object=k, detail=("materialized view" if master.views[k].materialized else "view") + " missing on replica", master=_dump(master.views[k])))
    for k in extra:
        add(Change(kind="view_extra", object=k, detail="view only on replica", replica=_dump(replica.views[k])))
    for k in both:
        m, r = master.views[k], replica.views[k]
        d = _attr_diff(m, r, exclude={"comment", "grants", "populated", "triggers", "indexes", "columns"})
        if _dump(m.columns) != _dump(r.columns):
            mc = {n: c.type for n, c in m.columns.items()}
            rc = {n: c.type for n, c in r.columns.items()}
            if mc != rc:
                d["columns"] = [mc, rc]
        if d:
            add(Change(kind="view_changed", object=k, detail=f"differs in {', '.join(d)}", master=_dump(m), replica=_dump(r), diff=d))
        else:
            _comment(ch, "view_comment", k, m.comment, r.comment)
            for cn, c in m.columns.items():
                rc_ = r.columns.get(cn)
                if rc_ is not None:
                    _comment(ch, "column_comment", member_key(k, cn), c.comment, rc_.comment, table=k, name=cn)
            _nested(ch, k, "index", {n: i for n, i in m.indexes.items()}, {n: i for n, i in r.indexes.items()}, ("definition",))
        _nested(ch, k, "trigger", m.triggers, r.triggers, ("definition", "enabled"))
        if master.with_privileges and replica.with_privileges:
            _grants(ch, k, "view", m.grants, r.grants)
    return ch


def _comment(ch: list[Change], kind: str, key: str, m: str | None, r: str | None, **kw: Any) -> None:
    if m != r:
        ch.append(Change(kind=kind, object=key, detail="comment differs" if m and r else ("comment missing on replica" if m else "comment only on replica"), master=m, replica=r, **kw))


def _grants(ch: list[Change], key: str, what: str, m: list, r: list) -> None:
    ms = {(g.grantee, g.privilege, g.grantable) for g in m}
    rs = {(g.grantee, g.privilege, g.grantable) for g in r}
    for g in sorted(ms - rs):
        ch.append(Change(kind="grant_missing", object=key, detail=f"{g[1]} to {g[0]} missing on replica", master={"grantee": g[0], "privilege": g[1], "grantable": g[2], "on": what}))
    for g in sorted(rs - ms):
        ch.append(Change(kind="grant_extra", object=key, detail=f"{g[1]} to {g[0]} only on replica", replica={"grantee": g[0], "privilege": g[1], "grantable": g[2], "on": what}))


def _nested(ch: list[Change], tkey: str, what: str, m: dict, r: dict, compare: tuple[str, ...]) -> None:
    missing, extra, both = _pairs(m, r)
    for n in missing:
        ch.append(Change(kind=f"{what}_missing", object=nested_key(tkey, n), detail=f"{what} {n} missing on replica", master=_dump(m[n]), table=tkey, name=n))
    for n in extra:
        ch.append(Change(kind=f"{what}_extra", object=nested_key(tkey, n), detail=f"{what} {n} only on replica", replica=_dump(r[n]), table=tkey, name=n))
    for n in both:
        md, rd = _dump(m[n]), _dump(r[n])
        d = {a: [md.get(a), rd.get(a)] for a in compare if _norm(md.get(a)) != _norm(rd.get(a))}
        if d:
            ch.append(Change(kind=f"{what}_changed", object=nested_key(tkey, n), detail=f"{what} {n} differs in {', '.join(d)}", master=md, replica=rd, table=tkey, name=n, diff=d))
        elif "comment" in md and md.get("comment") != rd.get("comment"):
            _comment(ch, f"{what}_comment", nested_key(tkey, n), md.get("comment"), rd.get("comment"), table=tkey, name=n)


_COLUMN_ATTRS = (
    ("type", "column_type"),
    ("nullable", "column_nullable"),
    ("default", "column_default"),
    ("identity", "column_identity"),
    ("generated", "column_generated"),
    ("collation", "column_collation"),
    ("comment", "column_comment"),
)


def _norm(v: Any) -> Any:
    return normalize_expr(v) if isinstance(v, str) else v


def _diff_table(ch: list[Change], m: Table, r: Table, renames: dict[str, str], privileges: bool) -> None:
    k = m.key
    add = ch.append
    tattrs = {}
    for a in ("kind", "unlogged", "partition_of", "partition_bound", "partition_key", "inherits", "options"):
        if getattr(m, a) != getattr(r, a):
            tattrs[a] = [getattr(m, a), getattr(r, a)]
    if tattrs:
        add(Change(kind="table_changed", object=k, detail=f"table differs in {', '.join(tattrs)}", master={a: v[0] for a, v in tattrs.items()}, replica={a: v[1] for a, v in tattrs.items()}, table=k, diff=tattrs))
    if (m.rls_enabled, m.rls_forced) != (r.rls_enabled, r.rls_forced):
        add(Change(kind="table_rls", object=k, detail=f"row level security enabled={r.rls_enabled} forced={r.rls_forced} on replica, enabled={m.rls_enabled} forced={m.rls_forced} on master", master={"enabled": m.rls_enabled, "forced": m.rls_forced}, replica={"enabled": r.rls_enabled, "forced": r.rls_forced}, table=k))
    _comment(ch, "table_comment", k, m.comment, r.comment, table=k)

    # columns, with renames: replica name -> master name
    mcols = {n: c for n, c in m.columns.items() if c.is_local or m.partition_of is None}
    rcols: dict[str, tuple[str, Column]] = {}  # master-side name -> (replica name, column)
    for n, c in r.columns.items():
        if not (c.is_local or r.partition_of is None):
            continue
        target = renames.get(n)
        if target is not None and target in mcols and target not in r.columns:
            rcols[target] = (n, c)
        else:
            rcols.setdefault(n, (n, c))
    for n, c in mcols.items():
        if n not in rcols:
            add(Change(kind="column_missing", object=member_key(k, n), detail=f"column {n} {c.type} missing on replica", master=_dump(c), table=k, name=n))
            continue
        rname, rc = rcols[n]
        if rname != n:
            add(Change(kind="column_renamed", object=member_key(k, n), detail=f"column {rname} on replica is {n} on master", master=n, replica=rname, table=k, name=n, replica_name=rname))
        for attr, kind in _COLUMN_ATTRS:
            mv, rv = getattr(c, attr), getattr(rc, attr)
            if _norm(mv) != _norm(rv):
                add(Change(kind=kind, object=member_key(k, n), detail=f"{attr}: {rv!r} on replica, {mv!r} on master", master=mv, replica=rv, table=k, name=n, replica_name=rname, diff={"column": [_dump(c), _dump(rc)]}))
    for n, (rname, rc) in rcols.items():
        if n not in mcols:
            add(Change(kind="column_extra", object=member_key(k, rname), detail=f"column {rname} {rc.type} only on replica", replica=_dump(rc), table=k, name=rname, replica_name=rname))

    cons_m = {n: c for n, c in m.constraints.items() if not c.inherited}
    cons_r = {n: c for n, c in r.constraints.items() if not c.inherited}
    _nested(ch, k, "constraint", cons_m, cons_r, ("definition", "validated"))
    idx_m = {n: i for n, i in m.indexes.items() if i.constraint is None and not i.inherited}
    idx_r = {n: i for n, i in r.indexes.items() if i.constraint is None and not i.inherited}
    _nested(ch, k, "index", idx_m, idx_r, ("definition",))
    # comments on constraint-backing indexes
    for n, i in m.indexes.items():
        if i.constraint is not None and n in r.indexes and r.indexes[n].constraint is not None and i.comment != r.indexes[n].comment:
            _comment(ch, "index_comment", nested_key(k, n), i.comment, r.indexes[n].comment, table=k, name=n)
    trg_m = {n: t for n, t in m.triggers.items() if not t.inherited and not t.is_constraint}
    trg_r = {n: t for n, t in r.triggers.items() if not t.inherited and not t.is_constraint}
    _nested(ch, k, "trigger", trg_m, trg_r, ("definition", "enabled"))
    _nested(ch, k, "policy", m.policies, r.policies, ("command", "permissive", "roles", "using", "with_check"))
    if privileges:
        _grants(ch, k, "table", m.grants, r.grants)


def diff_snapshot(old: Schema, new: Schema) -> list[Change]:
    """What changed on the master since a stored snapshot: ``old`` plays the replica, ``new`` the master.

    ``*_missing`` then reads "added since the snapshot", ``*_extra`` "removed since"."""
    return diff_schemas(new, old)


def summarize(changes: list[Change]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in changes:
        out[c.kind] = out.get(c.kind, 0) + 1
    return dict(sorted(out.items()))
