"""`replicator migrate` through the CLI: dry run, destructive gating, pre-check stops, backups, plan files."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from replicator.cli import main


def _run(m, r, out, *args):
    return CliRunner().invoke(main, ["migrate", "--master", m, "--replica", r, "--out-dir", str(out), *args])


def _tables(sql_on, url):
    return {r[0] for r in sql_on(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_dry_run_changes_nothing(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, "CREATE TABLE t (id int PRIMARY KEY)")
    res = _run(master_url, replica_url, tmp_path, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "CREATE TABLE public.t" in res.output
    assert _tables(sql_on, replica_url) == set()
    assert not (tmp_path / "reports" / "backups").exists()


def test_destructive_needs_flag_and_is_backed_up(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, "CREATE TABLE keep (id int PRIMARY KEY)")
    sql_on(replica_url, "CREATE TABLE keep (id int PRIMARY KEY, legacy text); CREATE TABLE old (id int);"
                        "INSERT INTO keep VALUES (1, 'precious'); INSERT INTO old VALUES (7), (8);")
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "DROP" not in res.output.split("skipped")[0]
    assert _tables(sql_on, replica_url) == {"keep", "old"}
    res = _run(master_url, replica_url, tmp_path, "--allow-destructive")
    assert res.exit_code == 0, res.output
    assert _tables(sql_on, replica_url) == {"keep"}
    backups = list((tmp_path / "reports" / "backups").iterdir())
    files = {p.name for p in backups[-1].rglob("*")}
    assert {"schema.sql", "replica-schema.json", "plan.sql", "rollback.sql", "public.old.copy", "public.keep.copy"} <= files
    data = (backups[-1] / "data" / "public.old.copy").read_text()
    assert data.split() == ["7", "8"]
    assert "precious" in (backups[-1] / "data" / "public.keep.copy").read_text()
    assert "CREATE TABLE public.old" in (backups[-1] / "schema.sql").read_text()


@pytest.mark.parametrize("master,replica,waiting", [
    # a developer's own view over a column whose type changes
    ("CREATE TABLE t (id int PRIMARY KEY, a bigint)",
     "CREATE TABLE t (id int PRIMARY KEY, a int); CREATE VIEW dev_view AS SELECT id, a FROM t",
     "public.t.a: needs skipped destructive step"),
    # a new partition whose bounds overlap a partition only the replica has
    ("CREATE TABLE s (id int, v text) PARTITION BY LIST (v); CREATE TABLE s_ab PARTITION OF s FOR VALUES IN ('a', 'b')",
     "CREATE TABLE s (id int, v text) PARTITION BY LIST (v); CREATE TABLE s_a_local PARTITION OF s FOR VALUES IN ('a')",
     "public.s_ab: needs skipped destructive step"),
    # the parent's replica-only index would be cloned onto a new partition, under a name the master uses
    ("CREATE TABLE p (d date, c int) PARTITION BY RANGE (d); "
     "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM ('2022-01-01') TO ('2022-02-01'); CREATE INDEX p1_c_idx ON p1 (c)",
     "CREATE TABLE p (d date, c int) PARTITION BY RANGE (d); CREATE INDEX p_c ON p (c)",
     "public.p1: needs skipped destructive step"),
], ids=["view-over-retyped-column", "overlapping-partition", "cloned-index"])
def test_steps_in_the_way_of_a_skipped_drop_wait_for_it(master_url, replica_url, sql_on, tmp_path, master, replica,
                                                         waiting):
    sql_on(master_url, master)
    sql_on(replica_url, replica)
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 0, res.output
    assert waiting in res.output
    res = _run(master_url, replica_url, tmp_path, "--allow-destructive")
    assert res.exit_code == 0, res.output
    again = _run(master_url, replica_url, tmp_path, "--allow-destructive")
    assert again.exit_code == 0 and "nothing to do" in again.output, again.output


def test_a_new_partition_does_not_wait_for_local_objects_out_of_its_way(master_url, replica_url, sql_on, tmp_path):
    # a developer's partition for another year and an index of their own on the parent: the master's new
    # monthly partition still arrives without --allow-destructive
    sql_on(master_url, "CREATE TABLE ev (id int, at date, v text) PARTITION BY RANGE (at);"
                       "CREATE TABLE ev_2025_01 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');"
                       "CREATE TABLE ev_2025_02 PARTITION OF ev FOR VALUES FROM ('2025-02-01') TO ('2025-03-01');"
                       "CREATE INDEX ev_2025_02_at ON ev_2025_02 (at)")
    sql_on(replica_url, "CREATE TABLE ev (id int, at date, v text) PARTITION BY RANGE (at);"
                        "CREATE TABLE ev_2025_01 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');"
                        "CREATE TABLE ev_scratch PARTITION OF ev FOR VALUES FROM ('2000-01-01') TO ('2001-01-01');"
                        "CREATE INDEX ev_dev_idx ON ev (v)")
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 0, res.output
    assert "ev_2025_02: needs skipped" not in res.output
    assert sql_on(replica_url, "SELECT to_regclass('ev_2025_02') IS NOT NULL, to_regclass('ev_scratch') IS NOT NULL") == [
        (True, True)]


def test_failing_precheck_stops_with_one_line(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, "CREATE TABLE t (id int PRIMARY KEY, note text NOT NULL)")
    sql_on(replica_url, "CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t VALUES (1, NULL), (2, NULL), (3, 'x')")
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 2
    out = res.output.strip()
    assert "\n" not in out and "public.t.note" in out and "2 rows" in out and "nothing was changed" in out
    # --force attempts it; PostgreSQL refuses, everything rolls back, no data lost
    res = _run(master_url, replica_url, tmp_path, "--force")
    assert res.exit_code == 2 and "rolled back" in res.output
    assert sql_on(replica_url, "SELECT count(*) FROM t")[0][0] == 3


def test_forced_narrowing_refuses_values_that_do_not_fit(master_url, replica_url, sql_on, tmp_path):
    # An explicit cast to varchar(n), char(n) or bit(n) would cut the value silently; the column's own
    # assignment cast refuses it, so --force loses nothing
    ddl = "CREATE TABLE a (id int PRIMARY KEY, t text, c text, b bit varying)"
    sql_on(master_url, ddl + "; ALTER TABLE a ALTER COLUMN t TYPE varchar(10), ALTER COLUMN c TYPE char(3), "
                             "ALTER COLUMN b TYPE bit(4)")
    sql_on(replica_url, ddl + "; INSERT INTO a VALUES (1, 'this is far too long', 'ab', B'1010'), (2, 'short', 'abc', B'1111')")
    res = _run(master_url, replica_url, tmp_path, "--allow-destructive", "--force")
    assert res.exit_code == 2 and "value too long for type character varying(10)" in res.output
    assert "rolled back" in res.output
    assert sql_on(replica_url, "SELECT t FROM a WHERE id = 1") == [("this is far too long",)]
    sql_on(replica_url, "UPDATE a SET t = 'fits' WHERE id = 1; UPDATE a SET b = B'10101' WHERE id = 2")
    res = _run(master_url, replica_url, tmp_path, "--allow-destructive", "--force")
    assert res.exit_code == 2 and "bit string length 5 does not match type bit(4)" in res.output
    sql_on(replica_url, "UPDATE a SET b = B'0101' WHERE id = 2")
    res = _run(master_url, replica_url, tmp_path, "--allow-destructive", "--force")
    assert res.exit_code == 0, res.output
    assert sql_on(replica_url, "SELECT id, t, c, b::text FROM a ORDER BY id") == [(1, "fits", "ab ", "1010"), (2, "short", "abc", "0101")]


def test_bit_widening_pads_as_before(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, "CREATE TABLE b (id int PRIMARY KEY, f bit(16))")
    sql_on(replica_url, "CREATE TABLE b (id int PRIMARY KEY, f bit(8)); INSERT INTO b VALUES (1, B'10101010')")
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 0, res.output
    assert sql_on(replica_url, "SELECT f::text FROM b") == [("1010101000000000",)]


def test_new_enum_label_used_in_same_run(master_url, replica_url, sql_on, tmp_path):
    sql_on(replica_url, "CREATE TYPE s AS ENUM ('a'); CREATE TABLE t (id int PRIMARY KEY, x s DEFAULT 'a')")
    sql_on(master_url, "CREATE TYPE s AS ENUM ('a', 'b'); CREATE TABLE t (id int PRIMARY KEY, x s DEFAULT 'b', CHECK (x <> 'a'))")
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 0, res.output
    assert sql_on(replica_url, "SELECT enum_range(NULL::s)::text")[0][0] == "{a,b}"


def test_apply_reviewed_plan_file(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, 'CREATE TABLE "end" ("Order" int PRIMARY KEY, "select" text)')
    res = CliRunner().invoke(main, ["analyze", "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    plan = tmp_path / "schemas" / "master-schema-replication.sql"
    res = _run(master_url, replica_url, tmp_path, "--plan", str(plan))
    assert res.exit_code == 0, res.output
    assert _tables(sql_on, replica_url) == {"end"}
    res = _run(master_url, replica_url, tmp_path)
    assert "nothing to do" in res.output
    res = _run(master_url, replica_url, tmp_path, "--plan", str(tmp_path / "missing.sql"))
    assert res.exit_code == 2 and "plan file not found" in res.output


def test_plan_file_that_is_not_text(master_url, replica_url, sql_on, tmp_path):
    garbage = tmp_path / "plan.sql"
    garbage.write_bytes(bytes(range(256)) * 4)
    res = _run(master_url, replica_url, tmp_path, "--plan", str(garbage))
    assert res.exit_code == 2, res.output
    out = res.output.strip()
    assert out.startswith("error: plan file") and "not UTF-8" in out and "\n" not in out
    assert _tables(sql_on, replica_url) == set()


def test_differences_the_plan_cannot_make_are_said_not_matched(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, "CREATE TYPE addr AS (street text, zip varchar(10)); CREATE TABLE t (id int PRIMARY KEY, home addr)")
    sql_on(replica_url, "CREATE TYPE addr AS (street text, zip varchar(5)); CREATE TABLE t (id int PRIMARY KEY, home addr)")
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 0, res.output
    assert "matches" not in res.output
    assert "not handled (migrate it by hand): type public.addr" in res.output


def test_a_row_type_stored_in_another_column_order_is_left_to_the_user(master_url, replica_url, sql_on, tmp_path):
    # docs' values are stored in snap.d as positional lists: recreating docs in the master's order would
    # mean recreating snap.d too, losing its data; migrate says so rather than half doing it
    sql_on(master_url, "CREATE TABLE docs (id int PRIMARY KEY, title text, pages int); "
                       "CREATE TABLE snap (id int PRIMARY KEY, d docs)")
    sql_on(replica_url, "CREATE TABLE docs (id int PRIMARY KEY, pages int); ALTER TABLE docs ADD COLUMN title text; "
                        "CREATE TABLE snap (id int PRIMARY KEY, d docs); INSERT INTO snap VALUES (1, ROW(1, 2, 'x'))")
    res = _run(master_url, replica_url, tmp_path, "--allow-destructive")
    assert res.exit_code == 0, res.output
    assert ("not handled (migrate it by hand): table public.docs: columns ordered (id, pages, title) on replica, "
            "(id, title, pages) on master, and read by position by column public.snap.d") in res.output
    assert sql_on(replica_url, "SELECT (d).title FROM snap") == [("x",)]


def test_a_view_naming_a_functions_columns_by_position_is_not_created_in_another_order(master_url, replica_url,
                                                                                      sql_on, tmp_path):
    # f() returns t's rows, and the master's view text names them in t's order, `FROM f() f(id, a, b)`:
    # on a replica whose t has `a` appended, that text would show b's values as a and a's as b
    sql_on(master_url, "CREATE TABLE t (id int PRIMARY KEY, a text, b int);"
                       "CREATE FUNCTION f() RETURNS SETOF t LANGUAGE sql STABLE AS 'SELECT * FROM t';"
                       "CREATE VIEW v AS SELECT * FROM f();"
                       # taking the row type as an argument reads its fields by name: no matter
                       "CREATE FUNCTION label(r t) RETURNS text LANGUAGE sql STABLE AS 'SELECT r.a';"
                       "CREATE VIEW labels AS SELECT id, label(t) FROM t")
    sql_on(replica_url, "CREATE TABLE t (id int PRIMARY KEY, b int); INSERT INTO t VALUES (1, 42)")
    res = _run(master_url, replica_url, tmp_path, "--allow-destructive")
    assert res.exit_code == 0, res.output
    assert ("not handled (migrate it by hand): view public.v is not created: it names the columns of public.f() "
            "by position") in res.output
    assert sql_on(replica_url, "SELECT to_regclass('public.v'), to_regclass('public.labels') IS NOT NULL") == [(None, True)]
    assert sql_on(replica_url, "SELECT * FROM t") == [(1, 42, None)]  # nothing recreated, nothing lost
    again = _run(master_url, replica_url, tmp_path, "--allow-destructive")
    assert "table public.t: columns ordered (id, b, a) on replica, (id, a, b) on master, and read by position by " \
           "view public.v (through public.f())" in again.output
    assert "labels" not in again.output


def test_grants_to_predefined_roles_are_made_without_creating_the_role(master_url, replica_url, sql_on, tmp_path):
    # pg_database_owner, pg_read_all_stats...: in every cluster, and their names reserved
    sql_on(master_url, "CREATE TABLE t (id int PRIMARY KEY); GRANT SELECT ON t TO pg_read_all_stats")
    sql_on(replica_url, "CREATE TABLE t (id int PRIMARY KEY)")
    res = _run(master_url, replica_url, tmp_path, "--with-privileges")
    assert res.exit_code == 0, res.output
    assert sql_on(replica_url, "SELECT has_table_privilege('pg_read_all_stats', 't', 'SELECT')") == [(True,)]


def test_a_domains_default_fills_a_new_not_null_column(master_url, replica_url, sql_on, tmp_path):
    # the column's type supplies the default PostgreSQL fills existing rows with: no empty table needed
    # (and through a domain over a domain that has the default)
    domain = ("CREATE DOMAIN lead_status AS text NOT NULL DEFAULT 'new' CHECK (VALUE <> '');"
              "CREATE DOMAIN channel AS text DEFAULT 'whatsapp'; CREATE DOMAIN lead_channel AS channel NOT NULL;")
    sql_on(master_url, domain + "CREATE TABLE leads (id int PRIMARY KEY, status lead_status NOT NULL, via lead_channel)")
    sql_on(replica_url, domain + "CREATE TABLE leads (id int PRIMARY KEY); INSERT INTO leads VALUES (1), (2)")
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 0, res.output
    assert sql_on(replica_url, "SELECT id, status, via FROM leads ORDER BY id") == [(1, "new", "whatsapp"),
                                                                                    (2, "new", "whatsapp")]


def test_a_domains_not_null_without_default_is_a_pre_check(master_url, replica_url, sql_on, tmp_path):
    # nullable as a column, NOT NULL through its domain: existing rows would get NULL, which it refuses
    domain = "CREATE DOMAIN wa_id AS text NOT NULL;"
    sql_on(master_url, domain + "CREATE TABLE contacts (id int PRIMARY KEY, wa wa_id)")
    sql_on(replica_url, domain + "CREATE TABLE contacts (id int PRIMARY KEY); INSERT INTO contacts VALUES (1), (2)")
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 2
    out = res.output.strip()
    assert "\n" not in out and "public.contacts.wa" in out and "2 rows" in out and "nothing was changed" in out
    sql_on(replica_url, "DELETE FROM contacts")
    assert _run(master_url, replica_url, tmp_path).exit_code == 0
    assert [c for (c,) in sql_on(replica_url, "SELECT attname FROM pg_attribute WHERE attrelid = 'contacts'::regclass "
                                              "AND attnum > 0 ORDER BY attnum")] == ["id", "wa"]


def test_replica_identity_follows_the_master(master_url, replica_url, sql_on, tmp_path):
    # Supabase Realtime sends an updated row's old values only under REPLICA IDENTITY FULL; a unique
    # index may serve as the identity, created first when the replica lacks it too
    sql_on(master_url, "CREATE TABLE messages (id int PRIMARY KEY, body text) ; ALTER TABLE messages REPLICA IDENTITY FULL;"
                       "CREATE TABLE leads (id int PRIMARY KEY, phone text NOT NULL);"
                       "CREATE UNIQUE INDEX \"Leads phone\" ON leads (phone); "
                       "ALTER TABLE leads REPLICA IDENTITY USING INDEX \"Leads phone\";"
                       "CREATE TABLE audit (id int, note text); ALTER TABLE audit REPLICA IDENTITY NOTHING")
    sql_on(replica_url, "CREATE TABLE messages (id int PRIMARY KEY, body text); "
                        "CREATE TABLE leads (id int PRIMARY KEY, phone text NOT NULL)")
    analyze = CliRunner().invoke(main, ["analyze", "--master", master_url, "--replica", replica_url,
                                        "--out-dir", str(tmp_path)])
    assert "replica identity default on replica, full on master" in (tmp_path / "reports" /
                                                                   "schema-comparison-report.md").read_text()
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 0, res.output
    ident = "SELECT relname, relreplident FROM pg_class WHERE relname IN ('messages', 'leads', 'audit') ORDER BY 1"
    assert sql_on(replica_url, ident) == sql_on(master_url, ident) == [("audit", "n"), ("leads", "i"), ("messages", "f")]
    assert sql_on(replica_url, "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                               "WHERE i.indisreplident") == [("Leads phone",)]
    again = CliRunner().invoke(main, ["analyze", "--master", master_url, "--replica", replica_url, "--out-dir",
                                      str(tmp_path), "--exit-code"])
    assert again.exit_code == 0, again.output
    # back to the default where the master went back
    sql_on(master_url, "ALTER TABLE messages REPLICA IDENTITY DEFAULT")
    assert _run(master_url, replica_url, tmp_path).exit_code == 0
    assert sql_on(replica_url, "SELECT relreplident FROM pg_class WHERE relname = 'messages'") == [("d",)]


def test_sql_functions_written_for_the_search_path_in_index_expressions(master_url, replica_url, sql_on, tmp_path):
    # a SQL function calling another without its schema, used by an index: planning any query on the
    # table inlines it under the search_path of the moment, which the introspection pins to pg_catalog
    # for its catalog reads; the counts it takes run under the session's own path
    ddl = ("CREATE FUNCTION public.squash(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(t) $$;"
           "CREATE FUNCTION public.norm(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT squash(t) $$;")
    sql_on(master_url, ddl + "CREATE TABLE contacts (id int PRIMARY KEY, email text); "
                             "CREATE INDEX contacts_norm ON contacts (public.norm(email)); "
                             "INSERT INTO contacts SELECT g, 'E' || g FROM generate_series(1, 100) g")
    sql_on(replica_url, ddl)
    res = _run(master_url, replica_url, tmp_path)
    assert res.exit_code == 0, res.output
    assert sql_on(replica_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'contacts' ORDER BY 1") == [
        ("contacts_norm",), ("contacts_pkey",)]
    again = CliRunner().invoke(main, ["analyze", "--master", master_url, "--replica", replica_url, "--out-dir",
                                      str(tmp_path), "--exit-code"])
    assert again.exit_code == 0, again.output
