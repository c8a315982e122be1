"""One copy per table at a time: a session advisory lock per replica table, held for the whole run on
a connection of its own. A second run refuses with one line naming the run that holds it; the lock
goes with the session, so a killed run frees it, and a checkpoint whose lock is free belongs to an
interrupted run, not a live one."""

from __future__ import annotations

import psycopg

from ..connect import open_replica
from .plan import CopyError

_KEY = "hashtextextended('replicator copy ' || %s, 0)"

_HOLDER = f"""
SELECT a.pid, a.backend_start, a.application_name, coalesce(host(a.client_addr), 'local') AS client
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND l.classid::bigint = ({_KEY} >> 32) & 4294967295
  AND l.objid::bigint = {_KEY} & 4294967295
  AND l.pid <> pg_backend_pid()
"""


def holder(conn: psycopg.Connection, table: str) -> tuple | None:
    """(pid, backend start, application, client) of the session copying ``table``, if any."""
    return conn.execute(_HOLDER, (table, table)).fetchone()


class TableLocks:
    def __init__(self, replica_url: str):
        self.conn = open_replica(replica_url, autocommit=True)

    def acquire(self, tables: list[str]) -> None:
        busy = []
        for t in tables:
            if not self.conn.execute(f"SELECT pg_try_advisory_lock({_KEY})", (t,)).fetchone()[0]:
                busy.append(t)
        if busy:
            who = holder(self.conn, busy[0])
            by = f" (replica session pid {who[0]}, {who[2] or 'replicator'} from {who[3]}, since {who[1]:%Y-%m-%d %H:%M:%S})" if who else ""
            raise CopyError(f"{', '.join(busy)} {'is' if len(busy) == 1 else 'are'} being copied by another run{by}: "
                            "wait for it to finish or stop it, then rerun")

    def close(self) -> None:
        self.conn.close()  # the session's advisory locks go with it
