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
