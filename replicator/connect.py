"""Opening connections to the master (guarded, read-only) and to the replica.

Every master statement goes through `GuardedCursor`, which asks the `MasterGuard` before anything is
sent. Master transactions are READ ONLY, and the session also starts with
`default_transaction_read_only=on` where the server accepts startup options.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import Any, Iterator, Literal

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import sql

from .errors import ConnectError
from .guard import MasterGuard

# sqlglot logs a warning whenever it falls back to a generic Command node; the guard handles those.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

TRANSACTION_POOLER_PORT = 6543
APPLICATION_NAME = "replicator"
CONNECT_TIMEOUT = 10

Side = Literal["master", "replica"]


def parse_conninfo(url: str, side: Side) -> dict[str, str]:
    """Parse a libpq URL or key=value string; a malformed one is a one-line error."""
    try:
        return pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        raise ConnectError(f"malformed {side} URL: {_first_line(str(e))}") from None


def redact(url: str) -> str:
    """The URL with its password masked, for messages and reports."""
    try:
        params = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # Unparseable: mask anything that looks like a password rather than echo it.
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", re.sub(r"(password\s*=\s*)\S+", r"\1***", url))
    user = params.get("user", "")
    host = params.get("host", "")
    port = params.get("port", "")
    db = params.get("dbname", "")
    auth = f"{user}{':***' if 'password' in params else ''}@" if user or "password" in params else ""
    hostport = f"{host}:{port}" if port else host
    return f"postgresql://{auth}{hostport}/{db}"


def without_password(url: str) -> tuple[str, dict[str, str]]:
    """A conninfo string without the password, and the environment that carries it instead.

    For child processes (pg_dump): a password on a command line is visible to every user via `ps`.
    """
    params = pg_conninfo.conninfo_to_dict(url)
    password = params.pop("password", None)
    return pg_conninfo.make_conninfo("", **params), ({"PGPASSWORD": password} if password else {})


def is_transaction_pooler(params: dict[str, str]) -> bool:
    """Supabase's transaction-mode pooler listens on 6543; it cannot keep prepared statements or sessions."""
    return params.get("port") == str(TRANSACTION_POOLER_PORT)


class GuardedCursor(psycopg.Cursor):
    """A cursor that lets the master guard see every statement before it is sent."""

    def _guard(self, query: Any) -> None:
        guard: MasterGuard = self.connection.guard  # type: ignore[attr-defined]
        if isinstance(query, sql.Composable):
            text = query.as_string(self.connection)
        elif isinstance(query, bytes):
            text = query.decode()
        else:
            text = str(query)
        guard.check(text)

    def execute(self, query, params=None, **kwargs):  # type: ignore[override]
        self._guard(query)
        return super().execute(query, params, **kwargs)

    def executemany(self, query, params_seq, **kwargs):  # type: ignore[override]
        self._guard(query)
        return super().executemany(query, params_seq, **kwargs)

    def stream(self, query, params=None, **kwargs):  # type: ignore[override]
        self._guard(query)
        return super().stream(query, params, **kwargs)

    @contextmanager
    def copy(self, statement, params=None, **kwargs):  # type: ignore[override]
        self._guard(statement)
        with super().copy(statement, params, **kwargs) as cp:
            yield cp


class MasterConnection(psycopg.Connection):
    """A psycopg connection whose statements are all classified by `guard` first."""

    guard: MasterGuard
    pooled: bool = False

    def cursor(self, *args, **kwargs):  # type: ignore[override]
        if args or kwargs.get("name"):
            # Named (server-side) cursors would bypass GuardedCursor: we never need them on the master.
            raise ConnectError("server-side cursors are not used on the master")
        return super().cursor(**kwargs)


def open_master(url: str, guard: MasterGuard | None = None, *, autocommit: bool = False) -> MasterConnection:
    """Open a read-only, guarded connection to the master."""
    params = parse_conninfo(url, "master")
    pooled = is_transaction_pooler(params)
    kwargs: dict[str, Any] = dict(
        cursor_factory=GuardedCursor,
        autocommit=autocommit,
        application_name=APPLICATION_NAME,
        connect_timeout=params.get("connect_timeout", CONNECT_TIMEOUT),
    )
    if pooled:
        kwargs["prepare_threshold"] = None  # a transaction pooler cannot keep prepared statements
    else:
        kwargs["options"] = (params.get("options", "") + " -c default_transaction_read_only=on").strip()
    conn = _connect(MasterConnection, url, "master", **kwargs)
    conn.guard = guard or MasterGuard()
    conn.pooled = pooled
    conn.read_only = True  # every transaction psycopg opens is BEGIN ... READ ONLY
    return conn


def open_replica(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a normal read-write connection to the replica."""
    params = parse_conninfo(url, "replica")
    kwargs: dict[str, Any] = dict(
        autocommit=autocommit,
        application_name=APPLICATION_NAME,
        connect_timeout=params.get("connect_timeout", CONNECT_TIMEOUT),
    )
    if is_transaction_pooler(params):
        kwargs["prepare_threshold"] = None
    return _connect(psycopg.Connection, url, "replica", **kwargs)


def _connect(cls, url: str, side: Side, **kwargs):
    try:
        return cls.connect(url, **kwargs)
    except psycopg.OperationalError as e:
        raise ConnectError(f"cannot connect to {side} {redact(url)}: {describe(e, url)}") from None
    except psycopg.ProgrammingError as e:
        raise ConnectError(f"malformed {side} URL: {describe(e, url)}") from None


def describe(e: BaseException, url: str | None = None) -> str:
    """One line from a libpq/psycopg error, with any password scrubbed."""
    text = str(e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # libpq prefixes every attempt with "connection to server at ... failed:"; keep the reason.
    reasons = []
    for ln in lines:
        ln = re.sub(r"^connection failed:\s*", "", ln)
        m = re.match(r'connection to server (?:at|on) .*? failed:\s*(.*)$', ln)
        if m:
            ln = m.group(1)
        if ln and ln not in reasons:
            reasons.append(ln)
    msg = reasons[0] if reasons else type(e).__name__
    if url:
        try:
            pw = pg_conninfo.conninfo_to_dict(url).get("password")
        except psycopg.ProgrammingError:
            pw = None
        if pw:
            msg = msg.replace(pw, "***")
    return msg


def _first_line(s: str) -> str:
    return s.strip().splitlines()[0] if s.strip() else s


@contextmanager
def master_session(url: str, guard: MasterGuard | None = None) -> Iterator[MasterConnection]:
    conn = open_master(url, guard)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def replica_session(url: str) -> Iterator[psycopg.Connection]:
    conn = open_replica(url)
    try:
        yield conn
    finally:
        conn.close()
