"""`--jobs N`: several tables at once on N connection pairs, all reading the run's one snapshot."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest
from conftest import url_with
from copyhelp import both, checksum, kill, same, wait_until

from replicator.copy import copy_tables

TABLES = [f"t{i}" for i in range(6)]


def _setup(sql_on, master_url, replica_url, rows=3000):
    for t in TABLES:
        both(sql_on, master_url, replica_url, f"CREATE TABLE {t} (id int PRIMARY KEY, v text, j jsonb)")
        sql_on(master_url, f"INSERT INTO {t} SELECT i, '{t}-' || i, jsonb_build_object('i', i) "
                           f"FROM generate_series(1, {rows}) i")


def test_jobs_copy_every_table_from_one_snapshot(master_url, replica_url, sql_on):
    _setup(sql_on, master_url, replica_url)
    changed = []

    def change_the_master_mid_run(event, table, **info):
        # once the first table is under way, the master changes every table: no job may see it
        if event == "batch" and not changed:
            changed.append(table)
            for t in TABLES:
                sql_on(master_url, f"UPDATE {t} SET v = 'after the snapshot' WHERE id <= 10; "
                                   f"INSERT INTO {t} VALUES (999999, 'after', NULL)")

    res = copy_tables(master_url, replica_url, TABLES, batch_size=500, jobs=3, progress=change_the_master_mid_run)
    assert "shared by 3 jobs" in res.snapshot_mode
    assert changed
    for t in TABLES:
        assert sql_on(replica_url, f"SELECT count(*), count(*) FILTER (WHERE v = 'after the snapshot') FROM {t}") \
            == [(3000, 0)], t
    # a second run (one job) brings the changes: the first run really read an older snapshot
    res = copy_tables(master_url, replica_url, TABLES, policy="master-wins", jobs=1)
    assert all((t.updated, t.inserted) == (10, 1) for t in res.tables)
    assert all(same(sql_on, master_url, replica_url, t) for t in TABLES)


def test_jobs_respect_parents_when_the_replica_enforces_foreign_keys(master_url, replica_url, sql_on, pg_servers):
    ddl = """CREATE TABLE p (id int PRIMARY KEY);
             CREATE TABLE c1 (id int PRIMARY KEY, p int REFERENCES p);
             CREATE TABLE c2 (id int PRIMARY KEY, c1 int REFERENCES c1);
             CREATE TABLE other (id int PRIMARY KEY);"""
    role = f"jobs_owner_{os.getpid()}"
    sql_on(master_url, ddl + "INSERT INTO p SELECT generate_series(1, 2000); "
                             "INSERT INTO c1 SELECT i, i FROM generate_series(1, 2000) i; "
                             "INSERT INTO c2 SELECT i, i FROM generate_series(1, 2000) i; "
                             "INSERT INTO other SELECT generate_series(1, 2000)")
    sql_on(replica_url, f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw'; "
                        f"GRANT CREATE ON SCHEMA public TO {role}; CREATE SCHEMA _replicator AUTHORIZATION {role}; "
                        f"SET ROLE {role};" + ddl)
    try:
        res = copy_tables(master_url, url_with(replica_url, user=role, password="pw"), ["c2", "c1", "p", "other"],
                          jobs=4, batch_size=300)
        assert "disabled by name" in res.replica_logic  # foreign keys enforced while rows arrive
        assert all(same(sql_on, master_url, replica_url, t) for t in ("p", "c1", "c2", "other"))
    finally:
        sql_on(replica_url, f"DROP OWNED BY {role}")
        sql_on(pg_servers[1].admin_url, f"DROP ROLE IF EXISTS {role}")


BIG = "CREATE TABLE big (id int PRIMARY KEY, v text, j jsonb, at timestamptz DEFAULT now())"
BIG_ROWS = ("INSERT INTO big SELECT i, repeat(md5(i::text), 4), jsonb_build_object('i', i, 'x', i * 1.50), "
            "timestamptz '2024-01-01' + i * interval '1 minute' FROM generate_series(1, {n}) i")


def _big(sql_on, master_url, replica_url, rows=20000):
    both(sql_on, master_url, replica_url, BIG)
    sql_on(master_url, BIG_ROWS.format(n=rows))
    sql_on(master_url, "VACUUM ANALYZE big")


def _change_the_master_once(sql_on, master_url):
    """A progress callback: at the first committed range, the master changes rows all over the table
    (400 updated, one inserted); no connection of the run may see it."""
    changed = []

    def progress(event, table, **info):
        if event == "batch" and not changed:
            changed.append(info["rows"])
            sql_on(master_url, "UPDATE big SET v = 'after the snapshot' WHERE id % 50 = 0; "
                               "INSERT INTO big (id, v) VALUES (999999, 'after')")
    return progress


def test_one_big_table_shares_its_page_ranges_among_the_jobs(master_url, replica_url, sql_on):
    _big(sql_on, master_url, replica_url)
    res = copy_tables(master_url, replica_url, ["big"], batch_size=1000, jobs=3,
                      progress=_change_the_master_once(sql_on, master_url))
    (t,) = res.tables
    assert t.mode == "direct" and "page ranges shared by 3 connections" in t.notes
    assert t.batches > 3 and t.rows_copied == t.inserted == 20000
    assert sql_on(replica_url, "SELECT count(*), count(*) FILTER (WHERE v = 'after the snapshot') FROM big") \
        == [(20000, 0)]
    assert sql_on(replica_url, "SELECT status, rows_copied, batches FROM _replicator.checkpoints "
                               "WHERE table_name = 'public.big'") == [("done", 20000, t.batches)]
    # equal, as of the run's snapshot: the changes arrive with the next run
    res = copy_tables(master_url, replica_url, ["big"], policy="master-wins")
    assert (res.tables[0].updated, res.tables[0].inserted) == (400, 1)
    assert same(sql_on, master_url, replica_url, "big")


def test_a_partitioned_table_shares_the_page_ranges_of_its_partitions(master_url, replica_url, sql_on):
    ddl = ("CREATE TABLE ev (id int, at date NOT NULL, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at); "
           "CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2024-02-01'); "
           "CREATE TABLE ev_2 PARTITION OF ev FOR VALUES FROM ('2024-02-01') TO ('2024-03-01'); "
           "CREATE TABLE ev_d PARTITION OF ev DEFAULT")
    both(sql_on, master_url, replica_url, ddl)
    sql_on(master_url, "INSERT INTO ev SELECT i, date '2024-01-01' + (i % 90), repeat('x', 200) || i "
                       "FROM generate_series(1, 12000) i; ANALYZE ev")
    res = copy_tables(master_url, replica_url, ["ev"], batch_size=800, jobs=2)
    assert "page ranges shared by 2 connections" in res.tables[0].notes
    for t in ("ev", "ev_1", "ev_2", "ev_d"):
        assert same(sql_on, master_url, replica_url, t), t


def test_triggers_switched_off_by_name_keep_one_stream(master_url, replica_url, sql_on, pg_servers):
    # ALTER TABLE ... DISABLE TRIGGER locks the table per batch transaction: parallel streams would
    # only queue behind each other, so the table is copied on one connection
    role = f"jobs_trg_{os.getpid()}"
    both(sql_on, master_url, replica_url, BIG)
    sql_on(master_url, BIG_ROWS.format(n=6000) + "; ANALYZE big")
    sql_on(replica_url, f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw'; "
                        f"ALTER TABLE big OWNER TO {role}; CREATE SCHEMA _replicator AUTHORIZATION {role}; "
                        "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN NEW.v := 'rewritten'; RETURN NEW; END $$; "
                        "CREATE TRIGGER stamp BEFORE INSERT ON big FOR EACH ROW EXECUTE FUNCTION stamp()")
    try:
        res = copy_tables(master_url, url_with(replica_url, user=role, password="pw"), ["big"], batch_size=500, jobs=3)
        t = res.tables[0]
        assert "disabled by name" in res.replica_logic and t.batches > 1
        assert not any("shared by" in n for n in t.notes)
        assert same(sql_on, master_url, replica_url, "big")
        assert sql_on(replica_url, "SELECT tgenabled FROM pg_trigger WHERE tgname = 'stamp'") == [("O",)]
    finally:
        sql_on(replica_url, f"DROP OWNED BY {role}")
        sql_on(pg_servers[1].admin_url, f"DROP ROLE IF EXISTS {role}")


CLI = os.path.join(os.path.dirname(sys.executable), "replicator")


def _committed(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as c:
        if not c.execute("SELECT to_regclass('_replicator.checkpoints')").fetchone()[0]:
            return 0
        return c.execute("SELECT coalesce(sum(batches), 0) FROM _replicator.checkpoints").fetchone()[0]


def test_kill_jobs_anywhere_then_resume_exactly(master_url, replica_url, sql_on, tmp_path):
    import random

    rng = random.Random(7)
    _setup(sql_on, master_url, replica_url, rows=8000)
    args = [CLI, "copy", "--master", master_url, "--replica", replica_url, "--jobs", "3", "--batch-size", "300",
            "--policy", "mirror", "--out-dir", str(tmp_path), *sum((["--table", t] for t in TABLES), [])]
    kills = run = 0
    while kills < 10 and run < 30:  # runs that finish before their kill point do not count
        run += 1
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if run % 2:
            target = _committed(replica_url) + rng.randint(1, 6)
            wait_until(p, lambda: _committed(replica_url) >= target)
        else:
            time.sleep(rng.uniform(0.15, 0.9))
        kills += kill(p)
        p.wait()
        t = TABLES[run % len(TABLES)]
        sql_on(master_url, f"UPDATE {t} SET v = v || '+' WHERE id % 97 = {run}; DELETE FROM {t} WHERE id % 101 = {run}; "
                           f"INSERT INTO {t} VALUES ({100000 + run}, 'new', NULL)")
    assert kills >= 10
    p = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    for t in TABLES:
        assert same(sql_on, master_url, replica_url, t), t
        assert sql_on(replica_url, f"SELECT count(*) = count(DISTINCT id) FROM {t}") == [(True,)]


def test_kill_a_shared_table_copy_anywhere_then_resume_exactly(master_url, replica_url, sql_on, tmp_path):
    import random

    rng = random.Random(11)
    _big(sql_on, master_url, replica_url, rows=40000)
    args = [CLI, "copy", "--master", master_url, "--replica", replica_url, "--jobs", "3", "--batch-size", "500",
            "--table", "big", "--out-dir", str(tmp_path)]
    kills = run = 0
    while kills < 6 and run < 20:
        run += 1
        sql_on(replica_url, "TRUNCATE big; DROP SCHEMA IF EXISTS _replicator CASCADE")  # each run a first copy
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        target = rng.randint(2, 12)
        wait_until(p, lambda: _committed(replica_url) >= target)
        kills += kill(p)
        p.wait()
        # no policy: the copy owned every row it wrote
        _change_then_rerun_exactly(sql_on, master_url, replica_url, args, run)
    assert kills >= 6


def _change_then_rerun_exactly(sql_on, master_url, replica_url, args, run):
    """After a killed run the master changes; the rerun ends with the replica equal to it, its
    checkpoint done."""
    sql_on(master_url, f"UPDATE big SET v = v || '+' WHERE id % 89 = {run}; DELETE FROM big WHERE id % 97 = {run}; "
                       f"INSERT INTO big (id, v) VALUES ({100000 + run}, 'new')")
    done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert same(sql_on, master_url, replica_url, "big"), run
    assert sql_on(replica_url, "SELECT status FROM _replicator.checkpoints") == [("done",)]


def test_a_run_refused_early_closes_the_connections_its_jobs_opened(master_url, replica_url, sql_on):
    # the workers connect while the run prepares; a run that stops before using them leaves none open
    from replicator.errors import ReplicatorError

    _setup(sql_on, master_url, replica_url, rows=10)
    # each check runs while the error (and so the run's frames) is still alive: closed, not collected
    with pytest.raises(ReplicatorError, match="master.s own database") as refused:
        copy_tables(master_url, master_url, TABLES, jobs=4)
    assert refused.traceback and _ours(sql_on, master_url) == 0
    with pytest.raises(ReplicatorError, match="nope not found on the master") as missing:
        copy_tables(master_url, replica_url, ["nope"], jobs=4)
    assert missing.traceback and _ours(sql_on, master_url) == 0


def _ours(sql_on, url: str) -> int:
    """replicator's sessions on the server, once the ones just closed have had time to exit."""
    from replicator.connect import APPLICATION_NAME

    deadline = time.monotonic() + 3
    while True:
        n = sql_on(url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = current_database() "
                        "AND pid <> pg_backend_pid()", (APPLICATION_NAME,))[0][0]
        if n == 0 or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def _drift(sql_on, replica_url, seed=0):
    """The replica holds the master's rows, drifted: stale rows all over the key space, rows it lacks
    (one whole key range among them), rows only it has."""
    sql_on(replica_url, f"UPDATE big SET v = 'stale' WHERE id % 97 = {seed % 97}; "
                        f"DELETE FROM big WHERE id % 89 = {seed % 89} OR id BETWEEN 12001 AND 14000; "
                        "INSERT INTO big (id, v) SELECT i, 'replica only' FROM generate_series(90001, 90050) i "
                        "ON CONFLICT DO NOTHING")


def test_one_big_table_compares_its_key_ranges_on_the_jobs(master_url, replica_url, sql_on):
    # a replica filled some other way (no baseline): the whole key space is compared, its ranges
    # shared by the jobs, every one of them reading the run's snapshot
    _big(sql_on, master_url, replica_url)
    sql_on(replica_url, BIG_ROWS.format(n=20000))
    _drift(sql_on, replica_url)
    ids = range(1, 20001)
    missing = {i for i in ids if i % 89 == 0 or 12001 <= i <= 14000}
    stale = {i for i in ids if i % 97 == 0} - missing
    as_of_snapshot = checksum(sql_on, master_url, "big")
    res = copy_tables(master_url, replica_url, ["big"], policy="mirror", batch_size=1000, jobs=3,
                      progress=_change_the_master_once(sql_on, master_url))
    (t,) = res.tables
    assert "key ranges compared on 3 connections" in t.notes and t.mode == "full"
    assert (t.inserted, t.updated, t.deleted) == (len(missing), len(stale), 50)
    assert t.rows_copied == 20000 and t.batches >= 3 and t.diffed_ranges >= 2
    assert checksum(sql_on, replica_url, "big") == as_of_snapshot
    assert sql_on(replica_url, "SELECT status, rows_copied, batches, last_key FROM _replicator.checkpoints "
                               "WHERE table_name = 'public.big'") == [("done", 20000, t.batches, None)]
    # the shared walk vouched for the table: the next run compares only what changed since (its baseline
    # names every replica transaction the walks committed), and brings exactly the master's changes
    res = copy_tables(master_url, replica_url, ["big"], policy="mirror", jobs=3)
    (t,) = res.tables
    assert t.mode == "delta" and (t.updated, t.inserted, t.deleted) == (400, 1, 0)
    assert same(sql_on, master_url, replica_url, "big")


def test_a_conflict_in_a_shared_walk_stops_every_walk(master_url, replica_url, sql_on):
    from replicator.copy.table import CopyConflict

    _big(sql_on, master_url, replica_url)
    sql_on(replica_url, BIG_ROWS.format(n=20000) + "; UPDATE big SET v = 'local' WHERE id = 15000")
    with pytest.raises(CopyConflict, match="1 conflicting row") as failed:
        copy_tables(master_url, replica_url, ["big"], policy="fail", batch_size=1000, jobs=3)
    (t,) = failed.value.result.tables
    assert t.status == "failed" and t.conflicts == 1 and t.conflict_details[0].key == {"id": 15000}
    assert sql_on(replica_url, "SELECT v FROM big WHERE id = 15000") == [("local",)]  # the batch rolled back
    # the workers went back to the run and were closed with it: no session is left
    assert _ours(sql_on, master_url) == 0 and _ours(sql_on, replica_url) == 0


def test_kill_a_shared_comparison_anywhere_then_resume_exactly(master_url, replica_url, sql_on, tmp_path):
    import random

    rng = random.Random(13)
    _big(sql_on, master_url, replica_url, rows=40000)
    sql_on(replica_url, BIG_ROWS.format(n=40000))
    args = [CLI, "copy", "--master", master_url, "--replica", replica_url, "--jobs", "3", "--batch-size", "500",
            "--table", "big", "--policy", "mirror", "--out-dir", str(tmp_path)]
    kills = run = 0
    while kills < 6 and run < 20:
        run += 1
        sql_on(replica_url, "DROP SCHEMA IF EXISTS _replicator CASCADE")  # no baseline: compared in full
        _drift(sql_on, replica_url, seed=run)
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        target = rng.randint(1, 12)  # a run commits about 13 ranges
        wait_until(p, lambda: _committed(replica_url) >= target)
        kills += kill(p)
        p.wait()
        # the resume key is exact: every key up to it is as on the master (which has not changed yet)
        (last,) = sql_on(replica_url, "SELECT last_key FROM _replicator.checkpoints")[0]
        if last:
            upto = f"(SELECT * FROM big WHERE id <= {int(last[0])})"
            assert checksum(sql_on, replica_url, upto) == checksum(sql_on, master_url, upto), run
        _change_then_rerun_exactly(sql_on, master_url, replica_url, args, run)
    assert kills >= 6


def test_shared_walks_start_from_what_the_first_range_showed(logged_server, logged_master_url, replica_url, sql_on):
    # Changes everywhere: the first (probe) range differs, so every walk compares key by key from the
    # start. Had each walk begun on its own, each would first hash a whole batch on both sides for a
    # checksum bound to differ. The master's own statement log shows the checksums sent.
    from conftest import run_sql
    from psycopg.conninfo import conninfo_to_dict

    _big(sql_on, logged_master_url, replica_url)
    sql_on(replica_url, BIG_ROWS.format(n=20000) + "; UPDATE big SET v = 'stale' WHERE id % 40 = 0")
    since = logged_server.log_offset()
    res = copy_tables(logged_master_url, replica_url, ["big"], policy="master-wins", batch_size=1000, jobs=3)
    (t,) = res.tables
    assert "key ranges compared on 3 connections" in t.notes and t.updated == 500
    sent = logged_server.statements(conninfo_to_dict(logged_master_url)["dbname"], since=since)
    checksums = [s for s in sent if s.startswith("SELECT count(*), coalesce(sum(")]
    assert len(checksums) == 1 and t.diffed_ranges >= 3, (checksums, t)
    q = "SELECT count(*), sum(hashtextextended(t::text, 0)) FROM big t"
    assert run_sql(replica_url, q) == run_sql(logged_master_url, q)


def test_intervals_hand_out_ranges_and_resume_only_after_what_is_committed_without_a_gap():
    from replicator.copy.keys import Intervals

    iv = Intervals([[str(k)] for k in (10, 20, 30, 40, 50, 60, 70)], prefix=3)  # 8 intervals, 3 reconciled
    iv.walks = 2
    assert iv.claim(8) == (0, 3)  # never across the end of what an interrupted run committed
    assert iv.claim(8) == (3, 6)  # no wider than an even share of what is left (5 for 2 walks: 3)
    assert iv.claim(1) == (6, 7)
    # ranges commit out of order: the resume key stays at the end of the ranges committed with no gap
    assert iv.through_with(3, 6) == 0
    iv.committed(3, 6)
    assert iv.through == 0 and iv.through_with(0, 3) == 6
    iv.committed(0, 3)
    assert iv.through == 6 and iv.upper(iv.through) == ["60"]
    iv.stop()
    assert iv.claim(4) is None  # a walk failed: the last interval is never handed out
    assert iv.through_with(6, 7) == 7 and iv.upper(8) is None
    assert iv.stopped  # a walk copying its range interval by interval stops between them


def test_counts_of_a_commit_that_failed_are_taken_back():
    # walks still running write the table's checkpoint from the shared counts: a range whose commit
    # failed (a deadlock the server broke, a deferred check) must not leave its counts there
    from replicator.copy.models import TableResult
    from replicator.copy.table import provisional

    res = TableResult(table="public.t", replica_table="public.t", rows_copied=10, inserted=10)
    with provisional(res):
        res.rows_copied, res.inserted, res.batches = 20, 15, 1
    assert (res.rows_copied, res.inserted, res.batches) == (20, 15, 1)
    with pytest.raises(psycopg.errors.DeadlockDetected):
        with provisional(res):
            res.rows_copied, res.updated = 30, 4
            raise psycopg.errors.DeadlockDetected("deadlock detected")
    assert (res.rows_copied, res.inserted, res.updated, res.batches) == (20, 15, 0, 1)
