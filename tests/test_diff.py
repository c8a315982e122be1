"""diff_schemas on real introspections: kinds, renames, normalisation, snapshot diff."""

from __future__ import annotations

import psycopg

from replicator.diff import Change, diff_schemas, diff_snapshot, normalize_expr
from replicator.introspect import introspect


def _schema(url):
    with psycopg.connect(url) as conn:
        return introspect(conn)


def test_kinds_and_fields(master_url, replica_url, sql_on):
    sql_on(replica_url, """
        CREATE TABLE leads (id int PRIMARY KEY, project_id int, old text, v varchar(10));
        CREATE TABLE extra (id int);
    """)
    sql_on(master_url, """
        CREATE TABLE leads (id int PRIMARY KEY, current_project_id int, v varchar(20) NOT NULL DEFAULT 'x',
                            CONSTRAINT v_check CHECK (v <> ''));
        CREATE TABLE "end" (id int);
    """)
    m, r = _schema(master_url), _schema(replica_url)
    changes = diff_schemas(m, r, renames={"leads": {"project_id": "current_project_id"}})
    assert all(isinstance(c, Change) for c in changes)
    kinds = {(c.kind, c.object) for c in changes}
    assert ("table_missing", 'public."end"') in kinds
    assert ("table_extra", "public.extra") in kinds
    assert ("column_renamed", "public.leads.current_project_id") in kinds
    assert ("column_extra", "public.leads.old") in kinds
    assert ("column_type", "public.leads.v") in kinds
    assert ("column_nullable", "public.leads.v") in kinds
    assert ("column_default", "public.leads.v") in kinds
    assert ("constraint_missing", "public.leads/v_check") in kinds
    # the renamed pair is one column, never missing + extra
    assert not any(c.kind in ("column_missing", "column_extra") and c.name in ("project_id", "current_project_id")
                   for c in changes)
    t = next(c for c in changes if c.kind == "column_type")
    assert (t.master, t.replica) == ("character varying(20)", "character varying(10)")


def test_no_difference_and_snapshot(master_url, replica_url, sql_on):
    ddl = "CREATE TYPE e AS ENUM ('a', 'b'); CREATE TABLE t (id int PRIMARY KEY, x e);"
    sql_on(master_url, ddl)
    sql_on(replica_url, ddl)
    old = _schema(master_url)
    assert diff_schemas(old, _schema(replica_url)) == []
    sql_on(master_url, "ALTER TYPE e ADD VALUE 'c'; ALTER TABLE t ADD COLUMN y int;")
    since = diff_snapshot(old, _schema(master_url))
    assert {c.kind for c in since} == {"enum_labels", "column_missing"}


def test_normalize_any_array():
    a = "CHECK (((s)::text = ANY ((ARRAY['a'::character varying, 'b'::character varying])::text[])))"
    b = "CHECK (((s)::text = ANY (ARRAY[('a'::character varying)::text, ('b'::character varying)::text])))"
    assert normalize_expr(a) == normalize_expr(b)


def test_quote_matches_quote_ident(master_url, sql_on):
    """Change objects are keyed like the catalog queries' quote_ident, so both must agree on every name."""
    from replicator.diff import quote

    words = [w for (w,) in sql_on(master_url, "SELECT word FROM pg_get_keywords()")]
    names = words + ["x$1", "naïve", "Mixed Case", 'we"ird', "end", "order", "_plain_1", "1abc"]
    expected = dict(sql_on(master_url, "SELECT n, quote_ident(n) FROM unnest(%s::text[]) AS n", (names,)))
    assert {n: quote(n) for n in names} == expected


def test_change_kind_is_a_literal():
    import pydantic
    import pytest

    from replicator.diff import KINDS

    assert "composite_changed" in KINDS and "external_missing" in KINDS and "role_missing" in KINDS
    with pytest.raises(pydantic.ValidationError):
        Change(kind="tabel_missing", object="x", detail="typo")


def test_every_kind_compared_the_same_way():
    """Missing / extra / changed / comment for each top-level kind, from plain models."""
    from replicator.introspect.models import CompositeAttribute, CompositeType, Enum, RangeType, Schema

    def schema(**kw):
        return Schema(server_version=150000, database="d", schemas=["public"], **kw)

    comp = CompositeType(key="public.c", schema_name="public", name="c", attributes=[CompositeAttribute(name="a", type="int")])
    m = schema(composites={"public.c": comp.model_copy(update={"comment": "new"})},
               ranges={"public.r": RangeType(key="public.r", schema_name="public", name="r", subtype="date")},
               enums={"public.e": Enum(key="public.e", schema_name="public", name="e", labels=["a", "b"])})
    r = schema(composites={"public.c": comp.model_copy(update={"attributes": []})},
               enums={"public.e": Enum(key="public.e", schema_name="public", name="e", labels=["a"]),
                      "public.old": Enum(key="public.old", schema_name="public", name="old")})
    got = {(c.kind, c.object) for c in diff_schemas(m, r)}
    assert got == {("composite_changed", "public.c"), ("composite_comment", "public.c"), ("range_missing", "public.r"),
                   ("enum_labels", "public.e"), ("enum_extra", "public.old")}
    changed = next(c for c in diff_schemas(m, r) if c.kind == "composite_changed")
    assert list(changed.diff) == ["attributes"]


def test_inherited_columns_are_compared_on_the_parent_only(master_url, replica_url, sql_on):
    ddl = """CREATE TABLE p (id int{}) PARTITION BY LIST (id);
             CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
             CREATE TABLE base (id int{}); CREATE TABLE child (x int) INHERITS (base);"""
    sql_on(replica_url, ddl.format("", ""))
    sql_on(master_url, ddl.format(", v text", ", v text"))
    changes = diff_schemas(_schema(master_url), _schema(replica_url))
    assert sorted((c.kind, c.object) for c in changes) == [("column_missing", "public.base.v"), ("column_missing", "public.p.v")]
