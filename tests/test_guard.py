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
    "SELECT pg_catalog.set_config('replicator.mask_key', $1, true)",
    "SELECT pg_catalog.set_config('statement_timeout', '0', true), "
    "pg_catalog.set_config('idle_in_transaction_session_timeout', '0', true)",
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
    "SELECT set_config('replicator.mask_key', $1, false)",
    "SELECT set_config('replicator.other', 'x', true)",
    "SELECT set_config('statement_timeout', '5min', true)",  # a timeout is only ever lifted
    "SELECT set_config('statement_timeout', %s, true)",
    "SELECT set_config('lock_timeout', '0', true)",
    "SELECT set_config('statement_timeout', '0', %s)",
    "SELECT set_config('statement_timeout', '0', false)",  # for its transaction only: a pooler's session is shared
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


# --- the allow-list: the holes the old deny-list had, and spellings that must not get through ------

REFUSED_WHATEVER_THE_CATALOG = [
    "ROLLBACK PREPARED 'x'",
    "COMMIT PREPARED 'x'",
    "PREPARE TRANSACTION 'x'",
    'COMMIT "PREPARED"',
    "SAVEPOINT 'quoted string'",
    'BEGIN "READ" ONLY',
    "BEGIN ISOLATION LEVEL READ WRITE",
    "START TRANSACTION READ ONLY, READ WRITE",
    "COPY",
    "COPY (",
    "COPY t",
    "COPY t TO",
    "COPY t TO PROGRAM 'rm -rf /'",
    "COPY (SELECT 1) TO '/tmp/x'",
    "COPY (SELECT pg_sleep(1)) TO STDOUT",
    "SELECT query_to_xml('DELETE FROM t', true, true, '')",
    "SELECT * FROM query_to_xml('DELETE FROM t', true, true, '')",
    "SELECT pg_catalog.query_to_xml_and_xmlschema('DELETE FROM t', true, true, '')",
    "SELECT ts_stat('DELETE FROM t RETURNING x')",
    "SELECT txid_current()",
    'SELECT U&"set\\005fconfig"(\'default_transaction_read_only\', \'off\', false)',
    'SELECT U&"set!005fconfig" UESCAPE \'!\' (\'transaction_read_only\', \'off\', true)',
    'SELECT u&"\\0073\\0065\\0074\\005f\\0063\\006f\\006e\\0066\\0069\\0067"(\'search_path\', \'public\', false)',
    "SELECT \"set_config\"('transaction_read_only', 'off', true)",
    "SELECT SET_CONFIG('transaction_read_only', 'off', true)",
    "SELECT pg_catalog.set_config('transaction_read_only', 'off', true)",
    "SELECT set_config(U&'search\\005fpath', 'public', true)",
    "SELECT set_config('search_path', 'public, pg_catalog', true)",
    "SELECT set_config('search_path', 'public', pg_catalog.bool('t'))",
    "SELECT public.md5('x')",
    "SELECT other_db.pg_catalog.md5('x')",
    "SELECT pg_sleep(1)",
    "SELECT argmax(a, b) FROM t",
    'SELECT "INITCAP"(name) FROM t',
    "SELECT public.initcap(name) FROM t",
    "SELECT public.string_agg(name, ',') FROM t",
    "SELECT lo_import('/etc/passwd')",
    "SELECT pg_read_file('postgresql.conf')",
    "SELECT dblink_exec('host=x', 'DELETE FROM t')",
    "SELECT 1 FROM t, LATERAL (SELECT nextval('s')) x",
    "SELECT (SELECT pg_terminate_backend(pid) FROM pg_stat_activity LIMIT 1)",
    "WITH x AS (SELECT 1) SELECT pg_notify('c', 'x') FROM x",
    "EXPLAIN ANALYZE SELECT 1",
    "DISCARD ALL",
    "LISTEN c",
    "NOTIFY c",
    "SET LOCAL statement_timeout = 0",
    "SET transaction_read_only = off",
]


@pytest.mark.parametrize("statement", REFUSED_WHATEVER_THE_CATALOG)
def test_refused_even_with_the_catalog(statement):
    # A catalog that vouches for every name involved still does not let these through.
    everything = {"query_to_xml", "query_to_xml_and_xmlschema", "ts_stat", "txid_current", "set_config",
                  "md5", "pg_sleep", "lo_import", "pg_read_file", "dblink_exec", "nextval", "pg_terminate_backend",
                  "pg_notify", "bool"} - {"pg_sleep", "lo_import", "pg_read_file", "dblink_exec", "nextval",
                                           "pg_terminate_backend", "pg_notify"}
    verdict = classify(statement, everything)
    assert not verdict.allowed, statement
    assert verdict.reason


ALLOWED = [
    "VALUES (1)",
    "VALUES (1, 'a'), (2, 'b') ORDER BY 1",
    "TABLE public.t",
    "(SELECT 1) UNION ALL (SELECT 2)",
    "SELECT x FROM generate_series(1, 3) AS g(x)",
    "SELECT string_agg(name, ',' ORDER BY name), json_agg(x), count(*) FILTER (WHERE x > 1) FROM t",
    "SELECT CASE WHEN a ~ 'x' THEN coalesce(b, 'y') END, a::text, CAST(b AS int), a = ANY(ARRAY[1, 2]) FROM t",
    "SELECT pg_catalog.md5('x'), \"left\"('abc', 1), pg_catalog.\"left\"('abc', 1)",
    "SELECT $1::int + 1",
    "SAVEPOINT \"_pg3_1\"",
    "ROLLBACK TO SAVEPOINT \"_pg3_1\"",
    "RELEASE \"_pg3_1\"",
    "ROLLBACK AND NO CHAIN",
    "BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
    "START TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "SET default_transaction_read_only TO 'on'",
    "DEALLOCATE _pg3_0",
    "DEALLOCATE ALL",
    "SHOW TIME ZONE",
    "COPY (VALUES (1)) TO STDOUT WITH (FORMAT csv, HEADER)",
    "COPY t TO STDOUT BINARY",
    "SELECT set_config('search_path', 'pg_catalog, public', true)",
]


@pytest.mark.parametrize("statement", ALLOWED)
def test_allowed_without_the_catalog(statement):
    verdict = classify(statement)
    assert verdict.allowed, verdict.reason


def test_functions_outside_the_list_need_the_catalog():
    # reverse is immutable but not a tool function: refused until the master's catalog vouches for it
    assert not classify("SELECT reverse('abc')").allowed
    assert classify("SELECT reverse('abc')", {"reverse"}).allowed
    assert classify("SELECT pg_catalog.reverse('abc')", lambda: {"reverse"}).allowed
    # the catalog only speaks for pg_catalog: a user function of the same name elsewhere stays refused
    assert not classify("SELECT public.reverse('abc')", {"reverse"}).allowed
    assert not classify("SELECT sneaky()", {"reverse"}).allowed


def test_tool_functions_are_all_real_pg_catalog_functions(master_url):
    """TOOL_FUNCTIONS names functions the master really has (a typo would allow nothing, or worse
    something else); and none of them is one that runs SQL text."""
    from replicator.guard import DENIED_FUNCTIONS, SQL_CONSTRUCTS, TOOL_FUNCTIONS

    with psycopg.connect(master_url) as conn:
        known = {r[0] for r in conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace").fetchall()}
    assert not (TOOL_FUNCTIONS - SQL_CONSTRUCTS) - known
    assert not TOOL_FUNCTIONS & DENIED_FUNCTIONS


def test_catalog_is_read_once_per_connection_through_the_guard(master_url):
    guard = MasterGuard()
    with open_master(master_url, guard) as conn:
        assert conn.execute("SELECT reverse('abc'), upper('x')").fetchone() == ("cba", "X")
        assert conn.execute("SELECT reverse('def')").fetchone() == ("fed",)
        with pytest.raises(GuardViolation, match="pg_sleep"):
            conn.execute("SELECT pg_sleep(0)")  # volatile: the catalog does not vouch for it
    catalog_reads = [e for e in guard.audit if "pg_proc" in e.statement]
    assert len(catalog_reads) == 1 and catalog_reads[0].allowed


def test_psycopg_transaction_commands_are_audited_and_guarded(master_url):
    guard = MasterGuard()
    with open_master(master_url, guard) as conn:
        with conn.transaction():
            with conn.transaction():
                conn.execute("SELECT 1")
        conn.execute("SELECT 2")
        conn.rollback()
        sent = [" ".join(e.statement.split()) for e in guard.audit if e.kind == "transaction"]
        assert sent == ["BEGIN READ ONLY", 'SAVEPOINT "_pg3_2"', 'RELEASE "_pg3_2"', "COMMIT", "BEGIN READ ONLY",
                        "ROLLBACK"]
        # two-phase commit would PREPARE TRANSACTION: refused before the wire
        conn.tpc_begin(conn.xid(1, "gtrid", "bqual"))
        conn.execute("SELECT 3")
        with pytest.raises(GuardViolation, match="PREPARE"):
            conn.tpc_prepare()
        conn.close()
    assert not [e for e in guard.audit if not e.allowed and not e.statement.startswith("PREPARE TRANSACTION")]
