"""Plan building: ordering, classification, pre-checks, rollback, commented destructive SQL."""

from __future__ import annotations

import psycopg
import pytest

from replicator.introspect import introspect
from replicator.plan import build_plan, classify_type_change, parse_statement, run_prechecks


def _plan(master_url, replica_url, renames=None):
    with psycopg.connect(master_url) as m, psycopg.connect(replica_url) as r:
        plan = build_plan(introspect(m), introspect(r), renames)
        run_prechecks(plan, r)
    return plan


@pytest.mark.parametrize("old,new,expected", [
    ("integer", "bigint", "safe"),
    ("bigint", "integer", "destructive"),
    ("character varying(10)", "character varying(50)", "safe"),
    ("character varying(50)", "character varying(10)", "destructive"),
    ("character varying(50)", "text", "safe"),
    ("text", "integer", "destructive"),
    ("numeric(6,2)", "numeric(10,2)", "safe"),
    ("numeric(10,2)", "numeric(6,2)", "destructive"),
    ("integer", "text", "safe"),
    ("timestamp without time zone", "timestamp with time zone", "data-dependent"),
])
def test_type_change_classes(old, new, expected):
    assert classify_type_change(old, new)[0] == expected


def test_parse_falls_back_to_head():
    assert parse_statement("CREATE TABLE t (id int)")[0] == "sqlglot"
    by, head = parse_statement("ALTER TABLE public.t VALIDATE CONSTRAINT c")
    assert by in ("sqlglot", "statement head") and head


def test_order_classification_prechecks_rollback(master_url, replica_url, sql_on):
    sql_on(replica_url, """
        CREATE TABLE parent (id int PRIMARY KEY);
        CREATE TABLE child (id int PRIMARY KEY, parent_id int, note text, code text);
        INSERT INTO parent VALUES (1);
        INSERT INTO child VALUES (1, 1, NULL, 'a'), (2, 99, 'x', 'a'), (3, NULL, 'y', 'b');
        CREATE TABLE gone (id int);
    """)
    sql_on(master_url, """
        CREATE TABLE parent (id int PRIMARY KEY);
        CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent(id), note text NOT NULL,
                            code text UNIQUE);
        CREATE VIEW v2 AS SELECT id FROM child;
        CREATE VIEW v1 AS SELECT id FROM v2;
    """)
    plan = _plan(master_url, replica_url)
    sqls = [s.sql for s in plan.steps]
    fk = next(i for i, s in enumerate(sqls) if "FOREIGN KEY" in s)
    assert sqls[fk].endswith("NOT VALID")
    validate = next(i for i, s in enumerate(sqls) if "VALIDATE CONSTRAINT" in s)
    assert validate > fk
    assert sqls.index(next(s for s in sqls if "VIEW public.v2" in s)) < sqls.index(next(s for s in sqls if "VIEW public.v1" in s))
    by_sql = {s.sql: s for s in plan.steps}
    nn = by_sql["ALTER TABLE public.child ALTER COLUMN note SET NOT NULL"]
    assert nn.classification == "data-dependent" and nn.precheck.result == 1 and nn.precheck.ok is False
    uq = next(s for s in plan.steps if "UNIQUE (code)" in s.sql)
    assert uq.precheck.result == 1
    orphans = plan.steps[validate].precheck
    assert orphans.result == 1
    drop = by_sql["DROP TABLE public.gone"]
    assert drop.classification == "destructive" and "CREATE TABLE public.gone" in drop.rollback
    text = plan.to_sql(allow_destructive=False)
    assert "-- DROP TABLE public.gone;" in text
    assert "FAILS: 1 offending rows" in text
    assert "\nDROP TABLE public.gone;" in plan.to_sql(allow_destructive=True)
    rb = plan.rollback_sql()
    assert rb.index("DROP VIEW public.v1") < rb.index("DROP VIEW public.v2")


def test_enum_values_positions(master_url, replica_url, sql_on):
    sql_on(replica_url, "CREATE TYPE e AS ENUM ('b', 'd');")
    sql_on(master_url, "CREATE TYPE e AS ENUM ('a', 'b', 'c', 'd', 'e');")
    plan = _plan(master_url, replica_url)
    sqls = [s.sql for s in plan.steps]
    assert sqls == [
        "ALTER TYPE public.e ADD VALUE 'a' BEFORE 'b'",
        "ALTER TYPE public.e ADD VALUE 'c' AFTER 'b'",
        "ALTER TYPE public.e ADD VALUE 'e' AFTER 'd'",
    ]
    assert all(s.transaction == 0 for s in plan.steps)


def test_enum_label_removal_is_destructive(master_url, replica_url, sql_on):
    sql_on(replica_url, "CREATE TYPE e AS ENUM ('a', 'b'); CREATE TABLE t (x e); INSERT INTO t VALUES ('b');")
    sql_on(master_url, "CREATE TYPE e AS ENUM ('a'); CREATE TABLE t (x e);")
    plan = _plan(master_url, replica_url)
    assert plan.steps[0].classification == "destructive"
    cast = next(s for s in plan.steps if "USING" in s.sql)
    assert cast.precheck.result == 1
