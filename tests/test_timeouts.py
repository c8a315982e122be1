"""Server timeouts a database or role sets (Supabase sets statement_timeout per role; many teams set
idle_in_transaction_session_timeout) do not cut a long read or an idle snapshot short: replicator's
sessions run without them, as pg_dump's do, unless the URL's own `options` sets them."""

from __future__ import annotations

import time

import psycopg
import pytest
from conftest import run_cli, url_with
from copyhelp import both, checksum

from replicator.config import Config
from replicator.copy import copy_tables
from replicator.errors import ConnectError
from replicator.verify import run_verify

DDL = "CREATE TABLE msgs (id bigint PRIMARY KEY, body text)"
ROWS = "INSERT INTO msgs SELECT i, repeat(md5(i::text), 20) FROM generate_series(1, 300000) i"


def _limit(sql_on, url: str, **settings: str) -> None:
    """The database's defaults for new sessions (as ALTER ROLE ... SET does for a role's)."""
    for name, value in settings.items():
        sql_on(url, f"DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET {name} = %L', current_database(), "
                    f"'{value}'); END $$")


def _idle_at_each_table(event, table, **info):
    """A run's progress callback keeping every session of the run idle for a while before each table
    (as a slow replica, or a large index build, would)."""
    if event == "start":
        time.sleep(0.3)


def _slow_enough(url: str, timeout: str) -> None:
    """The arrangement means something: a plain session of that database does hit the limit."""
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.QueryCanceled):
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == timeout
        conn.execute("SELECT count(*) FROM msgs a, msgs b WHERE a.id < 3000 AND b.id < 3000 AND a.body < b.body")


@pytest.mark.parametrize("side", ["master", "replica"])
def test_a_statement_timeout_on_either_side_does_not_cancel_the_copy(master_url, replica_url, sql_on, side):
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, ROWS)
    url = master_url if side == "master" else replica_url
    if side == "replica":
        sql_on(replica_url, ROWS)  # something to make slow there too, then empty it for the copy
    _limit(sql_on, url, statement_timeout="200ms")
    _slow_enough(url, "200ms")
    if side == "replica":
        sql_on(replica_url, "TRUNCATE msgs")
    res = copy_tables(master_url, replica_url, ["msgs"], batch_size=1_000_000)
    assert res.tables[0].inserted == 300000
    report = run_verify(Config(master_url=master_url, replica_url=replica_url), tables=["msgs"], deep=True,
                        snapshot=None)
    assert report.ok, [c.model_dump() for c in report.checks if c.status != "pass"]
    _limit(sql_on, url, statement_timeout="0")  # for the test's own reads
    assert checksum(sql_on, master_url, "msgs") == checksum(sql_on, replica_url, "msgs")


def test_an_idle_in_transaction_timeout_on_the_master_does_not_end_the_snapshot(master_url, replica_url, sql_on):
    """The run's master transaction waits while the replica works (here: the progress callback sleeps
    between the tables); the master's idle timeout would end the snapshot under it."""
    for ddl in ("CREATE TABLE a (id int PRIMARY KEY, v text)", "CREATE TABLE b (id int PRIMARY KEY, v text)"):
        both(sql_on, master_url, replica_url, ddl)
    sql_on(master_url, "INSERT INTO a SELECT i, 'a' || i FROM generate_series(1, 20000) i; "
                       "INSERT INTO b SELECT i, 'b' || i FROM generate_series(1, 20000) i")
    _limit(sql_on, master_url, idle_in_transaction_session_timeout="100ms")
    res = copy_tables(master_url, replica_url, ["a", "b"], batch_size=5000, progress=_idle_at_each_table)
    assert sorted(t.inserted for t in res.tables) == [20000, 20000]
    for t in ("a", "b"):
        assert checksum(sql_on, master_url, t) == checksum(sql_on, replica_url, t)


def test_through_a_transaction_pooler_the_runs_snapshot_lifts_them(master_url, replica_url, sql_on, pooler):
    """A transaction pooler takes no startup options: the run's master transaction lifts the database's
    limits for itself (set_config(..., true), nothing left on the pooler's server connection)."""
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, ROWS)
    _limit(sql_on, master_url, statement_timeout="200ms", idle_in_transaction_session_timeout="100ms")
    _slow_enough(master_url, "200ms")
    via = pooler.url_for(master_url)
    res = copy_tables(via, replica_url, ["msgs"], batch_size=100_000, progress=_idle_at_each_table)
    assert res.tables[0].inserted == 300000
    report = run_verify(Config(master_url=via, replica_url=replica_url), tables=["msgs"], deep=True, snapshot=None)
    assert report.ok, [c.model_dump() for c in report.checks if c.status != "pass"]
    # the pooler's server connections kept the database's limit for everyone else
    with psycopg.connect(via, autocommit=True, prepare_threshold=None) as other:
        assert other.execute("SHOW statement_timeout").fetchone() == ("200ms",)
    _limit(sql_on, master_url, statement_timeout="0")
    assert checksum(sql_on, master_url, "msgs") == checksum(sql_on, replica_url, "msgs")


@pytest.mark.parametrize("command", ["copy", "sync"])
def test_a_limit_the_url_sets_stops_the_run_with_a_hint(master_url, replica_url, sql_on, tmp_path, command):
    """Not "rerun to resume": a rerun would meet the same limit."""
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, ROWS)
    capped = url_with(master_url, options="-c statement_timeout=1ms")
    r = run_cli(command, "--master", capped, "--replica", replica_url, "--table", "msgs", cwd=tmp_path)
    assert r.code != 0
    assert len(r.lines) == 1, r.stderr
    assert "statement timeout" in r.stderr and "raise it there, or connect directly" in r.stderr, r.stderr
    assert "rerun" not in r.stderr


def test_a_replica_through_a_pooler_that_refuses_options_keeps_its_limit_and_says_so(master_url, replica_url,
                                                                                    sql_on, session_pooler):
    """Nothing is set for the session through a pooler (in transaction mode it would reach its other
    clients): the replica database's limit stays, and the copy stops in one line that names it."""
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, ROWS)
    sql_on(replica_url, ROWS)
    _limit(sql_on, replica_url, statement_timeout="200ms")
    _slow_enough(replica_url, "200ms")
    sql_on(replica_url, "TRUNCATE msgs")
    r = run_cli("copy", "--master", master_url, "--replica", session_pooler.url_for(replica_url), "--table", "msgs",
                "--batch-size", "1000000")
    errors = [ln for ln in r.lines if ln.startswith("error")]
    assert r.code != 0 and len(errors) == 1, r.stderr  # (after the progress lines)
    assert "replica: canceling statement due to statement timeout" in errors[0]
    assert "raise it there, or connect directly" in r.stderr


def test_sessions_idle_for_the_whole_run_survive_an_idle_session_timeout(master_url, replica_url, sql_on):
    """The session holding a copy's table locks on the replica is idle for the whole run: an
    idle_session_timeout (PostgreSQL 14) would end it, and the locks with it."""
    for t in ("a", "b"):
        both(sql_on, master_url, replica_url, f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
        sql_on(master_url, f"INSERT INTO {t} SELECT i, 'v' || i FROM generate_series(1, 1000) i")
    for url in (master_url, replica_url):
        _limit(sql_on, url, idle_session_timeout="100ms")
    held = []

    def progress(event, table, **info):
        if event == "start" and table == "public.b":
            time.sleep(0.5)  # every session of the run idle meanwhile
            held.append(sql_on(replica_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                            "AND pid <> pg_backend_pid()")[0][0])

    res = copy_tables(master_url, replica_url, ["a", "b"], progress=progress)
    assert sorted(t.inserted for t in res.tables) == [1000, 1000]
    assert held and held[0] >= 2, held  # both tables' copy locks, still held


def test_a_server_that_does_not_know_a_lifted_setting_is_connected_to_without_it(master_url, replica_url, sql_on,
                                                                                 monkeypatch):
    """idle_session_timeout is PostgreSQL 14's: an older server refuses a connection naming it, and it is
    made again without it (here with a name no server knows)."""
    from replicator import connect

    monkeypatch.setattr(connect, "NO_TIMEOUTS", connect.NO_TIMEOUTS + " -c no_such_timeout=0")
    monkeypatch.setattr(connect, "NEWER_TIMEOUTS", (*connect.NEWER_TIMEOUTS, "no_such_timeout"))
    with pytest.raises(psycopg.OperationalError, match='unrecognized configuration parameter "no_such_timeout"'):
        psycopg.connect(master_url, options=connect.NO_TIMEOUTS).close()
    with connect.open_master(master_url) as m, connect.open_replica(replica_url) as r:
        for conn in (m, r):
            assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
            assert conn.execute("SHOW idle_session_timeout").fetchone() == ("0",)
    # the URL's own options naming it: the server's refusal, once, in one line (it is the URL's to mend)
    own = url_with(master_url, options="-c no_such_timeout=5min")
    with pytest.raises(ConnectError, match='unrecognized configuration parameter "no_such_timeout"') as e:
        connect.open_master(own)
    assert "\n" not in str(e.value)


def test_a_verify_check_cut_short_by_a_limit_the_url_sets_fails_saying_why(master_url, replica_url, sql_on):
    """The check could not run: it fails (never passes), and its summary names the limit and what to do."""
    both(sql_on, master_url, replica_url, DDL)
    for url in (master_url, replica_url):
        sql_on(url, ROWS)
    capped = url_with(master_url, options="-c statement_timeout=150ms")
    report = run_verify(Config(master_url=capped, replica_url=replica_url), tables=["msgs"], deep=True,
                        snapshot=None)
    cut = [c for c in report.checks if c.status == "fail" and "statement timeout" in c.summary]
    assert cut and not report.ok, [(c.name, c.status, c.summary) for c in report.checks]
    assert all("raise it there, or connect directly" in c.summary for c in cut)


@pytest.mark.parametrize("command", ["analyze", "sync"])
def test_introspecting_a_large_catalog_through_a_transaction_pooler(master_url, replica_url, sql_on, pooler, tmp_path,
                                                                    command, monkeypatch):
    """analyze, sync (and migrate, init) read the master's catalog in a transaction of their own: it lifts
    the database's limit for itself too, where the pooler took no startup options."""
    sql_on(master_url, "DO $$ BEGIN FOR i IN 1..300 LOOP EXECUTE format("
                       "'CREATE TABLE t%s (id int PRIMARY KEY, v text CHECK (v <> ''''), w int DEFAULT 1)', i); "
                       "END LOOP; END $$")
    _limit(sql_on, master_url, statement_timeout="20ms")
    via = pooler.url_for(master_url)
    from replicator.introspect import core

    with monkeypatch.context() as without_lifting:  # the arrangement means something
        without_lifting.setattr(core, "LIFT_TIMEOUTS_LOCALLY", "SELECT 1")
        with psycopg.connect(via, prepare_threshold=None) as plain, pytest.raises(psycopg.errors.QueryCanceled):
            core.introspect(plain, schemas=["public"])
    r = run_cli(command, "--master", via, "--replica", replica_url, cwd=tmp_path)
    assert "statement timeout" not in r.stderr, r.stderr
    assert r.code == 0, r.stderr
    if command == "sync":  # again: the catalog unchanged, only its digest read (in a transaction of its own)
        r = run_cli(command, "--master", via, "--replica", replica_url, cwd=tmp_path)
        assert r.code == 0, r.stderr
