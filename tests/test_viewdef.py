"""View definitions as PostgreSQL 15 and 16 deparse the same view (`replicator.viewdef`).

The texts below are what `pg_get_viewdef` printed for the same views on a 15 and a 16 server (the
`REPLICATOR_TEST_BACKEND=mixed` run compares such pairs live: master 15, replica 16)."""

from __future__ import annotations

import pytest

from replicator.viewdef import same

SAME_VIEW = [
    (" SELECT t.id, t.v\n   FROM public.t\n  WHERE (t.v > 0);", " SELECT id,\n    v\n   FROM public.t\n  WHERE (v > 0);"),
    (" SELECT film.category, public.group_concat(film.title) AS titles\n   FROM public.film\n  GROUP BY film.category;",
     " SELECT category,\n    public.group_concat(title) AS titles\n   FROM public.film\n  GROUP BY category;"),
    (" SELECT t.v, count(*) AS n\n   FROM public.t\n  GROUP BY t.v;", " SELECT v,\n    count(*) AS n\n   FROM public.t\n  GROUP BY v;"),
    # a sublink is qualified by both releases
    (" SELECT t.id\n   FROM public.t\n  WHERE (EXISTS ( SELECT 1\n           FROM public.u\n          WHERE (u.x = t.id)));",
     " SELECT id\n   FROM public.t\n  WHERE (EXISTS ( SELECT 1\n           FROM public.u\n          WHERE (u.x = t.id)));"),
    (' SELECT "Odd"."Name"\n   FROM public."Odd";', ' SELECT "Name"\n   FROM public."Odd";'),
    # ORDER BY a column that is also an output, and a window
    (" SELECT t.id, row_number() OVER (PARTITION BY t.v ORDER BY t.id) AS rn\n   FROM public.t\n  ORDER BY t.id;",
     " SELECT id,\n    row_number() OVER (PARTITION BY v ORDER BY id) AS rn\n   FROM public.t\n  ORDER BY id;"),
    # the one relation a subquery, a function, a CTE
    (" SELECT s.x\n   FROM ( SELECT t.id AS x\n           FROM public.t) s;", " SELECT x\n   FROM ( SELECT t.id AS x\n           FROM public.t) s;"),
    (" SELECT g.g\n   FROM generate_series(1, 10) g(g);", " SELECT g\n   FROM generate_series(1, 10) g(g);"),
    (" WITH c AS (\n         SELECT t.id\n           FROM public.t\n        )\n SELECT c.id\n   FROM c;",
     " WITH c AS (\n         SELECT t.id\n           FROM public.t\n        )\n SELECT id\n   FROM c;"),
]

DIFFERENT_VIEWS = [
    (" SELECT id FROM public.t", " SELECT v FROM public.t"),
    (" SELECT t.id FROM public.t WHERE (t.v > 0)", " SELECT id FROM public.t WHERE (v > 1)"),
    # two relations: qualified by both, and which one is meant matters
    (" SELECT a.id FROM (public.a JOIN public.b ON ((a.id = b.id)))", " SELECT b.id FROM (public.a JOIN public.b ON ((a.id = b.id)))"),
    (" SELECT t.id FROM public.t", " SELECT u.id FROM public.u"),
    # the subquery's own columns are qualified alike by both releases: a change there stays one
    (" SELECT s.x FROM ( SELECT t.id AS x FROM public.t) s", " SELECT x FROM ( SELECT t.v AS x FROM public.t) s"),
]


@pytest.mark.parametrize("old,new", SAME_VIEW)
def test_one_view_as_two_releases_print_it_is_the_same(old, new):
    assert same(old, new)


@pytest.mark.parametrize("master,replica", DIFFERENT_VIEWS)
def test_different_views_stay_different(master, replica):
    assert not same(master, replica)


def test_what_sqlglot_cannot_parse_compares_as_text():
    assert same("SELECT ???", "SELECT ???") and not same("SELECT ???", "SELECT ??? ")


LIVE_VIEWS = {
    "w": "SELECT id, row_number() OVER (PARTITION BY v ORDER BY id) AS rn FROM t ORDER BY id",
    "s": "SELECT x FROM (SELECT id AS x FROM t) s",
    "g": "SELECT g FROM generate_series(1, 10) g",
    "c": "WITH c AS (SELECT id FROM t) SELECT id FROM c",
    "e": "SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.x = t.id)",
    "j": "SELECT t.id, u.x FROM t JOIN u ON u.x = t.id",
    "a": "SELECT v, count(*) FILTER (WHERE id > 3) AS n FROM t GROUP BY v HAVING count(*) > 1",
    "l": "SELECT id, (SELECT max(x) FROM u WHERE u.x < t.id) AS m FROM t",
    "q": 'SELECT "Name" FROM "Odd"',
    "un": "SELECT id FROM t UNION SELECT x FROM u",
    "cs": "SELECT CASE WHEN v = 'a' THEN id ELSE 0 END AS k, v::varchar(3) AS vv FROM t WHERE v IN ('a', 'b')",
}


def test_the_same_views_on_both_servers_compare_the_same(master_url, replica_url, sql_on):
    """Live, on the two test servers (PostgreSQL 15 and 16 under `REPLICATOR_TEST_BACKEND=mixed`, where
    most of these print differently); and views that differ still differ."""
    ddl = 'CREATE TABLE t (id int, v text); CREATE TABLE u (x int); CREATE TABLE "Odd" ("Name" text);'
    sql_on(master_url, ddl + "".join(f"CREATE VIEW v_{k} AS {q};" for k, q in LIVE_VIEWS.items()))
    sql_on(replica_url, ddl + "".join(f"CREATE VIEW v_{k} AS {q};" for k, q in LIVE_VIEWS.items())
           + "CREATE VIEW changed AS SELECT v FROM t")
    sql_on(master_url, "CREATE VIEW changed AS SELECT id FROM t")
    text = "SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c WHERE c.relkind = 'v' AND c.relnamespace = 'public'::regnamespace"
    master, replica = dict(sql_on(master_url, text)), dict(sql_on(replica_url, text))
    assert sorted(k for k in master if not same(master[k], replica[k])) == ["changed"]
