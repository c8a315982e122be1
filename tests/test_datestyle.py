"""A database or role with a DateStyle other than ISO (a European `SQL, DMY`, `German`), on either side.

psycopg parses no other form of timestamptz, so every command used to end in a traceback once it read
a timestamp (the replica marker, the snapshot time). Sessions now read dates in ISO form."""

from __future__ import annotations

from copyhelp import same
from psycopg.conninfo import conninfo_to_dict

from conftest import run_cli, run_sql

DDL = ("CREATE TABLE ev (id int PRIMARY KEY, at timestamptz DEFAULT '2024-01-31 10:00+00', "
       "d date DEFAULT '2024-01-31', ts timestamp)")


def test_every_command_with_non_iso_datestyles(master_url, replica_url, sql_on, tmp_path):
    run_sql(master_url, DDL + "; INSERT INTO ev (id, ts) SELECT g, timestamp '2024-03-04 05:06:07' + g * interval '1 day' "
                              "FROM generate_series(1, 200) g")
    for url, style in ((master_url, "SQL, DMY"), (replica_url, "German")):
        run_sql(url, f"ALTER DATABASE \"{conninfo_to_dict(url)['dbname']}\" SET DateStyle = '{style}'")
    common = ["--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path)]
    for args in (["migrate"], ["copy", "--all"], ["verify", "--deep"], ["status"], ["sync"]):
        res = run_cli(*args, *common)
        assert res.code == 0 and "Traceback" not in res.stderr, (args, res.stdout[-2000:], res.stderr)
    # each side renders t::text in its own DateStyle: compare the JSON form, ISO on both
    assert same(sql_on, master_url, replica_url, "(SELECT to_json(e)::text FROM ev e)")
    assert sql_on(replica_url, "SELECT count(*) FROM ev WHERE d = date '2024-01-31'") == [(200,)]
    # the defaults migrate created mean the same dates (not 01/31 read as day 1 of month 31)
    run_sql(replica_url, "INSERT INTO ev (id) VALUES (10000)")
    assert sql_on(replica_url, "SELECT d::text, at = timestamptz '2024-01-31 10:00+00' FROM ev WHERE id = 10000") == \
        [("31.01.2024", True)]


def test_pgdatestyle_other_than_iso_is_one_line(master_url, replica_url, tmp_path):
    res = run_cli("verify", "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path),
                  env={"PGDATESTYLE": "SQL, DMY"})
    assert res.code == 2
    assert res.stderr.strip() == "error: PGDATESTYLE='SQL, DMY' is not supported: dates are read in ISO form; unset it"
    ok = run_cli("verify", "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path),
                 env={"PGDATESTYLE": "ISO, DMY"})
    assert "Traceback" not in ok.stderr and ok.code in (0, 1)
