"""`--jobs N`: tables copied on N pairs of connections, all reading one master snapshot.

The run's own master transaction exports its snapshot (`pg_export_snapshot()`); every worker opens
its master session, begins a `REPEATABLE READ READ ONLY` transaction and imports that snapshot
(`SET TRANSACTION SNAPSHOT`), so whatever worker reads a table, every table is read as of the same
instant and the replica's foreign keys hold as they do on the master. Each worker has its own replica
session (rendering like the master, with the run's `session_replication_role`).

Tables are handed out by `graphlib`'s ready/done protocol over `replicator.order.fk_order`: a table
waits for the tables it references only when the replica enforces foreign keys while rows arrive
(no `session_replication_role`); otherwise every table is ready at once, biggest first. The first
error stops handing out tables; the tables in flight finish (each commits batch by batch with its
checkpoint, so nothing is half-written), then the error is raised.

One big table is split as well: a table copied in heap order (empty on the replica), or compared
key range by key range (the replica holds rows and no baseline), borrows the workers that are idle
while no other table waits for one (`Crew.borrow`). They share its page ranges, each range one COPY
and one replica transaction, or its key ranges, each range compared and fixed in one replica
transaction. The replica's work per row (parsing, index inserts, WAL) is what bounds a single COPY
stream, and each side's hashing one comparison; several connections spread that over several backends.

A transaction pooler cannot import a snapshot into another session: through one, the run uses one
connection and says so.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from graphlib import TopologicalSorter

import psycopg

from ..connect import _cancel, batch, open_master, open_replica
from ..guard import MasterGuard
from ..rowhash import follow_sql, open_pinned_snapshot
from .masking import set_key
from .plan import TablePlan
from .table import RunContext, TableCopy, settle


@dataclass
class Worker:
    ctx: RunContext

    def close(self) -> None:
        self.ctx.pool.shutdown(wait=True)
        for conn in (self.ctx.master, self.ctx.replica):
            try:
                conn.close()
            except psycopg.Error:
                pass


def export_snapshot(master: psycopg.Connection) -> str:
    """The run transaction's snapshot, for workers to import (the transaction must stay open)."""
    return master.execute("SELECT pg_catalog.pg_export_snapshot()").fetchone()[0]


def _connect_pair(master_url: str, replica_url: str, guard: MasterGuard) -> tuple[psycopg.Connection, psycopg.Connection]:
    master = open_master(master_url, guard, autocommit=True)
    try:
        return master, open_replica(replica_url)
    except BaseException:
        master.close()
        raise


def _join(base: RunContext, pair: tuple[psycopg.Connection, psycopg.Connection], snapshot: str,
          settings: dict[str, str]) -> Worker:
    """A worker on connections already open: its master transaction imports the run's snapshot."""
    master, replica = pair
    try:
        batch(master, [*open_pinned_snapshot(master.info.server_version, imported=snapshot),
                       *([set_key(base.mask_key)] if base.mask_key else [])])
        replica.execute(follow_sql(settings, local=False))
        if base.logic.replication_role:
            replica.execute("SET session_replication_role = replica")
        replica.commit()
    except BaseException:
        master.close()
        replica.close()
        raise
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replica")
    return Worker(replace(base, master=master, replica=replica, pool=pool))


class Openers:
    """The extra workers' connections, opened in the background from the start of the run: connecting
    (TCP, TLS, authentication) costs several round trips to a distant master, which then overlap the
    run's own preparation instead of following it."""

    def __init__(self, count: int, master_url: str, replica_url: str, guard: MasterGuard):
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="open-job")
        self._pairs = [self._pool.submit(_connect_pair, master_url, replica_url, guard) for _ in range(count)]

    def workers(self, base: RunContext, snapshot: str, settings: dict[str, str]) -> list[Worker]:
        """Every worker, each importing the snapshot (at once); the first error is raised after all
        are settled, with the workers already made closed."""
        pairs, self._pairs = self._pairs, []
        joined = [self._pool.submit(lambda f=f: _join(base, f.result(), snapshot, settings)) for f in pairs]
        out, error = [], None
        for f in joined:
            try:
                out.append(f.result())
            except BaseException as e:  # noqa: BLE001 - the first error is the one raised
                error = error or e
        if error is not None:
            for w in out:
                w.close()
            raise error
        return out

    def close(self) -> None:
        """Close whatever was opened and not handed out (a run that ended early, or that uses one
        connection after all)."""
        for f in self._pairs:
            try:
                for conn in f.result():
                    conn.close()
            except BaseException:  # noqa: BLE001 - the connection was never used
                pass
        self._pairs = []
        self._pool.shutdown(wait=True)


class Crew:
    """The run's workers: a table takes one (waiting for it), a table copied in heap order borrows the
    idle ones, but only while no other table is waiting."""

    def __init__(self, workers: list[Worker]):
        self._free: queue.Queue[Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._waiting = 0
        self.failed = threading.Event()  # a worker came back from a failure: no more work is handed out
        for w in workers:
            w.ctx.crew = self
            self._free.put(w)

    def take(self) -> Worker:
        with self._lock:
            self._waiting += 1
        try:
            return self._free.get()
        finally:
            with self._lock:
                self._waiting -= 1

    def put(self, worker: Worker, *, failed: bool = False) -> None:
        """Give a worker back; ``failed``: its work ended in an error, which ends the run (a table taking
        it next would fail on its aborted transaction, and that error could be the one reported)."""
        if failed:
            self.failed.set()
        self._free.put(worker)

    def borrow(self, most: int) -> list[Worker]:
        """Up to ``most`` idle workers, none while a table waits for one; give them back with `put`."""
        out: list[Worker] = []
        with self._lock:
            while not self._waiting and not self.failed.is_set() and len(out) < most:
                try:
                    out.append(self._free.get_nowait())
                except queue.Empty:
                    break
        return out


def run_tables(workers: list[Worker], plans: list[TablePlan], parents: dict[str, set[str]],
               root_of: Callable[[str], str]) -> None:
    """Copy every plan on the workers, a table only after the tables in ``parents`` (root keys)."""
    by_root: dict[str, list[TablePlan]] = {}
    for p in plans:
        by_root.setdefault(root_of(p.replica.key), []).append(p)
    graph = {k: {d for d in parents.get(k, set()) if d in by_root} for k in by_root}
    sorter: TopologicalSorter[str] = TopologicalSorter(graph)
    sorter.prepare()
    crew = Crew(workers)
    stop = threading.Event()

    def copy(root: str) -> None:
        worker = crew.take()
        try:
            for p in by_root[root]:
                if stop.is_set() or crew.failed.is_set():
                    break
                TableCopy(worker.ctx, p).run()
        except BaseException:
            crew.put(worker, failed=True)
            raise
        crew.put(worker)

    def size(root: str) -> int:
        return -sum(p.rows_estimate or 0 for p in by_root[root])

    error: BaseException | None = None
    running: dict[Future, str] = {}
    with ThreadPoolExecutor(max_workers=len(workers), thread_name_prefix="copy-job") as pool:
        try:
            while sorter.is_active() and error is None:
                for root in sorted(sorter.get_ready(), key=lambda r: (size(r), r)):
                    running[pool.submit(copy, root)] = root
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    root = running.pop(f)
                    exc = f.exception()
                    if exc is not None:
                        error = error or exc
                    else:
                        sorter.done(root)
        except BaseException as e:  # Ctrl-C while waiting: stop the workers' queries (their batches roll back)
            error = error or e
            for w in workers:
                for conn in (w.ctx.master, w.ctx.replica):
                    _cancel(conn)
        finally:
            if error is not None:
                stop.set()
            error = settle(list(running), error)
    if error is not None:
        raise error
