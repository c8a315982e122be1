"""Two real PostgreSQL servers per test session (master, replica); a fresh database on each per test.

Servers are found in this order (DESIGN.md, "Tests"):
1. `REPLICATOR_TEST_MASTER_URL` / `REPLICATOR_TEST_REPLICA_URL` (superuser URLs of existing servers);
2. a Docker engine, through testcontainers, when one answers;
3. PostgreSQL binaries on the machine (initdb/pg_ctl in a temporary directory);
4. the binaries of the embedded `pgserver` wheel.
`REPLICATOR_TEST_BACKEND=env|docker|system|embedded` forces one; `mixed` runs the master on the
machine's binaries and the replica on the embedded ones, two major versions apart where they differ
(a Supabase master on one release, a developer's database on another).
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from replicator import ephemeral

_counter = itertools.count()


@dataclass
class Server:
    admin_url: str
    version: int
    label: str
    stop: Callable[[], None] = lambda: None

    def url_for(self, dbname: str) -> str:
        return make_conninfo(self.admin_url, dbname=dbname)


def _version(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.info.server_version // 10000


def _from_env() -> tuple[Server, Server] | None:
    m, r = os.environ.get("REPLICATOR_TEST_MASTER_URL"), os.environ.get("REPLICATOR_TEST_REPLICA_URL")
    if not (m and r):
        return None
    return Server(m, _version(m), "env"), Server(r, _version(r), "env")


def _from_docker() -> tuple[Server, Server] | None:
    try:
        import docker  # type: ignore

        docker.from_env().ping()
        from testcontainers.postgres import PostgresContainer  # type: ignore
    except Exception:
        return None
    servers = []
    for _ in range(2):
        c = PostgresContainer("postgres:16-alpine", driver=None)
        c.start()
        url = c.get_connection_url()
        servers.append(Server(url, _version(url), "docker", c.stop))
    return servers[0], servers[1]


def _from_binaries(bindir, replica_bindir=None) -> tuple[Server, Server] | None:
    """A master on ``bindir``'s PostgreSQL, a replica on ``replica_bindir``'s (default: the same)."""
    if bindir is None:
        return None
    clusters = [ephemeral.start_cluster(bindir)]
    try:
        clusters.append(ephemeral.start_cluster(replica_bindir or bindir))
    except BaseException:
        clusters[0].stop()
        raise
    return tuple(Server(c.url(), c.version, f"local PostgreSQL {c.version}", c.stop) for c in clusters)  # type: ignore


def _mixed(newer_master: bool = False) -> tuple[Server, Server] | None:
    """Two releases: the machine's PostgreSQL as master and the embedded one as replica (a dev database
    newer than production), or the other way round (production upgraded first)."""
    system, embedded = ephemeral.system_bindir(), ephemeral.embedded_bindir()
    if system is None or embedded is None:
        return None
    return _from_binaries(embedded, system) if newer_master else _from_binaries(system, embedded)


def _start_servers() -> tuple[Server, Server]:
    backend = os.environ.get("REPLICATOR_TEST_BACKEND", "auto")
    if backend in ("mixed", "mixed-newer-master"):
        found = _mixed(newer_master=backend == "mixed-newer-master")
        if found is None:  # (the README's cross-release pass: nothing to compare on such a machine)
            pytest.skip("REPLICATOR_TEST_BACKEND=mixed needs PostgreSQL binaries on the machine and pgserver",
                        allow_module_level=True)
        return found
    attempts = {
        "env": _from_env,
        "docker": _from_docker,
        "system": lambda: _from_binaries(ephemeral.system_bindir()),
        "embedded": lambda: _from_binaries(ephemeral.embedded_bindir()),
    }
    order = list(attempts) if backend == "auto" else [backend]
    for name in order:
        found = attempts[name]()
        if found:
            return found
    raise RuntimeError(f"no PostgreSQL for tests (tried {', '.join(order)}); pip install pgserver")


@pytest.fixture(scope="session")
def pg_servers() -> Iterator[tuple[Server, Server]]:
    master, replica = _start_servers()
    try:
        yield master, replica
    finally:
        master.stop()
        replica.stop()


def pytest_report_header(config):
    return f"replicator test servers: {os.environ.get('REPLICATOR_TEST_BACKEND', 'auto')} backend"


@pytest.fixture(autouse=True)
def _min_server(request):
    marker = request.node.get_closest_marker("min_server")
    if marker:
        master, replica = request.getfixturevalue("pg_servers")
        need = marker.args[0]
        if min(master.version, replica.version) < need:
            pytest.skip(f"needs PostgreSQL >= {need}")


def _fresh_database(server: Server, role: str) -> Iterator[str]:
    name = f"{role}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.url_for(name)
    finally:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def master_url(pg_servers) -> Iterator[str]:
    """Superuser URL of a fresh, empty database on the master server."""
    yield from _fresh_database(pg_servers[0], "master")


@pytest.fixture
def replica_url(pg_servers) -> Iterator[str]:
    """Superuser URL of a fresh, empty database on the replica server."""
    yield from _fresh_database(pg_servers[1], "replica")


@pytest.fixture
def role(pg_servers):
    """A login role on the replica server, dropped afterwards (roles are cluster-wide)."""
    name = f"copier_{os.getpid()}_{next(_counter)}"
    admin = pg_servers[1].admin_url
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'pw'")
    yield name
    with psycopg.connect(admin, autocommit=True) as c:
        for db in [r[0] for r in c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'replica_%'").fetchall()]:
            try:
                with psycopg.connect(url_with(admin, dbname=db), autocommit=True) as d:
                    d.execute(f"REASSIGN OWNED BY {name} TO postgres; DROP OWNED BY {name}")
            except psycopg.Error:
                pass
        c.execute(f"DROP ROLE IF EXISTS {name}")


#: what a server built without contrib or libxml (the embedded pgserver's) says: the test needs it
_SERVER_LACKS = re.compile(r'extension "[^"]+" is not available|unsupported XML feature|ICU is not supported')


def run_sql(url: str, text: str, params=None) -> list[tuple]:
    """Run SQL directly (not through replicator) in autocommit; returns rows of the last statement, if any.
    A test arranging what the server was built without (an extension, XML) is skipped, saying so."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            cur = conn.execute(text, params) if params is not None else conn.execute(text)
        except psycopg.errors.FeatureNotSupported as e:
            if _SERVER_LACKS.search(str(e)):
                pytest.skip(f"this server lacks it: {str(e).splitlines()[0]}")
            raise
        return cur.fetchall() if cur.description else []


@pytest.fixture
def sql_on():
    """`sql_on(url, "SELECT ...")` for arranging and asserting database state in tests."""
    return run_sql


def url_with(url: str, **changes) -> str:
    """The same URL with some connection parameters changed (user, password, port, dbname...)."""
    params = conninfo_to_dict(url)
    params.update(changes)
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


# --- A transaction-mode pooler in front of the master (pgbouncer), like Supabase's port 6543 ---------


@dataclass
class Pooler:
    host: str
    port: int

    def url_for(self, url: str) -> str:
        """The same database and credentials, reached through the pooler."""
        return url_with(url, host=self.host, port=str(self.port))


@pytest.fixture(scope="session")
def pooler(pg_servers) -> Iterator[Pooler]:
    """pgbouncer in transaction mode on 127.0.0.x:6543 (the port replicator recognises as a pooler)."""
    yield from _pgbouncer(pg_servers[0], 6543, "transaction")


@pytest.fixture(scope="session")
def session_pooler(pg_servers) -> Iterator[Pooler]:
    """pgbouncer in session mode on 127.0.0.x:6432 in front of the replica server, refusing startup
    `options` as pgbouncer does unless told to ignore them."""
    yield from _pgbouncer(pg_servers[1], 6432, "session")


def _pgbouncer(server, port: int, mode: str) -> Iterator[Pooler]:
    import random
    import shutil
    import socket
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    exe = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if not exe:
        pytest.skip("pgbouncer is not installed")
    target = conninfo_to_dict(server.admin_url)
    if target.get("host") not in ("127.0.0.1", "localhost"):
        pytest.skip("pooler tests need a local server")
    # Not under pytest's tmp dir: that is private to root, and pgbouncer runs unprivileged.
    workdir = Path(tempfile.mkdtemp(prefix="replicator-pgbouncer-"))
    # A random loopback address so concurrent test sessions can each have their own port.
    host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    (workdir / "users.txt").write_text(f'"{target["user"]}" "{target["password"]}"\n')
    (workdir / "pgbouncer.ini").write_text(f"""
[databases]
* = host={target['host']} port={target['port']}

[pgbouncer]
listen_addr = {host}
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {workdir}/users.txt
pool_mode = {mode}
max_client_conn = 200
default_pool_size = 5
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
""")
    run_as = None
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        run_as = "postgres"
        shutil.chown(workdir, run_as)
        for f in workdir.iterdir():
            shutil.chown(f, run_as)
    proc = subprocess.Popen([exe, str(workdir / "pgbouncer.ini")], user=run_as,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip(f"pgbouncer did not start: {proc.stderr.read().decode()[-200:] if proc.stderr else ''}")
            time.sleep(0.1)
    try:
        yield Pooler(host, port)
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


# --- A server that logs every statement, and a hot standby of it (identity and audit tests) -------


@dataclass
class LoggedServer:
    """A cluster started with log_statement = all, logging to a file we can read back."""

    cluster: ephemeral.Cluster

    @property
    def admin_url(self) -> str:
        return self.cluster.url()

    def url_for(self, dbname: str) -> str:
        return self.cluster.url(dbname)

    def log_offset(self) -> int:
        return (self.cluster.basedir / "server.log").stat().st_size

    def statements(self, dbname: str, *, since: int = 0, application: str | None = "replicator",
                   raw: bool = False) -> list[str]:
        """Statements the server logged for `dbname` (and `application`), whitespace-normalised unless
        `raw`, in order.
        Extended-protocol executions (`execute <unnamed>: ...`, `execute _pg3_0: ...`) count like
        simple-protocol ones (`statement: ...`)."""
        import re

        with open(self.cluster.basedir / "server.log", "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        entries: list[list[str]] = []
        for line in text.split("\n"):
            if line.startswith("@@|"):
                entries.append([line])
            elif entries:
                entries[-1].append(line[1:] if line.startswith("\t") else line)
        out = []
        for entry in entries:
            m = re.match(r"^@@\|(?P<app>[^|]*)\|(?P<db>[^|]*)\|\d+\|LOG:\s+(?:statement|execute [^:]+): (?P<sql>.*)$",
                         entry[0], re.S)
            if m and m["db"] == dbname and (application is None or m["app"] == application):
                text = "\n".join([m["sql"], *entry[1:]]).rstrip("\n")
                out.append(text if raw else " ".join(text.split()))
        return out


LOG_SETTINGS = {"log_statement": "all", "log_line_prefix": "@@|%a|%d|%p|", "log_min_messages": "warning"}


def _local_bindir():
    return ephemeral.system_bindir() or ephemeral.embedded_bindir()


@pytest.fixture(scope="session")
def logged_server() -> Iterator[LoggedServer]:
    bindir = _local_bindir()
    if bindir is None:
        pytest.skip("needs PostgreSQL binaries (initdb) on this machine or the pgserver wheel")
    cluster = ephemeral.start_cluster(bindir, settings=LOG_SETTINGS)
    try:
        yield LoggedServer(cluster)
    finally:
        cluster.stop()


@pytest.fixture
def logged_master_url(logged_server) -> Iterator[str]:
    """Superuser URL of a fresh database on the statement-logging server."""
    yield from _fresh_database(Server(logged_server.admin_url, logged_server.cluster.version, "logged"), "logged")


@pytest.fixture(scope="session")
def standby_server(logged_server) -> Iterator[ephemeral.Cluster]:
    """A hot standby of `logged_server` (pg_basebackup -R), on its own port."""
    standby = ephemeral.start_standby(logged_server.cluster)
    try:
        yield standby
    finally:
        standby.stop()


def wait_for_database(url: str, timeout: float = 30) -> None:
    """Until `url`'s database accepts connections (a standby replays CREATE DATABASE a moment later)."""
    ephemeral.wait_ready(url, timeout)


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd=None, timeout: float = 120,
            process: bool = False) -> CliRun:
    """`replicator ARGS`, without the REPLICATOR_* variables of the calling environment unless given in
    `env`. In this process by default (click's runner, fast); with `process=True` in a child process
    through the console entry point (signals, start-up, what really reaches the terminal). An exception
    that escapes the command in-process is rendered as its traceback on stderr, as Python would."""
    import subprocess
    import sys
    import traceback

    if process:
        base = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATOR_")}
        proc = subprocess.run([sys.executable, "-m", "replicator", *args], capture_output=True, text=True,
                              env={**base, **(env or {})}, cwd=cwd, timeout=timeout)
        return CliRun(proc.returncode, proc.stdout, proc.stderr)
    from click.testing import CliRunner

    from replicator.cli import main

    unset = {k: None for k in os.environ if k.startswith("REPLICATOR_")}
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        res = CliRunner().invoke(main, list(args), env={**unset, **(env or {})})
    finally:
        os.chdir(old)
    stderr = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(traceback.format_exception(res.exception))
    return CliRun(res.exit_code, res.stdout, stderr)
