"""Connections: one-line errors with no password, redaction, pooler detection."""

import pytest
from click.testing import CliRunner

from psycopg.conninfo import conninfo_to_dict

from conftest import url_with
from replicator.connect import describe, is_transaction_pooler, open_master, open_replica, parse_conninfo, redact
from replicator.errors import ConnectError


def test_redact_hides_password():
    assert redact("postgresql://app:s3cret@db.example.com:5432/prod") == "postgresql://app:***@db.example.com:5432/prod"
    assert "s3cret" not in redact("host=h user=u password=s3cret dbname=d")
    assert "s3cret" not in redact("postgresql://u:s3cret@h:5432/d?not a url=")


def test_pooler_detected_by_port():
    assert is_transaction_pooler(parse_conninfo("postgresql://u@aws-0-eu.pooler.supabase.com:6543/postgres", "master"))
    assert not is_transaction_pooler(parse_conninfo("postgresql://u@aws-0-eu.pooler.supabase.com:5432/postgres", "master"))


def test_malformed_url():
    with pytest.raises(ConnectError, match="malformed master URL"):
        open_master("host=x nonsense")


def test_wrong_password_is_one_line_without_password(master_url):
    bad = url_with(master_url, password="definitely-wrong-pw")
    with pytest.raises(ConnectError) as exc:
        open_master(bad)
    msg = str(exc.value)
    assert "password authentication failed" in msg
    assert "definitely-wrong-pw" not in msg
    assert "\n" not in msg


def test_unreachable_host():
    with pytest.raises(ConnectError, match="cannot connect to replica") as exc:
        open_replica("postgresql://u:pw123456@127.0.0.1:1/db?connect_timeout=2")
    assert "pw123456" not in str(exc.value)


def test_missing_database(master_url):
    with pytest.raises(ConnectError, match='database "no_such_db" does not exist'):
        open_replica(url_with(master_url, dbname="no_such_db"))


def test_describe_scrubs_password_echoed_by_server():
    err = Exception('connection to server at "h" (1.2.3.4), port 5432 failed: FATAL:  role "x" password=hunter2')
    assert "hunter2" not in describe(err, "postgresql://x:hunter2@h/db")


def test_without_password_moves_it_to_the_environment(master_url):
    from replicator.connect import without_password

    dsn, env = without_password(master_url)
    password = conninfo_to_dict(master_url)["password"]
    assert password not in dsn
    assert env == {"PGPASSWORD": password}
    # The two together still connect: what a child process such as pg_dump receives.
    import os

    import psycopg

    os.environ["PGPASSWORD"] = password
    try:
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        del os.environ["PGPASSWORD"]
