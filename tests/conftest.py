"""Two real PostgreSQL servers per test session (master, replica); a fresh database on each per test.

Servers are found in this order (DESIGN.md, "Tests"):
1. `REPLICATOR_TEST_MASTER_URL` / `REPLICATOR_TEST_REPLICA_URL` (superuser URLs of existing servers);
2. a Docker engine, through testcontainers, when one answers;
3. PostgreSQL binaries on the machine (initdb/pg_ctl in a temporary directory);
4. the binaries of the embedded `pgserver` wheel.
`REPLICATOR_TEST_BACKEND=env|docker|system|embedded` forces one.
"""

from __future__ import annotations

import itertools
import os
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


def _from_binaries(bindir) -> tuple[Server, Server] | None:
    if bindir is None:
        return None
    clusters = [ephemeral.start_cluster(bindir) for _ in range(2)]
    return tuple(Server(c.url(), c.version, f"local PostgreSQL {c.version}", c.stop) for c in clusters)  # type: ignore


def _start_servers() -> tuple[Server, Server]:
    backend = os.environ.get("REPLICATOR_TEST_BACKEND", "auto")
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


def run_sql(url: str, text: str, params=None) -> list[tuple]:
    """Run SQL directly (not through replicator) in autocommit; returns rows of the last statement, if any."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(text, params) if params is not None else conn.execute(text)
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
