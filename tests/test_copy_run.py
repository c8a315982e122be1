"""A copy run as a whole: one run per table at a time, the pre-flight pass that reports every problem
before anything is written, and errors that say which side they came from."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from copyhelp import both, same

from replicator.config import Config, TableConfig
from replicator.copy import copy_tables
from replicator.errors import ReplicatorError

CLI = os.path.join(os.path.dirname(sys.executable), "replicator")


def _committed(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as c:
        if not c.execute("SELECT to_regclass('_replicator.checkpoints')").fetchone()[0]:
            return 0
        row = c.execute("SELECT batches FROM _replicator.checkpoints").fetchone()
        return row[0] if row else 0


def test_a_second_copy_of_the_same_table_refuses_while_the_first_runs(master_url, replica_url, sql_on, tmp_path):
    import threading

    both(sql_on, master_url, replica_url, "CREATE TABLE msgs (id bigint PRIMARY KEY, body text)")
    sql_on(master_url, "INSERT INTO msgs SELECT i, repeat('x', 500) FROM generate_series(1, 6000) i")
    paused, resume = threading.Event(), threading.Event()

    def hold_after_two_batches(event, table, **info):
        if event == "batch" and info["done"] >= 600 and not paused.is_set():
            paused.set()
            resume.wait(60)

    outcome = {}
    first = threading.Thread(target=lambda: outcome.update(res=copy_tables(
        master_url, replica_url, ["msgs"], batch_size=300, progress=hold_after_two_batches)))
    first.start()
    assert paused.wait(60), "the first copy did not reach its second batch"
    assert _committed(replica_url) >= 2  # the live run's checkpoint says "running"...
    args = [CLI, "copy", "--master", master_url, "--replica", replica_url, "--table", "msgs", "--policy", "mirror",
            "--out-dir", str(tmp_path)]
    second = subprocess.run(args, capture_output=True, text=True, timeout=60)
    resume.set()
    first.join(60)
    # ...but it is not taken for an interrupted one: the second run refuses, naming the first
    assert second.returncode == 2
    err = second.stderr.strip()
    assert "public.msgs is being copied by another run (replica session pid" in err and err.count("\n") == 0
    assert outcome["res"].tables[0].inserted == 6000
    assert same(sql_on, master_url, replica_url, "msgs")
    assert sql_on(replica_url, "SELECT count(*), count(DISTINCT id) FROM msgs") == [(6000, 6000)]
    # the lock went with the first run: a third run goes ahead
    assert copy_tables(master_url, replica_url, ["msgs"], policy="mirror").tables[0].updated == 0


def test_a_replica_table_that_lost_its_key_is_not_merged_into(master_url, replica_url, sql_on):
    sql_on(master_url, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    sql_on(replica_url, "CREATE TABLE t (id int, v text)")  # drifted: no key
    sql_on(master_url, "INSERT INTO t SELECT i, 'm' FROM generate_series(1, 100) i")
    sql_on(replica_url, "INSERT INTO t SELECT i, 'r' FROM generate_series(1, 10) i")
    with pytest.raises(ReplicatorError, match=r"no unique key on \(id\).*could be doubled"):
        copy_tables(master_url, replica_url, ["t"], policy="master-wins")
    assert sql_on(replica_url, "SELECT count(*) FROM t") == [(10,)]
    # into an empty table the copy goes ahead (nothing to merge with), and replace always can
    t = copy_tables(master_url, replica_url, ["t"], policy="replace").tables[0]
    assert t.inserted == 100 and same(sql_on, master_url, replica_url, "t")


def test_preflight_reports_every_problem_before_writing_anything(master_url, replica_url, sql_on, monkeypatch):
    sql_on(master_url, """CREATE TABLE a (id int PRIMARY KEY, v text, extra int);
                          CREATE TABLE b (id int PRIMARY KEY, v int);
                          CREATE TABLE c (id int PRIMARY KEY, v text);
                          CREATE TABLE d (id int PRIMARY KEY, email text);
                          CREATE TABLE ok (id int PRIMARY KEY);
                          INSERT INTO ok SELECT generate_series(1, 10);""")
    sql_on(replica_url, """CREATE TABLE a (id int PRIMARY KEY, v text);
                           CREATE TABLE b (id int PRIMARY KEY, v text);
                           CREATE TABLE c (id int PRIMARY KEY, v text);
                           CREATE TABLE d (id int PRIMARY KEY, email text);
                           CREATE TABLE ok (id int PRIMARY KEY);
                           INSERT INTO c VALUES (1, 'mine');""")
    monkeypatch.delenv("REPLICATOR_MASK_KEY", raising=False)
    cfg = Config(tables={"d": TableConfig(mask={"email": "hash"})})
    with pytest.raises(ReplicatorError) as e:
        copy_tables(master_url, replica_url, ["ok", "a", "b", "c", "d", "nope"], config=cfg)
    msg = str(e.value)
    assert msg.startswith("nothing was copied: 1) ") and "\n" not in msg
    for expected in ("table nope not found on the master", "public.a.extra is missing on the replica",
                     "type mismatch for public.b.v: master integer, replica text", "replica table public.c is not empty",
                     "public.d.email is masked with 'hash' but no mask key"):
        assert expected in msg, expected
    assert sql_on(replica_url, "SELECT count(*) FROM ok") == [(0,)]
    assert sql_on(replica_url, "SELECT to_regnamespace('_replicator')") == [(None,)]


def test_row_level_security_on_the_master_is_refused(master_url, replica_url, sql_on, pg_servers):
    both(sql_on, master_url, replica_url, "CREATE TABLE s (id int PRIMARY KEY, owner text)")
    role = f"reader_{os.getpid()}"
    sql_on(master_url, f"""INSERT INTO s SELECT i, 'u' || (i % 3) FROM generate_series(1, 30) i;
        ALTER TABLE s ENABLE ROW LEVEL SECURITY;
        CREATE POLICY mine ON s FOR SELECT USING (owner = 'u1');
        DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw';
        GRANT SELECT ON s TO {role}""")
    try:
        from conftest import url_with

        with pytest.raises(ReplicatorError, match="row-level security would hide rows of public.s"):
            copy_tables(url_with(master_url, user=role, password="pw"), replica_url, ["s"])
        assert sql_on(replica_url, "SELECT count(*) FROM s") == [(0,)]
    finally:
        sql_on(master_url, f"DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.mark.parametrize("side", ["master", "replica"])
def test_a_cut_connection_names_its_side(master_url, replica_url, sql_on, side):
    both(sql_on, master_url, replica_url, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    sql_on(master_url, "INSERT INTO t SELECT i, repeat('v', 100) FROM generate_series(1, 5000) i")
    url = master_url if side == "master" else replica_url
    killed = []

    def progress(event, table, **info):
        if event == "batch" and not killed:
            killed.append(sql_on(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE application_name = 'replicator' AND pid <> pg_backend_pid() "
                                      "AND datname = current_database()"))

    with pytest.raises(ReplicatorError, match=f"^{side}: .*rerun to resume"):
        copy_tables(master_url, replica_url, ["t"], batch_size=500, progress=progress)
    t = copy_tables(master_url, replica_url, ["t"], batch_size=500).tables[0]
    assert t.status == "done" and same(sql_on, master_url, replica_url, "t")


def test_an_error_a_rerun_would_meet_again_says_so(master_url, replica_url, sql_on):
    # a replica-only NOT NULL column without default: every insert fails, whatever the rerun
    sql_on(master_url, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 50) g")
    sql_on(replica_url, "CREATE TABLE t (id int PRIMARY KEY, v text, local_flag boolean NOT NULL)")
    with pytest.raises(ReplicatorError, match=r"^nothing was copied: replica column public\.t\.local_flag is NOT NULL "
                                              r"without a default and has no master column"):
        copy_tables(master_url, replica_url, ["t"])
    sql_on(replica_url, "INSERT INTO t VALUES (1, 'v', true)")  # with rows, only the inserts fail
    with pytest.raises(ReplicatorError, match=r"^replica: null value in column \"local_flag\".*; fix that first: "
                                              r"a rerun resumes from the last committed batch but would meet it again$"):
        copy_tables(master_url, replica_url, ["t"], policy="master-wins")


def test_dry_run_into_an_empty_table_without_a_policy(master_url, replica_url, sql_on, tmp_path):
    from conftest import run_cli

    both(sql_on, master_url, replica_url, "CREATE TABLE t (id int PRIMARY KEY)")
    sql_on(master_url, "INSERT INTO t SELECT generate_series(1, 10)")
    res = run_cli("copy", "--dry-run", "--table", "t", "--master", master_url, "--replica", replica_url,
                  "--out-dir", str(tmp_path))
    assert res.code == 0 and "would insert 10" in res.stdout, res.stdout + res.stderr
    assert sql_on(replica_url, "SELECT count(*) FROM t") == [(0,)]
