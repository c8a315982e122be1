"""Kill `replicator copy` with SIGKILL at several points; the rerun resumes exactly once."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from copyhelp import kill, wait_until

ROWS = 40_000
CHECKSUM = "SELECT count(*), count(DISTINCT id), md5(string_agg(md5(t::text), '' ORDER BY id)) FROM msgs t"


CLI = os.path.join(os.path.dirname(sys.executable), "replicator")


def _start(master_url, replica_url, *extra):
    cmd = [CLI, "copy", "--master", master_url, "--replica", replica_url, "--table", "msgs", "--batch-size", "400",
           *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _batches(replica_url) -> int:
    with psycopg.connect(replica_url, autocommit=True) as conn:
        row = conn.execute("SELECT batches FROM _replicator.checkpoints WHERE table_name = 'public.msgs'").fetchone() \
            if conn.execute("SELECT to_regclass('_replicator.checkpoints')").fetchone()[0] else None
        return row[0] if row else 0


@pytest.mark.parametrize("policy", [None, "master-wins"])
def test_sigkill_anywhere_then_resume(master_url, replica_url, sql_on, tmp_path, policy):
    ddl = "CREATE TABLE msgs (id uuid PRIMARY KEY, body text, payload jsonb)"
    sql_on(master_url, ddl)
    sql_on(replica_url, ddl)
    sql_on(master_url, f"""INSERT INTO msgs SELECT md5(i::text)::uuid, repeat('x', 300) || i,
                           jsonb_build_object('i', i, 'pad', repeat('y', 200)) FROM generate_series(1, {ROWS}) i""")
    extra = []
    if policy:
        extra = ["--policy", policy]
        # the replica already holds every 3rd row, some of them stale
        sql_on(replica_url, f"""INSERT INTO msgs SELECT md5(i::text)::uuid, CASE WHEN i % 2 = 0 THEN 'stale' ELSE
                                repeat('x', 300) || i END, jsonb_build_object('i', i, 'pad', repeat('y', 200))
                                FROM generate_series(1, {ROWS}, 3) i""")
    os.chdir(tmp_path)
    kills = 0
    for target in (1, 3, 8):  # after n committed batches
        p = _start(master_url, replica_url, *extra)
        wait_until(p, lambda: _batches(replica_url) >= target)
        kills += kill(p)
        p.wait()
    for delay in (0.35, 0.5):  # somewhere mid-batch (after connect and introspection)
        p = _start(master_url, replica_url, *extra)
        time.sleep(delay)
        kills += kill(p)
        p.wait()
    assert kills >= 3
    done_before = _batches(replica_url)
    p = _start(master_url, replica_url, *extra)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()
    assert sql_on(master_url, CHECKSUM) == sql_on(replica_url, CHECKSUM)
    (status, rows, batches, last_key) = sql_on(
        replica_url, "SELECT status, rows_copied, batches, last_key FROM _replicator.checkpoints")[0]
    assert status == "done" and batches > done_before
    assert rows == ROWS  # every master row was read exactly once across all the runs
    assert last_key is None  # done: no key to resume after


@pytest.mark.parametrize("policy", [None, "mirror"])
def test_sigkill_sequential_copy_then_master_changes(master_url, replica_url, sql_on, tmp_path, policy):
    from replicator.copy import copy_tables

    ddl = "CREATE TABLE msgs (id uuid PRIMARY KEY, body text, payload jsonb)"
    sql_on(master_url, ddl)
    sql_on(replica_url, ddl)
    sql_on(master_url, f"""INSERT INTO msgs SELECT md5(i::text)::uuid, repeat('x', 300) || E'\\t\\n' || i,
                           jsonb_build_object('i', i, 'pad', repeat('y', 200)) FROM generate_series(1, {ROWS}) i""")
    os.chdir(tmp_path)
    extra = ["--policy", policy] if policy else []
    p = _start(master_url, replica_url, *extra)
    wait_until(p, lambda: _batches(replica_url) >= 5)
    assert p.poll() is None, "the copy finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    mode, status, committed, last_key = sql_on(
        replica_url, "SELECT mode, status, rows_copied, last_key FROM _replicator.checkpoints")[0]
    assert (mode, status, last_key) == ("direct", "running", None) and 0 < committed < ROWS
    assert sql_on(replica_url, "SELECT count(*), count(DISTINCT id) FROM msgs")[0] == (committed, committed)
    # the master moves on between the runs: a committed row changes, another goes, a new one comes
    upd, gone = [r[0] for r in sql_on(replica_url, "SELECT id FROM msgs ORDER BY id LIMIT 2")]
    sql_on(master_url, f"""UPDATE msgs SET body = 'changed' WHERE id = '{upd}';
                           DELETE FROM msgs WHERE id = '{gone}';
                           INSERT INTO msgs VALUES ('00000000-0000-0000-0000-000000000001', 'new', NULL)""")
    t = copy_tables(master_url, replica_url, ["msgs"], policy=policy, batch_size=400).tables[0]
    assert any("resumed an interrupted copy" in n for n in t.notes)
    # the rerun compares every key: the committed rows the master changed or dropped since are fixed
    # (a copy begun with no policy into an empty table owns its rows, so it mirrors); the rest arrive
    assert (t.inserted, t.updated, t.deleted, t.reconciled) == (ROWS - (committed - 1), 1, 1, 2)
    mode, status, rows = sql_on(replica_url, "SELECT mode, status, rows_copied FROM _replicator.checkpoints")[0]
    assert (mode, status, rows) == ("full", "done", ROWS)  # master count at the new snapshot
    assert sql_on(master_url, CHECKSUM) == sql_on(replica_url, CHECKSUM)


WRITER_ROUNDS = """
INSERT INTO msgs SELECT gen_random_uuid(), 'new ' || g, jsonb_build_object('g', g) FROM generate_series(1, 150) g;
UPDATE msgs SET body = body || ' upd', payload = payload || '{"u": 1}'
  WHERE id IN (SELECT id FROM msgs ORDER BY random() LIMIT 150);
DELETE FROM msgs WHERE id IN (SELECT id FROM msgs ORDER BY random() LIMIT 80);
"""


def _compare(sql_on, master_url, replica_url) -> dict[str, int]:
    """Lost (master rows missing on the replica), stale (rows that differ), doubled (duplicate keys), and
    extra (replica keys the master no longer has), judged by each row's own text."""
    m = dict(sql_on(master_url, "SELECT id::text, md5(t::text) FROM msgs t"))
    r = sql_on(replica_url, "SELECT id::text, md5(t::text) FROM msgs t")
    rd = dict(r)
    return {"lost": sum(k not in rd for k in m), "stale": sum(k in rd and rd[k] != v for k, v in m.items()),
            "doubled": len(r) - len(rd), "extra": sum(k not in m for k in rd)}


@pytest.mark.parametrize("policy", ["mirror", "master-wins"])
def test_kill_at_random_points_while_the_master_changes_between_runs(master_url, replica_url, sql_on, tmp_path, policy):
    import random

    rng = random.Random(20261121 + len(policy))
    ddl = "CREATE TABLE msgs (id uuid PRIMARY KEY, body text, payload jsonb)"
    sql_on(master_url, ddl)
    sql_on(replica_url, ddl)
    sql_on(master_url, f"""INSERT INTO msgs SELECT md5(i::text)::uuid, repeat('x', 200) || i,
                           jsonb_build_object('i', i) FROM generate_series(1, {ROWS}) i""")
    os.chdir(tmp_path)
    kills = run = 0
    while kills < 12 and run < 36:  # runs that finish before their kill point do not count
        run += 1
        p = _start(master_url, replica_url, "--policy", policy)
        if run % 2:  # after a random number of committed batches
            target = _batches(replica_url) + rng.randint(1, 3)
            wait_until(p, lambda: _batches(replica_url) >= target)
        else:  # at a random moment, start-up and comparisons included
            time.sleep(rng.uniform(0.15, 0.8))
        kills += kill(p)
        p.wait()
        sql_on(master_url, WRITER_ROUNDS)  # the master moves on while the copy is down
    assert kills >= 10
    p = _start(master_url, replica_url, "--policy", policy)
    _, err = p.communicate(timeout=180)
    assert p.returncode == 0, err.decode()
    found = _compare(sql_on, master_url, replica_url)
    print(f"{policy}: {kills} kills; lost/stale/doubled/extra = {found}")
    assert (found["lost"], found["stale"], found["doubled"]) == (0, 0, 0)
    if policy == "mirror":
        assert found["extra"] == 0
        assert sql_on(master_url, CHECKSUM) == sql_on(replica_url, CHECKSUM)
    else:  # master-wins never deletes: only keys the master deleted may remain
        assert found["extra"] <= run * 80


def _owned_by(sql_on, replica_url: str, role: str, ddl: str) -> str:
    """``ddl`` run on the replica as ``role`` (which then owns the tables, and `_replicator`): the URL
    to copy as that role, with no session_replication_role, so foreign keys are enforced."""
    from conftest import url_with

    sql_on(replica_url, f"GRANT CREATE ON SCHEMA public TO {role}; CREATE SCHEMA _replicator AUTHORIZATION {role}; "
                        f"SET ROLE {role}; {ddl}")
    return url_with(replica_url, user=role, password="pw")


def test_sigkill_while_a_self_reference_is_dropped_then_resume(master_url, replica_url, sql_on, role, tmp_path):
    """A table owner (no session_replication_role) copies a self-referencing table with its foreign key
    dropped; killed half-way, the rerun must not re-add the key to the half-copied table first (it
    would fail on rows whose manager is still to come, on every rerun): it copies, then re-adds it."""
    from copyhelp import same

    ddl = "CREATE TABLE staff (id int PRIMARY KEY, mgr int REFERENCES staff (id), pad text)"
    sql_on(master_url, ddl + "; INSERT INTO staff SELECT g, NULL, repeat('p', 200) FROM generate_series(1, 30000) g; "
                             "UPDATE staff SET mgr = 30001 - id")
    owner_url = _owned_by(sql_on, replica_url, role, ddl)
    os.chdir(tmp_path)
    p = subprocess.Popen([CLI, "copy", "--master", master_url, "--replica", owner_url, "--table", "staff",
                          "--batch-size", "500"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def copied() -> int:
        with psycopg.connect(replica_url, autocommit=True) as conn:
            return conn.execute("SELECT count(*) FROM staff").fetchone()[0]

    wait_until(p, lambda: copied() >= 3000)
    assert kill(p) == 1
    p.wait()
    fk = "SELECT count(*) FROM pg_constraint WHERE conrelid = 'staff'::regclass AND contype = 'f' AND convalidated"
    assert sql_on(replica_url, fk) == [(0,)]  # still dropped, and recorded for the rerun
    assert sql_on(replica_url, "SELECT count(*) FROM _replicator.dropped_constraints") == [(1,)]
    assert copied() < 30000
    shown = subprocess.run([CLI, "status", "--replica", replica_url], capture_output=True, text=True, check=True).stdout
    assert "foreign key(s) of public.staff left dropped by a stopped copy" in shown and "staff_mgr_fkey" in shown, shown
    shown = json.loads(subprocess.run([CLI, "status", "--replica", replica_url, "--json"], capture_output=True,
                                      check=True).stdout)
    assert shown["foreign_keys_dropped"] == [{"table": "public.staff", "constraints": ["staff_mgr_fkey"],
                                              "held_by_pid": None}]
    res = subprocess.run([CLI, "copy", "--master", master_url, "--replica", owner_url, "--table", "staff",
                          "--batch-size", "500"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert sql_on(replica_url, fk) == [(1,)]
    assert sql_on(replica_url, "SELECT count(*) FROM _replicator.dropped_constraints") == [(0,)]
    assert same(sql_on, master_url, replica_url, "staff")


def test_a_dropped_key_someone_added_back_meanwhile_is_taken_as_restored(master_url, replica_url, sql_on, role):
    """A run stopped after copying a table whose foreign key it dropped (a self-reference, for a role
    without session_replication_role) leaves the key recorded; if `migrate` (or a sync's migration)
    adds it back before the rerun, the rerun takes it as restored instead of failing on every run
    with "already exists"."""
    from replicator.copy import copy_tables

    ddl = "CREATE TABLE staff (id int PRIMARY KEY, mgr int REFERENCES staff (id)); CREATE TABLE t (id int PRIMARY KEY)"
    sql_on(master_url, ddl + "; INSERT INTO staff SELECT g, NULL FROM generate_series(1, 1000) g; "
                             "UPDATE staff SET mgr = 1001 - id; INSERT INTO t SELECT generate_series(1, 10)")
    owner_url = _owned_by(sql_on, replica_url, role, ddl)
    with pytest.raises(Interrupted):
        copy_tables(master_url, owner_url, ["staff", "t"], progress=_stop_after(1))  # staff first
    assert sql_on(replica_url, "SELECT constraint_name FROM _replicator.dropped_constraints") == [("staff_mgr_fkey",)]
    sql_on(replica_url, "ALTER TABLE staff ADD CONSTRAINT staff_mgr_fkey FOREIGN KEY (mgr) REFERENCES staff (id)")
    copy_tables(master_url, owner_url, ["t"])  # restores what earlier runs dropped, before it copies
    assert sql_on(replica_url, "SELECT count(*) FROM _replicator.dropped_constraints") == [(0,)]
    assert sql_on(replica_url, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'staff'::regclass "
                               "AND contype = 'f'") == [(1,)]


ALL_DDL = """
CREATE TABLE projects (id int PRIMARY KEY, name text);
CREATE TABLE leads (id bigint PRIMARY KEY, project_id int REFERENCES projects, phone text);
CREATE TABLE audit_log (at timestamptz, what text);  -- no key: copied whole
CREATE TABLE msgs (id uuid PRIMARY KEY, lead_id bigint REFERENCES leads, body text);
"""
ALL_FILL = """
INSERT INTO projects SELECT i, 'project ' || i FROM generate_series(1, 40) i;
INSERT INTO leads SELECT i, i % 40 + 1, '+44' || i FROM generate_series(1, 3000) i;
INSERT INTO audit_log SELECT timestamptz '2024-01-01' + i * interval '1 minute', 'event ' || i FROM generate_series(1, 500) i;
INSERT INTO msgs SELECT md5(i::text)::uuid, i % 3000 + 1, repeat('m', 200) || i FROM generate_series(1, 6000) i;
"""
ALL_TABLES = ("projects", "leads", "audit_log", "msgs")


def _all_tables(sql_on, master_url, replica_url) -> None:
    """The four tables on both sides, filled on the master."""
    sql_on(master_url, ALL_DDL)
    sql_on(replica_url, ALL_DDL)
    sql_on(master_url, ALL_FILL)


class Interrupted(Exception):
    """Raised from the progress callback: the run stops there, as a kill between two tables would."""


def _stop_after(ended: int):
    """A progress callback that stops the run once ``ended`` tables have finished."""
    seen = []

    def progress(event, table, **info):
        if event == "end":
            seen.append(table)
            if len(seen) == ended:
                raise Interrupted(table)
    return progress


def _stop_at(event_wanted: str, table_wanted: str):
    """A progress callback that stops the run at one event of one table ("start": before its first
    commit; "batch": after its first batch committed)."""
    def progress(event, table, **info):
        if (event, table) == (event_wanted, table_wanted):
            raise Interrupted(table)
    return progress


def _all_equal(sql_on, master_url, replica_url, tables=ALL_TABLES) -> bool:
    q = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM {} t"
    return all(sql_on(master_url, q.format(t)) == sql_on(replica_url, q.format(t)) for t in tables)


def _statuses(sql_on, replica_url) -> dict[str, str]:
    return dict(sql_on(replica_url, "SELECT table_name, status FROM _replicator.checkpoints"))


def _status_resume(replica_url) -> set[str]:
    out = subprocess.run([CLI, "status", "--replica", replica_url, "--json"], capture_output=True, check=True).stdout
    shown = json.loads(out)
    resumes = {r["resume"] for r in shown["checkpoints"] if r["state"] == "interrupted"}
    assert resumes == set(shown["resume"])
    return resumes


def test_a_run_stopped_between_tables_lists_those_it_had_not_reached(master_url, replica_url, sql_on):
    """A run with no policy queues its tables before it copies the first: stopped between two tables,
    `status` names the ones it never reached, and its command copies them. A copy naming only tables
    it finished refuses them (they hold rows, and it resumes nothing)."""
    from replicator.copy import CopyError, copy_tables

    _all_tables(sql_on, master_url, replica_url)
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, all_tables=True, batch_size=500, progress=_stop_after(2))
    first = _statuses(sql_on, replica_url)
    assert sorted(first.values()) == ["done", "done", "queued", "queued"]
    finished = sorted(t for t, st in first.items() if st == "done")
    (command,) = _status_resume(replica_url)
    head, *tables = command.split(" --table ")
    assert head == "replicator copy" and sorted(tables) == sorted(t for t, st in first.items() if st == "queued")
    with pytest.raises(CopyError, match=f"{finished[0]} is not empty: choose a policy"):
        copy_tables(master_url, replica_url, [t.split(".")[1] for t in finished], batch_size=500)
    p = subprocess.run([CLI, *shlex.split(command)[1:], "--master", master_url, "--replica", replica_url, "--batch-size", "500"],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert set(_statuses(sql_on, replica_url).values()) == {"done"}
    assert _all_equal(sql_on, master_url, replica_url)  # (the master did not change in between)


@pytest.mark.parametrize("resume", ["status's commands", "the same command"])
def test_copy_all_killed_then_resumed(master_url, replica_url, sql_on, tmp_path, resume):
    _all_tables(sql_on, master_url, replica_url)
    os.chdir(tmp_path)
    cmd = [CLI, "copy", "--master", master_url, "--replica", replica_url, "--all", "--batch-size", "200"]

    def reached() -> bool:
        with psycopg.connect(replica_url, autocommit=True) as conn:
            if not conn.execute("SELECT to_regclass('_replicator.checkpoints')").fetchone()[0]:
                return False
            return conn.execute("SELECT count(*) FILTER (WHERE status = 'running' AND batches > 0) "
                                "FROM _replicator.checkpoints").fetchone()[0] >= 1

    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(p, reached)
    assert kill(p), "the copy finished before it could be killed"
    p.wait()
    time.sleep(0.3)  # the killed run's sessions end, and their table locks with them
    finished = {t for t, st in _statuses(sql_on, replica_url).items() if st == "done"}
    if resume == "the same command":
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert {line.split(":")[0] for line in p.stdout.splitlines() if "kept as the stopped run" in line} == finished
    for command in _status_resume(replica_url):
        p = subprocess.run([CLI, *shlex.split(command)[1:], "--master", master_url, "--replica", replica_url],
                           capture_output=True, timeout=120)
        assert p.returncode == 0, p.stderr.decode()
    assert set(_statuses(sql_on, replica_url).values()) == {"done"}
    assert _all_equal(sql_on, master_url, replica_url)


OWN_DDL = "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text); CREATE TABLE k (v text)"
OWN_FILL = ("INSERT INTO a SELECT i, 'a' || i FROM generate_series(1, 100) i;"
            "INSERT INTO b SELECT i, 'b' || i FROM generate_series(1, 100) i;"
            "INSERT INTO k SELECT 'k' || i FROM generate_series(1, 10) i")


def _own_tables(sql_on, master_url, replica_url) -> None:
    sql_on(master_url, OWN_DDL)
    sql_on(replica_url, OWN_DDL)
    sql_on(master_url, OWN_FILL)


def test_a_table_the_stopped_run_never_wrote_is_not_its_own(master_url, replica_url, sql_on):
    """Rows written into a table the stopped run had only queued are someone else's: a copy with no
    policy refuses the table, and writes nothing."""
    from replicator.copy import CopyError, copy_tables

    _own_tables(sql_on, master_url, replica_url)
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, ["a", "b", "k"], progress=_stop_after(1))
    assert sorted(_statuses(sql_on, replica_url).values()) == ["done", "queued", "queued"]
    sql_on(replica_url, "INSERT INTO b VALUES (1000, 'a developer''s row'); INSERT INTO k VALUES ('a developer''s row')")
    with pytest.raises(CopyError, match="public.b is not empty: choose a policy") as e:
        copy_tables(master_url, replica_url, ["b", "k"])
    assert "public.k is not empty" in str(e.value)
    assert sql_on(replica_url, "SELECT (SELECT count(*) FROM b), (SELECT count(*) FROM k)")[0] == (1, 1)


def test_a_table_a_run_refused_stays_refused(master_url, replica_url, sql_on):
    """A row lands in b while the run copies a: the run refuses b, and so does its rerun."""
    from replicator.copy import CopyError, copy_tables

    _own_tables(sql_on, master_url, replica_url)

    def someone_writes(event, table, **info):
        if event == "end" and table == "public.a":
            sql_on(replica_url, "INSERT INTO b VALUES (1000, 'a developer''s row')")

    with pytest.raises(CopyError, match="public.b is not empty"):
        copy_tables(master_url, replica_url, ["a", "b"], progress=someone_writes)
    with pytest.raises(CopyError, match="public.b is not empty"):
        copy_tables(master_url, replica_url, ["b"])
    assert sql_on(replica_url, "SELECT id FROM b") == [(1000,)]


def test_a_load_stopped_before_its_first_batch_owns_nothing(master_url, replica_url, sql_on):
    """The indexes dropped for a load are recorded with the table's checkpoint, still `queued`: a load
    that ends before its first batch commits owns no row, so rows written there since are refused."""
    from replicator.copy import CopyError, copy_tables
    from replicator.errors import ReplicatorError

    ddl = "CREATE TABLE t (id int PRIMARY KEY, v text)"
    sql_on(master_url, ddl)
    sql_on(replica_url, ddl)
    sql_on(master_url, "INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 3000) i")
    sql_on(replica_url, "ALTER TABLE t ADD CONSTRAINT not_all CHECK (v <> 'v5')")  # the first batch breaks it
    with pytest.raises(ReplicatorError, match="violates check constraint"):
        copy_tables(master_url, replica_url, ["t"], batch_size=500)
    assert _statuses(sql_on, replica_url) == {"public.t": "queued"}
    assert sql_on(replica_url, "SELECT count(*) FROM _replicator.deferred_indexes")[0][0] > 0  # the key was dropped
    sql_on(replica_url, "ALTER TABLE t DROP CONSTRAINT not_all; INSERT INTO t VALUES (100000, 'a developer''s row')")
    with pytest.raises(CopyError, match="public.t is not empty: choose a policy"):
        copy_tables(master_url, replica_url, ["t"], batch_size=500)
    assert sql_on(replica_url, "SELECT id FROM t") == [(100000,)]
    assert sql_on(replica_url, "SELECT count(*) FROM _replicator.deferred_indexes")[0][0] == 0  # built again first


SEQ_DDL = """
CREATE SEQUENCE shared_refs;
CREATE TABLE tickets (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ref bigint DEFAULT nextval('shared_refs'), what text);
CREATE TABLE notes (id serial PRIMARY KEY, ref bigint DEFAULT nextval('shared_refs'), body text);
CREATE TABLE lines (n bigserial, line text);  -- no key
"""
SEQ_FILL = """
INSERT INTO tickets (what) SELECT 'ticket ' || i FROM generate_series(1, 700) i;
INSERT INTO notes (body) SELECT 'note ' || i FROM generate_series(1, 400) i;
INSERT INTO lines (line) SELECT 'line ' || i FROM generate_series(1, 300) i;
"""
LOCAL_INSERTS = ("INSERT INTO tickets (what) VALUES ('local')", "INSERT INTO notes (body) VALUES ('local')",
                 "INSERT INTO lines (line) VALUES ('local')")


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_stopped_once_its_tables_are_done_leaves_no_sequence_behind_them(master_url, replica_url, sql_on, jobs):
    """Each table's last transaction advances the sequences that feed it: a run stopped after its
    tables are done, before its own last steps, leaves the replica's inserts working (no duplicate key
    on the next id), and a sequence two tables share ends past both."""
    from replicator.copy import copy_tables

    sql_on(master_url, SEQ_DDL)
    sql_on(replica_url, SEQ_DDL)
    sql_on(master_url, SEQ_FILL)
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, all_tables=True, batch_size=100, jobs=jobs, progress=_stop_after(3))
    assert set(_statuses(sql_on, replica_url).values()) == {"done"}
    assert _all_equal(sql_on, master_url, replica_url, ("tickets", "notes", "lines"))
    for statement in LOCAL_INSERTS:
        sql_on(replica_url, statement)  # a sequence left behind the copied rows: duplicate key
    assert sql_on(replica_url, "SELECT max(id) FROM tickets") == [(701,)]
    assert sql_on(replica_url, "SELECT max(id) FROM notes") == [(401,)]
    # the two local rows took the shared sequence's next two values, past the 1,100 copied
    assert sql_on(replica_url, "SELECT array_agg(ref ORDER BY ref) FROM (SELECT ref FROM tickets UNION ALL "
                               "SELECT ref FROM notes) r WHERE ref > 1100") == [([1101, 1102],)]


def test_the_sequences_of_a_finished_table_are_past_its_rows_while_the_next_is_copied(master_url, replica_url, sql_on):
    from replicator.copy import copy_tables

    sql_on(master_url, SEQ_DDL)
    sql_on(replica_url, SEQ_DDL)
    sql_on(master_url, SEQ_FILL)
    with pytest.raises(Interrupted) as stopped:
        copy_tables(master_url, replica_url, ["tickets", "notes"], batch_size=100, progress=_stop_after(1))
    first = str(stopped.value.args[0]).split(".")[-1].strip('"')
    assert sql_on(replica_url, f"SELECT nextval(pg_get_serial_sequence('{first}', 'id'))") == [(
        {"tickets": 701, "notes": 401}[first],)]
    assert sql_on(replica_url, "SELECT nextval('shared_refs')") == [(
        sql_on(master_url, f"SELECT max(ref) FROM {first}")[0][0] + 1,)]


def test_a_copy_reports_each_sequence_once_with_the_value_it_was_set_to(master_url, replica_url, sql_on):
    from replicator.copy import copy_tables

    sql_on(master_url, SEQ_DDL)
    sql_on(replica_url, SEQ_DDL)
    sql_on(master_url, SEQ_FILL)
    result = copy_tables(master_url, replica_url, all_tables=True, batch_size=100, jobs=2)
    fixes = {f.sequence: f.value for f in result.sequences}
    assert len(result.sequences) == len(fixes) == 4, result.sequences
    assert fixes["public.shared_refs"] == 1100
    assert fixes["public.tickets_id_seq"] == 700 and fixes["public.notes_id_seq"] == 400 and fixes["public.lines_n_seq"] == 300


def _xmins(sql_on, url: str, table: str) -> list:
    return sql_on(url, f"SELECT xmin::text, * FROM {table} ORDER BY 2")


def test_the_rerun_of_a_stopped_copy_keeps_the_tables_it_finished_and_copies_the_rest(master_url, replica_url, sql_on):
    """Rerun with no policy, the stopped run's command carries on: the tables it finished, still equal to
    the master, are kept (not written), the others copied; once it has ended, its tables hold rows and a
    copy with no policy refuses them again."""
    from replicator.copy import CopyError, copy_tables

    _all_tables(sql_on, master_url, replica_url)
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, all_tables=True, batch_size=500, progress=_stop_after(2))
    finished = sorted(t for t, st in _statuses(sql_on, replica_url).items() if st == "done")
    sql_on(master_url, "UPDATE msgs SET body = 'changed' WHERE lead_id < 10")  # msgs is never among the first two
    before = {t: _xmins(sql_on, replica_url, t) for t in finished}
    result = copy_tables(master_url, replica_url, all_tables=True, batch_size=500)
    modes = {t.replica_table: t.mode for t in result.tables}
    assert sorted(t for t, m in modes.items() if m == "kept") == finished, modes
    assert {t: _xmins(sql_on, replica_url, t) for t in finished} == before  # not written
    assert any(n.startswith("resumed the stopped run") for n in result.notes), result.notes
    kept = next(t for t in result.tables if t.mode == "kept")
    assert kept.rows_copied > 0 and "still equal the master's" in kept.notes[0]
    assert _all_equal(sql_on, master_url, replica_url)
    assert set(_statuses(sql_on, replica_url).values()) == {"done"}
    assert set(sql_on(replica_url, "SELECT run_id::text FROM _replicator.checkpoints")) == {(result.run_id,)}
    with pytest.raises(CopyError, match="is not empty: choose a policy"):
        copy_tables(master_url, replica_url, all_tables=True, batch_size=500)


@pytest.mark.parametrize("change", ["a developer's row", "the master's rows", "a mask"])
def test_a_finished_table_that_no_longer_equals_the_master_is_refused_and_nothing_copied(
        master_url, replica_url, sql_on, change):
    """Kept, a table changed since the stopped run copied it would be as of another snapshot than the
    rest (a child copied now could reference a parent it lacks), or hold rows the config now masks:
    the rerun refuses it, as any table holding rows is refused with no policy, before it writes."""
    from replicator.config import Config, TableConfig
    from replicator.copy import CopyError, copy_tables

    _all_tables(sql_on, master_url, replica_url)
    cfg = Config()
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, ["projects", "leads"], batch_size=500, progress=_stop_after(1), config=cfg)
    assert _statuses(sql_on, replica_url) == {"public.projects": "done", "public.leads": "queued"}
    if change == "a developer's row":
        sql_on(replica_url, "INSERT INTO projects VALUES (999, 'a developer''s project')")
    elif change == "the master's rows":  # a new parent and a child of it: the child would be an orphan
        sql_on(master_url, "INSERT INTO projects VALUES (41, 'new'); INSERT INTO leads VALUES (3001, 41, '+1')")
    else:
        cfg = Config(tables={"projects": TableConfig(mask={"name": "null"})})
    before = _xmins(sql_on, replica_url, "projects")
    with pytest.raises(CopyError, match="nothing was copied: replica table public.projects is not empty, and no longer "
                                        "equals the master since the stopped run"):
        copy_tables(master_url, replica_url, ["projects", "leads"], batch_size=500, config=cfg)
    assert _xmins(sql_on, replica_url, "projects") == before
    assert sql_on(replica_url, "SELECT count(*) FROM leads") == [(0,)]
    # a policy brings it forward, as the message says
    copy_tables(master_url, replica_url, ["projects", "leads"], policy="master-wins", config=cfg)
    if change == "a mask":
        assert sql_on(replica_url, "SELECT count(*) FROM projects WHERE name IS NOT NULL") == [(0,)]
    else:
        assert _all_equal(sql_on, master_url, replica_url, ("leads",))


def test_a_resume_stopped_in_turn_is_resumed_by_the_next_rerun(master_url, replica_url, sql_on):
    from replicator.copy import copy_tables

    _all_tables(sql_on, master_url, replica_url)
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, all_tables=True, batch_size=500, progress=_stop_after(1))
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, all_tables=True, batch_size=500, progress=_stop_after(1))
    assert sorted(_statuses(sql_on, replica_url).values()) == ["done", "done", "queued", "queued"]
    result = copy_tables(master_url, replica_url, all_tables=True, batch_size=500)
    assert sorted(t.mode for t in result.tables).count("kept") == 2
    assert _all_equal(sql_on, master_url, replica_url)  # (the master did not change)


def test_a_stopped_copys_finished_table_is_kept_only_by_a_rerun_that_resumes_it(master_url, replica_url, sql_on):
    """A copy naming a finished table and another table of its own, with rows in it a developer wrote:
    the finished one would be kept, but the other is refused, and with it the whole run."""
    from replicator.copy import CopyError, copy_tables

    _own_tables(sql_on, master_url, replica_url)
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, ["a", "b"], progress=_stop_after(1))
    statuses = _statuses(sql_on, replica_url)
    finished, queued = (next(t for t, st in statuses.items() if st == want) for want in ("done", "queued"))
    sql_on(replica_url, f"INSERT INTO {queued} VALUES (1000, 'a developer''s row')")
    with pytest.raises(CopyError, match=f"nothing was copied: replica table {queued} is not empty"):
        copy_tables(master_url, replica_url, ["a", "b"])
    assert sql_on(replica_url, f"SELECT id FROM {queued}") == [(1000,)]
    # a copy resuming nothing of the stopped run (k was never one of its tables) keeps nothing
    with pytest.raises(CopyError, match=f"nothing was copied: replica table {finished} is not empty"):
        copy_tables(master_url, replica_url, [finished.split(".")[1], "k"])
    # the developer's row gone, the rerun resumes: a dry run plans it so, and the rerun does it
    sql_on(replica_url, f"DELETE FROM {queued}")
    dry = copy_tables(master_url, replica_url, ["a", "b"], dry_run=True)
    assert {t.replica_table: t.mode for t in dry.tables}[finished] == "kept"
    assert {t.replica_table: t.mode for t in copy_tables(master_url, replica_url, ["a", "b"]).tables} == {
        finished: "kept", queued: "direct"}
    assert _all_equal(sql_on, master_url, replica_url, ("a", "b"))


def test_a_kept_tables_dropped_key_to_a_table_copied_now_is_re_added_after_it(master_url, replica_url, sql_on, role):
    """A role without session_replication_role copies a cycle (a -> b -> a) with one key dropped, and is
    stopped after the first table. The rerun keeps that table; its dropped key references the table
    still to copy, so it is re-added (and validated) after that copy, not before."""
    from replicator.copy import copy_tables

    ddl = ("CREATE TABLE a (id int PRIMARY KEY, b_id int); CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a);"
           "ALTER TABLE a ADD CONSTRAINT a_b_fkey FOREIGN KEY (b_id) REFERENCES b")
    sql_on(master_url, ddl + "; INSERT INTO a SELECT g, NULL FROM generate_series(1, 300) g;"
                             "INSERT INTO b SELECT g, g FROM generate_series(1, 300) g; UPDATE a SET b_id = 301 - id")
    owner_url = _owned_by(sql_on, replica_url, role, ddl)
    with pytest.raises(Interrupted):
        copy_tables(master_url, owner_url, ["a", "b"], progress=_stop_after(1))
    assert sql_on(replica_url, "SELECT count(*) FROM _replicator.dropped_constraints") == [(1,)]
    result = copy_tables(master_url, owner_url, ["a", "b"])
    assert sorted(t.mode for t in result.tables) == ["direct", "kept"]
    assert sql_on(replica_url, "SELECT count(*) FROM _replicator.dropped_constraints") == [(0,)]
    assert sql_on(replica_url, "SELECT conname FROM pg_constraint WHERE contype = 'f' AND convalidated "
                               "ORDER BY 1") == [("a_b_fkey",), ("b_a_id_fkey",)]
    assert _all_equal(sql_on, master_url, replica_url, ("a", "b"))


def test_a_kept_tables_sequences_are_brought_past_its_rows(master_url, replica_url, sql_on):
    """A stopped run of an earlier release advanced sequences only at its end: a table it finished is
    kept by the rerun, and its sequences are brought past its rows all the same."""
    from replicator.copy import copy_tables

    sql_on(master_url, SEQ_DDL)
    sql_on(replica_url, SEQ_DDL)
    sql_on(master_url, SEQ_FILL)
    with pytest.raises(Interrupted) as stopped:
        copy_tables(master_url, replica_url, ["tickets", "notes"], progress=_stop_after(1))
    first = str(stopped.value.args[0]).split(".")[-1].strip('"')
    sql_on(replica_url, f"SELECT setval(pg_get_serial_sequence('{first}', 'id'), 1, false); "
                        "SELECT setval('shared_refs', 1, false)")  # as that release left them
    result = copy_tables(master_url, replica_url, ["tickets", "notes"])
    assert {t.replica_table: t.mode for t in result.tables}[f"public.{first}"] == "kept"
    for statement in LOCAL_INSERTS[:2]:
        sql_on(replica_url, statement)
    assert sql_on(replica_url, "SELECT count(*) FROM (SELECT ref FROM tickets UNION ALL SELECT ref FROM notes) r "
                               "GROUP BY ref HAVING count(*) > 1") == []


def test_a_rerun_stopped_before_it_committed_in_the_table_it_resumed_is_resumed_in_turn(master_url, replica_url, sql_on):
    """X stops in b (a finished); Y, its rerun, stops before its first commit in b; Z, the rerun of Y,
    still keeps a and finishes b: Y took over X's checkpoints, b's included."""
    from replicator.copy import copy_tables

    ddl = "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a, v text)"
    sql_on(master_url, ddl + "; INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 50) g;"
                             "INSERT INTO b SELECT g, g % 50 + 1, 'b' || g FROM generate_series(1, 5000) g")
    sql_on(replica_url, ddl)

    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, ["a", "b"], batch_size=500, progress=_stop_at("batch", "public.b"))
    assert _statuses(sql_on, replica_url) == {"public.a": "done", "public.b": "running"}
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, ["a", "b"], batch_size=500, progress=_stop_at("start", "public.b"))
    result = copy_tables(master_url, replica_url, ["a", "b"], batch_size=500)
    assert {t.replica_table: t.mode for t in result.tables}["public.a"] == "kept"
    assert _all_equal(sql_on, master_url, replica_url, ("a", "b"))


def test_a_sequence_is_read_table_by_table_not_through_inheritance_children(master_url, replica_url, sql_on):
    """A parent and its inheritance child share the parent's sequence: each table's last transaction
    reads only its own rows for it (ONLY), then takes the sequence's lock. Read through the child, the
    parent's worker could wait for the child's worker (loading it, the child locked) while holding the
    lock the child's worker waits for at its end: a deadlock under --jobs. The sequence still ends
    past both tables."""
    from replicator.copy import copy_tables

    ddl = "CREATE TABLE items (id serial PRIMARY KEY, v text); CREATE TABLE old_items (note text) INHERITS (items)"
    sql_on(master_url, ddl + "; INSERT INTO items (v) SELECT 'i' || g FROM generate_series(1, 50) g;"
                             "INSERT INTO old_items (v) SELECT 'o' || g FROM generate_series(1, 1500) g")
    sql_on(replica_url, ddl)
    result = copy_tables(master_url, replica_url, ["items"])
    assert [(s.sequence, s.value) for s in result.sequences] == [("public.items_id_seq", 50)]  # its own rows only
    copy_tables(master_url, replica_url, ["old_items"])
    assert sql_on(replica_url, "SELECT nextval('items_id_seq')") == [(1551,)]
    result = copy_tables(master_url, replica_url, ["items", "old_items"], policy="mirror", jobs=2)
    assert result.ok and _all_equal(sql_on, master_url, replica_url, ("ONLY items", "old_items"))


def test_status_names_a_dropped_key_of_a_quoted_table_by_its_label(master_url, replica_url, sql_on, role):
    from replicator.copy import copy_tables

    ddl = 'CREATE TABLE "Staff" (id int PRIMARY KEY, mgr int REFERENCES "Staff" (id)); CREATE TABLE t (id int PRIMARY KEY)'
    sql_on(master_url, ddl + '; INSERT INTO "Staff" SELECT g, NULL FROM generate_series(1, 100) g; '
                             'UPDATE "Staff" SET mgr = 101 - id; INSERT INTO t SELECT generate_series(1, 10)')
    owner_url = _owned_by(sql_on, replica_url, role, ddl)
    with pytest.raises(Interrupted):
        copy_tables(master_url, owner_url, ["Staff", "t"], progress=_stop_after(1))  # Staff first (t is smaller)
    shown = subprocess.run([CLI, "status", "--replica", replica_url], capture_output=True, text=True, check=True).stdout
    assert "foreign key(s) of public.Staff left dropped by a stopped copy" in shown, shown
    shown = json.loads(subprocess.run([CLI, "status", "--replica", replica_url, "--json"], capture_output=True,
                                      check=True).stdout)
    assert {d["table"]: d["constraints"] for d in shown["foreign_keys_dropped"]}["public.Staff"] == ["Staff_mgr_fkey"]


def test_a_finished_table_whose_plan_has_a_problem_is_not_kept(master_url, replica_url, sql_on):
    """The master changed a kept table's column type since the stopped run: its rows no longer compare
    (the plan leaves the column out), and the rerun says what any copy of it says."""
    from replicator.copy import CopyError, copy_tables

    _own_tables(sql_on, master_url, replica_url)
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, ["a", "b"], progress=_stop_after(1))
    finished = next(t for t, st in _statuses(sql_on, replica_url).items() if st == "done")
    sql_on(master_url, f"ALTER TABLE {finished} ALTER COLUMN v TYPE bigint USING id * 1000")
    with pytest.raises(CopyError, match=f"type mismatch for {finished}.v"):
        copy_tables(master_url, replica_url, ["a", "b"])


def test_a_replica_role_that_may_not_set_a_sequence_is_refused_before_anything_is_written(
        master_url, replica_url, sql_on, role):
    from conftest import url_with

    from replicator.copy import CopyError, copy_tables

    sql_on(master_url, SEQ_DDL)
    sql_on(replica_url, SEQ_DDL + f"; GRANT SELECT, INSERT, UPDATE, DELETE ON tickets, notes TO {role};"
                                  f"GRANT CREATE ON SCHEMA public TO {role}; CREATE SCHEMA _replicator AUTHORIZATION {role}")
    sql_on(master_url, SEQ_FILL)
    with pytest.raises(CopyError, match=f"nothing was copied: the replica role {role} lacks SELECT, UPDATE on sequence "
                                        "public.notes_id_seq, which feeds public.notes.id; .*GRANT SELECT, UPDATE ON "
                                        "SEQUENCE public.notes_id_seq, public.shared_refs, public.tickets_id_seq"):
        copy_tables(master_url, url_with(replica_url, user=role, password="pw"), ["tickets", "notes"])
    assert sql_on(replica_url, "SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM notes)") == [(0, 0)]


def test_a_rerun_that_only_carries_on_a_running_table_takes_over_the_stopped_run(master_url, replica_url, sql_on):
    """A stops in y; B (x and y) finishes x and stops before its first commit in y; C, B's rerun, keeps x."""
    from replicator.copy import copy_tables

    ddl = "CREATE TABLE x (id int PRIMARY KEY, v text); CREATE TABLE y (id int PRIMARY KEY, v text)"
    sql_on(master_url, ddl + "; INSERT INTO x SELECT g, 'x' FROM generate_series(1, 50) g;"
                             "INSERT INTO y SELECT g, 'y' FROM generate_series(1, 3000) g")
    sql_on(replica_url, ddl)

    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, ["y"], batch_size=500, progress=_stop_at("batch", "public.y"))
    with pytest.raises(Interrupted):  # x is the smaller: first
        copy_tables(master_url, replica_url, ["x", "y"], batch_size=500, progress=_stop_at("start", "public.y"))
    assert _statuses(sql_on, replica_url) == {"public.x": "done", "public.y": "running"}
    result = copy_tables(master_url, replica_url, ["x", "y"], batch_size=500)
    assert {t.replica_table: t.mode for t in result.tables}["public.x"] == "kept"
    assert _all_equal(sql_on, master_url, replica_url, ("x", "y"))


def test_a_stopped_run_with_a_table_under_a_configured_policy_is_resumed(master_url, replica_url, sql_on):
    """[tables.b] policy = master-wins: the run queues b with its policy too, so stopped before b (or in
    it), its rerun still resumes it and keeps a."""
    from replicator.config import Config, TableConfig
    from replicator.copy import copy_tables

    _own_tables(sql_on, master_url, replica_url)
    cfg = Config(tables={"b": TableConfig(policy="master-wins")})
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, ["a", "b"], config=cfg, progress=_stop_after(1))
    statuses = dict(sql_on(replica_url, "SELECT table_name, status || '/' || coalesce(policy, '-') "
                                        "FROM _replicator.checkpoints"))
    finished = next(t for t, st in statuses.items() if st.startswith("done"))
    assert sorted(statuses.values()) == sorted(["done/-" if finished == "public.a" else "done/master-wins",
                                                "queued/master-wins" if finished == "public.a" else "queued/-"])
    result = copy_tables(master_url, replica_url, ["a", "b"], config=cfg)
    if finished == "public.a":
        assert {t.replica_table: t.mode for t in result.tables}["public.a"] == "kept"
    assert _all_equal(sql_on, master_url, replica_url, ("a", "b"))


def test_a_refused_rerun_reports_no_table_as_kept(master_url, replica_url, sql_on):
    from replicator.copy import CopyError, copy_tables

    _all_tables(sql_on, master_url, replica_url)
    with pytest.raises(Interrupted):
        copy_tables(master_url, replica_url, all_tables=True, batch_size=500, progress=_stop_after(2))
    finished = sorted(t for t, st in _statuses(sql_on, replica_url).items() if st == "done")
    sql_on(replica_url, f"DELETE FROM {finished[0]} WHERE ctid = (SELECT min(ctid) FROM {finished[0]})")
    with pytest.raises(CopyError, match=f"replica table {finished[0]} is not empty, and no longer equals") as e:
        copy_tables(master_url, replica_url, all_tables=True, batch_size=500)
    assert e.value.result.tables == []  # type: ignore[attr-defined]


def test_status_json_lists_a_key_dropped_before_its_tables_first_commit(master_url, replica_url, sql_on, role):
    """Stopped before the self-referencing table's first commit: its key is dropped, and `status --json`
    lists it at the top level (whether or not a checkpoint row names it), held by no live session."""
    from replicator.copy import copy_tables

    ddl = 'CREATE TABLE "Staff" (id int PRIMARY KEY, mgr int REFERENCES "Staff" (id))'
    sql_on(master_url, ddl + '; INSERT INTO "Staff" SELECT g, NULL FROM generate_series(1, 100) g; '
                             'UPDATE "Staff" SET mgr = 101 - id')
    owner_url = _owned_by(sql_on, replica_url, role, ddl)
    with pytest.raises(Interrupted):
        copy_tables(master_url, owner_url, ["Staff"], progress=_stop_at("start", "public.Staff"))
    assert sql_on(replica_url, 'SELECT count(*) FROM "Staff"') == [(0,)]  # stopped before any row
    shown = json.loads(subprocess.run([CLI, "status", "--replica", replica_url, "--json"], capture_output=True,
                                      check=True).stdout)
    assert shown["foreign_keys_dropped"] == [{"table": "public.Staff", "constraints": ["Staff_mgr_fkey"],
                                              "held_by_pid": None}]
    assert [c["state"] for c in shown["checkpoints"]] in ([], ["interrupted"])
