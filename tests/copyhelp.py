"""Helpers for the copy tests: an independent judge of "replica equals master".

The checksum below is computed by PostgreSQL from each row's own text form (`t::text`), without any of
replicator's code (its row hash, its column lists, its masking): copy and verify share code and could
be wrong the same way, so tests judge them by this.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

INDEPENDENT = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM {} t"
ROWS = "SELECT t::text FROM {} t ORDER BY 1"


def checksum(sql_on, url: str, table: str, columns: str | None = None):
    if columns:
        q = (f"SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) "
             f"FROM (SELECT {columns} FROM {table}) t")
        return sql_on(url, q)[0]
    return sql_on(url, INDEPENDENT.format(table))[0]


def same(sql_on, master_url: str, replica_url: str, table: str, columns: str | None = None) -> bool:
    return checksum(sql_on, master_url, table, columns) == checksum(sql_on, replica_url, table, columns)


def rows(sql_on, url: str, table: str) -> list[str]:
    return [r[0] for r in sql_on(url, ROWS.format(table))]


def both(sql_on, master_url: str, replica_url: str, ddl: str) -> None:
    sql_on(master_url, ddl)
    sql_on(replica_url, ddl)


def xmins(sql_on, url: str, table: str, key: str = "id") -> dict:
    """Row versions by key: an unchanged xmin proves a row was not rewritten."""
    return dict(sql_on(url, f"SELECT {key}, xmin::text FROM {table}"))


def wait_until(p: subprocess.Popen, reached: Callable[[], bool], timeout: float = 60) -> None:
    """Poll (every 2 ms) until ``reached()`` holds, the process has exited, or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while not reached() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)


def kill(p: subprocess.Popen) -> int:
    """`kill -9` the process if it is still running: 1 if it was, 0 if it had already finished."""
    if p.poll() is not None:
        return 0
    p.send_signal(signal.SIGKILL)
    return 1
