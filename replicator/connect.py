"""Opening connections to the master (guarded, read-only) and to the replica.

Every statement that reaches the master's wire is classified by the `MasterGuard` first and kept in
its audit log: the cursor's statements (`GuardedCursor`) and psycopg's own transaction commands
(BEGIN, COMMIT, ROLLBACK, SAVEPOINT, DEALLOCATE: `MasterConnection._exec_command`). Master
transactions are READ ONLY, and the session also starts with `default_transaction_read_only=on` where
the server accepts startup options.

Both connection classes remember which side they are: an error raised while talking to a server
carries `replicator_side`, and a connection that breaks (server restart, pg_terminate_backend, network)
is recorded so the command line can say "lost the connection to the replica" in one line.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from contextlib import contextmanager
from importlib import resources
from typing import Any, Iterator, Literal

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import sql
from psycopg.pq import ConnStatus

from .errors import ConnectError, GuardViolation, one_line, remember_secrets_in, scrub
from .guard import MasterGuard, classify

# sqlglot logs a warning whenever it falls back to a generic Command node; the guard handles those.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

TRANSACTION_POOLER_PORT = 6543
APPLICATION_NAME = "replicator"
CONNECT_TIMEOUT = 10

Side = Literal["master", "replica"]

# Functions of pg_catalog by volatility, read once per master connection (the guard allows the
# immutable and stable ones). Calls no function itself, so it passes the guard without the catalog.
CATALOG_FUNCTIONS_SQL = (
    "SELECT p.proname, p.provolatile FROM pg_catalog.pg_proc AS p "
    "JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace WHERE n.nspname = 'pg_catalog'"
)

_PLACEHOLDERS = re.compile(r"%%|%\((?P<name>[^)]+)\)[sbt]|%[sbt]")


def parse_conninfo(url: str, side: Side) -> dict[str, str]:
    """Parse a libpq URL or key=value string; a malformed one is a one-line error without its password."""
    remember_secrets_in(url)
    userinfo = re.match(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*://(?P<userinfo>[^/?#]*)@", url)
    if userinfo and "@" in userinfo.group("userinfo"):
        # libpq would split at the first '@' and go on with a fragment of the password as host name.
        raise ConnectError(f"malformed {side} URL {redact(url)}: an '@' in the user name or password must be "
                           "percent-encoded as %40")
    try:
        return pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        raise ConnectError(f"malformed {side} URL {redact(url)}: {one_line(str(e))}") from None


def redact(url: str) -> str:
    """The URL with its password masked, for messages and reports."""
    remember_secrets_in(url)
    try:
        params = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return scrub(url)  # unparseable: every password-looking part masked
    user = params.get("user", "")
    host = params.get("host", "") or params.get("hostaddr", "")
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


# ------------------------------------------------------------------------------------------------
# lost connections


class LostConnection:
    """A connection of this process that broke while in use (not closed by us)."""

    def __init__(self, side: str, address: str, reason: str):
        self.side, self.address, self.reason = side, address, reason

    def message(self) -> str:
        return f"lost the connection to the {self.side} {self.address}: {self.reason}"


_lost: list[LostConnection] = []
_lost_lock = threading.Lock()


def lost_connections() -> list[LostConnection]:
    """Connections that broke since the last `forget_lost_connections()`, first one first."""
    with _lost_lock:
        return list(_lost)


def forget_lost_connections() -> None:
    with _lost_lock:
        _lost.clear()


class _SideConnection(psycopg.Connection):
    """A connection that knows its side, tags its errors with it, and records when it breaks."""

    side: Side = "replica"
    address: str = ""
    _lost_recorded: bool = False

    def wait(self, gen, *args, **kwargs):  # type: ignore[override]
        try:
            return super().wait(gen, *args, **kwargs)
        except psycopg.Error as e:
            if getattr(e, "replicator_side", None) is None:
                e.replicator_side = self.side  # type: ignore[attr-defined]
            if self.pgconn.status == ConnStatus.BAD:
                self._record_lost(describe(e))
            raise

    def close(self) -> None:
        if self.broken:
            self._record_lost("the connection was closed by the server")
        super().close()

    def _record_lost(self, reason: str) -> None:
        if self._lost_recorded:
            return
        self._lost_recorded = True
        with _lost_lock:
            _lost.append(LostConnection(self.side, self.address, reason))


class ReplicaConnection(_SideConnection):
    """A normal read-write connection to the replica."""

    side: Side = "replica"
    pooled: bool = False


class SideCursor(psycopg.Cursor):
    """A cursor that sends a composed statement as it was written, whatever its names and values hold.

    Every statement built to take parameters writes its own `%` as `%%`. But psycopg looks for
    placeholders in the whole rendered text, so a `%` inside an identifier (a column `"50%s"`) or a
    literal would be read as one: those get theirs doubled too (:func:`param_safe`). And COPY merges
    parameters only when there are some, so a COPY given an empty list is merged here."""

    def _sending(self, query: Any, params: Any) -> None:
        """Called with each statement as it is about to be sent (the master's guard)."""

    def execute(self, query, params=None, **kwargs):  # type: ignore[override]
        query = param_safe(query, params, self.connection)
        self._sending(query, params)
        return super().execute(query, params, **kwargs)

    def executemany(self, query, params_seq, **kwargs):  # type: ignore[override]
        params_seq = list(params_seq)
        query = param_safe(query, (), self.connection)
        self._sending_many(query, params_seq)
        return super().executemany(query, params_seq, **kwargs)

    def _sending_many(self, query: Any, params_seq: list) -> None:
        for params in params_seq:
            self._sending(query, params)

    def stream(self, query, params=None, **kwargs):  # type: ignore[override]
        query = param_safe(query, params, self.connection)
        self._sending(query, params)
        return super().stream(query, params, **kwargs)

    @contextmanager
    def copy(self, statement, params=None, **kwargs):  # type: ignore[override]
        statement = param_safe(statement, params, self.connection)
        if params is not None and not params:
            statement, params = wire_text(statement, params, self.connection), None
        self._sending(statement, params)
        with super().copy(statement, params, **kwargs) as cp:
            yield cp


def param_safe(query: Any, params: Any, conn: psycopg.Connection | None) -> Any:
    """``query`` with the `%` of its identifiers and literals doubled when it goes with parameters."""
    if params is None or not isinstance(query, sql.Composable):
        return query
    if isinstance(query, sql.Composed):
        return sql.Composed([param_safe(part, params, conn) for part in query])
    if isinstance(query, (sql.Identifier, sql.Literal)):
        text = query.as_string(conn)
        if "%" in text:
            return sql.SQL(text.replace("%", "%%"))  # type: ignore[arg-type]
    return query


class GuardedCursor(SideCursor):
    """A cursor that lets the master guard see every statement before it is sent."""

    def _sending(self, query: Any, params: Any) -> None:
        conn: MasterConnection = self.connection  # type: ignore[assignment]
        conn.guard.check(wire_text(query, params, conn), catalog=conn.stable_functions)

    def _sending_many(self, query: Any, params_seq: list) -> None:
        # Audited once per row, as the server executes (and logs) it once per row.
        if not params_seq:
            verdict = classify(wire_text(query, (), self.connection))
            if not verdict.allowed:
                raise GuardViolation(f"refused to send to the master ({verdict.reason})")
        super()._sending_many(query, params_seq)


def wire_text(query: Any, params: Any, conn: psycopg.Connection | None) -> str:
    """The statement text as the server receives it: with parameters, psycopg turns `%s` / `%(name)s`
    into `$1`, `$2`... and `%%` into `%`; without parameters the text is sent as it is.

    (COPY binds its parameters client-side: the server then sees the values where the audit keeps `$n`,
    so a secret such as the masking key never lands in a report.)"""
    if isinstance(query, sql.Composable):
        text = query.as_string(conn)
    elif isinstance(query, (bytes, bytearray, memoryview)):
        text = bytes(query).decode()
    else:
        text = str(query)
    if params is None:
        return text
    numbers: dict[str, int] = {}

    def number(m: re.Match) -> str:
        if m.group(0) == "%%":
            return "%"
        key = m.group("name") or f"#{len(numbers)}"
        numbers.setdefault(key, len(numbers) + 1)
        return f"${numbers[key]}"

    return _PLACEHOLDERS.sub(number, text)


class MasterConnection(_SideConnection):
    """A psycopg connection whose statements are all classified by `guard` first, psycopg's own
    transaction commands included."""

    side: Side = "master"
    guard: MasterGuard
    pooled: bool = False
    _catalog_functions: frozenset[str] | None = None

    def cursor(self, *args, **kwargs):  # type: ignore[override]
        if args or kwargs.get("name"):
            # Named (server-side) cursors would bypass GuardedCursor: we never need them on the master.
            raise ConnectError("server-side cursors are not used on the master")
        return super().cursor(**kwargs)

    def _exec_command(self, command, *args, **kwargs):  # type: ignore[override]
        # BEGIN / COMMIT / ROLLBACK / SAVEPOINT / DEALLOCATE / PREPARE TRANSACTION: psycopg sends these
        # itself, not through a cursor. Checked without the catalog: the connection lock is held here.
        self.guard.check(wire_text(command, None, self))
        return super()._exec_command(command, *args, **kwargs)

    def stable_functions(self) -> frozenset[str]:
        """pg_catalog functions whose every overload is immutable or stable, read once per connection."""
        if self._catalog_functions is None:
            with self.cursor() as cur:
                cur.execute(CATALOG_FUNCTIONS_SQL)
                volatility: dict[str, set[str]] = {}
                for name, vol in cur.fetchall():
                    volatility.setdefault(name, set()).add(vol)
            self._catalog_functions = frozenset(n for n, v in volatility.items() if v <= {"i", "s"})
        return self._catalog_functions


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
        kwargs["options"] = _options(params, "-c default_transaction_read_only=on", ISO_DATES)
    conn = _connect(MasterConnection, url, "master", **kwargs)
    conn.guard = guard or MasterGuard()
    conn.pooled = pooled
    conn.read_only = True  # every transaction psycopg opens is BEGIN ... READ ONLY
    return conn


def open_replica(url: str, *, autocommit: bool = False) -> ReplicaConnection:
    """Open a normal read-write connection to the replica."""
    params = parse_conninfo(url, "replica")
    kwargs: dict[str, Any] = dict(
        cursor_factory=SideCursor,
        autocommit=autocommit,
        application_name=APPLICATION_NAME,
        connect_timeout=params.get("connect_timeout", CONNECT_TIMEOUT),
    )
    pooled = is_transaction_pooler(params)
    if pooled:
        kwargs["prepare_threshold"] = None
    else:
        kwargs["options"] = _options(params, ISO_DATES, NO_ROW_SECURITY)
    conn = _connect(ReplicaConnection, url, "replica", **kwargs)
    conn.pooled = pooled
    if pooled:
        # No startup options through a transaction pooler. PgBouncer keeps a client's DateStyle and sets
        # it on whichever server connection the client gets; it keeps no row_security (a SET of it would
        # reach other clients of the pool), so a pooled replica runs with the database's.
        conn.execute("SET DateStyle TO ISO")
        if not autocommit:
            conn.commit()
    return conn


#: Dates and times are read in ISO form whatever the database or role sets: psycopg parses no other
#: form of timestamptz, and the master's deparsed defaults (`'2024-01-31'::date`) must mean the same
#: on the replica. Value comparisons pin their own rendering per transaction anyway (rowhash.py).
ISO_DATES = "-c DateStyle=ISO"

#: A replica read that row-level security would filter fails instead (verify would count fewer rows
#: than the table holds, and a comparison would miss them); the pre-flight of copy names such tables.
NO_ROW_SECURITY = "-c row_security=off"


#: Limits a database or role sets for its applications (Supabase sets statement_timeout per role) are
#: lifted for our sessions, as pg_dump lifts them: one COPY or whole-table checksum may run for minutes,
#: the run's master transaction sits idle while the replica loads a batch or builds indexes, and the
#: session holding a copy's table locks sits idle for the whole run. They come before the URL's
#: options, so a limit set there still applies.
NO_TIMEOUTS = "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c idle_session_timeout=0"

#: Settings of NO_TIMEOUTS a server may not know (idle_session_timeout: PostgreSQL 14): it refuses the
#: whole connection naming one, which is then made again without it.
NEWER_TIMEOUTS = ("idle_session_timeout",)

#: Sent first in each transaction that may run long (a run's snapshot, a catalog read): the two limits
#: lifted for that transaction where the startup options could not be (sql/lift_timeouts.sql).
LIFT_TIMEOUTS_LOCALLY = resources.files("replicator").joinpath("sql", "lift_timeouts.sql").read_text(encoding="utf-8")

_TIMED_OUT = re.compile(r"statement timeout|idle-in-transaction timeout|idle-session timeout|transaction timeout")


_TIMEOUT_HINT = ("a server timeout replicator could not lift cut it short (the URL's options set it, or a pooler "
                 "dropped the startup options that lift it): raise it there, or connect directly")


def timeout_hint(e: BaseException | str) -> str | None:
    """What to do about a server timeout that cut a statement or session short (a rerun meets it again);
    None for another error, or a message that already says it."""
    text = str(e)
    return _TIMEOUT_HINT if _TIMED_OUT.search(text) and _TIMEOUT_HINT not in text else None


def _options(params: dict, *ours: str) -> str:
    """A session's libpq `options`: the lifted timeouts, the URL's (else PGOPTIONS, which a URL's would
    replace), then ours."""
    return " ".join([NO_TIMEOUTS, params.get("options") or os.environ.get("PGOPTIONS", ""), *ours]).strip()


def _without_setting(options: str, name: str) -> str:
    return options.replace(f"-c {name}=0", "").replace("  ", " ").strip()


def batch(conn: psycopg.Connection, statements: list[tuple[Any, ...]], *, row_factory: Any = None) -> list[list]:
    """Run independent statements with one round trip (psycopg's pipeline mode) and return each one's
    rows, in order. A distant master costs a round trip per statement otherwise; through a transaction
    pooler, which pipelining is not relied on with, they run one after the other.

    A statement is `(query, params)`, or `(query, params, row_factory)` to read its rows with a factory
    of its own rather than `row_factory`'s (a caller's statements riding on another's batch)."""
    def cursor(own: tuple) -> psycopg.Cursor:
        factory = own[0] if own else row_factory
        return conn.cursor(row_factory=factory) if factory is not None else conn.cursor()

    if getattr(conn, "pooled", False) or not psycopg.Pipeline.is_supported():
        out = []
        for query, params, *own in statements:
            with cursor(own) as cur:
                cur.execute(query, params)
                out.append(cur.fetchall() if cur.description else [])
        return out
    cursors = []
    try:
        try:
            with conn.pipeline():  # leaving it sends a Sync and waits for every result: one round trip
                try:
                    for query, params, *own in statements:
                        cur = cursor(own)
                        cursors.append(cur)
                        cur.execute(query, params)
                except BaseException as e:
                    if not isinstance(e, psycopg.Error):
                        # Ctrl-C while statements were being sent: leaving the pipeline waits for
                        # every result, so stop the server's work on them first (one may wait on a lock)
                        _cancel(conn)
                    raise
        except BaseException as e:
            if not isinstance(e, psycopg.Error):
                _cancel(conn)  # interrupted while waiting for the results: nothing more is awaited
            raise
        return [c.fetchall() if c.description else [] for c in cursors]
    finally:
        for c in cursors:
            c.close()


@contextmanager
def statements_alone(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Each statement its own transaction meanwhile: an idle connection is switched to autocommit,
    which sends nothing, where psycopg's BEGIN and COMMIT would cost a distant master two round trips
    more. Inside a transaction, statements run in it."""
    switch = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and not conn.autocommit
    if switch:
        conn.autocommit = True
    try:
        yield conn
    finally:
        if switch and not conn.closed:
            conn.autocommit = False


def _cancel(conn: psycopg.Connection) -> None:
    try:
        conn.cancel_safe(timeout=5.0)
    except Exception:  # noqa: BLE001 - cancelling is best effort; the interruption is what matters
        pass


def _connect(cls, url: str, side: Side, **kwargs):
    style = os.environ.get("PGDATESTYLE", "")
    if style and "ISO" not in [p.strip().upper() for p in style.split(",")] and style.strip().lower() != "default":
        # libpq sends it after the startup options, so it would win over ISO_DATES
        raise ConnectError(f"PGDATESTYLE={style!r} is not supported: dates are read in ISO form; unset it")
    try:
        try:
            conn = cls.connect(url, **kwargs)
        except psycopg.OperationalError as e:
            unknown = next((n for n in NEWER_TIMEOUTS if f'unrecognized configuration parameter "{n}"' in str(e)
                            and f"-c {n}=0" in kwargs.get("options", "")), None)
            if unknown is not None:  # an older server, refusing our setting (once: a URL's own is its to mend)
                kwargs = {**kwargs, "options": _without_setting(kwargs["options"], unknown)}
                return _connect(cls, url, side, **kwargs)
            if "options" not in kwargs or "unsupported startup parameter" not in str(e):
                raise
            # a pooler that refuses startup options (PgBouncer without ignore_startup_parameters):
            # without them; a master's transactions are still READ ONLY (read_only), dates still parse
            # inside every pinned transaction, and its snapshot lifts the timeouts it can
            # (LIFT_TIMEOUTS_LOCALLY)
            conn = cls.connect(url, **{k: v for k, v in kwargs.items() if k != "options"})
    except psycopg.OperationalError as e:
        raise ConnectError(f"cannot connect to {side} {redact(url)}: {describe(e, url)}") from None
    except (psycopg.Error, ValueError) as e:
        raise ConnectError(f"malformed {side} URL {redact(url)}: {describe(e, url)}") from None
    conn.address = redact(url)
    return conn


def describe(e: BaseException, url: str | None = None) -> str:
    """One line from a libpq/psycopg error, with any password scrubbed."""
    if url:
        remember_secrets_in(url)
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
    return scrub(reasons[0] if reasons else type(e).__name__)


def error_side(e: BaseException) -> str | None:
    """The side (master / replica) a database error came from, following `raise ... from` chains."""
    seen = 0
    while e is not None and seen < 10:
        side = getattr(e, "replicator_side", None)
        if side:
            return side
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
        seen += 1
    return None


@contextmanager
def master_session(url: str, guard: MasterGuard | None = None) -> Iterator[MasterConnection]:
    conn = open_master(url, guard)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def replica_session(url: str) -> Iterator[ReplicaConnection]:
    conn = open_replica(url)
    try:
        yield conn
    finally:
        conn.close()


__all__ = [
    "parse_conninfo", "redact", "without_password", "is_transaction_pooler", "open_master", "open_replica",
    "describe", "error_side", "lost_connections", "forget_lost_connections", "MasterConnection",
    "ReplicaConnection", "GuardedCursor", "wire_text", "master_session", "replica_session",
]
