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
    ("bigint", "integer", "data-dependent"),  # out of range fails; nothing is changed
    ("integer", "smallint", "data-dependent"),
    ("character varying(10)", "character varying(50)", "safe"),
    ("character varying(50)", "character varying(10)", "data-dependent"),  # too long fails (USING checks)
    ("text", "character varying(10)", "data-dependent"),
    ("character varying", "character varying(10)", "data-dependent"),
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


def _sqls(plan):
    return [s.sql for s in plan.steps]


def _index(sqls, fragment):
    return next(i for i, s in enumerate(sqls) if fragment in s)


def test_rename_then_collation_under_the_new_name(master_url, replica_url, sql_on):
    sql_on(replica_url, "CREATE TABLE t (id int PRIMARY KEY, old_label text)")
    sql_on(master_url, 'CREATE TABLE t (id int PRIMARY KEY, label text COLLATE "C")')
    sqls = _sqls(_plan(master_url, replica_url, {"t": {"old_label": "label"}}))
    rename = _index(sqls, "RENAME COLUMN old_label TO label")
    collate = _index(sqls, 'ALTER COLUMN label TYPE text COLLATE pg_catalog."C"')
    assert rename < collate
    assert not any("ALTER COLUMN old_label" in s for s in sqls)


def test_identity_added_after_not_null(master_url, replica_url, sql_on):
    sql_on(replica_url, "CREATE TABLE t (id int DEFAULT 0)")
    sql_on(master_url, "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY)")
    sqls = _sqls(_plan(master_url, replica_url))
    assert _index(sqls, "DROP DEFAULT") < _index(sqls, "SET NOT NULL") < _index(sqls, "ADD GENERATED ALWAYS AS IDENTITY")


def test_partitioned_table_changed_once_on_the_parent(master_url, replica_url, sql_on):
    ddl = """CREATE TABLE ev (id int, at date NOT NULL{}) PARTITION BY RANGE (at);
             CREATE TABLE ev_a PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
             CREATE TABLE ev_b PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"""
    sql_on(replica_url, ddl.format(""))
    sql_on(master_url, ddl.format(", kind text NOT NULL DEFAULT 'x'"))
    sqls = _sqls(_plan(master_url, replica_url))
    assert sqls == ["ALTER TABLE public.ev ADD COLUMN kind text DEFAULT 'x'::text NOT NULL"]


def test_table_becomes_view_drop_first_and_create_needs_it(master_url, replica_url, sql_on):
    sql_on(replica_url, "CREATE TABLE base (id int); CREATE TABLE v (id int)")
    sql_on(master_url, "CREATE TABLE base (id int); CREATE VIEW v AS SELECT id FROM base")
    plan = _plan(master_url, replica_url)
    drop = next(s for s in plan.steps if s.sql == "DROP TABLE public.v")
    create = next(s for s in plan.steps if s.sql.startswith("CREATE VIEW public.v"))
    assert drop.n < create.n and drop.classification == "destructive" and create.requires == [drop.n]
    text = plan.to_sql(allow_destructive=False)
    assert f"--   needs destructive step [{drop.n}]" in text and "\nCREATE VIEW public.v" not in text
    assert plan.skipped_with([drop.n]) == {create.n: drop.n}


def test_row_type_function_aggregate_and_views_in_dependency_order(master_url, replica_url, sql_on):
    # names chosen so that alphabetical order is the wrong order
    sql_on(master_url, """
        CREATE TABLE z_customer (id int PRIMARY KEY, name text);
        CREATE FUNCTION a_customers() RETURNS SETOF z_customer LANGUAGE sql AS 'SELECT * FROM z_customer';
        CREATE FUNCTION y_cat(text, text) RETURNS text LANGUAGE sql AS 'SELECT $1 || $2';
        CREATE AGGREGATE b_concat(text) (SFUNC = y_cat, STYPE = text);
        CREATE VIEW a_names AS SELECT b_concat(name) AS names FROM a_customers();
    """)
    sqls = _sqls(_plan(master_url, replica_url))
    assert _index(sqls, "CREATE TABLE public.z_customer") < _index(sqls, "FUNCTION public.a_customers()")
    assert _index(sqls, "FUNCTION public.y_cat") < _index(sqls, "CREATE AGGREGATE public.b_concat(text)")
    assert _index(sqls, "CREATE AGGREGATE") < _index(sqls, "CREATE VIEW public.a_names")
    assert _index(sqls, "FUNCTION public.a_customers()") < _index(sqls, "CREATE VIEW public.a_names")


def test_foreign_key_cycle_between_new_tables(master_url, replica_url, sql_on):
    sql_on(master_url, """
        CREATE TABLE a (id int PRIMARY KEY, b_id int);
        CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));
        ALTER TABLE a ADD CONSTRAINT a_b FOREIGN KEY (b_id) REFERENCES b (id);
    """)
    sqls = _sqls(_plan(master_url, replica_url))
    tables = max(_index(sqls, "CREATE TABLE public.a"), _index(sqls, "CREATE TABLE public.b"))
    keys = [i for i, s in enumerate(sqls) if "FOREIGN KEY" in s]
    assert len(keys) == 2 and min(keys) > tables


def test_enum_to_enum_goes_through_text_with_a_precheck(master_url, replica_url, sql_on):
    types = "CREATE TYPE a AS ENUM ('x', 'y'); CREATE TYPE b AS ENUM ('x', 'z');"
    sql_on(replica_url, types + "CREATE TABLE t (v a); INSERT INTO t VALUES ('x'), ('y'), ('y');")
    sql_on(master_url, types + "CREATE TABLE t (v b);")
    plan = _plan(master_url, replica_url)
    step = next(s for s in plan.steps if "TYPE public.b" in s.sql)
    assert step.sql == "ALTER TABLE public.t ALTER COLUMN v TYPE public.b USING v::text::public.b"
    assert step.classification == "data-dependent" and step.precheck.result == 2 and step.precheck.ok is False


def test_rollback_covers_only_applied_steps(master_url, replica_url, sql_on):
    sql_on(replica_url, "CREATE TABLE gone (id int)")
    sql_on(master_url, "CREATE TABLE kept (id int)")
    plan = _plan(master_url, replica_url)
    create = next(s for s in plan.steps if s.sql.startswith("CREATE TABLE"))
    rb = plan.rollback_sql([create.n])
    assert "DROP TABLE public.kept" in rb and "CREATE TABLE public.gone" not in rb
    assert "CREATE TABLE public.gone" in plan.rollback_sql()


def test_plan_uses_the_one_ordering_module():
    """No hand-written topological sort in the plan package: it orders through replicator.order."""
    import inspect

    import replicator.plan as pkg
    from replicator.plan import graph

    source = "\n".join(inspect.getsource(m) for m in (graph,))
    assert "from ..order import Graph" in source
    assert not hasattr(pkg, "_topo") and not hasattr(pkg, "_topo_tables")
