"""Copying one table: choosing the path, walking its key ranges, committing each batch with its
checkpoint.

Paths:

* **direct**: the replica table is empty when the copy begins: the master table is read in heap order,
  in batches of whole pages (`replicator.copy.stream`), each batch committed with its checkpoint.
* **delta**: the table was synced before and its baseline holds (`replicator.copy.baseline`): only
  the rows either side wrote since, and the keys either side deleted, are compared and fixed
  (`replicator.copy.delta`), in one transaction. Every path that examines every row records the
  baseline the next run uses.
* **compare**: the replica holds rows (and no baseline holds): the key space is cut, from one sample
  of the master's keys, into intervals of about one batch, walked in ranges of one or more intervals.
  A range the replica has no row in is copied straight, interval by interval. A range with rows on
  both sides is compared (`replicator.copy.compare`), and how adapts to what the ranges before showed (`Strategy`): by
  checksums while ranges match (each next range twice as wide), key by key once they differ (keys and
  row hashes only; exactly the rows missing or differing are fetched by key and merged under the policy,
  `replicator.copy.merge`; under `mirror` the keys the master no longer has are deleted), and by
  transferring whole ranges where most rows differ. Under `--jobs N` idle workers join the walk
  (`SharedWalk`): ranges are compared on several connections at once, all reading the run's snapshot.
* **transfer**: no comparison is possible (`--incremental` filters the master's rows by a cursor; a
  masked key cannot be matched to the master's): every batch is transferred into a stage and merged.

Resuming. A rerun after an interrupted copy does not trust what the earlier run committed: the master
may have changed since. It walks the key space from the start, like any run, so the ranges committed
before the interruption are reconciled to this run's snapshot (checksums make that cheap when nothing
changed), and the ranges after them are copied straight. Rows fixed in the committed ranges are counted
as `reconciled`. A copy that began into an empty table with no policy owns every row it committed, so
its rerun treats the table as `mirror` (the finished table equals the master); with a policy, the rerun
applies that policy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import psycopg
from psycopg import sql

from ..config import Policy
from ..introspect import Schema
from ..sequences import SequenceUse, advance_locked
from . import baseline, checkpoint, indexes, keyless
from .baseline import Baseline, MasterPoint
from .compare import Comparer, KeyDiff
from .delta import Delta
from .keys import Intervals, Key, KeyRanges
from .logic import ReplicaLogic, cascading_references
from .merge import MAX_CONFLICT_DETAILS, Stage
from .models import Checkpoint, Conflict, CopyResult, SequenceFix, TableResult
from .plan import POLICIES, CopyError, TablePlan
from .stream import TID_RANGE_MIN_VERSION, TRAILER, Started, copy_in, copy_out, framed_rows, into_replica, page_ranges, pipe

FIRST_WIDTH = 4  # a table of up to this many batches is compared in one range
PROBE_FRACTION = 20  # a bigger table's first range is a probe of 1/20 of a batch
MAX_WIDTH = 16  # a range compared by checksum covers up to this many batches
KEYS_WIDTH = 8  # a range compared key by key covers this many batches
TRANSFER_ABOVE = 0.3  # fraction of differing rows above which a range is transferred whole, not by key

Progress = Callable[..., None]


class CopyConflict(CopyError):
    """The `fail` policy met keys whose rows differ; the batch was rolled back."""

    def __init__(self, message: str, table: str, conflicts: list[Conflict]):
        super().__init__(message)
        self.table = table
        self.conflicts = conflicts


@dataclass
class RunContext:
    """What every table of a run shares."""

    master: psycopg.Connection
    replica: psycopg.Connection
    result: CopyResult
    logic: ReplicaLogic
    pool: ThreadPoolExecutor
    replica_schema: Schema
    progress: Progress
    pooled_replica: bool = False
    dry_run: bool = False
    restart: bool = False
    incremental: bool = False
    checksum_skip: bool = True
    batch_bytes: int = 64 * 1024 * 1024
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    owned: set[str] = field(default_factory=set)  # tables a stopped copy of ours left running: checkpoint.owned
    crew: Any = None  # jobs.Crew under --jobs N: idle workers a heap-order copy may borrow
    baselines: dict[str, Baseline] = field(default_factory=dict)
    master_point: MasterPoint | None = None  # None: baselines are neither used nor recorded
    mask_key: str | None = None  # set in every master transaction of the run (masking.set_key)
    sequences: dict[str, list[SequenceUse]] = field(default_factory=dict)  # replica table key: what feeds it
    sequence_lock: threading.Lock = field(default_factory=threading.Lock)  # result.sequences, under --jobs

    def sequence_advanced(self, use: SequenceUse, edge: int) -> None:
        """One line per sequence in the result, with the furthest value it was set to (two workers may
        report in either order)."""
        with self.sequence_lock:
            before = next((f.value for f in self.result.sequences if f.sequence == use.key), None)
            if before is not None and (edge <= before if use.increment > 0 else edge >= before):
                return
            self.result.sequences = [f for f in self.result.sequences if f.sequence != use.key] + [SequenceFix(
                table=", ".join(sorted({f"{s}.{t}" for _k, s, t, _c in use.columns})),
                column=", ".join(sorted({c for *_rest, c in use.columns})), sequence=use.key, value=edge)]


def advance_sequences(ctx: RunContext, conn: psycopg.Connection, table: str) -> None:
    """Every sequence feeding ``table`` (a replica key) past that table's values (`advance_locked`)."""
    for use in ctx.sequences.get(table, []):  # sorted: workers lock in one order
        state = advance_locked(conn, use, table)
        if state is not None and state.edge is not None:
            ctx.sequence_advanced(use, state.edge)


def _may_displace(ctx: RunContext, tp: TablePlan) -> bool:
    """Whether rows holding a unique value a master row takes may be deleted (merge.Stage._displace):
    not where the delete would fire a replica foreign key's ON DELETE CASCADE / SET NULL / SET DEFAULT
    (foreign-key triggers fire unless session_replication_role is replica), which would change or
    delete other tables' rows; the unique violation then stops the batch, as a rerun can say."""
    if not tp.unique_r:
        return False
    return ctx.logic.replication_role or not cascading_references(ctx.replica_schema, tp.replica.key)


@dataclass
class Strategy:
    """How the next range is compared, learnt from the ranges before it.

    - ``checksum``: count and sum of row hashes on both sides; while ranges match, each next range is
      twice as wide (up to `MAX_WIDTH` intervals), so an unchanged table costs few round trips.
    - ``keys``: ranges differ (changes spread over the table): checksums would be wasted work, each
      range is compared key by key at once. A range found equal goes back to ``checksum``.
    - ``whole``: most rows of a range differ: transferring the range costs less than fetching row by
      row. Back to ``keys`` once few rows differ.
    """

    mode: str = "checksum"
    width: int = 1  # intervals (batches) per range

    def matched(self) -> None:
        self.width = min(self.width * 2, MAX_WIDTH)

    def differed(self, changed: int, rows: int) -> None:
        ratio = changed / rows if rows else 1.0
        if changed == 0:
            self.mode, self.width = "checksum", 1
        elif ratio > TRANSFER_ABOVE:
            self.mode, self.width = "whole", 1
        elif self.mode == "whole" and ratio > TRANSFER_ABOVE / 3:
            pass
        else:
            self.mode, self.width = "keys", KEYS_WIDTH


def first_strategy(iv: Intervals) -> Strategy:
    """A table of a few batches is compared in one range; a bigger one starts with one batch, so a
    table whose changes are everywhere wastes little on checksums before going key by key."""
    return Strategy(width=iv.total if iv.total <= FIRST_WIDTH else 1)


class TableCopy:
    def __init__(self, ctx: RunContext, tp: TablePlan):
        self.ctx = ctx
        self.m = ctx.master
        self.r = ctx.replica
        self.tp = tp
        self.res = TableResult(table=tp.label, replica_table=tp.replica_label,
                               policy=tp.policy.value if tp.policy else None, key=tp.key_r,
                               mode="incremental" if ctx.incremental else "full", masked_columns=tp.masked)
        self.ranges = KeyRanges(tp) if tp.keyed else None
        self.stage = Stage(self.r, tp, pooled=ctx.pooled_replica, displace=_may_displace(ctx, tp))
        self.cp: Checkpoint | None = None
        self.resuming = False  # self.cp is a stopped copy's (running): this run carries it on
        self.reconcile_until: Key | None = None  # the last key an interrupted earlier run committed
        self.reconcile_all = False  # resuming a heap-order copy: its committed rows are anywhere in key order
        self.replica_xmin: int | None = None  # replica snapshot xmin before this table's first write
        self.own_xids: list[int] = []  # the replica transactions that wrote the table (appended by threads)
        self.baseline_policy: str | None = None  # set by the paths that examine every row: they record a baseline
        self.deferred = False  # the table's indexes were dropped for the load, to be built when it ends

    # ------------------------------------------------------------------------------- checkpoints
    def _checkpoint(self, mode: str, *, last_key: Key | None, done: bool, was_empty: bool,
                    run_watermark: str | None = None, watermark: str | None = None,
                    conn: psycopg.Connection | None = None, queued: bool = False) -> None:
        """Upsert the table's checkpoint in the caller's transaction; ``queued``: no row written yet
        (a checkpoint that is `running` says the run wrote rows, which it then owns)."""
        if self.ctx.dry_run:
            return
        prev = self.cp if self.resuming else None
        res = self.res
        cp = Checkpoint(
            table_name=res.replica_table, master_table=res.table, run_id=self.ctx.result.run_id, mode=mode,
            policy=res.policy, status="done" if done else ("queued" if queued else "running"),
            key_columns=self.tp.key_r, last_key=last_key,
            rows_copied=res.rows_copied, inserted=res.inserted, updated=res.updated, deleted=res.deleted,
            batches=res.batches, was_empty=was_empty if prev is None else prev.was_empty,
            snapshot_at=self.ctx.result.snapshot_at, run_watermark=run_watermark,
            watermark=watermark if done else (self.cp.watermark if self.cp else None),
            started_at=prev.started_at if prev is not None else None)
        self.own_xids.append(checkpoint.save(conn or self.r, cp))
        if done:
            self.advance_sequences(conn or self.r)
            self._record_baseline(conn or self.r)

    def advance_sequences(self, conn: psycopg.Connection) -> None:
        """In the transaction of the table's last batch: every sequence feeding the table past the data,
        this transaction's rows included (setval does not wait for the commit). A run stopped once the
        table is done leaves none of its sequences behind its rows; one stopped before the commit leaves
        at most a gap. Only this table's columns are read: another table a sequence feeds may be locked
        by the worker loading it, and its own last transaction advances the sequence past its rows."""
        advance_sequences(self.ctx, conn, self.tp.replica.key)

    def _baselines_apply(self) -> bool:
        """Whether this table can have a baseline: its key compares with the master's, every master row
        is copied, and the run knows its snapshot's bounds."""
        tp, ctx = self.tp, self.ctx
        return (ctx.master_point is not None and self.replica_xmin is not None and tp.keyed and not tp.key_masked
                and not tp.filtered and not ctx.incremental and ctx.checksum_skip and not ctx.dry_run)

    def _fingerprint(self) -> str:
        assert self.ctx.master_point is not None
        return baseline.fingerprint(self.tp, self.ctx.master_point.origin, self.tp.master_storage, self.tp.replica_storage)

    def _record_baseline(self, conn: psycopg.Connection) -> None:
        """In the transaction of the table's last batch: what this sync vouches for, for the next one."""
        if self.baseline_policy is None or not self._baselines_apply():
            return
        if len(self.own_xids) > baseline.MAX_OWN_XIDS:
            baseline.forget(conn, self.res.replica_table)
            return
        assert self.ctx.master_point is not None and self.replica_xmin is not None
        baseline.save(conn, Baseline(
            table_name=self.res.replica_table, fingerprint=self._fingerprint(), policy=self.baseline_policy,
            master_xmin=self.ctx.master_point.xmin, replica_xmin=self.replica_xmin, own_xids=list(self.own_xids),
            run_id=self.ctx.result.run_id))

    @contextmanager
    def _write(self):
        """One replica transaction that writes into the table: the replica's triggers and rules that would
        fire are switched off inside it and back on before the commit (which the caller's block ends with)."""
        self.ctx.logic.disable(self.r, self.tp.replica.key)
        yield
        self.ctx.logic.restore(self.r, self.tp.replica.key)

    def _commit(self) -> None:
        if self.ctx.dry_run:
            self.r.rollback()
        else:
            self.r.commit()  # the batch and its checkpoint, atomically

    # ------------------------------------------------------------------------------- entry
    def run(self) -> TableResult:
        res, tp = self.res, self.tp
        t0 = time.monotonic()
        try:
            if tp.policy == Policy.REPLACE:
                keyless.replace(self)
            elif not tp.keyed:
                keyless.copy_keyless(self)
            else:
                self._keyed()
        except BaseException:
            res.status = "failed"
            if self.deferred:
                self.ctx.result.indexes_unbuilt.append(res.replica_table)
            res.seconds = round(time.monotonic() - t0, 3)
            self.ctx.result.tables.append(res)
            raise
        finally:
            self.stage.close()
        res.seconds = round(time.monotonic() - t0, 3)
        res.unchanged = max(res.rows_copied - res.inserted - res.updated, 0)
        if self.ctx.dry_run:
            res.status = "dry-run"
        self.ctx.result.tables.append(res)
        self.ctx.progress("end", res.table, result=res)
        return res

    def _defer_indexes(self, worth: bool) -> None:
        """Into an empty table of more than one batch: drop the indexes nothing else needs, to build them
        at the end of the load (`replicator.copy.indexes`)."""
        if worth:
            first = partial(self._checkpoint, "direct", last_key=None, done=False, was_empty=True, queued=True)
            self.deferred = indexes.defer(self.r, self.res.replica_table, self.tp.rident, first) > 0

    def _build_deferred(self, conn: psycopg.Connection | None = None) -> None:
        """In the transaction that ends the load, before its checkpoint says done."""
        if self.deferred:
            built = indexes.build(conn or self.r, self.res.replica_table, self.tp.rident)
            self.deferred = False
            if built:
                self.res.notes.append(indexes.built_note(built))

    def replica_has_rows(self, lo: Key | None = None, hi: Key | None = None) -> bool:
        if self.ranges is None:
            q = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(self.tp.rfrom)
            return bool(self.r.execute(q).fetchone()[0])
        rng, params = self.ranges.predicate("replica", lo, hi)
        q = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(self.tp.rfrom, rng)
        return bool(self.r.execute(q, params).fetchone()[0])

    def estimate_rows(self) -> int | None:
        if self.tp.rows_estimate is not None:
            return self.tp.rows_estimate
        row = self.m.execute(
            "SELECT sum(greatest(c.reltuples, 0))::bigint FROM pg_catalog.pg_class c "
            "WHERE c.relkind = 'r' AND (c.oid = %(t)s::regclass "
            "OR c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree(%(t)s::regclass)))",
            {"t": self.tp.mident.as_string(self.m)}).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def _keyed(self) -> None:
        tp, res, ctx = self.tp, self.res, self.ctx
        cp = ctx.checkpoints.get(tp.replica_label)
        owned = tp.replica_label in ctx.owned
        self.cp = None if ctx.dry_run else cp
        interrupted = self.resuming = cp is not None and not ctx.restart and not ctx.dry_run and cp.status == "running"
        empty = not self.replica_has_rows()
        if ctx.master_point is not None:  # before this run writes the table: see replicator.copy.baseline
            self.replica_xmin = int(self.r.execute(baseline.REPLICA_POINT).fetchone()[0])
        self.r.commit()
        policy = tp.policy
        if policy is None and owned:
            policy = Policy.MIRROR  # every replica row came from our copy into the empty table (a dry run plans so too)
        if interrupted:
            assert cp is not None
            res.resumed_after = cp.last_key
            if cp.policy and policy and cp.policy != policy.value:
                res.notes.append(f"the interrupted run used policy {cp.policy}; this run applies {policy.value}")
            if not empty and not ctx.incremental:
                self.reconcile_until = cp.last_key
                self.reconcile_all = cp.last_key is None
                res.notes.append(
                    "resumed an interrupted copy (run " + cp.run_id[:8] + "): the rows it committed were compared "
                    "with this run's snapshot and fixed where the master had changed since")
        if ctx.incremental:
            if not tp.cursor:
                raise CopyError(f"--incremental needs a cursor column: set [tables.{tp.master.name}] cursor = \"...\"")
            self._transfer_walk(policy, empty)
            return
        if empty and not ctx.dry_run:
            self.baseline_policy = baseline.EXACT
            self._direct()
            return
        if not empty and policy is None:
            raise CopyError(f"replica table {res.replica_table} is not empty: choose a policy with --policy ({POLICIES})")
        if tp.key_masked or not ctx.checksum_skip:
            if tp.key_masked:
                res.notes.append("masked key: every batch is transferred and matched on the masked key")
            self._transfer_walk(policy, empty)
        else:
            # (no policy: a dry run into an empty table, which records nothing)
            self.baseline_policy = policy.value if policy else None
            if not self._delta(policy):
                self._compare_walk(policy, empty)

    # ------------------------------------------------------------------------------- direct
    def _direct(self) -> None:
        """Into a table that was empty when the copy began: heap order, batches of whole pages."""
        tp, res = self.tp, self.res
        res.mode = "direct"
        self.ctx.progress("start", res.table, total=self.estimate_rows())
        res.notes.append("sequential read: the table was empty, so rows are copied in heap order, not key order")
        into = copy_in(tp.rident, tp.rcols, tp.fmt)
        if self.m.info.server_version < TID_RANGE_MIN_VERSION or not tp.binary:
            # (a text-format table is loaded in one transaction: nothing to gain)
            self._defer_indexes(tp.binary and (self.estimate_rows() or 0) > tp.batch_size)
            self._direct_framed(into)
            return
        assert tp.heaps is not None, "the pre-flight reads every table's heaps"
        batches = page_ranges(self.m, tp.heaps, tp.batch_size, self.ctx.batch_bytes)
        self._defer_indexes(len(batches) > 1)
        helpers = self._borrow(len(batches) - 1)
        if helpers:
            self._direct_shared(batches, into, helpers)
            return
        self._direct_ahead(batches, into)

    def _borrow(self, most: int) -> list:
        """Up to ``most`` idle workers (`--jobs`) to share this table's ranges with. None where triggers
        are switched off by name: that takes a table lock in every batch transaction, which would queue
        the connections one behind the other (session_replication_role needs no lock)."""
        if self.ctx.crew is None or most < 1 or self.ctx.logic.firing.get(self.tp.replica.key):
            return []
        return self.ctx.crew.borrow(most)

    def _direct_out(self, pr) -> tuple[sql.Composable, list]:
        """The master COPY of one page range, and its parameters."""
        tp = self.tp
        where, params = pr.predicate()
        select = sql.SQL("SELECT {e} FROM ONLY {t} WHERE {w}").format(
            e=sql.SQL(", ").join(tp.select_exprs), t=pr.relation, w=tp.mwhere(where))
        return copy_out(select, tp.fmt), params

    def _direct_ahead(self, batches: list, into: sql.Composable) -> None:
        """The page ranges one after the other on this table's connections, each range's master COPY
        started (by a thread of its own) as soon as the master has sent the last one, while the replica
        still takes that one in, checkpoints and commits: a distant master's round trip per batch
        overlaps the replica's work. Only the replica writes, batch after batch, as before."""
        res = self.res
        started: Started | None = None
        pending: Future | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="master-ahead") as ahead:
            try:
                started = Started(self.m, *self._direct_out(batches[0]))
                for i in range(len(batches)):
                    def start_next(i: int = i) -> None:
                        nonlocal pending
                        if i + 1 < len(batches):
                            pending = ahead.submit(Started, self.m, *self._direct_out(batches[i + 1]))

                    last = i == len(batches) - 1
                    with self._write():
                        rows = into_replica(started, self.r, into, start_next)
                        self._count_batch(rows, direct=True)
                        if last:
                            self._build_deferred()
                        self._checkpoint("direct", last_key=None, done=last, was_empty=True)
                    self._commit()
                    self.ctx.progress("batch", res.table, rows=rows, done=res.rows_copied)
                    if pending is not None:
                        started, pending = pending.result(), None
            except BaseException as e:
                # end (cancel) the master COPYs begun and not read to the end: the run stops here
                begun = [started]
                if pending is not None:
                    try:
                        begun.append(pending.result())
                    except BaseException:  # noqa: BLE001 - it never began; the first error is raised
                        pass
                for copy in begun:
                    try:
                        if copy is not None:
                            copy.close(e)  # a no-op for one already ended
                    except BaseException:  # noqa: BLE001 - the error that stopped the copy is raised
                        pass
                raise

    def _direct_shared(self, batches: list, into: sql.Composable, helpers: list) -> None:
        """The page ranges shared by this table's connections and borrowed workers' (all reading the
        run's snapshot). Each range commits with the checkpoint on its own replica session; commits
        take turns so the checkpoint's counts only grow. The checkpoint is marked done once every range
        is in: a run interrupted before that resumes by comparing, as any heap-order copy does."""
        res, crew = self.res, self.ctx.crew
        todo = list(reversed(batches))
        turn = threading.Lock()
        stop = threading.Event()
        res.notes.append(f"page ranges shared by {len(helpers) + 1} connections")

        def work(master: psycopg.Connection, replica: psycopg.Connection) -> None:
            while not stop.is_set():
                with turn:
                    if not todo:
                        return
                    pr = todo.pop()
                try:
                    self.ctx.logic.disable(replica, self.tp.replica.key)
                    rows = pipe(master, replica, *self._direct_out(pr), into)
                    checkpoint.take_turn(replica, res.replica_table)
                    with turn, provisional(res):
                        self._count_batch(rows, direct=True)
                        self._checkpoint("direct", last_key=None, done=False, was_empty=True, conn=replica)
                        self.ctx.logic.restore(replica, self.tp.replica.key)
                        replica.commit()  # a dry run never takes the direct path
                        done = res.rows_copied
                    self.ctx.progress("batch", res.table, rows=rows, done=done)
                except BaseException:
                    stop.set()
                    rollback_quietly(replica)
                    raise

        run_shared(crew, helpers, lambda: work(self.m, self.r), lambda w: work(w.ctx.master, w.ctx.replica),
                   stop.set)
        with self._write():
            self._build_deferred()
            self._checkpoint("direct", last_key=None, done=True, was_empty=True)
        self._commit()

    def _direct_framed(self, into: sql.Composable) -> None:
        """Masters before PostgreSQL 14 (no TID range scans), and text-format tables: one sequential COPY
        whose row messages are cut into batches; the binary framing is checked as it goes."""
        tp, res = self.tp, self.res
        if not tp.binary:
            # text COPY rows cannot be cut without parsing: one batch
            with self._write():
                rows = pipe(self.m, self.r, copy_out(tp.select(sql.SQL("true")), tp.fmt), [], into)
                self._count_batch(rows, direct=True)
                self._build_deferred()
                self._checkpoint("direct", last_key=None, done=True, was_empty=True)
            self._commit()
            return
        out = copy_out(tp.select(sql.SQL("true")), tp.fmt)
        n = tp.batch_size
        cm = dst = None
        rows = 0

        def finish(done: bool) -> None:
            nonlocal cm, dst, rows
            if cm is not None:
                dst.write(TRAILER)
                c, cm, dst = cm, None, None
                c.__exit__(None, None, None)
            self._count_batch(rows, direct=True)
            if done:
                self._build_deferred()
            self._checkpoint("direct", last_key=None, done=done, was_empty=True)
            self.ctx.logic.restore(self.r, tp.replica.key)
            self._commit()
            self.ctx.progress("batch", res.table, rows=rows, done=res.rows_copied)
            rows = 0

        with self.r.cursor() as rc:
            try:
                for header, row in framed_rows(self.m, out, [], len(tp.rcols)):
                    if cm is not None and rows >= n:
                        finish(False)
                    if cm is None:
                        self.ctx.logic.disable(self.r, tp.replica.key)
                        cm = rc.copy(into)
                        dst = cm.__enter__()
                        dst.write(header)
                    dst.write(row)
                    rows += 1
                if cm is None:
                    self.ctx.logic.disable(self.r, tp.replica.key)
                finish(True)
            except BaseException as e:
                if cm is not None:
                    try:
                        cm.__exit__(type(e), e, e.__traceback__)
                    except BaseException:  # noqa: BLE001 - the original error is what matters
                        pass
                raise

    def _count_batch(self, rows: int, *, direct: bool = False, skipped: int = 0) -> None:
        res = self.res
        res.rows_copied += rows
        res.batches += 1
        if direct:
            res.inserted += rows
            res.direct_batches += 1
        if skipped:
            res.skipped_batches += 1
            res.skipped_rows += skipped

    # ------------------------------------------------------------------------------- compare walk
    def _compare_walk(self, policy: Policy, was_empty: bool) -> None:
        tp, res, ranges = self.tp, self.res, self.ranges
        assert ranges is not None
        estimate = self.estimate_rows()
        self.ctx.progress("start", res.table, total=estimate)
        # A big table's first range is a small probe: where changes are everywhere, it differs at
        # once and the walk goes key by key having hashed little twice; where nothing changed it
        # matches and the ranges double from there.
        bounds = ranges.sample_boundaries(self.m, estimate, tp.batch_size, include=self.reconcile_until,
                                          probe=max(1, tp.batch_size // PROBE_FRACTION))
        # intervals up to the resume key were committed by an interrupted run: reconciled, never straddled
        prefix = (bounds.index(self.reconcile_until) + 1) if self.reconcile_until in bounds else 0
        iv = Intervals(bounds, prefix)
        helpers = [] if iv.total <= FIRST_WIDTH or self.ctx.dry_run else self._borrow(iv.total - 1)
        if helpers:
            self._walk_shared(policy, was_empty, iv, helpers)
            return
        comparer = Comparer(self.m, self.r, tp, ranges, self.ctx.pool, pooled=self.ctx.pooled_replica)
        try:
            self._walk(comparer, policy, was_empty, iv, first_strategy(iv))
        finally:
            comparer.close()

    def _walk(self, comparer: Comparer, policy: Policy, was_empty: bool, iv: Intervals, strategy: Strategy) -> None:
        """Walk the intervals of ``iv`` (each about one batch of master rows), in ranges whose width
        adapts to what the ranges before showed (``strategy``)."""
        while self._step(comparer, policy, was_empty, iv, strategy):
            pass
        self.res.last_key = None

    def _step(self, comparer: Comparer, policy: Policy, was_empty: bool, iv: Intervals, strategy: Strategy) -> bool:
        """Take the next range and bring it in line with the master; False once none is left."""
        claimed = iv.claim(strategy.width)
        if claimed is None:
            return False
        i, j = claimed
        if not self.replica_has_rows(iv.lo(i), iv.upper(j)):
            self.r.rollback()
            for x in range(i, j):  # straight, interval by interval (a batch each)
                if iv.stopped:  # another walk failed: each interval commits alone, so stop between them
                    break
                self._straight(iv, x, was_empty)
        else:
            self._compare_range(comparer, strategy, policy, iv, i, j, was_empty)
        return True

    @contextmanager
    def _range_batch(self, iv: Intervals, i: int, j: int, was_empty: bool):
        """One replica transaction writing intervals ``[i, j)``: triggers off, then (when the block
        ends) the rows fixed counted as reconciled where an interrupted run had been, the checkpoint,
        the commit. Walks commit in key order, so the range's upper key is where a rerun resumes."""
        res = self.res
        before = (res.inserted, res.updated, res.deleted)
        with self._write():
            yield
            self._reconciled(iv, i, before)
            last = j == iv.total
            # done: the whole key space is covered, there is no key to resume after
            self._checkpoint("full", last_key=None if last else iv.upper(j), done=last, was_empty=was_empty)
        self._commit()
        iv.committed(i, j)

    def _reconciled(self, iv: Intervals, i: int, before: tuple[int, int, int]) -> None:
        res = self.res
        ins, upd, dele = res.inserted - before[0], res.updated - before[1], res.deleted - before[2]
        if i < iv.prefix:
            res.reconciled += ins + upd + dele
        elif self.reconcile_all:  # a heap-order copy's rows are anywhere: what it lacked is not a fix
            res.reconciled += upd + dele

    def _batch_done(self, rows: int) -> None:
        self.ctx.progress("batch", self.res.table, rows=rows, done=self.res.rows_copied)

    def _straight(self, iv: Intervals, x: int, was_empty: bool) -> None:
        """An interval the replica has no row in: COPY it straight, in one batch."""
        tp, ranges = self.tp, self.ranges
        assert ranges is not None
        rng, params = ranges.predicate("master", iv.lo(x), iv.upper(x + 1))
        with self._range_batch(iv, x, x + 1, was_empty):
            if self.ctx.dry_run:
                rows = self.m.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(tp.mfrom, tp.mwhere(rng)),
                                      params).fetchone()[0]
            else:
                rows = pipe(self.m, self.r, copy_out(tp.select(rng), tp.fmt), params,
                            copy_in(tp.rident, tp.rcols, tp.fmt))
            self._count_batch(rows, direct=True)
        self._batch_done(rows)

    def _compare_range(self, comparer: Comparer, strategy: Strategy, policy: Policy, iv: Intervals,
                       i: int, j: int, was_empty: bool) -> None:
        lo, upper = iv.lo(i), iv.upper(j)
        mode = strategy.mode  # walks sharing the strategy may change it meanwhile
        if mode == "checksum":
            (mn, ms), (rn, rs) = comparer.checksums(lo, upper)
            self.r.rollback()  # the checksum read nothing that needs keeping
            if (mn, ms) == (rn, rs):
                strategy.matched()
                with self._range_batch(iv, i, j, was_empty):
                    self._count_batch(mn, skipped=mn)
                self._batch_done(mn)
                return
        with self._range_batch(iv, i, j, was_empty):
            if mode == "whole":
                rows, changed = self._transfer_range(policy, lo, upper)
            else:
                rows, changed = self._diff_range(comparer, policy, lo, upper)
            strategy.differed(changed, rows)
            self._count_batch(rows)
        self._batch_done(rows)

    def _walk_shared(self, policy: Policy, was_empty: bool, iv: Intervals, helpers: list) -> None:
        """The intervals walked by this table's connections and borrowed workers' at once (all reading
        the run's snapshot), each walk taking the next range not handed out. The walks learn from one
        `Strategy`, and the helpers begin once the first range (the probe) has shown whether ranges
        differ, so none of them hashes a whole batch for a checksum the probe would have ruled out.
        Ranges commit in whatever order they end, taking turns; each commit's checkpoint resumes after
        the intervals committed without a gap (`Intervals.through`). The checkpoint is marked done once
        every range is in."""
        crew = self.ctx.crew
        turn = threading.Lock()
        # one strategy for every walk, unlocked: concurrent updates can only change how the next range is
        # compared (its width, checksum or keys), and every way compares it exactly
        strategy = first_strategy(iv)
        iv.walks = len(helpers) + 1
        self.res.notes.append(f"key ranges compared on {len(helpers) + 1} connections")

        failed: list[SharedWalk] = []

        def walk(ctx: RunContext, probed: threading.Event | None = None) -> None:
            share = SharedWalk(self, ctx, turn)
            comparer = Comparer(share.m, share.r, self.tp, share.ranges, ctx.pool, pooled=ctx.pooled_replica)
            try:
                if probed is not None:
                    share._step(comparer, policy, was_empty, iv, strategy)
                    probed.set()
                share._walk(comparer, policy, was_empty, iv, strategy)
            except BaseException:
                iv.stop()
                failed.append(share)
                rollback_quietly(share.r)
                raise
            finally:
                comparer.close()
                share.stage.close()

        probed = threading.Event()
        try:
            run_shared(crew, helpers, lambda: walk(self.ctx, probed), lambda w: walk(w.ctx), iv.stop, start=probed)
        finally:
            for share in failed:  # the conflicts a failed range found (its writes were rolled back)
                share.merge(("conflicts",))
        with self._write():
            self._checkpoint("full", last_key=None, done=True, was_empty=was_empty)
        self._commit()
        self.res.last_key = None

    def _diff_range(self, comparer: Comparer, policy: Policy, lo: Key | None, upper: Key | None) -> tuple[int, int]:
        """Compare the range key by key and fetch exactly what differs. Returns (master rows, rows that
        differ, replica-only keys included)."""
        diff = comparer.key_diff(lo, upper, want_changed=self._wants_changed(policy))
        self.res.diffed_ranges += 1
        return diff.master_rows, self._apply_diff(comparer, policy, diff, comparer.delete_replica_only)

    def _wants_changed(self, policy: Policy) -> bool:
        return policy in (Policy.MASTER_WINS, Policy.MIRROR, Policy.FAIL) or self.ctx.dry_run

    def _apply_diff(self, comparer: Comparer, policy: Policy, diff: KeyDiff, delete_replica_only: Callable[[], int]) -> int:
        """Apply a key-by-key comparison under the policy: fetch the master rows missing or differing,
        delete (mirror) the keys the master lacks. Returns the number of keys that differ."""
        res = self.res
        updates = policy in (Policy.MASTER_WINS, Policy.MIRROR)
        details = policy == Policy.FAIL or (self.ctx.dry_run and policy in (Policy.KEEP_REPLICA, None))
        stage = self.stage.current()
        if diff.changed and details:
            comparer.fetch_by_key(diff.changed[:MAX_CONFLICT_DETAILS], stage)
            n, found = self.stage.conflicts(stage)
            self._conflicts(len(diff.changed), found, policy)
            self.r.execute(sql.SQL("TRUNCATE {}").format(stage))
        differing = len(diff.missing) + len(diff.changed) + diff.replica_only
        if self.ctx.dry_run:
            res.inserted += len(diff.missing)
            res.updated += len(diff.changed) if updates else 0
            res.deleted += diff.replica_only if policy == Policy.MIRROR else 0
            return differing
        wanted = diff.missing + (diff.changed if updates else [])
        if wanted:
            res.fetched_by_key += comparer.fetch_by_key(wanted, stage)
            self.stage.apply(stage, policy, res, known_different=True)
        if policy == Policy.MIRROR and diff.replica_only:
            res.deleted += delete_replica_only()
        return differing

    # ------------------------------------------------------------------------------- since the baseline
    def _delta(self, policy: Policy) -> bool:
        """Compare only the rows either side changed since the table's last sync (`replicator.copy.delta`),
        in one transaction with the checkpoint and the new baseline. False: no usable baseline, or
        deletions the baseline cannot place; the caller compares the whole table."""
        tp, res, ctx = self.tp, self.res, self.ctx
        b = ctx.baselines.get(tp.replica_label)
        if b is None or ctx.restart or not self._baselines_apply():
            return False
        assert ctx.master_point is not None and self.replica_xmin is not None
        why = baseline.usable(b, self._fingerprint(), policy.value, ctx.master_point, self.replica_xmin)
        if why:
            res.notes.append(f"compared in full: {why}")
            return False
        assert self.ranges is not None
        delta = Delta(self.m, self.r, tp, self.ranges, ctx.pool, b)
        comparer = Comparer(self.m, self.r, tp, self.ranges, ctx.pool, pooled=ctx.pooled_replica)
        fallback = None
        stage = self.stage.current()

        def apply(diff: KeyDiff, replica_only: list[Key]) -> None:
            self._apply_diff(comparer, policy, diff, lambda: delta.delete(replica_only))
            self.r.execute(sql.SQL("TRUNCATE {}").format(stage))  # the next chunk's rows only

        try:
            with self._write():
                ms, rs = delta.scan()
                fallback = delta.too_many(ms, rs)
                if not fallback:
                    out = delta.compare(ms, rs, apply)
                    if not out.complete:
                        fallback = "rows were deleted (or are kept only on the replica) all over the table since the last sync"
                    else:
                        res.mode, res.candidates = "delta", out.candidates
                        deleted = f", and {out.deleted_since} deleted on one side" if out.deleted_since else ""
                        res.notes.append(f"compared only the {out.candidates} key(s) changed on either side since the "
                                         f"last sync (run {b.run_id[:8]}){deleted}")
                        # the rows vouched for on both sides: compared by the baseline, not transferred
                        self._count_batch(out.master_rows, skipped=out.master_rows - out.master_candidates)
                        self._checkpoint("full", last_key=None, done=True, was_empty=False)
            if fallback:
                self.r.rollback()  # whatever a chunk wrote goes too
                res.inserted = res.updated = res.deleted = res.fetched_by_key = res.conflicts = 0
                res.notes.append(f"compared in full: {fallback}")
                return False
            self._commit()
        finally:
            comparer.close()
        # one bar for the table: a fallback's full comparison starts its own
        ctx.progress("start", res.table, total=res.rows_copied)
        ctx.progress("batch", res.table, rows=res.rows_copied, done=res.rows_copied)
        return True

    def _transfer_range(self, policy: Policy, lo: Key | None, upper: Key | None,
                        extra: tuple[sql.Composable, list] = (sql.SQL("true"), [])) -> tuple[int, int]:
        """Transfer the range's master rows into the stage and merge them. Returns (rows, rows written)."""
        tp, res, ranges = self.tp, self.res, self.ranges
        assert ranges is not None
        stage = self.stage.current()
        rng, params = ranges.predicate("master", lo, upper)
        where = sql.SQL("{} AND {}").format(rng, extra[0])
        rows = pipe(self.m, self.r, copy_out(tp.select(where), tp.fmt), params + extra[1],
                    copy_in(stage, tp.rcols, tp.fmt))
        if policy == Policy.FAIL or (self.ctx.dry_run and policy in (Policy.KEEP_REPLICA, None)):
            n, found = self.stage.conflicts(stage)
            self._conflicts(n, found, policy)
        before = res.inserted + res.updated + res.deleted
        if self.ctx.dry_run:
            ins, upd = self.stage.count_changes(stage, policy)
            res.inserted += ins
            res.updated += upd
        else:
            self.stage.apply(stage, policy, res)
        deletes = policy == Policy.MIRROR and not tp.key_masked and not self.ctx.incremental
        if deletes:
            rrng, rparams = ranges.predicate("replica", lo, upper, "t")
            if self.ctx.dry_run:
                res.deleted += self.r.execute(sql.SQL(
                    "SELECT count(*) FROM {t} t WHERE {w} AND NOT EXISTS (SELECT 1 FROM {s} s WHERE {j})").format(
                    t=tp.rfrom, w=rrng, s=stage, j=self.stage.join()), rparams).fetchone()[0]
            else:
                res.deleted += self.stage.delete_missing(stage, rrng, rparams)
        return rows, res.inserted + res.updated + res.deleted - before

    def _conflicts(self, n: int, found: list[Conflict], policy: Policy | None) -> None:
        if not n:
            return
        res = self.res
        res.conflicts += n
        room = MAX_CONFLICT_DETAILS - len(res.conflict_details)
        res.conflict_details += found[:max(room, 0)]
        if policy == Policy.FAIL and not self.ctx.dry_run:
            self.r.rollback()
            keys = "; ".join(", ".join(f"{k}={v}" for k, v in c.key.items()) + " (" + ", ".join(
                d.column for d in c.columns) + ")" for c in found[:3])
            raise CopyConflict(f"{n} conflicting row(s) in {res.table} under policy fail; batch rolled back; e.g. {keys}",
                               res.table, found)

    # ------------------------------------------------------------------------------- transfer walk
    def _transfer_walk(self, policy: Policy | None, was_empty: bool) -> None:
        """Batch by batch, every batch transferred into the stage and merged: `--incremental` (the
        master's rows filtered by the cursor) and masked keys (not comparable with the master's)."""
        tp, res, ranges = self.tp, self.res, self.ranges
        assert ranges is not None
        since = self.cp.watermark if (self.ctx.incremental and self.cp) else None
        if self.ctx.incremental and since is None:
            res.notes.append("no watermark yet: full copy")
        if self.ctx.incremental and policy == Policy.MIRROR:
            res.notes.append("mirror under --incremental does not delete (deletions are not visible by cursor)")
        if not was_empty and policy is None:
            raise CopyError(f"replica table {res.replica_table} is not empty: choose a policy with --policy ({POLICIES})")
        run_watermark = None
        if tp.cursor:
            run_watermark = self.m.execute(sql.SQL("SELECT max({c})::text FROM {t} WHERE {w}").format(
                c=sql.Identifier(tp.cursor), t=tp.mfrom, w=tp.where), []).fetchone()[0]  # [] : its % doubled
        res.watermark = run_watermark
        extra = self._cursor_pred(since)
        mode = "incremental" if self.ctx.incremental else "full"
        self.ctx.progress("start", res.table, total=self.estimate_rows() if not since else None)
        lo: Key | None = None
        while True:
            hi, more = ranges.boundary(self.m, lo, tp.batch_size, extra=extra)
            upper = hi if more else None
            with self._write():
                if hi is None and not (policy == Policy.MIRROR and mode == "full" and not tp.key_masked):
                    rows = 0
                elif not tp.key_masked and not self.replica_has_rows(lo, upper):
                    rng, params = ranges.predicate("master", lo, upper)
                    where = sql.SQL("{} AND {}").format(rng, extra[0])
                    if self.ctx.dry_run:
                        rows = self.m.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(tp.mfrom, tp.mwhere(where)),
                                              params + extra[1]).fetchone()[0]
                    else:
                        rows = pipe(self.m, self.r, copy_out(tp.select(where), tp.fmt),
                                    params + extra[1], copy_in(tp.rident, tp.rcols, tp.fmt))
                    res.inserted += rows
                    res.direct_batches += 1
                else:
                    rows, _ = self._transfer_range(policy, lo, upper, extra)
                res.rows_copied += rows
                res.batches += 1
                if hi is not None:
                    lo = hi
                self._checkpoint(mode, last_key=lo, done=not more, was_empty=was_empty,
                                 run_watermark=run_watermark, watermark=run_watermark)
            self._commit()
            self.ctx.progress("batch", res.table, rows=rows, done=res.rows_copied)
            if not more:
                break
        res.last_key = lo

    def _cursor_pred(self, since: str | None) -> tuple[sql.Composable, list]:
        tp = self.tp
        if not since or not tp.cursor:
            return sql.SQL("true"), []
        col = sql.Identifier(tp.cursor)
        typ = tp.cursor_type or "text"
        if "timestamp" in typ or typ == "date":
            return (sql.SQL("{} >= %s::{} - make_interval(secs => %s)").format(col, sql.SQL(typ)),
                    [since, tp.cfg.lag_seconds])
        return sql.SQL("{} >= %s::{}").format(col, sql.SQL(typ)), [since]


def run_shared(crew: Any, helpers: list, mine: Callable[[], None], theirs: Callable[[Any], None],
               stop: Callable[[], None], start: threading.Event | None = None) -> None:
    """Run ``mine`` on this thread and ``theirs(worker)`` on a thread for each borrowed worker (once
    ``start`` is set, when given); any failure calls ``stop`` so that no more work is taken. Each worker
    goes back to the crew as soon as its part ends, marked if it failed (its master transaction may be
    aborted: no table must take it). The first error is raised once every part has ended."""
    gate = start or threading.Event()
    if start is None:
        gate.set()

    def helper(w) -> None:
        ok = False
        try:
            gate.wait()
            theirs(w)
            ok = True
        except BaseException:
            stop()
            raise
        finally:
            crew.put(w, failed=not ok)

    error: BaseException | None = None
    futures: list[Future] = []
    with ThreadPoolExecutor(max_workers=len(helpers), thread_name_prefix="shared") as pool:
        try:
            for w in helpers:
                futures.append(pool.submit(helper, w))
            mine()
        except BaseException as e:  # noqa: BLE001 - raised below, after the helpers stopped
            error = e
            stop()
        finally:
            gate.set()
            for w in helpers[len(futures):]:  # never started
                crew.put(w)
        error = settle(futures, error)
    if error is not None:
        raise error


@contextmanager
def provisional(res: TableResult) -> Iterator[None]:
    """Counts added to ``res`` inside the block are taken back if it fails (its commit did not happen):
    the walks still running write the table's checkpoint from them."""
    kept = {name: getattr(res, name) for name in COUNTS}
    try:
        yield
    except BaseException:
        for name, value in kept.items():
            setattr(res, name, value)
        raise


def rollback_quietly(conn: psycopg.Connection) -> None:
    """Roll back after a failure without letting a second error (a lost connection) hide the first."""
    try:
        if not conn.closed:
            conn.rollback()
    except Exception:  # noqa: BLE001 - the error being raised says what went wrong
        pass


def settle(futures: list[Future], error: BaseException | None = None) -> BaseException | None:
    """Wait for every future; returns the first error: ``error`` if given, else the first one raised."""
    for f in futures:
        try:
            f.result()
        except BaseException as e:  # noqa: BLE001 - the first error is the one raised
            error = error or e
    return error


#: What a walk counts, added up over the walks sharing a table.
COUNTS = ("rows_copied", "inserted", "updated", "deleted", "reconciled", "conflicts", "batches", "direct_batches",
          "skipped_batches", "skipped_rows", "diffed_ranges", "fetched_by_key")


class SharedWalk(TableCopy):
    """One of the walks sharing a table's intervals (`TableCopy._walk_shared`), on connections of its
    own. It counts into a result of its own, added to the table's as each of its ranges commits, and
    writes the table's checkpoint, taking turns with the other walks so counts and resume key only grow."""

    def __init__(self, table: TableCopy, ctx: RunContext, turn: threading.Lock):
        super().__init__(ctx, table.tp)
        self.table, self.turn = table, turn
        self.reconcile_all = table.reconcile_all
        self.done_rows = 0

    def merge(self, names: tuple[str, ...] = COUNTS) -> None:
        """Move what this walk counted since the last merge into the table's result (under ``turn``)."""
        into, mine = self.table.res, self.res
        for name in names:
            setattr(into, name, getattr(into, name) + getattr(mine, name))
            setattr(mine, name, 0)
        room = MAX_CONFLICT_DETAILS - len(into.conflict_details)
        into.conflict_details += mine.conflict_details[:max(room, 0)]
        into.notes += [n for n in mine.notes if n not in into.notes]
        mine.conflict_details, mine.notes = [], []

    @contextmanager
    def _range_batch(self, iv: Intervals, i: int, j: int, was_empty: bool):
        res, key = self.res, self.tp.replica.key
        before = (res.inserted, res.updated, res.deleted)
        self.ctx.logic.disable(self.r, key)
        yield
        self._reconciled(iv, i, before)
        # the server's turn first: a wait inside the in-process one (a deferred check at the commit)
        # is then one the server sees, and a deadlock it can detect
        checkpoint.take_turn(self.r, self.res.replica_table)
        with self.turn, provisional(self.table.res):
            self.merge()  # the checkpoint committed with the range carries its counts
            # never "done": the table's copy marks that once every walk has ended
            resume = iv.resume_key(iv.through_with(i, j))
            self.table._checkpoint("full", last_key=resume, done=False, was_empty=was_empty, conn=self.r)
            self.ctx.logic.restore(self.r, key)
            self.r.commit()  # a dry run never shares its walk
            iv.committed(i, j)
            self.done_rows = self.table.res.rows_copied

    def _batch_done(self, rows: int) -> None:
        self.ctx.progress("batch", self.table.res.table, rows=rows, done=self.done_rows)


def snapshot_time(master: psycopg.Connection) -> datetime:
    return master.execute("SELECT now()").fetchone()[0]
