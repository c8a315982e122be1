"""The master guard: classification, and refusal before the statement reaches a real server."""

import psycopg
import pytest

from replicator.connect import open_master
from replicator.errors import GuardViolation
from replicator.guard import MasterGuard, classify

READS = [
    "SELECT 1",
    "select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on true where n.nspname = ANY(%s)",
    "SHOW server_version",
    'COPY (SELECT * FROM "Mixed"."end" WHERE id > %s ORDER BY id LIMIT 100) TO STDOUT (FORMAT binary)',
    'COPY public."end" (a, b) TO STDOUT',
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s1",
    "RELEASE SAVEPOINT s1",
    "ROLLBACK TO SAVEPOINT s1",
    "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    "SELECT pg_export_snapshot()",
    "SELECT sum(hashtextextended(t::text, 0)) FROM t",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x UNION ALL SELECT 2",
    "SELECT set_config('search_path', 'pg_catalog', true), set_config('TimeZone', 'UTC', true)",
]

WRITES = [
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET a = 1",
    "DELETE FROM t",
    "TRUNCATE t",
    "DROP TABLE t",
    "CREATE TABLE x (a int)",
    "ALTER TABLE t ADD COLUMN b int",
    "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "COPY t FROM STDIN",
    "COPY t TO '/tmp/stolen'",
    "COPY (DELETE FROM t RETURNING *) TO STDOUT",
    "SELECT * INTO newt FROM t",
    "SELECT * FROM t FOR UPDATE",
    "SELECT 1 FROM t FOR SHARE",
    "SELECT nextval('s')",
    "SELECT pg_catalog.setval('s', 1)",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT set_config('transaction_read_only', 'off', true)",
    "SELECT set_config('search_path', 'public', false)",
    "SELECT set_config(%s, 'x', true)",
    "SELECT pg_terminate_backend(1)",
    "SELECT 1; DELETE FROM t",
    "BEGIN READ WRITE",
    "START TRANSACTION READ WRITE",
    "SET TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off",
    "SET statement_timeout = 0",
    "RESET ALL",
    "VACUUM t",
    "ANALYZE t",
    "LOCK TABLE t",
    "CALL p()",
    "DO $$ BEGIN END $$",
    "EXPLAIN ANALYZE DELETE FROM t",
    "GRANT SELECT ON t TO x",
    "COMMENT ON TABLE t IS 'x'",
    "SELECT 'unterminated",
    "",
]


@pytest.mark.parametrize("statement", READS)
def test_reads_are_allowed(statement):
    verdict = classify(statement)
    assert verdict.allowed, verdict.reason


@pytest.mark.parametrize("statement", WRITES)
def test_everything_else_is_refused(statement):
    verdict = classify(statement)
    assert not verdict.allowed
    assert verdict.reason


def test_write_through_master_connection_never_reaches_the_server(master_url, sql_on):
    sql_on(master_url, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    guard = MasterGuard()
    with open_master(master_url, guard) as conn:
        # A marker statement the server does see, so we can tell the log apart.
        conn.execute("SELECT 1")
        for stmt in ("DELETE FROM t", "INSERT INTO t VALUES (2)", "TRUNCATE t"):
            with pytest.raises(GuardViolation, match="refused to send to the master"):
                conn.execute(stmt)
        with pytest.raises(GuardViolation):
            with conn.cursor().copy("COPY t FROM STDIN"):
                pass
        # The connection is still usable: nothing was sent, so no error state on the server side.
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    # The server never saw them: the statements are absent from pg_stat_statements-free evidence,
    # i.e. the row is still there and the table still has its one row.
    assert sql_on(master_url, "SELECT id FROM t") == [(1,)]
    refused = [e for e in guard.audit if not e.allowed]
    assert [e.statement for e in refused] == ["DELETE FROM t", "INSERT INTO t VALUES (2)", "TRUNCATE t",
                                              "COPY t FROM STDIN"]
    assert all(e.allowed for e in guard.audit if e.statement.startswith("SELECT"))


def test_master_transactions_are_read_only_even_past_the_guard(master_url, sql_on):
    """The second layer: a write hidden where the guard cannot see it (a view calling a volatile
    function) is stopped by the READ ONLY transaction; called directly, the guard refuses it first."""
    sql_on(master_url, """
        CREATE TABLE t (id int);
        CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'INSERT INTO t VALUES (1) RETURNING 1';
        CREATE VIEW innocent AS SELECT sneaky() AS x;
    """)
    with open_master(master_url) as conn:
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        conn.rollback()
        with pytest.raises(GuardViolation, match=r"sneaky\(\)"):
            conn.execute("SELECT sneaky()")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("SELECT x FROM innocent")
        conn.rollback()
        conn.autocommit = True
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    assert sql_on(master_url, "SELECT count(*) FROM t") == [(0,)]


def test_server_side_cursors_are_refused_on_master(master_url):
    from replicator.errors import ConnectError

    with open_master(master_url) as conn:
        with pytest.raises(ConnectError):
            conn.cursor(name="c1")


def test_audit_summary_counts_repeated_statements():
    g = MasterGuard()
    for _ in range(3):
        g.check("SELECT  1")
    with pytest.raises(GuardViolation):
        g.check("DELETE FROM t")
    summary = {(row["statement"], row["allowed"]): row["count"] for row in g.summary()}
    assert summary == {("SELECT 1", True): 3, ("DELETE FROM t", False): 1}
