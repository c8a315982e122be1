"""Which server is which: the replica is never the master's database, a standby of it, or read-only
when it is about to be written, and a database marked as a replica is never used as a master.

Each side's identity is read once, right after connecting (`sql/server_identity.sql`; copy reads the
master's in the batch that opens its snapshot, before it touches the replica): the cluster's
`system_identifier` (from `pg_control_system()`, shared by every physical copy of a cluster), the
database's OID and name, `pg_is_in_recovery()`, the read-only settings, and whether the database
carries replicator's `_replicator` tables. `check_pair` then refuses, with one line:

* the **same database** on both sides: same system identifier and database OID, confirmed by a probe
  (the replica session takes a unique `application_name` and the master looks for it in its own
  `pg_stat_activity`), so `localhost` vs `127.0.0.1`, extra URL parameters or a pooler in between do
  not matter. The probe also decides when a system identifier cannot be read (a role without
  EXECUTE on `pg_control_system()`); same identifiers but no probe hit means a promoted physical copy
  of the master, a legitimate replica;
* a **standby** relation: same system identifier and database, one side in recovery;
* a **master that is a replica**: it has `_replicator.replica_of` or copy's bookkeeping tables, as
  when the two URLs (or REPLICATOR_MASTER_URL / REPLICATOR_REPLICA_URL) are swapped;
* a replica whose marker names **another master**, unless `allow_new_master`
  (`--replica-of-new-master`): then the marker is re-pointed when it is next written.

`mark_replica` (called by the commands that write: copy, migrate) refuses a read-only replica (in
recovery, `default_transaction_read_only` or `transaction_read_only` on) and records in
`_replicator.replica_of` which master the replica replicates. Every master read goes through the
guard like any other statement.
"""

from __future__ import annotations


import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from typing import Any

import psycopg

from .connect import APPLICATION_NAME, redact
from .errors import IdentityError

REPLICA_OF_NEW_MASTER_FLAG = "--replica-of-new-master"


@cache
def load_sql(name: str) -> str:
    return resources.files("replicator").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


@dataclass(frozen=True)
class ReplicaMarker:
    """The row of `_replicator.replica_of`: the master a replica was last written from."""

    master_system_identifier: str | None
    master_database_oid: int
    master_database: str
    master_address: str
    marked_at: datetime | None

    def names(self, master: "ServerIdentity") -> bool:
        """Does this marker name `master`? By system identifier and database OID when both are
        known; by database OID and name otherwise (a weaker test, stated in the README)."""
        if self.master_system_identifier and master.system_identifier:
            return (self.master_system_identifier == master.system_identifier
                    and self.master_database_oid == master.database_oid)
        return self.master_database_oid == master.database_oid and self.master_database == master.database

    def describe(self) -> str:
        sysid = f"system {self.master_system_identifier}, " if self.master_system_identifier else ""
        when = f", marked {self.marked_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if self.marked_at else ""
        return f"{self.master_address} ({sysid}database {self.master_database!r} oid {self.master_database_oid}{when})"


@dataclass(frozen=True)
class ServerIdentity:
    side: str
    address: str  # redacted URL
    system_identifier: str | None  # None: pg_control_system() not readable by this role
    database_oid: int
    database: str
    in_recovery: bool
    default_read_only: bool
    transaction_read_only: bool
    has_marker: bool
    has_bookkeeping: bool
    marker: ReplicaMarker | None

    @property
    def is_replica(self) -> bool:
        """Carries replicator's replica tables (marker, checkpoints)."""
        return self.has_marker or self.has_bookkeeping

    def label(self) -> str:
        return f"{self.side} {self.address}"


@dataclass(frozen=True)
class CheckedPair:
    """Two identities that passed `check_pair`."""

    master: ServerIdentity
    replica: ServerIdentity
    #: The replica's marker names another master and --replica-of-new-master allowed it.
    repointed: bool = False


def _address(conn: psycopg.Connection) -> str:
    address = getattr(conn, "address", "")
    if address:
        return address
    info = conn.info
    return redact(f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}")


def _on(value: str) -> bool:
    return str(value).lower() in ("on", "true", "1", "yes")


def identity_statements(system_identifier: bool = True) -> list[tuple[str, None]]:
    """The statements `read_identity` sends, for a caller that sends them in a batch of its own (a round
    trip fewer to a distant master) and hands their rows to `read_identity`. They only read, and mean
    the same inside a transaction. The system identifier's fails where EXECUTE on pg_control_system()
    is revoked (some hosted services): the caller then sends them again without it."""
    return [(load_sql("server_identity"), None)] + ([(load_sql("system_identifier"), None)] if system_identifier else [])


def read_identity(conn: psycopg.Connection, side: str, rows: list[list] | None = None) -> ServerIdentity:
    """Read one side's identity, or build it from `rows` (the results of `identity_statements()` sent by
    the caller); leaves an idle connection idle. One round trip: the statements are pipelined, each a
    transaction of its own, with no BEGIN or COMMIT to wait for, which a distant master notices."""
    address = _address(conn)
    try:
        if rows is None:
            try:
                rows = _read(conn, identity_statements())
            except psycopg.errors.InsufficientPrivilege:
                rows = _read(conn, identity_statements(system_identifier=False))
        ident, *found = rows
        sysid: str | None = found[0][0][0] if found and found[0] else None
        row = ident[0] if ident else None
        assert row is not None
        oid, database, in_recovery, default_ro, txn_ro, has_marker, has_bookkeeping = row
        marker = None
        if has_marker:
            try:
                with conn.transaction():
                    m = conn.execute(load_sql("replica_marker_read")).fetchone()
                if m:
                    marker = ReplicaMarker(*m)
            except psycopg.errors.InsufficientPrivilege:
                if side == "replica":
                    raise IdentityError(f"replica {address}: cannot read _replicator.replica_of "
                                        "(permission denied); grant SELECT on it to this role") from None
    except psycopg.Error as e:
        from .connect import describe

        raise IdentityError(f"{side} {address}: cannot read the server's identity: {describe(e)}") from None
    return ServerIdentity(side, address, sysid, int(oid), database, bool(in_recovery), _on(default_ro), _on(txn_ro),
                          bool(has_marker), bool(has_bookkeeping), marker)


def _read(conn: psycopg.Connection, statements: list[tuple[str, Any]]) -> list[list]:
    """Run reads in one round trip and leave an idle connection idle (each its own transaction);
    inside a transaction, they run in it."""
    from .connect import batch, statements_alone

    with statements_alone(conn):
        return batch(conn, statements)


def replica_marker(conn: psycopg.Connection) -> ReplicaMarker | None:
    """The replica's marker, if it has one (for `replicator status`)."""
    with conn.transaction():
        if conn.execute("SELECT pg_catalog.to_regclass('_replicator.replica_of') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
            row = conn.execute(load_sql("replica_marker_read")).fetchone()
            return ReplicaMarker(*row) if row else None
    return None


def same_session_probe(master_conn: psycopg.Connection, replica_conn: psycopg.Connection) -> bool:
    """True when the replica connection's session is visible in the master database's pg_stat_activity,
    i.e. both connections reach the same database. The replica must be idle; the master may be inside a
    read-only transaction of the caller's."""
    nonce = f"replicator-probe-{uuid.uuid4().hex}"
    set_name = "SELECT pg_catalog.set_config('application_name', %s, false)"
    with replica_conn.transaction():
        replica_conn.execute(set_name, (nonce,))
    try:
        # pg_stat_activity is read once per transaction and kept: the snapshot is dropped first, as the
        # master's transaction may have read it before the replica took the name
        _, (row,) = _read(master_conn, [("SELECT pg_catalog.pg_stat_clear_snapshot()", None),
                                        (load_sql("same_session_probe"), (nonce,))])
    finally:
        with replica_conn.transaction():
            replica_conn.execute(set_name, (APPLICATION_NAME,))
    return bool(row and row[0])


def check_pair(master_conn: psycopg.Connection, replica_conn: psycopg.Connection, *,
               allow_new_master: bool = False, mark: bool = False, master: ServerIdentity | None = None) -> CheckedPair:
    """Read both identities and refuse (IdentityError, one line) a pair that is not a master and a
    distinct replica. With `mark=True` (a command about to write), also refuse a read-only replica and
    record the master in the replica's marker. Call it right after connecting, the replica idle; it
    leaves it idle. The master's identity is read here unless given (`master`: read by the caller with
    `identity_query()`); the master connection may then be inside the caller's read-only transaction."""
    m = master or read_identity(master_conn, "master")
    r = read_identity(replica_conn, "replica")
    same_cluster = bool(m.system_identifier and m.system_identifier == r.system_identifier)
    if same_cluster and m.database_oid == r.database_oid:
        if r.in_recovery:
            raise IdentityError(
                f"replica {r.address} is a hot standby of the master's database (same system identifier "
                f"{r.system_identifier} and database {r.database!r}, in recovery): refusing to use it as the replica")
        if m.in_recovery:
            raise IdentityError(
                f"replica {r.address} is the primary the master {m.address} streams from (same system identifier "
                f"{r.system_identifier} and database {r.database!r}): refusing to write to it")
    if (same_cluster and m.database_oid == r.database_oid) or not (m.system_identifier and r.system_identifier):
        if same_session_probe(master_conn, replica_conn):
            what = (f"same system identifier {r.system_identifier} and database {r.database!r} (oid {r.database_oid})"
                    if same_cluster else f"database {r.database!r} (oid {r.database_oid}), seen from both sides")
            raise IdentityError(f"replica {r.address} is the master's own database ({what}): refusing to use "
                                "the master as the replica")
    if m.is_replica:
        of = f" of {m.marker.describe()}" if m.marker else ""
        raise IdentityError(
            f"master {m.address} is a replica{of} (it has replicator's _replicator tables): refusing to use it as "
            "the master; are --master and --replica (REPLICATOR_MASTER_URL / REPLICATOR_REPLICA_URL) swapped?")
    repointed = False
    if r.marker is not None and not r.marker.names(m):
        if not allow_new_master:
            raise IdentityError(
                f"replica {r.address} is the replica of another master, {r.marker.describe()}, not of "
                f"{m.address}; pass {REPLICA_OF_NEW_MASTER_FLAG} to re-point it to this master")
        repointed = True
    pair = CheckedPair(m, r, repointed)
    if mark:
        mark_replica(replica_conn, pair)
    return pair


def refuse_read_only(replica: ServerIdentity) -> None:
    """One line when the replica cannot be written, naming the setting."""
    if replica.in_recovery:
        raise IdentityError(f"replica {replica.address} is read-only: it is in recovery (a hot standby, "
                            "pg_is_in_recovery() = true); point --replica at a writable primary")
    for setting, on in (("default_transaction_read_only", replica.default_read_only),
                        ("transaction_read_only", replica.transaction_read_only)):
        if on:
            raise IdentityError(f"replica {replica.address} is read-only: {setting} is on for this session "
                                f"(ALTER DATABASE / ALTER ROLE ... SET {setting} = off)")


def mark_replica(replica_conn: psycopg.Connection, pair: CheckedPair) -> None:
    """Before the first write of a run: refuse a read-only replica, then record the master in
    `_replicator.replica_of` (a no-op when it already names this master). Committed at once, together
    with whatever the connection's open transaction had read: a rollback the command does later must
    not take the marker with it."""
    refuse_read_only(pair.replica)
    m = pair.master
    params: dict[str, Any] = {"system_identifier": m.system_identifier, "database_oid": m.database_oid,
                              "database": m.database, "address": m.address}
    try:
        with replica_conn.transaction():
            if not pair.replica.has_marker:
                # CREATE SCHEMA IF NOT EXISTS would need CREATE on the database even when the schema
                # exists (a role given `CREATE SCHEMA _replicator AUTHORIZATION role` lacks it)
                if replica_conn.execute("SELECT to_regnamespace('_replicator') IS NULL").fetchone()[0]:
                    replica_conn.execute("CREATE SCHEMA _replicator")
                replica_conn.execute(load_sql("replica_marker_ddl"))
            replica_conn.execute(load_sql("replica_marker_upsert"), params)
        if not replica_conn.autocommit and replica_conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            replica_conn.commit()
    except psycopg.Error as e:
        from .connect import describe

        raise IdentityError(f"replica {pair.replica.address}: cannot record the replica marker in "
                            f"_replicator.replica_of: {describe(e)}") from None


def check_replica_alone(replica_conn: psycopg.Connection) -> ServerIdentity:
    """When no master URL is at hand (`migrate --plan FILE` without one): the replica must at least be
    writable; its marker cannot be compared with anything."""
    r = read_identity(replica_conn, "replica")
    refuse_read_only(r)
    return r


def check_plan_target(config: Any, replica_conn: psycopg.Connection) -> None:
    """For `migrate --plan FILE`: check the pair (and mark the replica) when a master URL is configured,
    else the replica alone. Opens and closes its own guarded master connection."""
    from .connect import open_master

    if not config.master_url:
        check_replica_alone(replica_conn)
        return
    master = open_master(config.master_url)
    try:
        check_pair(master, replica_conn, allow_new_master=config.replica_of_new_master, mark=True)
    finally:
        master.close()


__all__ = ["ServerIdentity", "ReplicaMarker", "CheckedPair", "read_identity", "check_pair", "mark_replica",
           "refuse_read_only", "check_replica_alone", "identity_statements", "check_plan_target", "same_session_probe",
           "REPLICA_OF_NEW_MASTER_FLAG"]
