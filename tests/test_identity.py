"""Each side knows what it is: the replica is never the master's database (however the URL is
spelled), a standby of it, or read-only when written; a database marked as a replica is never a master.

Every refusal is one line on stderr and exit 2, and the master's own statement log (a server started
with log_statement = all) shows that nothing was written to it.
"""

from __future__ import annotations

import re
import subprocess
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conftest import run_cli, run_sql, url_with, wait_for_database
from replicator import ephemeral, identity
from replicator.connect import open_master, open_replica
from replicator.errors import IdentityError

SCHEMA = "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 50) g;"
READ_ONLY = re.compile(r"^(SELECT|SHOW|BEGIN|START TRANSACTION|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|SET TRANSACTION|"
                       r"DEALLOCATE|COPY \(SELECT)\b", re.I)


def commands(master: str, replica: str, out_dir) -> dict[str, list[str]]:
    common = ["--master", master, "--replica", replica, "--out-dir", str(out_dir)]
    return {
        "copy": ["copy", "--table", "items", "--policy", "mirror", *common],
        "verify": ["verify", "--deep", *common],
        "analyze": ["analyze", *common],
        "migrate": ["migrate", *common],
        "migrate --plan": ["migrate", "--plan", str(plan_file(out_dir)), *common],
    }


def plan_file(out_dir) -> str:
    path = out_dir / "reviewed-plan.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("BEGIN;\nCREATE TABLE from_the_plan (id int);\nCOMMIT;\n")
    return str(path)


def assert_refused(res, *patterns: str) -> None:
    assert res.code == 2, (res.code, res.stderr)
    assert len(res.lines) == 1, res.stderr
    assert res.lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for p in patterns:
        assert re.search(p, res.lines[0]), (p, res.lines[0])


def assert_master_not_written(logged_server, dbname: str, since: int) -> None:
    """Every statement the master logged for this database since `since` (from any client) is a read,
    and replicator's schema is absent."""
    statements = logged_server.statements(dbname, since=since, application=None, raw=True)
    uncommented = [re.sub(r"^(\s*--[^\n]*\n)+", "", s).strip() for s in statements]
    # a query may open with a CTE: then it must contain no data-modifying statement
    writes = [s for s in uncommented if not READ_ONLY.match(s)
              and not (re.match(r"WITH\b", s, re.I) and not re.search(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", s, re.I))]
    assert not writes, writes
    assert run_sql(logged_server.url_for(dbname), "SELECT to_regnamespace('_replicator')") == [(None,)]


def spellings(url: str) -> list[str]:
    """The same database, spelled differently: host name vs address, extra parameters, key=value form."""
    p = conninfo_to_dict(url)
    as_url = f"postgresql://{p['user']}:{quote(p['password'], safe='')}@127.0.0.1:{p['port']}/{p['dbname']}"
    return [
        url,
        url_with(url, host="localhost"),
        as_url + "?connect_timeout=7&application_name=someone&sslmode=disable",
        make_conninfo("", host="localhost", port=p["port"], dbname=p["dbname"], user=p["user"], password=p["password"],
                      options="-c statement_timeout=0"),
    ]


@pytest.mark.parametrize("spelling", range(4), ids=["same", "localhost", "extra-params", "key-value"])
def test_replica_url_naming_the_master_database_is_refused(logged_server, logged_master_url, tmp_path, spelling):
    run_sql(logged_master_url, SCHEMA)
    dbname = conninfo_to_dict(logged_master_url)["dbname"]
    replica = spellings(logged_master_url)[spelling]
    password = conninfo_to_dict(logged_master_url)["password"]
    checksum = "SELECT count(*), sum(hashtextextended(i::text, 0)) FROM items i"
    before = run_sql(logged_master_url, checksum)
    since = logged_server.log_offset()
    for name, args in commands(logged_master_url, replica, tmp_path).items():
        res = run_cli(*args, cwd=tmp_path)
        assert_refused(res, r"^error: replica .* is the master's own database", dbname)
        assert password not in res.stderr + res.stdout
    assert_master_not_written(logged_server, dbname, since)
    assert run_sql(logged_master_url, checksum) == before


def test_hot_standby_of_the_master_is_refused(logged_server, logged_master_url, standby_server, tmp_path):
    run_sql(logged_master_url, SCHEMA)
    dbname = conninfo_to_dict(logged_master_url)["dbname"]
    standby_url = standby_server.url(dbname)
    wait_for_database(standby_url)
    assert run_sql(standby_url, "SELECT pg_is_in_recovery()") == [(True,)]
    since = logged_server.log_offset()
    for name, args in commands(logged_master_url, standby_url, tmp_path).items():
        res = run_cli(*args, cwd=tmp_path)
        assert_refused(res, r"^error: replica .* is a hot standby of the master's database", "in recovery")
    assert_master_not_written(logged_server, dbname, since)


def test_read_only_replica_is_refused_for_writing_commands(logged_server, logged_master_url, replica_url, tmp_path):
    run_sql(logged_master_url, SCHEMA)
    run_sql(replica_url, "CREATE TABLE items (id int PRIMARY KEY)")  # migrate has a column to add
    dbname = conninfo_to_dict(replica_url)["dbname"]
    run_sql(replica_url, f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')
    since = logged_server.log_offset()
    cmds = commands(logged_master_url, replica_url, tmp_path)
    for name in ("copy", "migrate", "migrate --plan"):
        res = run_cli(*cmds[name], cwd=tmp_path)
        assert_refused(res, r"^error: replica .* is read-only: default_transaction_read_only is on")
    # verify only reads the replica: it runs (and finds the replica behind)
    res = run_cli(*cmds["verify"], cwd=tmp_path)
    assert res.code == 1 and "row_counts" in res.stderr + res.stdout, res.stderr
    assert_master_not_written(logged_server, conninfo_to_dict(logged_master_url)["dbname"], since)
    assert run_sql(replica_url, "SELECT count(*) FROM items") == [(0,)]
    assert run_sql(replica_url, "SELECT to_regnamespace('_replicator')") == [(None,)]


def test_swapped_environment_variables_are_refused(logged_server, logged_master_url, replica_url, tmp_path):
    run_sql(logged_master_url, SCHEMA)
    run_sql(replica_url, "CREATE TABLE items (id int PRIMARY KEY, name text)")
    env = {"REPLICATOR_MASTER_URL": logged_master_url, "REPLICATOR_REPLICA_URL": replica_url}
    first = run_cli("copy", "--table", "items", "--out-dir", str(tmp_path), env=env, cwd=tmp_path)
    assert first.code == 0, first.stderr
    marker = run_sql(replica_url, "SELECT master_database, master_system_identifier FROM _replicator.replica_of")
    assert marker[0][0] == conninfo_to_dict(logged_master_url)["dbname"] and marker[0][1]

    swapped = {"REPLICATOR_MASTER_URL": replica_url, "REPLICATOR_REPLICA_URL": logged_master_url}
    since = logged_server.log_offset()
    for args in (["copy", "--table", "items", "--policy", "mirror"], ["verify", "--deep"], ["analyze"], ["migrate"]):
        res = run_cli(*args, "--out-dir", str(tmp_path), env=swapped, cwd=tmp_path)
        assert_refused(res, r"^error: master .* is a replica of .* swapped\?")
    assert_master_not_written(logged_server, conninfo_to_dict(logged_master_url)["dbname"], since)


def test_replica_of_another_master_needs_the_flag(master_url, replica_url, logged_master_url, tmp_path):
    for url in (master_url, logged_master_url):
        run_sql(url, SCHEMA)
    run_sql(replica_url, "CREATE TABLE items (id int PRIMARY KEY, name text)")
    assert run_cli("copy", "--table", "items", "--master", master_url, "--replica", replica_url,
                   "--out-dir", str(tmp_path), cwd=tmp_path).code == 0
    other = ["copy", "--table", "items", "--policy", "mirror", "--master", logged_master_url, "--replica", replica_url,
             "--out-dir", str(tmp_path)]
    res = run_cli(*other, cwd=tmp_path)
    assert_refused(res, r"is the replica of another master", "--replica-of-new-master")
    res = run_cli(*other, "--replica-of-new-master", cwd=tmp_path)
    assert res.code == 0, res.stderr
    new = conninfo_to_dict(logged_master_url)["dbname"]
    assert run_sql(replica_url, "SELECT master_database FROM _replicator.replica_of") == [(new,)]
    # re-pointed: the flag is no longer needed, and the first master is now the other one
    assert run_cli(*other, cwd=tmp_path).code == 0
    res = run_cli("verify", "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path), cwd=tmp_path)
    assert_refused(res, r"is the replica of another master")
    res = run_cli("status", "--replica", replica_url, cwd=tmp_path)
    assert res.code == 0 and "replica of postgresql://" in res.stdout and f"'{new}'" in res.stdout


def test_system_identifier_unreadable_falls_back_to_the_session_probe(logged_server, logged_master_url):
    """A role that may not run pg_control_system() (as on some hosted services): the same database is
    still recognised, by the replica session seen in the master's pg_stat_activity."""
    run_sql(logged_master_url, "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC; "
                               "DROP ROLE IF EXISTS plain_reader; CREATE ROLE plain_reader LOGIN PASSWORD 'Reader-pw-1'; "
                               f"GRANT CONNECT ON DATABASE \"{conninfo_to_dict(logged_master_url)['dbname']}\" TO plain_reader")
    plain = url_with(logged_master_url, user="plain_reader", password="Reader-pw-1")
    try:
        with open_master(plain) as m, open_replica(url_with(plain, host="localhost")) as r:
            assert identity.read_identity(m, "master").system_identifier is None
            with pytest.raises(IdentityError, match="is the master's own database"):
                identity.check_pair(m, r)
        # a different database on the same server is a legitimate replica, also without the identifier
        with open_master(plain) as m, open_replica(url_with(logged_master_url, dbname="postgres")) as r:
            identity.check_pair(m, r)
    finally:
        run_sql(logged_master_url, "DROP OWNED BY plain_reader; ")
        run_sql(logged_server.admin_url, "DROP ROLE IF EXISTS plain_reader")


def test_copy_without_the_system_identifier_still_refuses_the_masters_own_database(logged_server, logged_master_url,
                                                                                  tmp_path):
    """copy reads the master's identity in the batch that opens its snapshot, so the session probe runs
    inside that transaction: it still finds the replica's session, and a different database still copies."""
    run_sql(logged_master_url, SCHEMA + "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC; "
                               "DROP ROLE IF EXISTS plain_reader; CREATE ROLE plain_reader LOGIN PASSWORD 'Reader-pw-1'; "
                               "GRANT SELECT ON items TO plain_reader; "
                               f"GRANT CONNECT ON DATABASE \"{conninfo_to_dict(logged_master_url)['dbname']}\" TO plain_reader")
    plain = url_with(logged_master_url, user="plain_reader", password="Reader-pw-1")
    other = url_with(logged_master_url, dbname="postgres")
    try:
        since = logged_server.log_offset()
        res = run_cli("copy", "--table", "items", "--master", plain, "--replica", url_with(logged_master_url, host="localhost"),
                      "--out-dir", str(tmp_path), cwd=tmp_path)
        assert_refused(res, r"is the master's own database")
        assert_master_not_written(logged_server, conninfo_to_dict(logged_master_url)["dbname"], since)
        run_sql(other, "DROP TABLE IF EXISTS items; DROP SCHEMA IF EXISTS _replicator CASCADE; "
                       "CREATE TABLE items (id int PRIMARY KEY, name text)")
        res = run_cli("copy", "--table", "items", "--master", plain, "--replica", other, "--out-dir", str(tmp_path),
                      cwd=tmp_path)
        assert res.code == 0, res.stderr
        assert run_sql(other, "SELECT count(*) FROM items") == [(50,)]
    finally:
        run_sql(other, "DROP TABLE IF EXISTS items; DROP SCHEMA IF EXISTS _replicator CASCADE")
        run_sql(logged_master_url, "GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC; DROP OWNED BY plain_reader")
        run_sql(logged_server.admin_url, "DROP ROLE IF EXISTS plain_reader")


def test_a_promoted_copy_of_the_master_is_a_legitimate_replica(logged_server, logged_master_url, tmp_path):
    """Same system identifier and database OID, but a different server (a standby promoted to a dev
    database): the probe finds no shared session, so it may be written."""
    run_sql(logged_master_url, SCHEMA)
    dbname = conninfo_to_dict(logged_master_url)["dbname"]
    clone = ephemeral.start_standby(logged_server.cluster)
    try:
        url = clone.url(dbname)
        wait_for_database(url)
        subprocess.run([str(clone.bindir / "pg_ctl"), "-D", str(clone.datadir), "-w", "promote"], check=True,
                       capture_output=True, user=clone.run_as, cwd="/")
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("UPDATE items SET name = 'local' WHERE id = 1")
        res = run_cli("copy", "--table", "items", "--policy", "mirror", "--master", logged_master_url,
                      "--replica", url, "--out-dir", str(tmp_path), cwd=tmp_path)
        assert res.code == 0, res.stderr
        q = "SELECT count(*), sum(hashtextextended(i::text, 0)) FROM items i"
        assert run_sql(url, q) == run_sql(logged_master_url, q)
        # and swapping the two is caught by the marker the copy left on the clone
        res = run_cli("verify", "--master", url, "--replica", logged_master_url, "--out-dir", str(tmp_path), cwd=tmp_path)
        assert_refused(res, r"^error: master .* is a replica")
    finally:
        clone.stop()


def test_check_pair_leaves_both_connections_idle(master_url, replica_url):
    with open_master(master_url) as m, open_replica(replica_url) as r:
        pair = identity.check_pair(m, r, mark=True)
        assert m.info.transaction_status == r.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert pair.master.system_identifier and pair.master.system_identifier != pair.replica.system_identifier
        assert not pair.master.in_recovery and not pair.replica.is_replica
        m.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # needs an idle connection
    # marked now, and marking again is a no-op
    first = run_sql(replica_url, "SELECT marked_at FROM _replicator.replica_of")
    with open_master(master_url) as m, open_replica(replica_url) as r:
        identity.check_pair(m, r, mark=True)
    assert run_sql(replica_url, "SELECT marked_at FROM _replicator.replica_of") == first


def test_migrate_marks_the_replica_before_its_first_write(master_url, replica_url, tmp_path):
    run_sql(master_url, SCHEMA)
    run_sql(replica_url, "CREATE TABLE items (id int PRIMARY KEY)")
    res = run_cli("migrate", "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path))
    assert res.code == 0, res.stderr
    assert run_sql(replica_url, "SELECT master_database FROM _replicator.replica_of") == [
        (conninfo_to_dict(master_url)["dbname"],)]
    assert run_sql(replica_url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'items'") == [(2,)]
    # a dry run writes nothing, not even the marker
    run_sql(replica_url, "DROP SCHEMA _replicator CASCADE; ALTER TABLE items DROP COLUMN name")
    res = run_cli("migrate", "--dry-run", "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path))
    assert res.code == 0 and run_sql(replica_url, "SELECT to_regnamespace('_replicator')") == [(None,)]
