"""A catalogue of bad inputs across every command: each gives exit code 2 (130 for Ctrl-C), ONE line
on stderr, no traceback, and no password, neither in the output nor in any file written under
--out-dir.

Malformed, unreachable and wrong-password URLs (passwords with %, @, : and [), missing objects,
injection attempts in names and config values, bad config files, bad option values, Ctrl-C at
start-up and mid-run, and connections cut on either side (pg_terminate_backend) while in use.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from conftest import CliRun, run_cli, run_sql, url_with

# Passwords that break naive URL handling; each appears in some case below and never in any output.
PCT = "Sp%zz3cret-pw"  # not valid percent-encoding
BRACKET = "Br[acket-pw-99"
AT_COLON = "At@Col:on-pw-99"
WRONG = "Wr0ng%@:[pass-99"
QUOTE = "Quo:te@pw-99"
SPECIAL = [PCT, BRACKET, AT_COLON, WRONG, QUOTE]

SCHEMA = """
CREATE TABLE items (id int PRIMARY KEY, name text, email text);
INSERT INTO items SELECT g, 'n' || g, 'u' || g || '@example.com' FROM generate_series(1, 200) g;
"""


@dataclass
class Ctx:
    m: str  # master URL
    r: str  # replica URL
    tmp: Path
    out: Path

    def write(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)

    def common(self) -> list[str]:
        return ["--master", self.m, "--replica", self.r, "--out-dir", str(self.out)]

    def with_master(self, url: str) -> list[str]:
        return ["--master", url, "--replica", self.r, "--out-dir", str(self.out)]

    def with_replica(self, url: str) -> list[str]:
        return ["--master", self.m, "--replica", url, "--out-dir", str(self.out)]

    def as_url(self, password_in_url: str, *, host: str = "127.0.0.1", db: str | None = None) -> str:
        p = conninfo_to_dict(self.m)
        return f"postgresql://{p['user']}:{password_in_url}@{host}:{p['port']}/{db or p['dbname']}"


Case = tuple[str, Callable[[Ctx], list[str]], str]

CASES: list[Case] = [
    # --- URLs: malformed, unreachable, wrong credentials; special characters in passwords
    ("url-percent-master", lambda c: ["verify", *c.with_master(c.as_url(PCT))],
     r"malformed master URL .*invalid percent-encoded"),
    ("url-percent-replica", lambda c: ["copy", "--table", "items", *c.with_replica(c.as_url(PCT))],
     r"malformed replica URL"),
    ("url-unclosed-bracket", lambda c: ["analyze", *c.with_master(c.as_url(BRACKET, host="[::1"))],
     r"malformed master URL .*\]"),
    ("url-raw-at-colon", lambda c: ["migrate", *c.with_master(c.as_url(AT_COLON))], r"percent-encoded as %40"),
    ("url-raw-at-colon-replica", lambda c: ["status", "--replica", c.as_url(AT_COLON)], r"malformed replica URL"),
    ("url-wrong-password-kv", lambda c: ["verify", *c.with_master(url_with(c.m, password=WRONG))],
     r"cannot connect to master .*password authentication failed"),
    ("url-wrong-password-encoded", lambda c: ["copy", "--table", "items", *c.with_replica(c.as_url(quote(WRONG, safe="")))],
     r"cannot connect to replica .*password authentication failed"),
    ("url-wrong-user", lambda c: ["analyze", *c.with_master(url_with(c.m, user="nobody_here", password=WRONG))],
     r"cannot connect to master .*nobody_here"),
    ("url-unreachable-port", lambda c: ["status", "--replica", url_with(c.r, port="1", password=WRONG)],
     r"cannot connect to replica .*refused"),
    ("url-unknown-host", lambda c: ["verify", *c.with_master(c.as_url(quote(WRONG, safe=""), host="no-such-host.invalid"))],
     r"cannot connect to master .*no-such-host\.invalid"),
    ("url-missing-database", lambda c: ["verify", *c.with_master(url_with(c.m, dbname="no_such_db"))],
     r'master .*database "no_such_db" does not exist'),
    ("url-missing-database-replica", lambda c: ["copy", "--all", *c.with_replica(url_with(c.r, dbname="no_such_db"))],
     r'replica .*database "no_such_db" does not exist'),
    ("url-unterminated-quote", lambda c: ["analyze", *c.with_master(f"host=127.0.0.1 password='{QUOTE}")],
     r"malformed master URL .*unterminated quoted string"),
    ("url-bad-query-parameter", lambda c: ["copy", "--table", "items", *c.with_master(c.m.replace("dbname=", "bogus=1 dbname="))],
     r"malformed master URL .*bogus"),
    ("url-bad-sslmode", lambda c: ["migrate", *c.with_replica(url_with(c.r, sslmode="sometimes"))],
     r"replica .*sslmode"),
    ("url-no-master", lambda c: ["verify", "--replica", c.r, "--out-dir", str(c.out)], r"no master URL: pass --master"),
    ("url-no-replica", lambda c: ["copy", "--table", "items", "--master", c.m], r"no replica URL"),
    # --- missing objects
    ("missing-table-copy", lambda c: ["copy", "--table", "nosuch", *c.common()], r"nosuch.*not found on the master"),
    ("missing-table-verify", lambda c: ["verify", "--table", "nosuch", *c.common()], r"--table nosuch: no such table"),
    ("missing-table-replica", lambda c: ["copy", "--table", "only_master", *c.common()], r"does not exist on the replica"),
    ("missing-schema", lambda c: ["analyze", "--schema", "nowhere", *c.common()], r"schema nowhere does not exist on the master"),
    ("missing-plan-file", lambda c: ["migrate", "--plan", str(c.tmp / "nope.sql"), *c.common()], r"plan file not found"),
    # --- injection attempts in names and config values
    ("inject-table", lambda c: ["copy", "--table", "items; DROP TABLE items", *c.common()], r"not found on the master"),
    ("inject-table-quote", lambda c: ["verify", "--table", 'x" OR 1=1 --', *c.common()], r"no such table"),
    ("inject-table-delete", lambda c: ["copy", "--table", '"; DELETE FROM items; --', *c.common()], r"not found on the master"),
    ("inject-schema", lambda c: ["analyze", "--schema", "public; DROP SCHEMA public CASCADE", *c.common()],
     r"does not exist on the master"),
    ("inject-config-schema", lambda c: ["verify", "--config", c.write("s.toml", "schemas = [\"public'; DROP TABLE items; --\"]\n"),
                                        *c.common()], r"schema public'; DROP TABLE items; -- .*does not exist"),
    ("inject-config-policy", lambda c: ["copy", "--table", "items", "--config",
                                        c.write("p.toml", "[tables.items]\npolicy = \"mirror'; DROP TABLE items; --\"\n"),
                                        *c.common()], r"tables\.items\.policy"),
    # --- bad config files
    ("config-not-utf8", lambda c: ["analyze", "--config", c.write("latin1.toml", b'schemas = ["caf\xe9"]\n'), *c.common()],
     r"not UTF-8"),
    ("config-bad-toml", lambda c: ["verify", "--config", c.write("bad.toml", "schemas = [public\n"), *c.common()],
     r"invalid TOML"),
    ("config-unknown-key", lambda c: ["copy", "--all", "--config", c.write("k.toml", "batchsize = 10\n"), *c.common()],
     r"batchsize: Extra inputs"),
    ("config-batch-zero", lambda c: ["copy", "--all", "--config", c.write("z.toml", "batch_size = 0\n"), *c.common()],
     r"batch_size: Input should be greater than 0"),
    ("config-batch-huge", lambda c: ["copy", "--all", "--config", c.write("h.toml", "batch_size = 100000000000000000000\n"),
                                     *c.common()], r"batch_size: Input should be less than or equal to"),
    ("config-table-batch", lambda c: ["copy", "--all", "--config", c.write("t.toml", "[tables.items]\nbatch_size = -5\n"),
                                      *c.common()], r"tables\.items\.batch_size"),
    ("config-bytes-huge", lambda c: ["copy", "--all", "--config", c.write("b.toml", "batch_bytes = 99999999999999\n"),
                                     *c.common()], r"batch_bytes"),
    ("config-lag-huge", lambda c: ["copy", "--all", "--config", c.write("l.toml", "[tables.items]\nlag_seconds = 9999999999\n"),
                                   *c.common()], r"lag_seconds"),
    ("config-bad-mask", lambda c: ["copy", "--all", "--config", c.write("m.toml", "[tables.items.mask]\nemail = \"md6\"\n"),
                                   *c.common()], r"tables\.items\.mask\.email"),
    ("config-missing-file", lambda c: ["analyze", "--config", str(c.tmp / "absent.toml"), *c.common()],
     r"config file not found"),
    ("config-is-directory", lambda c: ["status", "--config", str(c.tmp), "--replica", c.r], r"--config"),
    ("config-no-schemas", lambda c: ["verify", "--config", c.write("e.toml", "schemas = []\n"), *c.common()],
     r"schemas: Value error, must name at least one schema"),
    # --- bad option values and usage
    ("option-batch-zero", lambda c: ["copy", "--table", "items", "--batch-size", "0", *c.common()], r"'--batch-size'"),
    ("option-batch-huge", lambda c: ["copy", "--table", "items", "--batch-size", "99999999999999999999", *c.common()],
     r"'--batch-size'"),
    ("option-policy", lambda c: ["copy", "--table", "items", "--policy", "bogus", *c.common()], r"'--policy'"),
    ("option-examples", lambda c: ["verify", "--examples", "-1", *c.common()], r"'--examples'"),
    ("option-max-keys", lambda c: ["verify", "--max-keys", "0", *c.common()], r"'--max-keys'"),
    ("option-unknown", lambda c: ["copy", "--tabel", "items", *c.common()], r"--tabel"),
    ("option-unknown-command", lambda c: ["copyy", *c.common()], r"copyy"),
    ("option-out-dir-file", lambda c: ["analyze", "--master", c.m, "--replica", c.r, "--out-dir", c.write("f", "x")],
     r"'--out-dir'"),
    ("option-copy-nothing", lambda c: ["copy", *c.common()], r"--table NAME"),
    ("option-copy-both", lambda c: ["copy", "--table", "items", "--all", *c.common()], r"either --table or --all"),
    ("option-demo-stop-keep", lambda c: ["demo", "--stop", "--keep"], r"--stop and --keep"),
    ("option-migrate-plan-dir", lambda c: ["migrate", "--plan", str(c.tmp), *c.common()], r"--plan"),
]


@pytest.fixture(scope="module")
def catalogue_dbs(pg_servers):
    """One master and one replica database for the whole catalogue: no case gets as far as writing."""
    from conftest import _fresh_database

    gens = [_fresh_database(pg_servers[0], "badm"), _fresh_database(pg_servers[1], "badr")]
    m, r = (next(g) for g in gens)
    run_sql(m, SCHEMA + "CREATE TABLE only_master (id int PRIMARY KEY);")
    run_sql(r, "CREATE TABLE items (id int PRIMARY KEY, name text, email text);")
    yield m, r
    for g in gens:
        next(g, None)


def secrets_of(*urls: str) -> list[str]:
    return [conninfo_to_dict(u)["password"] for u in urls] + SPECIAL


def assert_clean(res: CliRun, code: int, pattern: str, secrets: list[str], out_dir: Path | None) -> None:
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    assert res.code == code, (res.code, res.stderr)
    assert len(res.lines) == 1, res.stderr
    line = res.lines[0]
    assert re.search(pattern, line), (pattern, line)
    assert line.startswith("error: ") or code == 130, line
    for s in secrets:
        for form in {s, quote(s, safe="")}:
            assert form not in res.stderr + res.stdout, (form, line)
    if out_dir is not None and out_dir.exists():
        for f in out_dir.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                for s in secrets:
                    assert s.encode() not in data, (f, s)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case: Case, catalogue_dbs, tmp_path):
    _, build, pattern = case
    m, r = catalogue_dbs
    ctx = Ctx(m, r, tmp_path, tmp_path / "out")
    res = run_cli(*build(ctx), cwd=tmp_path)
    assert_clean(res, 2, pattern, secrets_of(m, r), ctx.out)
    assert run_sql(m, "SELECT count(*) FROM items") == [(200,)]
    assert run_sql(r, "SELECT count(*) FROM items") == [(0,)]


def test_catalogue_is_at_least_forty_and_covers_every_command():
    assert len(CASES) + len(PROCESS_CASES) >= 40
    ctx = Ctx("postgresql://u:pw@h:5432/m", "postgresql://u:pw@h:5432/r", Path("/nonexistent"), Path("/nonexistent/out"))
    commands = set()
    for _, build, _ in CASES:
        try:
            commands.add(build(ctx)[0])
        except OSError:
            commands.add("(writes a config file)")
    assert {"analyze", "migrate", "copy", "status", "verify", "demo"} <= commands


@pytest.mark.parametrize("case", ["url-percent-master", "url-unclosed-bracket", "url-wrong-password-kv",
                                  "config-not-utf8", "option-batch-huge"])
def test_bad_input_through_the_console_entry_point(case, catalogue_dbs, tmp_path):
    """The same, in a real process: what the terminal gets (warnings, logging) is one line too."""
    _, build, pattern = next(c for c in CASES if c[0] == case)
    m, r = catalogue_dbs
    ctx = Ctx(m, r, tmp_path, tmp_path / "out")
    res = run_cli(*build(ctx), cwd=tmp_path, process=True)
    assert_clean(res, 2, pattern.replace("main ", "replicator "), secrets_of(m, r), ctx.out)


# ------------------------------------------------------------------------------------------------
# in a real process: Ctrl-C at start-up and mid-run, connections cut on either side


SLOW_IMPORT = """
import os, sys, time

class _SlowPsycopg:
    # Stands for a slow disk: importing psycopg takes long enough to be interrupted.
    def find_spec(self, name, path=None, target=None):
        if name == "psycopg":
            open(os.environ["SLOW_IMPORT_MARK"], "w").close()
            time.sleep(60)
        return None

sys.meta_path.insert(0, _SlowPsycopg())
"""


def spawn(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATOR_")}
    return subprocess.Popen([sys.executable, "-m", "replicator", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**base, **(env or {})}, cwd=tmp_path)


def finish(proc: subprocess.Popen) -> CliRun:
    out, err = proc.communicate(timeout=60)
    return CliRun(proc.returncode, out, err)


def test_ctrl_c_during_start_up(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_IMPORT)
    mark = tmp_path / "importing"
    env = {"PYTHONPATH": str(tmp_path / "site"), "SLOW_IMPORT_MARK": str(mark)}
    proc = spawn(["verify", "--master", f"postgresql://u:{quote(WRONG, safe='')}@h/db", "--replica", "x"], tmp_path, env)
    deadline = time.monotonic() + 30
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    res = finish(proc)
    assert_clean(res, 130, r"^interrupted$", SPECIAL, None)


def test_a_reader_that_leaves_early_ends_the_command_quietly(catalogue_dbs, tmp_path):
    """`replicator analyze | head -1`: the pipe closes under the command; it stops without an error
    line, with the status a tool killed by SIGPIPE has."""
    m, r = catalogue_dbs
    proc = spawn(["analyze", "--master", m, "--replica", r, "--out-dir", str(tmp_path)], tmp_path)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the first line
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (141, "")


def blocked_backend(admin_url: str, dbname: str, timeout: float = 30) -> int:
    """pid of the replicator session waiting for a lock in `dbname`."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin_url, autocommit=True) as mon:
        while time.monotonic() < deadline:
            row = mon.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'replicator' "
                              "AND datname = %s AND wait_event_type = 'Lock'", (dbname,)).fetchone()
            if row:
                return row[0]
            time.sleep(0.02)
    raise AssertionError("the command never blocked on the test's lock")


def reader_url(url: str, role: str) -> str:
    """The same database as a role that may connect but not read `items`: its queries on the table
    still wait for the lock (taken before the privilege check), and introspection, which skips
    tables it cannot read, does not."""
    run_sql(url, sql.SQL("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {r}) THEN "
                         "CREATE ROLE {i} LOGIN PASSWORD {p}; END IF; END $$").format(
        r=sql.Literal(role), i=sql.Identifier(role), p=sql.Literal(WRONG)).as_string(None))
    return url_with(url, user=role, password=WRONG)


@dataclass
class Interruption:
    command: str
    side: str  # whose table is locked
    action: str  # "terminate" or "sigint"
    expect_code: int
    expect: str
    #: How the command is made to wait: "lock" (the test holds ACCESS EXCLUSIVE on items), or "row"
    #: (the test holds an uncommitted row with a key the copy inserts: the COPY stream itself waits).
    hold: str = "lock"


PROCESS_CASES = [
    Interruption("copy", "master", "terminate", 2, r"^error: lost the connection to the master .*rerun"),
    Interruption("copy", "replica", "terminate", 2, r"^error: lost the connection to the replica .*rerun"),
    Interruption("copy", "replica", "terminate", 2, r"^error: lost the connection to the replica .*rerun", "row"),
    Interruption("verify", "master", "terminate", 2,
                 r"^error: lost the connection to the master .* during the row_counts check of public\.items$"),
    Interruption("verify", "replica", "terminate", 2,
                 r"^error: lost the connection to the replica .* during the row_counts check of public\.items$"),
    Interruption("copy", "master", "sigint", 130, r"^interrupted: rerun the same copy to resume"),
    Interruption("verify", "replica", "sigint", 130, r"^interrupted$"),
    Interruption("analyze", "master", "sigint", 130, r"^interrupted$"),
]


@pytest.mark.parametrize("case", PROCESS_CASES, ids=[f"{c.command}-{c.side}-{c.action}-{c.hold}" for c in PROCESS_CASES])
def test_interrupted_mid_run(case: Interruption, master_url, replica_url, tmp_path):
    run_sql(master_url, SCHEMA)
    if case.hold == "row":  # enough rows that the COPY stream is still being written when the server waits
        run_sql(master_url, "INSERT INTO items SELECT g, repeat('x', 200), NULL FROM generate_series(201, 100000) g")
    run_sql(replica_url, "CREATE TABLE items (id int PRIMARY KEY, name text, email text)")
    locked = master_url if case.side == "master" else replica_url
    m, r = master_url, replica_url
    if case.command == "verify":
        # verify's introspection must not be the one waiting: the check's own count(*) must be
        run_sql(locked, "ALTER TABLE items DROP CONSTRAINT items_pkey")
        if case.side == "master":
            m = reader_url(master_url, "cut_reader")
        else:
            r = reader_url(replica_url, "cut_reader")
    dbname = conninfo_to_dict(locked)["dbname"]
    args = {"copy": ["copy", "--table", "items"], "verify": ["verify"], "analyze": ["analyze", "--exact-counts"]}[case.command]
    with psycopg.connect(locked) as holder:
        if case.hold == "lock":
            holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        else:
            holder.execute("INSERT INTO items (id) VALUES (150)")
        proc = spawn([*args, "--master", m, "--replica", r, "--out-dir", str(tmp_path / "out")], tmp_path)
        try:
            pid = blocked_backend(locked, dbname)
            if case.action == "terminate":
                run_sql(locked, "SELECT pg_terminate_backend(%s)", (pid,))
            else:
                proc.send_signal(signal.SIGINT)
            res = finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        holder.rollback()
    if case.command == "verify":
        run_sql(locked, "DROP ROLE IF EXISTS cut_reader")
    progress = [ln for ln in res.lines if re.match(r"^public\.items: ", ln)]  # copy's progress lines
    assert_clean(CliRun(res.code, res.stdout, "\n".join(ln for ln in res.lines if ln not in progress)),
                 case.expect_code, case.expect, secrets_of(master_url, replica_url), tmp_path / "out")
    assert "error ignored" not in res.stderr and "Exception ignored" not in res.stderr
    assert run_sql(master_url, "SELECT count(*) FROM items") == [(200 if case.hold == "lock" else 100000,)]
