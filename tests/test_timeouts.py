"""Server timeouts a database or role sets (Supabase sets statement_timeout per role; many teams set
idle_in_transaction_session_timeout) do not cut a long read or an idle snapshot short: replicator's
sessions run without them, as pg_dump's do, unless the URL's own `options` sets them."""

from __future__ import annotations

import psycopg
import pytest
from conftest import run_cli, url_with
from copyhelp import both, checksum

from replicator.config import Config
from replicator.copy import copy_tables
from replicator.verify import run_verify

DDL = "CREATE TABLE msgs (id bigint PRIMARY KEY, body text)"
ROWS = "INSERT INTO msgs SELECT i, repeat(md5(i::text), 20) FROM generate_series(1, 300000) i"


def _limit(sql_on, url: str, **settings: str) -> None:
    """The database's defaults for new sessions (as ALTER ROLE ... SET does for a role's)."""
    for name, value in settings.items():
        sql_on(url, f"DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET {name} = %L', current_database(), "
                    f"'{value}'); END $$")


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
    """The run's master transaction waits while the replica works (here: a trigger on the replica slows
    every row of the first table); the master's idle timeout would end the snapshot under it."""
    for ddl in ("CREATE TABLE a (id int PRIMARY KEY, v text)", "CREATE TABLE b (id int PRIMARY KEY, v text)"):
        both(sql_on, master_url, replica_url, ddl)
    sql_on(master_url, "INSERT INTO a SELECT i, 'a' || i FROM generate_series(1, 20000) i; "
                       "INSERT INTO b SELECT i, 'b' || i FROM generate_series(1, 20000) i")
    _limit(sql_on, master_url, idle_in_transaction_session_timeout="100ms")
    # an index the replica is slow to fill keeps the master's transaction idle between batches
    sql_on(replica_url, "CREATE FUNCTION slow(text) RETURNS text IMMUTABLE LANGUAGE plpgsql AS "
                        "$$ BEGIN PERFORM pg_sleep(0.0001); RETURN md5($1); END $$; "
                        "CREATE INDEX a_slow ON a (slow(v))")
    res = copy_tables(master_url, replica_url, ["a", "b"], batch_size=5000)
    assert sorted(t.inserted for t in res.tables) == [20000, 20000]
    for t in ("a", "b"):
        assert checksum(sql_on, master_url, t) == checksum(sql_on, replica_url, t)


def test_the_urls_own_options_still_set_a_timeout(master_url, replica_url, sql_on):
    """A user who wants a limit on replicator's master statements says so in the URL's options."""
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, ROWS)
    capped = url_with(master_url, options="-c statement_timeout=1ms")
    r = run_cli("copy", "--master", capped, "--replica", replica_url, "--table", "msgs")
    assert r.code != 0
    assert "statement timeout" in r.stderr
    assert len(r.lines) == 1, r.stderr


def test_through_a_pooler_the_error_says_what_cut_the_copy_short(master_url, replica_url, sql_on, pooler):
    """A transaction pooler takes no startup options, so the database's limit stays: one line that says
    so, not "rerun to resume" (a rerun would meet it again)."""
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, ROWS)
    _limit(sql_on, master_url, statement_timeout="1ms")
    r = run_cli("copy", "--master", pooler.url_for(master_url), "--replica", replica_url, "--table", "msgs")
    assert r.code != 0
    assert len(r.lines) == 1, r.stderr
    assert "statement timeout" in r.stderr and "connect directly" in r.stderr
    assert "rerun to resume" not in r.stderr


def test_a_pooler_that_refuses_startup_options_gets_them_lifted_by_statement(master_url, replica_url, sql_on,
                                                                              session_pooler):
    """pgbouncer in session mode refuses the `options` the timeouts ride in; the session lifts them with
    set_config instead (it stays with the client for the session)."""
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, ROWS)
    sql_on(replica_url, ROWS)
    _limit(sql_on, replica_url, statement_timeout="200ms")
    _slow_enough(replica_url, "200ms")
    sql_on(replica_url, "TRUNCATE msgs")
    via = session_pooler.url_for(replica_url)
    from replicator.connect import open_replica

    with open_replica(via) as conn:
        assert conn.options_refused
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    res = copy_tables(master_url, via, ["msgs"], batch_size=1_000_000)
    assert res.tables[0].inserted == 300000
    _limit(sql_on, replica_url, statement_timeout="0")
    assert checksum(sql_on, master_url, "msgs") == checksum(sql_on, replica_url, "msgs")
