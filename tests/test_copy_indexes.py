"""A copy into an empty table builds the table's indexes once after the load, not row by row during
it (replicator.copy.indexes): every index comes back as it was, those other objects need are never
touched, a crash leaves them recorded and the next copy builds them, and an index the master's rows
break fails the copy with its name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import run_cli
from copyhelp import kill, same, wait_until

from replicator.copy import copy_tables
from replicator.errors import ReplicatorError

CLI = os.path.join(os.path.dirname(sys.executable), "replicator")

# what a developer's table carries, as PostgreSQL itself prints it
INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid), con.contype, pg_get_constraintdef(con.oid),
       obj_description(i.indexrelid, 'pg_class'), obj_description(con.oid, 'pg_constraint')
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
WHERE i.indrelid = '{}'::regclass ORDER BY 1
"""
OIDS = "SELECT c.relname, c.oid::bigint FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid " \
       "WHERE i.indrelid = '{}'::regclass"
PENDING = "SELECT name FROM _replicator.deferred_indexes WHERE table_name = %s ORDER BY position"

TABLE = """
CREATE TABLE "Msgs" (
    id uuid PRIMARY KEY,
    wamid text,
    "Sender" varchar(20) NOT NULL,
    body text,
    payload jsonb,
    during tstzrange,
    CONSTRAINT "Msgs_wamid_key" UNIQUE (wamid) DEFERRABLE INITIALLY DEFERRED,
    EXCLUDE USING gist (during WITH &&) WITH (fillfactor = 80)
)
"""
EXTRA = """
CREATE INDEX "msgs sender" ON "Msgs" ("Sender", lower(body) text_pattern_ops) INCLUDE (wamid) WHERE body IS NOT NULL;
CREATE INDEX msgs_payload ON "Msgs" USING gin (payload jsonb_path_ops);
CREATE UNIQUE INDEX msgs_body_nnd ON "Msgs" (body) NULLS NOT DISTINCT;
COMMENT ON INDEX "msgs sender" IS 'the inbox query';
COMMENT ON CONSTRAINT "Msgs_pkey" ON "Msgs" IS 'message id from the gateway';
"""
FILL = """
INSERT INTO "Msgs" SELECT md5(i::text)::uuid, 'wamid.' || i, '+44' || (i % 50), 'message ' || i,
       jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 7)),
       tstzrange(timestamptz '2024-01-01' + i * interval '1 minute', timestamptz '2024-01-01' + (i + 1) * interval '1 minute')
FROM generate_series(1, {}) i
"""


def _table(sql_on, master_url, replica_url, rows=6000):
    for url in (master_url, replica_url):
        sql_on(url, TABLE)
        sql_on(url, EXTRA)
    sql_on(master_url, FILL.format(rows))


def test_indexes_built_after_the_load_come_back_as_they_were(master_url, replica_url, sql_on):
    _table(sql_on, master_url, replica_url)
    before = sql_on(replica_url, INDEXES.format('"Msgs"'))
    oids = dict(sql_on(replica_url, OIDS.format('"Msgs"')))
    res = copy_tables(master_url, replica_url, ["Msgs"], batch_size=500)
    t = res.tables[0]
    assert t.mode == "direct" and t.rows_copied == 6000
    assert same(sql_on, master_url, replica_url, '"Msgs"')
    assert sql_on(replica_url, INDEXES.format('"Msgs"')) == before  # definitions, constraints, comments
    rebuilt = {n for n, oid in sql_on(replica_url, OIDS.format('"Msgs"')) if oids[n] != oid}
    assert rebuilt == set(oids)  # all six were dropped and built again (new oids)...
    assert any("indexes built after the load" in n for n in t.notes)
    assert sql_on(replica_url, PENDING, ("public.Msgs",)) == []  # ...and none is left recorded
    # the rebuilt constraints work: a duplicate id, a duplicate wamid, an overlapping range are refused
    for bad in ("INSERT INTO \"Msgs\" (id, \"Sender\") SELECT id, 'x' FROM \"Msgs\" LIMIT 1",
                "INSERT INTO \"Msgs\" (id, wamid, \"Sender\") VALUES (gen_random_uuid(), 'wamid.7', 'x')",
                "INSERT INTO \"Msgs\" (id, \"Sender\", during) VALUES (gen_random_uuid(), 'x', "
                "tstzrange('2024-01-01 00:10', '2024-01-01 00:11'))"):
        with pytest.raises(Exception, match="duplicate key|conflicting key"):
            sql_on(replica_url, bad)


def test_one_batch_keeps_its_indexes(master_url, replica_url, sql_on):
    _table(sql_on, master_url, replica_url, rows=300)
    oids = dict(sql_on(replica_url, OIDS.format('"Msgs"')))
    t = copy_tables(master_url, replica_url, ["Msgs"], batch_size=50_000).tables[0]
    assert t.rows_copied == 300 and same(sql_on, master_url, replica_url, '"Msgs"')
    assert dict(sql_on(replica_url, OIDS.format('"Msgs"'))) == oids  # nothing dropped for a single batch


def test_indexes_other_objects_need_stay_in_place(master_url, replica_url, sql_on):
    ddl = """
    CREATE TABLE parent (id int PRIMARY KEY, code text NOT NULL, note text, n int);
    CREATE UNIQUE INDEX parent_code ON parent (code);
    CREATE INDEX parent_note ON parent (note);
    CREATE INDEX parent_n ON parent (n);
    CREATE INDEX parent_stats ON parent ((n * 2));
    CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
    """
    for url in (master_url, replica_url):
        sql_on(url, ddl)
    sql_on(replica_url, "ALTER TABLE parent CLUSTER ON parent_note")
    sql_on(replica_url, "ALTER TABLE parent REPLICA IDENTITY USING INDEX parent_code")
    sql_on(replica_url, "ALTER INDEX parent_stats ALTER COLUMN 1 SET STATISTICS 500")
    sql_on(master_url, "INSERT INTO parent SELECT i, 'c' || i, 'n' || i, i FROM generate_series(1, 3000) i")
    oids = dict(sql_on(replica_url, OIDS.format("parent")))
    copy_tables(master_url, replica_url, ["parent"], batch_size=300)
    assert same(sql_on, master_url, replica_url, "parent")
    after = dict(sql_on(replica_url, OIDS.format("parent")))
    kept = {n for n in oids if after.get(n) == oids[n]}
    # the key child's foreign key references, the clustered index, the replica identity, and the one
    # with a statistics target are never dropped; the plain one is built after the load
    assert kept == {"parent_pkey", "parent_note", "parent_code", "parent_stats"}
    assert set(after) == set(oids)
    assert sql_on(replica_url, "SELECT relreplident FROM pg_class WHERE relname = 'parent'") == [("i",)]


def test_sigkill_mid_load_leaves_them_recorded_and_the_rerun_builds_them(master_url, replica_url, sql_on, tmp_path):
    _table(sql_on, master_url, replica_url, rows=40_000)
    before = sql_on(replica_url, INDEXES.format('"Msgs"'))
    args = [CLI, "copy", "--master", master_url, "--replica", replica_url, "--table", "Msgs", "--batch-size", "400",
            "--out-dir", str(tmp_path)]

    def committed() -> int:
        if not sql_on(replica_url, "SELECT to_regclass('_replicator.checkpoints')")[0][0]:
            return 0
        row = sql_on(replica_url, "SELECT batches FROM _replicator.checkpoints")
        return row[0][0] if row else 0

    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(p, lambda: committed() >= 3)
    assert kill(p) == 1, "the copy ended before it could be killed: make the table bigger"
    p.wait()
    recorded = [r[0] for r in sql_on(replica_url, PENDING, ("public.Msgs",))]
    assert set(recorded) == {r[0] for r in before}
    assert sql_on(replica_url, "SELECT count(*) FROM pg_index WHERE indrelid = '\"Msgs\"'::regclass") == [(0,)]

    status = run_cli("status", "--replica", replica_url)
    assert status.code == 0, status.stderr
    assert "indexes waiting to be built" in status.stdout and "Msgs_pkey" in status.stdout

    # a dry run cannot compare by key without them, and must not build them: it says what to do
    dry = run_cli("copy", "--master", master_url, "--replica", replica_url, "--table", "Msgs", "--dry-run",
                  "--out-dir", str(tmp_path))
    assert dry.code != 0 and "indexes to build" in dry.stderr and "Traceback" not in dry.stderr

    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()
    assert same(sql_on, master_url, replica_url, '"Msgs"')
    assert sql_on(replica_url, INDEXES.format('"Msgs"')) == before
    assert sql_on(replica_url, PENDING, ("public.Msgs",)) == []


def test_an_index_the_masters_rows_break_fails_the_copy_by_name(master_url, replica_url, sql_on, tmp_path):
    ddl = "CREATE TABLE leads (id int PRIMARY KEY, phone text)"
    for url in (master_url, replica_url):
        sql_on(url, ddl)
    sql_on(replica_url, "CREATE UNIQUE INDEX leads_phone_key ON leads (phone)")  # the developer's, not the master's
    sql_on(master_url, "INSERT INTO leads SELECT i, '+44' || (i % 900) FROM generate_series(1, 3000) i")
    with pytest.raises(ReplicatorError, match=r"public\.leads: index leads_phone_key could not be built after the load"):
        copy_tables(master_url, replica_url, ["leads"], batch_size=500)
    assert [r[0] for r in sql_on(replica_url, PENDING, ("public.leads",))] == ["leads_pkey", "leads_phone_key"]
    # the next copy meets it again, first thing, and says so in one line
    r = run_cli("copy", "--master", master_url, "--replica", replica_url, "--table", "leads", "--out-dir", str(tmp_path))
    assert r.code != 0 and "Traceback" not in r.stderr
    assert "index leads_phone_key could not be built" in r.stderr and "is duplicated" in r.stderr
    # given up by the developer (as the message says): the copy completes with the key built
    sql_on(replica_url, "DELETE FROM _replicator.deferred_indexes WHERE name = 'leads_phone_key'")
    r = run_cli("copy", "--master", master_url, "--replica", replica_url, "--table", "leads", "--out-dir", str(tmp_path))
    assert r.code == 0, r.stderr
    assert same(sql_on, master_url, replica_url, "leads")
    assert sql_on(replica_url, OIDS.format("leads"))[0][0] == "leads_pkey"


def test_an_index_migrate_made_meanwhile_is_not_built_twice(master_url, replica_url, sql_on, tmp_path):
    _table(sql_on, master_url, replica_url, rows=4000)
    sql_on(replica_url, "CREATE SCHEMA _replicator")
    sql_on(replica_url, "CREATE TABLE _replicator.deferred_indexes (table_name text NOT NULL, name text NOT NULL, "
                        "position integer NOT NULL, create_sql text NOT NULL, comment_sql text, "
                        "dropped_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, name))")
    # as an interrupted copy leaves it, but someone built msgs_payload again by hand since
    sql_on(replica_url, "DROP INDEX \"msgs sender\"")
    sql_on(replica_url, "INSERT INTO _replicator.deferred_indexes VALUES ('public.Msgs', 'msgs_payload', 0, "
                        "'CREATE INDEX msgs_payload ON public.\"Msgs\" USING gin (payload jsonb_path_ops)', NULL), "
                        "('public.Msgs', 'msgs sender', 1, 'CREATE INDEX \"msgs sender\" ON public.\"Msgs\" "
                        "USING btree (\"Sender\", lower(body) text_pattern_ops) INCLUDE (wamid) "
                        "WHERE (body IS NOT NULL)', 'COMMENT ON INDEX public.\"msgs sender\" IS ''the inbox query''')")
    res = copy_tables(master_url, replica_url, ["Msgs"], batch_size=50_000)
    assert res.notes == ["public.Msgs: built the indexes an interrupted copy had left unbuilt: msgs sender"]
    names = [r[0] for r in sql_on(replica_url, OIDS.format('"Msgs"'))]
    assert sorted(names) == sorted(["Msgs_pkey", "Msgs_wamid_key", "Msgs_during_excl", "msgs sender", "msgs_payload",
                                    "msgs_body_nnd"])
    assert sql_on(replica_url, "SELECT obj_description('public.\"msgs sender\"'::regclass, 'pg_class')") == \
        [("the inbox query",)]


@pytest.mark.parametrize("how", ["granted, not the owner", "owner without CREATE on the schema"])
def test_a_role_that_could_not_build_them_again_loads_with_them(master_url, replica_url, sql_on, role, how):
    from conftest import url_with

    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE notes (id int PRIMARY KEY, body text); CREATE INDEX notes_body ON notes (body)")
    sql_on(replica_url, f"REVOKE CREATE ON SCHEMA public FROM PUBLIC; CREATE SCHEMA _replicator AUTHORIZATION {role}")
    sql_on(replica_url, f"GRANT ALL ON notes TO {role}" if how.startswith("granted") else f"ALTER TABLE notes OWNER TO {role}")
    sql_on(master_url, "INSERT INTO notes SELECT i, 'n' || i FROM generate_series(1, 3000) i")
    oids = dict(sql_on(replica_url, OIDS.format("notes")))
    t = copy_tables(master_url, url_with(replica_url, user=role, password="pw"), ["notes"], batch_size=300).tables[0]
    assert t.batches > 1 and same(sql_on, master_url, replica_url, "notes")
    assert dict(sql_on(replica_url, OIDS.format("notes"))) == oids  # never dropped
    assert not any("indexes built" in n for n in t.notes)


def test_no_index_is_dropped_while_the_copy_holds_foreign_keys_dropped(master_url, replica_url, sql_on, role):
    # a cycle copied by the tables' owner (foreign keys enforced): one key is dropped for the copy and
    # re-added after it, which needs the key it references; were that key dropped too and the run cut
    # short, a later run re-adding the foreign key would find no key to reference
    from conftest import url_with

    ddl = ("CREATE TABLE projects (id int PRIMARY KEY, name text, lead_id int); "
           "CREATE TABLE leads (id int PRIMARY KEY, project_id int REFERENCES projects (id), name text); "
           "CREATE INDEX leads_name ON leads (name); ALTER TABLE projects ADD FOREIGN KEY (lead_id) REFERENCES leads (id)")
    sql_on(master_url, ddl)
    sql_on(master_url, "INSERT INTO projects SELECT i, 'p' FROM generate_series(1, 50) i; "
                       "INSERT INTO leads SELECT i, i % 50 + 1, 'l' || i FROM generate_series(1, 3000) i; "
                       "UPDATE projects SET lead_id = id")
    sql_on(replica_url, f"GRANT CREATE ON SCHEMA public TO {role}; CREATE SCHEMA _replicator AUTHORIZATION {role}; "
                        f"SET ROLE {role}; {ddl}")
    oids = dict(sql_on(replica_url, OIDS.format("leads")))
    res = copy_tables(master_url, url_with(replica_url, user=role, password="pw"), ["leads", "projects"], batch_size=300)
    assert res.deferred_constraints and max(t.batches for t in res.tables) > 1
    assert dict(sql_on(replica_url, OIDS.format("leads"))) == oids
    assert same(sql_on, master_url, replica_url, "leads") and same(sql_on, master_url, replica_url, "projects")


def _record_as_dropped(sql_on, url, table, name, create_sql):
    """The state a load cut short leaves: the index dropped, its definition recorded."""
    sql_on(url, f"DROP INDEX {name}")
    sql_on(url, "INSERT INTO _replicator.deferred_indexes (table_name, name, position, create_sql) VALUES (%s, %s, 0, %s)",
           (table, name, create_sql))


def test_storage_parameters_and_extension_marks_keep_an_index_in_place(master_url, replica_url, sql_on):
    # pg_get_constraintdef prints no WITH (...) for a key, and no definition says DEPENDS ON EXTENSION
    ddl = ("CREATE TABLE tuned (id int PRIMARY KEY WITH (fillfactor = 60), code text, v text, "
           "CONSTRAINT tuned_code UNIQUE (code) WITH (deduplicate_items = off)); "
           "CREATE INDEX tuned_v ON tuned (v); CREATE INDEX tuned_plain ON tuned (v, id)")
    for url in (master_url, replica_url):
        sql_on(url, ddl)
    sql_on(replica_url, "ALTER INDEX tuned_v DEPENDS ON EXTENSION plpgsql")
    sql_on(master_url, "INSERT INTO tuned SELECT i, 'c' || i, 'v' || i FROM generate_series(1, 3000) i")
    oids = dict(sql_on(replica_url, OIDS.format("tuned")))
    copy_tables(master_url, replica_url, ["tuned"], batch_size=300)
    after = dict(sql_on(replica_url, OIDS.format("tuned")))
    assert {n for n in oids if after[n] == oids[n]} == {"tuned_pkey", "tuned_code", "tuned_v"}
    assert sql_on(replica_url, "SELECT relname, reloptions FROM pg_class WHERE relname IN ('tuned_pkey', 'tuned_code') "
                               "ORDER BY 1") == [("tuned_code", ["deduplicate_items=off"]), ("tuned_pkey", ["fillfactor=60"])]
    assert same(sql_on, master_url, replica_url, "tuned")


def test_a_reader_holding_the_table_does_not_hold_the_copy(master_url, replica_url, sql_on):
    import psycopg

    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE busy (id int PRIMARY KEY, v text); CREATE INDEX busy_v ON busy (v)")
    sql_on(master_url, "INSERT INTO busy SELECT i, 'v' || i FROM generate_series(1, 3000) i")
    oids = dict(sql_on(replica_url, OIDS.format("busy")))
    with psycopg.connect(replica_url) as reader:  # a developer's client, idle in a transaction after a SELECT
        reader.execute("SELECT count(*) FROM busy").fetchone()
        t = copy_tables(master_url, replica_url, ["busy"], batch_size=300).tables[0]
        assert t.rows_copied == 3000
    assert dict(sql_on(replica_url, OIDS.format("busy"))) == oids  # the drop gave up waiting: loaded with them
    assert same(sql_on, master_url, replica_url, "busy")


def test_a_build_that_fails_for_another_reason_says_so_and_what_it_left(master_url, replica_url, sql_on, tmp_path):
    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE calls (id int PRIMARY KEY, v text)")
    sql_on(replica_url, "CREATE FUNCTION strict_v(text) RETURNS text IMMUTABLE LANGUAGE plpgsql AS "
                        "$$ BEGIN IF $1 = 'v2999' THEN RAISE EXCEPTION 'v2999 is not allowed here'; END IF; "
                        "RETURN $1; END $$; CREATE INDEX calls_strict ON calls (strict_v(v))")
    sql_on(master_url, "INSERT INTO calls SELECT i, 'v' || i FROM generate_series(1, 3000) i")
    r = run_cli("copy", "--master", master_url, "--replica", replica_url, "--table", "calls", "--batch-size", "300",
                "--out-dir", str(tmp_path))
    assert r.code != 0 and "Traceback" not in r.stderr
    assert "replica: v2999 is not allowed here" in r.stderr
    assert "remove the replica rows" not in r.stderr  # not a unique key the rows break
    assert "public.calls lacks the indexes dropped for the load until the next copy builds them" in r.stderr
    # the first batch's transaction already held the checkpoint: status lists the table and its indexes
    status = run_cli("status", "--replica", replica_url, "--json")
    shown = json.loads(status.stdout)
    rows = {c["table_name"]: c for c in shown["checkpoints"]}
    assert rows["public.calls"]["state"] == "interrupted"
    assert shown["indexes_to_build"] == [{"table": "public.calls", "indexes": ["calls_pkey", "calls_strict"],
                                          "held_by_pid": None}]


def test_a_load_in_progress_is_not_called_interrupted(master_url, replica_url, sql_on, tmp_path):
    from replicator.copy.lock import TableLocks

    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE loading (id int PRIMARY KEY, v text); CREATE INDEX loading_v ON loading (v)")
    copy_tables(master_url, replica_url, ["loading"])  # (empty: creates the bookkeeping tables)
    _record_as_dropped(sql_on, replica_url, "public.loading", "loading_v",
                       "CREATE INDEX loading_v ON public.loading USING btree (v)")
    locks = TableLocks(replica_url)
    try:
        locks.acquire(["public.loading"])  # as the run loading the table holds it
        status = run_cli("status", "--replica", replica_url)
        assert "for the load in progress (replica session pid" in status.stdout
        dry = run_cli("copy", "--master", master_url, "--replica", replica_url, "--table", "loading", "--dry-run",
                      "--out-dir", str(tmp_path))
        assert dry.code != 0 and "is being loaded by another run" in dry.stderr
    finally:
        locks.close()
    status = run_cli("status", "--replica", replica_url)
    assert "indexes waiting to be built on public.loading" in status.stdout


def test_sync_builds_what_a_load_left_unbuilt_though_the_rows_match(master_url, replica_url, sql_on, tmp_path):
    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE u (id int PRIMARY KEY, b text)")
    sql_on(replica_url, "CREATE INDEX u_b_local ON u (b)")  # the developer's own: migrate would not make it
    sql_on(master_url, "INSERT INTO u SELECT i, 'b' || i FROM generate_series(1, 500) i")
    copy_tables(master_url, replica_url, ["u"])
    _record_as_dropped(sql_on, replica_url, "public.u", "u_b_local", "CREATE INDEX u_b_local ON public.u USING btree (b)")
    cfg = tmp_path / "replicator.toml"
    cfg.write_text('[copy]\npolicy = "master-wins"\n')
    r = run_cli("sync", "--master", master_url, "--replica", replica_url, "--config", str(cfg), "--out-dir",
                str(tmp_path))
    assert r.code == 0, r.stderr
    assert sorted(n for n, _ in sql_on(replica_url, OIDS.format("u"))) == ["u_b_local", "u_pkey"]
    assert sql_on(replica_url, "SELECT count(*) FROM _replicator.deferred_indexes") == [(0,)]
    assert same(sql_on, master_url, replica_url, "u")


def test_an_older_bookkeeping_schema_without_the_record_table(master_url, replica_url, sql_on, role):
    # a role given the tables of an earlier version's _replicator, not CREATE on it: copies as before,
    # loading with the indexes in place
    from conftest import url_with

    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE old (id int PRIMARY KEY, v text); CREATE INDEX old_v ON old (v)")
    copy_tables(master_url, replica_url, ["old"])  # creates the bookkeeping, as its owner
    sql_on(replica_url, f"DROP TABLE _replicator.deferred_indexes; ALTER TABLE old OWNER TO {role}; "
                        f"GRANT CREATE ON SCHEMA public TO {role}; GRANT USAGE ON SCHEMA _replicator TO {role}; "
                        f"GRANT ALL ON ALL TABLES IN SCHEMA _replicator TO {role}")
    sql_on(master_url, "INSERT INTO old SELECT i, 'v' || i FROM generate_series(1, 3000) i")
    oids = dict(sql_on(replica_url, OIDS.format("old")))
    t = copy_tables(master_url, url_with(replica_url, user=role, password="pw"), ["old"], batch_size=300).tables[0]
    assert t.rows_copied == 3000 and same(sql_on, master_url, replica_url, "old")
    assert dict(sql_on(replica_url, OIDS.format("old"))) == oids


def test_a_relation_that_took_the_name_meanwhile_fails_the_build_by_name(master_url, replica_url, sql_on, tmp_path):
    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE taken (id int PRIMARY KEY, v text); CREATE INDEX taken_v ON taken (v)")
    copy_tables(master_url, replica_url, ["taken"])  # (empty: creates the bookkeeping tables)
    _record_as_dropped(sql_on, replica_url, "public.taken", "taken_v", "CREATE INDEX taken_v ON public.taken USING btree (v)")
    sql_on(replica_url, "CREATE VIEW taken_v AS SELECT 1 AS one")  # not an index of the table: never skipped as built
    r = run_cli("copy", "--master", master_url, "--replica", replica_url, "--table", "taken", "--out-dir", str(tmp_path))
    assert r.code != 0 and "Traceback" not in r.stderr
    assert 'relation "taken_v" already exists' in r.stderr
    assert [n for (n,) in sql_on(replica_url, PENDING, ("public.taken",))] == ["taken_v"]  # still recorded


def test_a_load_in_one_transaction_drops_and_builds_them_in_it(master_url, replica_url, sql_on):
    # --policy replace (TRUNCATE + COPY) and a keyless table into an empty one are one transaction:
    # the indexes are dropped and built inside it, nothing recorded, a failure leaves the table as it was
    ddl = ("CREATE TABLE leads (id int PRIMARY KEY, phone text, note text); CREATE INDEX leads_note ON leads (note);"
           "CREATE TABLE events (at timestamptz, kind text, payload jsonb); CREATE INDEX events_at ON events (at);"
           "CREATE INDEX events_payload ON events USING gin (payload)")
    for url in (master_url, replica_url):
        sql_on(url, ddl)
    sql_on(master_url, "INSERT INTO leads SELECT i, '+44' || (i % 900), 'n' || i FROM generate_series(1, 3000) i;"
                       "INSERT INTO events SELECT timestamptz '2024-01-01' + i * interval '1 min', 'k' || (i % 5), "
                       "jsonb_build_object('i', i) FROM generate_series(1, 3000) i; ANALYZE leads, events")
    sql_on(replica_url, "INSERT INTO leads VALUES (1, 'local', 'mine'); CREATE UNIQUE INDEX leads_phone ON leads (phone)")
    before = sql_on(replica_url, INDEXES.format("leads"))
    oids = dict(sql_on(replica_url, OIDS.format("leads")))
    # the developer's unique index on phone: the master's rows break it, so the replace rolls back whole
    with pytest.raises(ReplicatorError, match=r"index leads_phone could not be built after the load: could not create "
                                              r"unique index .*the load was rolled back: the table is as it was"):
        copy_tables(master_url, replica_url, ["leads"], policy="replace", batch_size=300)
    assert sql_on(replica_url, "SELECT id, phone FROM leads") == [(1, "local")]
    assert dict(sql_on(replica_url, OIDS.format("leads"))) == oids
    sql_on(replica_url, "DROP INDEX leads_phone")
    before = [r for r in before if r[0] != "leads_phone"]
    res = copy_tables(master_url, replica_url, ["leads", "events"], policy="replace", batch_size=300)
    assert all(any("indexes built after the load" in n for n in t.notes) for t in res.tables), res.tables
    assert sql_on(replica_url, INDEXES.format("leads")) == before
    assert same(sql_on, master_url, replica_url, "leads") and same(sql_on, master_url, replica_url, "events")
    # keyless into an empty table, no policy
    sql_on(replica_url, "TRUNCATE events")
    ev = dict(sql_on(replica_url, OIDS.format("events")))
    t = copy_tables(master_url, replica_url, ["events"], batch_size=300).tables[0]
    assert t.mode == "keyless" and same(sql_on, master_url, replica_url, "events")
    after = dict(sql_on(replica_url, OIDS.format("events")))
    assert set(after) == set(ev) and all(after[n] != ev[n] for n in ev)
    assert not sql_on(replica_url, PENDING, ("public.events",))
