"""Connections: one-line errors with no password, redaction, pooler detection."""

import pytest

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


# --- one redaction for every message: passwords with %, @, : and [ ---------------------------------

SPECIAL_PASSWORDS = ["pa%zz-word", "p@ss:w[rd-1", "[bracket]:pw", "100%:@[x"]


@pytest.mark.parametrize("password", SPECIAL_PASSWORDS)
def test_redact_and_errors_never_show_special_passwords(password):
    from urllib.parse import quote

    from replicator.errors import scrub

    encoded = quote(password, safe="")
    good = f"postgresql://app:{encoded}@db.example.com:5432/prod"
    assert redact(good) == "postgresql://app:***@db.example.com:5432/prod"
    # the same password written raw: libpq cannot parse most of these; whatever it says, no password
    for bad in (f"postgresql://app:{password}@db.example.com:5432/prod",
                f"postgresql://app:{password}@[::1:5432/prod",
                f"host=db password='{password}",
                f"host=db password={password} dbname"):
        try:
            parse_conninfo(bad, "master")
            msg = redact(bad)  # libpq accepted it (e.g. a raw '[' or ':' in the password)
        except ConnectError as exc:
            msg = str(exc)
            assert msg.startswith("malformed master URL") and "\n" not in msg
        for form in (password, encoded):
            assert form not in msg and form not in redact(bad)
        # and any text that echoes the string, e.g. a libpq message, is scrubbed too
        assert password not in scrub(f'invalid URI: "{bad}"')


def test_scrub_masks_url_and_conninfo_passwords_it_was_never_told_about():
    from replicator.errors import scrub

    text = ("postgresql://u:s3cr3t-one@h/db?password=s3cr3t-two&sslmode=require "
            "host=h password='s3cr3t three' PGPASSWORD=s3cr3t-four")
    out = scrub(text)
    assert "s3cr3t" not in out
    assert "sslmode=require" in out and "host=h" in out


def test_wrong_special_password_on_a_real_server(master_url):
    from urllib.parse import quote

    for password in SPECIAL_PASSWORDS:
        for bad in (url_with(master_url, password=password),
                    "postgresql://{user}:{pw}@{host}:{port}/{dbname}".format(
                        pw=quote(password, safe=""), **conninfo_to_dict(master_url))):
            with pytest.raises(ConnectError) as exc:
                open_master(bad)
            msg = str(exc.value)
            assert "password authentication failed" in msg and "\n" not in msg
            assert password not in msg and quote(password, safe="") not in msg


def test_errors_carry_their_side_and_lost_connections_are_recorded(master_url, replica_url, sql_on):
    import psycopg

    from replicator.connect import error_side, forget_lost_connections, lost_connections

    forget_lost_connections()
    with open_master(master_url) as m, open_replica(replica_url) as r:
        with pytest.raises(psycopg.Error) as exc:
            r.execute("SELECT * FROM no_such_table")
        assert error_side(exc.value) == "replica"
        r.rollback()
        with pytest.raises(psycopg.Error) as exc:
            m.execute("SELECT * FROM no_such_table")
        assert error_side(exc.value) == "master"
        assert lost_connections() == []
        pid = r.execute("SELECT pg_backend_pid()").fetchone()[0]
        r.commit()
        sql_on(replica_url, "SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            r.execute("SELECT 1")
    (lost,) = lost_connections()
    assert lost.side == "replica"
    assert lost.message().startswith("lost the connection to the replica postgresql://")
    assert conninfo_to_dict(replica_url)["password"] not in lost.message()
    forget_lost_connections()
