"""`replicator sync` on real servers: init then sync brings the drifted sample replica in line; a
second sync with nothing changed writes no row (the replica's own row counters say so); exit codes;
one report; selection and subsets; an interrupted sync or copy shown by `status` with the command
that resumes it. "Equal" is judged by independent SQL, not by replicator's verify."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import psycopg
import pytest
from click.testing import CliRunner
from copyhelp import checksum

from replicator.cli import main
from replicator.examples import load_example

CLI = os.path.join(os.path.dirname(sys.executable), "replicator")
ONLY_ON_MASTER = ["conversations", "whatsapp_messages", "agent_interaction_logs", "conversation_audit_log",
                  "lead_status_history"]
FKS = [("projects", "client_id", "clients"), ("leads", "current_project_id", "projects"),
       ("conversations", "lead_id", "leads"), ("agent_interaction_logs", "lead_id", "leads"),
       ("agent_interaction_logs", "conversation_id", "conversations"),
       ("conversation_audit_log", "conversation_id", "conversations"), ("lead_status_history", "lead_id", "leads")]

COUNTERS = """SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd
              FROM pg_stat_user_tables WHERE schemaname IN ('public', '_replicator') ORDER BY 1"""


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def counters(url: str) -> dict:
    """Row counters of every table on the replica, once the servers' statistics have settled (they
    are flushed when a session ends, a moment after the client closed it)."""
    last, stable_since = None, time.monotonic()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as conn:
            now = {r[0]: r[1:] for r in conn.execute(COUNTERS).fetchall()}
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since > 1.0:
            return now
        time.sleep(0.2)
    return last


def orphans(sql_on, url) -> int:
    return sum(sql_on(url, f"SELECT count(*) FROM {c} x WHERE x.{col} IS NOT NULL AND NOT EXISTS "
                           f"(SELECT 1 FROM {p} y WHERE y.id = x.{col})")[0][0] for c, col, p in FKS)


@pytest.fixture
def samples(master_url, replica_url, tmp_path):
    load_example(master_url, "master")
    load_example(replica_url, "replica")
    cfg = tmp_path / "replicator.toml"
    res = _run("init", "--master", master_url, "--replica", replica_url, "--config", cfg)
    assert res.exit_code == 0, res.output
    return ["--master", master_url, "--replica", replica_url, "--config", cfg, "--out-dir", tmp_path]


def test_init_then_sync_brings_the_replica_in_line_and_a_second_sync_writes_nothing(samples, master_url, replica_url,
                                                                                   sql_on, tmp_path):
    local = {t: sql_on(replica_url, f"SELECT count(*) FROM {t}")[0][0] for t in ("clients", "projects", "leads")}
    res = _run("sync", *samples)
    assert res.exit_code == 0, res.output
    assert "sync: in line" in res.stdout
    # independent checks: tables the replica lacked now equal the master's
    for t in ONLY_ON_MASTER:
        assert checksum(sql_on, master_url, t) == checksum(sql_on, replica_url, t), t
    # master-wins (init's default): every master row is on the replica as on the master, the replica's
    # own rows are kept
    for t in ("clients", "projects", "leads"):
        cols = [c for (c,) in sql_on(master_url, f"SELECT column_name FROM information_schema.columns "
                                                 f"WHERE table_name = '{t}' ORDER BY ordinal_position")]
        sel = f"(SELECT {', '.join(cols)} FROM {t}) t"
        master_rows = {r[0] for r in sql_on(master_url, f"SELECT to_jsonb(t)::text FROM {sel}")}
        replica_rows = {r[0] for r in sql_on(replica_url, f"SELECT to_jsonb(t)::text FROM {sel}")}
        assert master_rows <= replica_rows, t
        shared = sql_on(master_url, f"SELECT count(*) FROM {t}")[0][0]
        assert len(replica_rows) >= local[t]
        assert len(replica_rows) <= local[t] + shared
    assert orphans(sql_on, replica_url) == 0
    reports = sorted((tmp_path / "reports").iterdir())
    assert [p.name for p in reports if p.is_file()] == [p.name for p in reports if p.name.startswith("sync-")]
    assert len([p for p in reports if p.is_file()]) == 1  # one report (plus the migration's backup directory)
    assert (tmp_path / "reports" / "backups").is_dir()

    # a second sync, nothing changed: in line, and not one row written on the replica
    before = counters(replica_url)
    res = _run("sync", *samples, "--json")
    assert res.exit_code == 0, res.output
    second = json.loads(res.stdout)
    assert {t["action"] for t in second["tables"]} == {"in line"}, second["tables"]
    assert second["applied"] == []
    assert counters(replica_url) == before
    assert any("read from the cache" in n for n in second["notes"])

    # the master changes: the next sync copies that table only (and the counters see it)
    sql_on(master_url, "UPDATE conversations SET status = 'changed by the test' WHERE id = (SELECT id FROM conversations ORDER BY id LIMIT 1)")
    res = _run("sync", *samples, "--json", "--deep")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    content = [c for c in out["verify"]["checks"] if c["name"] == "content"]
    assert out["verify"]["deep"] and len(content) == 8
    assert {c["status"] for c in content if c["table"] in {f"public.{t}" for t in ONLY_ON_MASTER}} == {"pass"}
    third = {t["table"]: t for t in out["tables"]}
    assert third["public.conversations"]["action"] == "copied" and third["public.conversations"]["updated"] == 1
    assert {t["action"] for k, t in third.items() if k != "public.conversations"} == {"in line"}
    after = counters(replica_url)
    assert after["public.conversations"][1] == before["public.conversations"][1] + 1
    assert checksum(sql_on, master_url, "conversations") == checksum(sql_on, replica_url, "conversations")


def test_differences_that_remain_exit_1_and_errors_exit_2(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, "CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL); INSERT INTO t VALUES (1, 1);"
                       "CREATE TABLE u (id int PRIMARY KEY, b text); INSERT INTO u VALUES (1, 'x');")
    sql_on(replica_url, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (7);"
                        "CREATE TABLE u (id int PRIMARY KEY, b text)")
    cfg = tmp_path / "replicator.toml"
    cfg.write_text('[copy]\npolicy = "master-wins"\n')
    common = ["--master", master_url, "--replica", replica_url, "--config", cfg, "--out-dir", tmp_path]
    res = _run("sync", *common, "--json")
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    tables = {t["table"]: t for t in out["tables"]}
    assert tables["public.u"]["action"] == "copied"
    assert tables["public.t"]["action"] == "not copied" and "t.a is missing on the replica" in tables["public.t"]["reason"]
    assert any("pre-check" in s["reason"] for s in out["skipped"])  # NOT NULL without default on a non-empty table
    assert sql_on(replica_url, "SELECT b FROM u") == [("x",)]
    # errors: exit 2, one line, and still a report
    res = _run("sync", *common, "--subset", "nosuch: id = 1")
    assert res.exit_code == 2 and "error: --subset nosuch: no such table" in res.output, res.output
    assert "Traceback" not in res.output
    # one sync at a time
    with psycopg.connect(replica_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended('replicator sync', 0))")
        res = _run("sync", *common)
        assert res.exit_code == 2 and "another replicator sync is running" in res.output, res.output


def test_sync_narrows_a_type_when_every_value_fits(master_url, replica_url, sql_on, tmp_path):
    # text -> varchar(10), bigint -> integer: a value that does not fit would make the statement fail (it
    # is never cut), so a passing pre-check is enough for sync to apply them
    ddl = "CREATE TABLE a (id int PRIMARY KEY, t text, n bigint); INSERT INTO a SELECT g, 's' || g, g FROM generate_series(1, 100) g"
    for url in (master_url, replica_url):
        sql_on(url, ddl)
    sql_on(master_url, "ALTER TABLE a ALTER COLUMN t TYPE varchar(10), ALTER COLUMN n TYPE integer")
    common = ["--master", master_url, "--replica", replica_url, "--out-dir", tmp_path, "--policy", "master-wins"]
    res = _run("sync", *common)
    assert res.exit_code == 0, res.output
    assert sql_on(replica_url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'a'::regclass "
                               "AND attname IN ('t', 'n') ORDER BY attname") == [("integer",), ("character varying(10)",)]
    # a value that does not fit holds the step back; the copy then brings the master's shorter values,
    # so the next sync applies it
    sql_on(master_url, "UPDATE a SET t = left(t, 3); ALTER TABLE a ALTER COLUMN t TYPE varchar(3)")
    res = _run("sync", *common, "--json")
    assert res.exit_code == 1
    assert any("pre-check" in s["reason"] for s in json.loads(res.stdout)["skipped"])
    assert sql_on(replica_url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'a'::regclass "
                               "AND attname = 't'") == [("character varying(10)",)]
    res = _run("sync", *common)
    assert res.exit_code == 0, res.output
    assert sql_on(replica_url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'a'::regclass "
                               "AND attname = 't'") == [("character varying(3)",)]
    assert checksum(sql_on, master_url, "a") == checksum(sql_on, replica_url, "a")


def test_a_foreign_key_to_a_recreated_table_is_added_after_the_copy(master_url, replica_url, sql_on, tmp_path):
    # m became partitioned on the master: sync recreates it empty, so refm's key to it cannot be
    # validated before the copy; it is checked again after the copy fills m, and added in the same run
    sql_on(replica_url, """
        CREATE TABLE m (id int, d date, v text, PRIMARY KEY (id, d));
        INSERT INTO m SELECT g, '2024-01-01'::date + g % 60, 'r' FROM generate_series(1, 1000) g;
        CREATE TABLE refm (id int PRIMARY KEY, mid int, md date, FOREIGN KEY (mid, md) REFERENCES m (id, d));
        INSERT INTO refm SELECT g, g, '2024-01-01'::date + g % 60 FROM generate_series(1, 100) g""")
    sql_on(master_url, """
        CREATE TABLE m (id int, d date, v text, PRIMARY KEY (id, d)) PARTITION BY RANGE (d);
        CREATE TABLE m_jan PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
        CREATE TABLE m_rest PARTITION OF m DEFAULT;
        INSERT INTO m SELECT g, '2024-01-01'::date + g % 60, 'r' FROM generate_series(1, 1200) g;
        CREATE TABLE refm (id int PRIMARY KEY, mid int, md date, FOREIGN KEY (mid, md) REFERENCES m (id, d));
        INSERT INTO refm SELECT g, g, '2024-01-01'::date + g % 60 FROM generate_series(1, 100) g""")
    common = ["--master", master_url, "--replica", replica_url, "--out-dir", tmp_path, "--policy", "mirror"]
    res = _run("sync", *common, "--allow-destructive", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert not out["skipped"] and any(a.get("after_copy") for a in out["applied"])
    assert sql_on(replica_url, "SELECT convalidated FROM pg_constraint WHERE conrelid = 'refm'::regclass "
                               "AND contype = 'f' AND conparentid = 0") == [(True,)]
    # a new key on the master, and a replica row that is its only orphan: mirror deletes that row, then
    # the key fits; under keep-replica the row stays and the key is reported as held back
    sql_on(replica_url, "SET session_replication_role = replica; INSERT INTO refm VALUES (500, 99999, '2024-01-01')")
    sql_on(master_url, "CREATE TABLE owner (id int PRIMARY KEY); INSERT INTO owner SELECT generate_series(1, 100);"
                       "ALTER TABLE refm ADD CONSTRAINT refm_owner FOREIGN KEY (id) REFERENCES owner (id)")
    res = _run("sync", *common[:-2], "--policy", "keep-replica", "--json")
    assert res.exit_code == 1
    (held,) = json.loads(res.stdout)["skipped"]
    assert "refm_owner" in held["object"] and "after the copy too" in held["reason"]
    res = _run("sync", *common, "--json")
    assert res.exit_code == 0, res.output
    assert [a["object"] for a in json.loads(res.stdout)["applied"] if a.get("after_copy")] == [held["object"]]
    assert sql_on(replica_url, "SELECT count(*) FROM refm WHERE id = 500") == [(0,)]


def test_materialized_views_over_copied_tables_are_refreshed(master_url, replica_url, sql_on, tmp_path):
    # created by the migration over still empty tables, they would stay empty; a view over a view and a
    # materialized view over another are refreshed after what they read
    sql_on(master_url, """
        CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 100) g;
        CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS c, sum(v) AS s FROM t;
        CREATE VIEW big AS SELECT * FROM t WHERE v > 50;
        CREATE MATERIALIZED VIEW mv_big AS SELECT count(*) AS c FROM big;
        CREATE MATERIALIZED VIEW mv_twice AS SELECT c * 2 AS c2 FROM mv""")
    common = ["--master", master_url, "--replica", replica_url, "--out-dir", tmp_path]
    res = _run("sync", *common, "--json")
    assert res.exit_code == 0, res.output
    assert "refreshed materialized view(s) over the copied tables: public.mv, public.mv_big, public.mv_twice" in \
        json.loads(res.stdout)["notes"]
    for v in ("mv", "mv_big", "mv_twice"):
        assert checksum(sql_on, master_url, v) == checksum(sql_on, replica_url, v), v
    # nothing copied: nothing refreshed
    res = _run("sync", *common, "--json")
    assert not [n for n in json.loads(res.stdout)["notes"] if "refreshed" in n]


def test_sync_selection_and_subset(master_url, replica_url, sql_on, tmp_path):
    load_example(master_url, "master")
    load_example(replica_url, "replica")
    cfg = tmp_path / "replicator.toml"
    cfg.write_text('[copy]\npolicy = "mirror"\n[tables.leads.renames]\nproject_id = "current_project_id"\n')
    common = ["--master", master_url, "--replica", replica_url, "--config", cfg, "--out-dir", tmp_path]
    # --exclude: neither migrated nor copied
    res = _run("sync", *common, "--exclude", "whatsapp_*", "--json")
    assert res.exit_code == 0, res.output
    assert "public.whatsapp_messages" not in {t["table"] for t in json.loads(res.stdout)["tables"]}
    assert sql_on(replica_url, "SELECT to_regclass('whatsapp_messages') IS NULL")[0][0]
    # one client's subset, with the rows that reference it, mirrored
    client = sql_on(master_url, "SELECT id::text FROM clients ORDER BY name LIMIT 1")[0][0]
    subset = ["--subset", f"clients: id = '{client}'", "--with-referencing", "--exclude", "whatsapp_*"]
    res = _run("sync", *common, *subset, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["subset_rows"]["public.clients"] == 1
    assert sql_on(replica_url, "SELECT id::text FROM clients") == [(client,)]
    assert sql_on(replica_url, "SELECT count(*) FROM projects WHERE client_id::text <> %s", (client,))[0][0] == 0
    assert orphans(sql_on, replica_url) == 0
    leads = sql_on(master_url, "SELECT count(*) FROM leads l JOIN projects p ON p.id = l.current_project_id "
                               "WHERE p.client_id::text = %s", (client,))[0][0]
    assert sql_on(replica_url, "SELECT count(*) FROM leads")[0][0] == leads
    # again: nothing to do, nothing written
    before = counters(replica_url)
    res = _run("sync", *common, *subset, "--json")
    assert res.exit_code == 0, res.output
    assert {t["action"] for t in json.loads(res.stdout)["tables"]} == {"in line"}
    assert counters(replica_url) == before


def test_status_shows_an_interrupted_copy_and_the_command_that_resumes_it(master_url, replica_url, sql_on, tmp_path):
    ddl = "CREATE TABLE msgs (id int PRIMARY KEY, body text)"
    sql_on(master_url, ddl)
    sql_on(replica_url, ddl)
    sql_on(master_url, "INSERT INTO msgs SELECT i, repeat('x', 500) || i FROM generate_series(1, 60000) i")
    sql_on(replica_url, "INSERT INTO msgs VALUES (0, 'local')")  # not empty: the keyed path, batch by batch
    p = subprocess.Popen([CLI, "copy", "--master", master_url, "--replica", replica_url, "--table", "msgs",
                          "--policy", "master-wins", "--batch-size", "200", "--out-dir", str(tmp_path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    running = False
    while time.monotonic() < deadline and p.poll() is None and not running:
        running = bool(sql_on(replica_url, "SELECT to_regclass('_replicator.checkpoints') IS NOT NULL")[0][0] and
                       sql_on(replica_url, "SELECT count(*) FROM _replicator.checkpoints WHERE status = 'running' "
                                           "AND batches > 0")[0][0])
        time.sleep(0.01)
    assert running, "the copy finished before it could be interrupted"
    res = _run("status", "--replica", replica_url, "--json")
    assert json.loads(res.stdout)["checkpoints"][0]["state"].startswith("running (replica session pid"), res.output  # its lock is held
    p.send_signal(signal.SIGKILL)
    p.wait()
    time.sleep(0.3)
    res = _run("status", "--replica", replica_url, "--json")
    shown = json.loads(res.stdout)
    (row,) = shown["checkpoints"]
    assert row["state"] == "interrupted" and row["status"] == "running"
    assert row["resume"] == "replicator copy --table public.msgs --policy master-wins"
    assert shown["resume"] == [row["resume"]] and shown["sync"] is None
    res = _run("status", "--replica", replica_url)
    assert "interrupted" in res.output and "replicator copy --table public.msgs --policy master-wins" in res.output
    # the command it gives resumes the copy
    res = _run("copy", "--master", master_url, "--replica", replica_url, "--table", "public.msgs",
               "--policy", "master-wins", "--out-dir", tmp_path)
    assert res.exit_code == 0, res.output
    assert checksum(sql_on, master_url, "msgs") == checksum(sql_on, replica_url, "(SELECT * FROM msgs WHERE id > 0)")
    res = _run("status", "--replica", replica_url, "--json")
    assert json.loads(res.stdout)["checkpoints"][0]["state"] == "done"


def test_status_shows_an_interrupted_sync(samples, replica_url, sql_on, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATOR_")}
    p = subprocess.Popen([CLI, "sync", *[str(a) for a in samples]], cwd=tmp_path, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if sql_on(replica_url, "SELECT to_regclass('_replicator.sync_run') IS NOT NULL")[0][0]:
            break
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    if not sql_on(replica_url, "SELECT to_regclass('_replicator.sync_run') IS NOT NULL")[0][0]:
        pytest.skip("the sync was killed before it recorded itself")
    time.sleep(0.3)
    res = _run("status", "--replica", replica_url)
    assert "last sync: interrupted" in res.output, res.output
    assert "resume with:" in res.output and "replicator sync --config" in res.output
    shown = json.loads(_run("status", "--replica", replica_url, "--json").stdout)
    assert shown["sync"]["status"] == "interrupted" and shown["resume"] == [shown["sync"]["command"]]
    assert "replicator sync --config" in shown["sync"]["command"]
    # resuming: the same sync finishes the job
    res = _run("sync", *samples)
    assert res.exit_code == 0, res.output
    assert "last sync: done" in _run("status", "--replica", replica_url).output


def test_a_sync_with_no_policy_copies_what_a_stopped_copy_had_not_reached(master_url, replica_url, sql_on, tmp_path):
    """A copy (no policy, empty replica) stopped after its first table: a sync with no policy copies the
    table the copy never reached, and leaves the finished one, which holds rows, to a policy."""
    from replicator.copy import copy_tables

    ddl = "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text)"
    sql_on(master_url, ddl)
    sql_on(replica_url, ddl)
    sql_on(master_url, "INSERT INTO a SELECT i, 'a' || i FROM generate_series(1, 500) i;"
                       "INSERT INTO b SELECT i, 'b' || i FROM generate_series(1, 500) i")

    def stop(event, table, **info):
        if event == "end":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_tables(master_url, replica_url, ["a", "b"], progress=stop)
    statuses = dict(sql_on(replica_url, "SELECT table_name, status FROM _replicator.checkpoints"))
    assert sorted(statuses.values()) == ["done", "queued"]
    finished = next(t for t, s in statuses.items() if s == "done")
    reached = next(t for t, s in statuses.items() if s == "queued")
    sql_on(master_url, f"UPDATE {finished} SET v = 'changed' WHERE id = 3")
    res = _run("sync", "--master", master_url, "--replica", replica_url, "--out-dir", tmp_path, "--json")
    assert res.exit_code == 1, res.output  # a difference remains: the finished table's
    actions = {t["table"]: t["action"] for t in json.loads(res.stdout)["tables"]}
    assert actions == {finished: "not copied", reached: "copied"}, actions
    assert checksum(sql_on, master_url, reached.split(".")[1]) == checksum(sql_on, replica_url, reached.split(".")[1])


def test_the_migration_report_lists_the_statements_it_applied(master_url, replica_url, sql_on, tmp_path):
    load_example(master_url, "master")
    load_example(replica_url, "replica")
    cfg = tmp_path / "replicator.toml"
    cfg.write_text('[tables.leads.renames]\nproject_id = "current_project_id"\n')
    common = ["--master", master_url, "--replica", replica_url, "--config", cfg, "--out-dir", tmp_path]
    # a reviewed plan file, applied as written
    assert _run("analyze", *common).exit_code == 0
    plan = tmp_path / "schemas" / "master-schema-replication.sql"
    res = _run("migrate", *common, "--plan", plan)
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "reports" / "migration-report.json").read_text())
    applied = report["applied_statements"]
    assert [a["step"] for a in applied] == report["applied"] and len(applied) > 50
    assert any(a["sql"].startswith("ALTER TABLE public.leads RENAME COLUMN project_id TO current_project_id")
               for a in applied)
    assert not any("DROP CONSTRAINT leads_project_id_fkey" in a["sql"] for a in applied)  # commented out: not run
    md = (tmp_path / "reports" / "migration-report.md").read_text()
    assert "## Applied statements" in md and "CREATE TABLE public.conversations" in md
    # every applied statement really ran: the replica now has what they create
    assert sql_on(replica_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0][0] == 8
    # recomputed plan: nothing left but the two destructive steps, listed as skipped
    res = _run("migrate", *common)
    assert res.exit_code == 0
    report = json.loads((tmp_path / "reports" / "migration-report.json").read_text())
    assert report["applied_statements"] == [] and len(report["skipped"]) == 2


def test_sync_copies_the_managed_rows_public_tables_reference(master_url, replica_url, sql_on, tmp_path):
    from test_copy_managed import SUPABASE_SHAPED, USERS

    for url in (master_url, replica_url):
        sql_on(url, SUPABASE_SHAPED)
    sql_on(master_url, USERS)
    cfg = tmp_path / "replicator.toml"
    cfg.write_text('[copy]\npolicy = "master-wins"\n')
    common = ["--master", master_url, "--replica", replica_url, "--config", cfg, "--out-dir", tmp_path]
    res = _run("sync", *common, "--json")
    assert res.exit_code == 0, res.output
    tables = {t["table"]: t for t in json.loads(res.stdout)["tables"]}
    assert tables["auth.users"]["inserted"] == 40 and tables["public.profiles"]["inserted"] == 40
    assert "auth.sessions" not in tables  # not referenced by a public table
    assert sql_on(replica_url, "SELECT count(*) FROM auth.users WHERE encrypted_password <> ''") == [(0,)]
    before = counters(replica_url)
    res = _run("sync", *common, "--json")
    assert res.exit_code == 0, res.output
    assert {t["action"] for t in json.loads(res.stdout)["tables"]} == {"in line"}  # masked values compared
    assert counters(replica_url) == before


def test_changes_on_either_side_are_seen_after_a_sync_that_found_nothing(samples, master_url, replica_url, sql_on):
    assert _run("sync", *samples).exit_code == 0
    assert _run("sync", *samples).exit_code == 0  # schemas and checksums now come from the last sync
    # DDL on the master: the catalog digest moves, the schema is read again and the column added
    sql_on(master_url, "ALTER TABLE conversations ADD COLUMN channel text; "
                       "UPDATE conversations SET channel = 'whatsapp' WHERE message_type = 'inbound'")
    res = _run("sync", *samples, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert any("ADD COLUMN channel" in a["sql"] for a in out["applied"])
    conv = {t["table"]: t for t in out["tables"]}["public.conversations"]
    inbound = sql_on(master_url, "SELECT count(*) FROM conversations WHERE message_type = 'inbound'")[0][0]
    assert conv["action"] == "copied" and conv["updated"] == inbound > 0
    assert checksum(sql_on, master_url, "conversations") == checksum(sql_on, replica_url, "conversations")
    # a comment alone is a catalog change too
    sql_on(master_url, "COMMENT ON COLUMN conversations.channel IS 'where it came from'")
    out = json.loads(_run("sync", *samples, "--json").stdout)
    assert any("COMMENT ON COLUMN public.conversations.channel" in a["sql"] for a in out["applied"])
    # on the replica, someone deletes a copied row of a master-wins table and adds one of their own:
    # the checksums moved from those the last sync left, so the table is compared and repaired
    lead = sql_on(master_url, "SELECT id FROM leads ORDER BY id LIMIT 1")[0][0]
    for t, col in [("lead_status_history", "lead_id"), ("agent_interaction_logs", "lead_id"),
                   ("conversation_audit_log", "conversation_id IN (SELECT id FROM conversations WHERE lead_id"),
                   ("agent_interaction_logs", "conversation_id IN (SELECT id FROM conversations WHERE lead_id"),
                   ("conversations", "lead_id"), ("leads", "id")]:
        cond = f"{col} = %s)" if "(" in col else f"{col} = %s"
        sql_on(replica_url, f"DELETE FROM {t} WHERE {cond}", (lead,))
    sql_on(replica_url, "INSERT INTO clients (name) VALUES ('a local client')")
    out = json.loads(_run("sync", *samples, "--json").stdout)
    actions = {t["table"]: t for t in out["tables"]}
    assert actions["public.leads"]["action"] == "copied" and actions["public.leads"]["inserted"] == 1
    assert actions["public.clients"]["action"] == "copied" and actions["public.clients"]["inserted"] == 0
    assert sql_on(replica_url, "SELECT count(*) FROM clients WHERE name = 'a local client'")[0][0] == 1  # kept
    for t in ONLY_ON_MASTER:
        assert checksum(sql_on, master_url, t) == checksum(sql_on, replica_url, t), t
    out = json.loads(_run("sync", *samples, "--json").stdout)
    assert {t["action"] for t in out["tables"]} == {"in line"}


def test_sync_takes_table_globs_and_where(master_url, replica_url, sql_on, tmp_path):
    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE msgs (id int PRIMARY KEY, client_id int NOT NULL, body text);"
                    "CREATE TABLE msgs_archive (id int PRIMARY KEY, body text); CREATE TABLE other (id int PRIMARY KEY)")
    sql_on(master_url, "INSERT INTO msgs SELECT i, i % 3, 'm' || i FROM generate_series(1, 300) i;"
                       "INSERT INTO msgs_archive SELECT i, 'a' FROM generate_series(1, 10) i; INSERT INTO other VALUES (1)")
    sql_on(replica_url, "INSERT INTO msgs VALUES (1000, 1, 'local')")
    cfg = tmp_path / "replicator.toml"
    cfg.write_text('[tables.msgs]\nwhere = "client_id = 2"\npolicy = "mirror"\n[copy]\npolicy = "master-wins"\n')
    common = ["--master", master_url, "--replica", replica_url, "--config", cfg, "--out-dir", tmp_path]
    res = _run("sync", *common, "--table", "msgs*", "--exclude", "*_archive", "--json")
    assert res.exit_code == 0, res.output
    assert [t["table"] for t in json.loads(res.stdout)["tables"]] == ["public.msgs"]
    # the replica holds exactly the master's rows matching the where (mirror), judged independently
    assert checksum(sql_on, master_url, "(SELECT * FROM msgs WHERE client_id = 2)") == checksum(sql_on, replica_url, "msgs")
    assert sql_on(replica_url, "SELECT count(*) FROM other")[0][0] == 0
    before = counters(replica_url)
    res = _run("sync", *common, "--table", "msgs*", "--exclude", "*_archive", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["tables"][0]["action"] == "in line"
    assert counters(replica_url) == before
    # a master change outside the where is not the replica's business; one inside it is
    sql_on(master_url, "UPDATE msgs SET body = 'x' WHERE id = 3")  # client 0
    assert json.loads(_run("sync", *common, "--table", "msgs", "--json").stdout)["tables"][0]["action"] == "in line"
    sql_on(master_url, "UPDATE msgs SET body = 'x' WHERE id = 2")  # client 2
    out = json.loads(_run("sync", *common, "--table", "msgs", "--json").stdout)["tables"][0]
    assert (out["action"], out["updated"]) == ("copied", 1)


def test_the_sync_audit_lists_every_statement_the_master_received(logged_server, logged_master_url, replica_url,
                                                                  tmp_path):
    from conftest import run_cli, run_sql
    from psycopg.conninfo import conninfo_to_dict
    from test_statement_log import MASTER, REPLICA, logged, with_copy_parameters

    run_sql(logged_master_url, MASTER)
    run_sql(replica_url, REPLICA)
    run_sql(replica_url, "INSERT INTO parents (name) OVERRIDING SYSTEM VALUE VALUES ('local')")
    db = conninfo_to_dict(logged_master_url)["dbname"]
    (tmp_path / "replicator.toml").write_text('[copy]\npolicy = "master-wins"\n')
    common = ["--master", logged_master_url, "--replica", replica_url, "--out-dir", str(tmp_path),
              "--config", str(tmp_path / "replicator.toml")]
    for n in (1, 2):  # the first sync copies, the second finds everything in line
        since = logged_server.log_offset()
        res = run_cli("sync", *common, "--json")
        assert res.code == 0, res.stderr
        out = json.loads(res.stdout)
        audit = Counter({" ".join(e["statement"].split()): e["count"] for e in out["audit"]})
        assert audit and all(e["allowed"] for e in out["audit"])
        server = with_copy_parameters(logged(logged_server, db, since), audit)
        assert server == audit, (n, server - audit, audit - server)
        assert not any(re.match(r"(INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|TRUNCATE)\b", s) for s in server)
        if n == 2:
            assert {t["action"] for t in out["tables"]} == {"in line"}
