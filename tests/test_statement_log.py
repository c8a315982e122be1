"""The audit log is complete: what the master's own statement log (log_statement = all) records for a
run of analyze, copy and verify is exactly what the run's report lists as sent, statement for
statement and count for count, psycopg's BEGIN / COMMIT / ROLLBACK / SAVEPOINT included."""

from __future__ import annotations

import json
import re
import secrets
from collections import Counter
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from conftest import run_cli, run_sql

MASTER = """
CREATE TABLE parents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
CREATE TABLE children (id serial PRIMARY KEY, parent_id bigint REFERENCES parents (id), doc jsonb, "end" int);
INSERT INTO parents (name) SELECT 'p' || g FROM generate_series(1, 40) g;
INSERT INTO children (parent_id, doc, "end") SELECT 1 + g % 40, jsonb_build_object('g', g), g FROM generate_series(1, 3000) g;
"""
REPLICA = """
CREATE TABLE parents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
CREATE TABLE children (id serial PRIMARY KEY, parent_id bigint REFERENCES parents (id), doc jsonb);
"""


def audited(report: Path, key: str) -> Counter:
    entries = json.loads(report.read_text())[key]
    assert entries and all(e["allowed"] for e in entries)
    return Counter({" ".join(e["statement"].split()): e["count"] for e in entries})


def logged(logged_server, dbname: str, since: int) -> Counter:
    return Counter(logged_server.statements(dbname, since=since))


def with_copy_parameters(server: Counter, audit: Counter) -> Counter:
    """COPY cannot take server-side parameters: psycopg merges them into the text it sends, so the
    server logs literals where the audit keeps `$n` (and, with them, no mask key in a report). Map each
    logged COPY to the audited statement it instantiates."""
    patterns = {a: re.compile("^" + re.sub(r"\\\$\d+", r".+?", re.escape(a)) + "$")
                for a in audit if a.startswith("COPY") and "$" in a}
    out = Counter()
    for stmt, n in server.items():
        match = next((a for a, p in patterns.items() if stmt not in audit and p.match(stmt)), None)
        out[match or stmt] += n
    return out


def newest(directory: Path, pattern: str) -> Path:
    return max(directory.glob(pattern), key=lambda p: p.stat().st_mtime)


def test_server_statement_log_equals_the_audit_log(logged_server, logged_master_url, replica_url, tmp_path):
    run_sql(logged_master_url, MASTER)
    run_sql(replica_url, REPLICA)
    db = conninfo_to_dict(logged_master_url)["dbname"]
    common = ["--master", logged_master_url, "--replica", replica_url, "--out-dir", str(tmp_path)]
    reports = tmp_path / "reports"
    runs = [
        (["analyze", *common], "schema-comparison-report.json", "guard_audit"),
        (["migrate", *common], None, None),  # brings the replica's schema in line; its statements are not compared
        (["copy", "--all", *common], "copy-*.json", "audit"),
        (["verify", "--deep", *common], "verify-*.json", "audit"),
    ]
    total_logged, total_audited = Counter(), Counter()
    for args, report, key in runs:
        since = logged_server.log_offset()
        res = run_cli(*args)
        assert res.code == 0, (args[0], res.stderr)
        if report is None:
            continue
        audit = audited(newest(reports, report), key)
        server = with_copy_parameters(logged(logged_server, db, since), audit)
        assert server == audit, (args[0], server - audit, audit - server)
        total_logged += server
        total_audited += audit
    # the comparison is not vacuous: reads, psycopg's own transaction commands, COPY and the identity
    # check all went over the wire and were audited
    kinds = " ".join(total_logged)
    for expected in ("BEGIN", "ROLLBACK", "COPY", "pg_control_system", "hashtextextended", "SAVEPOINT"):
        assert expected in kinds, expected
    assert sum(total_logged.values()) > 50
    q = "SELECT count(*), sum(hashtextextended(c::text, 0)) FROM (SELECT id, parent_id, doc FROM children) c"
    assert run_sql(replica_url, q) == run_sql(logged_master_url, q)
    assert not any(re.match(r"(INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|TRUNCATE)\b", s) for s in total_logged)


def test_small_tables_never_analyzed_cost_the_master_one_copy_each(logged_server, logged_master_url, replica_url):
    # Small tables often have no planner statistics (autovacuum analyzes after 50 changed rows): their
    # size in pages already says they are one batch, so nothing is asked of a distant master per table
    # but its COPY, and no function the guard knows makes it read the master's catalog first.
    tables = ("clients", "projects", '"Lead Notes"')
    for url in (logged_master_url, replica_url):
        run_sql(url, ";".join(f"CREATE TABLE {t} (id int PRIMARY KEY, name text)" for t in tables))
    run_sql(logged_master_url, ";".join(f"INSERT INTO {t} SELECT g, 'n' || g FROM generate_series(1, 40) g"
                                        for t in tables))
    assert run_sql(logged_master_url, "SELECT count(*) FROM pg_class WHERE relname IN ('clients', 'projects', "
                                      "'Lead Notes') AND relpages = 0 AND reltuples < 0") == [(3,)]
    db = conninfo_to_dict(logged_master_url)["dbname"]
    sent = []
    for names in (["clients"], ["projects", "Lead Notes"]):
        since = logged_server.log_offset()
        res = run_cli("copy", "--master", logged_master_url, "--replica", replica_url,
                      *[a for n in names for a in ("--table", n)])
        assert res.code == 0, res.stderr
        sent.append(logged(logged_server, db, since))
    copies = [[s for s in run if s.startswith("COPY")] for run in sent]
    assert sorted(copies[0] + copies[1]) == sorted(
        f'COPY (SELECT "id", "name" FROM ONLY "public".{n} WHERE ctid >= \'(0,0)\'::tid) TO STDOUT (FORMAT binary)'
        for n in ('"clients"', '"projects"', '"Lead Notes"'))
    assert not [s for run in sent for s in run if "pg_column_size" in s or "pg_proc" in s]
    # the rest is the run's own: one table or two, the same number of statements
    assert sum(sent[0].values()) - len(copies[0]) == sum(sent[1].values()) - len(copies[1])
    for t in tables:
        q = f"SELECT count(*), sum(hashtextextended(t::text, 0)) FROM {t} t"
        assert run_sql(replica_url, q) == run_sql(logged_master_url, q)


def test_tables_outside_the_run_are_never_counted(logged_server, logged_master_url, replica_url):
    # A never analyzed table has no row estimate; the copy counts the ones it copies (progress, how to
    # cut them) and never scans the others, however big (here: autovacuum off, as after a restore).
    for url in (logged_master_url, replica_url):
        run_sql(url, "CREATE TABLE clients (id int PRIMARY KEY, name text); "
                     "CREATE TABLE event_log (id bigint PRIMARY KEY, body text) WITH (autovacuum_enabled = false)")
    run_sql(logged_master_url, "INSERT INTO clients SELECT g, 'n' || g FROM generate_series(1, 40) g; "
                               "INSERT INTO event_log SELECT g, 'e' FROM generate_series(1, 5000) g")
    db = conninfo_to_dict(logged_master_url)["dbname"]
    since = logged_server.log_offset()
    res = run_cli("copy", "--master", logged_master_url, "--replica", replica_url, "--table", "clients")
    assert res.code == 0, res.stderr
    sent = logged(logged_server, db, since)
    assert not [s for s in sent if "event_log" in s], [s for s in sent if "event_log" in s]
    assert [s for s in sent if "count(*)" in s and "clients" in s] == [
        'SELECT 0 AS i, count(*) AS n FROM "public"."clients"']
    since = logged_server.log_offset()
    res = run_cli("verify", "--master", logged_master_url, "--replica", replica_url, "--table", "clients")
    assert res.code == 0, res.stderr
    sent = logged(logged_server, db, since)
    assert any("clients" in s and "count(" in s for s in sent)  # the row_counts check, which counts its tables
    assert not [s for s in sent if "event_log" in s], [s for s in sent if "event_log" in s]


MASKED = "CREATE TABLE people (id int PRIMARY KEY, email text, phone varchar(20), n bigint)"
MASKS = """
[tables.people.mask]
email = "email"
phone = "phone"
n = "hash"
"""
# The masked values as the README defines them, computed on the master without replicator's code.
EXPECTED = """SELECT count(*), sum(hashtextextended(t::text, 0)) FROM (SELECT id,
  'user_' || left(encode(sha256(convert_to({k} || email, 'UTF8')), 'hex'), 12) || '@example.invalid' AS email,
  ('+44 7700 9' || lpad(((('x' || left(encode(sha256(convert_to({k} || phone, 'UTF8')), 'hex'), 8))::bit(32)::bigint)
    % 100000)::text, 5, '0'))::varchar(20) AS phone,
  (('x' || left(md5({k} || n::text), 15))::bit(60)::bigint) % 9223372036854775807 AS n FROM people) t"""


def test_the_mask_key_is_in_no_statement_the_master_receives(logged_server, logged_master_url, replica_url, tmp_path):
    # COPY cannot take server-side parameters: a key written into its text would show in the master's
    # pg_stat_activity, pg_stat_statements and log. It goes as a bound parameter of set_config instead.
    key = "k3y-" + secrets.token_hex(8)
    for url in (logged_master_url, replica_url):
        run_sql(url, MASKED)
    run_sql(logged_master_url, "INSERT INTO people SELECT g, 'p' || g || '@x.org', '+1555' || g, g * 7919 "
                               "FROM generate_series(1, 600) g")
    (tmp_path / "replicator.toml").write_text(MASKS)
    db = conninfo_to_dict(logged_master_url)["dbname"]
    common = ["--master", logged_master_url, "--replica", replica_url, "--config", str(tmp_path / "replicator.toml"),
              "--out-dir", str(tmp_path)]
    env = {"REPLICATOR_MASK_KEY": key}
    since = logged_server.log_offset()
    assert run_cli("copy", "--table", "people", *common, env=env).code == 0  # page ranges, into the empty table
    run_sql(replica_url, "UPDATE people SET email = 'local' WHERE id % 50 = 0")
    res = run_cli("copy", "--table", "people", "--policy", "master-wins", "--restart", "--jobs", "2", *common, env=env)
    assert res.code == 0, res.stderr  # compared on two connections, each with its own transaction
    run_sql(replica_url, "UPDATE people SET phone = 'local' WHERE id % 60 = 0")
    res = run_cli("sync", "--table", "people", "--policy", "master-wins", *common, env=env)
    assert res.code == 0, res.stdout + res.stderr
    sent = logged(logged_server, db, since)
    assert sum(n for s, n in sent.items() if "sha256" in s) >= 3  # the masked SELECTs were sent and logged
    assert [s for s in sent if key in s] == []
    assert sum(n for s, n in sent.items() if "set_config('replicator.mask_key', $1, true)" in s) >= 3
    expected = run_sql(logged_master_url, EXPECTED.format(k=f"'{key}'"))
    assert expected == run_sql(replica_url, "SELECT count(*), sum(hashtextextended(t::text, 0)) FROM people t")
