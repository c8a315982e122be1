"""`replicator sync`: the whole job from the config, for a person or a cron job.

analyze → migrate (safe steps, and data-dependent ones whose pre-check proved the replica's rows fit;
the others and destructive steps reported, applied only with ``allow_destructive``; see
:func:`sync_steps`) → copy of the selected tables under their policies → verify, on one pair of
connections checked once (identity), with one introspection of each side, one guard and its audit,
one summary and one report (``reports/sync-<stamp>.md``).

**Nothing done twice, nothing written for nothing.** Before copying, each table's content is compared
by one checksum per side, in one snapshot: `count(*)` and the sum of row hashes (``replicator.rowhash``,
the meaning of "equal" copy and verify share) over exactly what copy would write (masked columns as
masked, renamed columns by their replica name, the master rows through the table's `where` or subset).
A table is copied only when they differ, unless the difference is the one its policy keeps on purpose
and nothing moved since the last sync: under `master-wins` and `keep-replica` the replica may hold
rows of its own, so the checksums of both sides after each copy are stored on the replica
(`_replicator.sync_state`) and a table whose two checksums are still those is in line. So a sync after
which nothing changed on either side sends the replica no write at all (not even a checkpoint), and
its time is the introspection, one checksum query per side and verify.

Safe by construction: the stored state pairs the master's checksum taken *before* the copy with the
replica's taken *after* it, so a master change that lands while the copy runs shows up as a
different master checksum at the next sync. A change on the replica made during the copy by someone
else could go unnoticed until the table changes on the master; `verify --deep` sees it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field

from . import identity
from .analyze import AnalyzeOptions, Sessions, config_renames, scoped, selection_note
from .config import Config, Policy
from .connect import LIFT_TIMEOUTS_LOCALLY, batch, describe, redact, statements_alone
from .copy import CopyResult, copy_tables
from .copy import checkpoint, indexes
from .copy.masking import set_key
from .copy.plan import TablePlan, plan_table
from .errors import ReplicatorError
from .guard import MasterGuard
from .introspect import Schema, Table, introspect
from .introspect.models import Table as TableModel
from .migrate import MigrationError, apply_steps, backup
from .plan import Plan, Step, build_plan, run_prechecks
from .report import md_table, utc_stamp, write_text
from .rowhash import RENDER_SETTINGS, follow_sql, open_pinned_snapshot, range_checksum, render_settings_query
from .selection import Selection
from .sequences import advance_locked, sequence_state, sequence_uses
from .subset import Closure, Subset
from .verify import VerifyReport
from .verify.render import render_markdown as verify_markdown
from .verify.runner import Reuse, run_verify

#: Policies under which the replica may differ from the master on purpose (rows of its own).
TOLERANT = frozenset({Policy.MASTER_WINS, Policy.KEEP_REPLICA})

STATE_DDL = """
CREATE TABLE IF NOT EXISTS _replicator.sync_state (
    table_name    text PRIMARY KEY,
    compared      text NOT NULL,
    master_rows   bigint NOT NULL,
    master_sum    numeric NOT NULL,
    replica_rows  bigint NOT NULL,
    replica_sum   numeric NOT NULL,
    synced_at     timestamptz NOT NULL DEFAULT now()
)
"""

RUN_DDL = """
CREATE TABLE IF NOT EXISTS _replicator.sync_run (
    id          int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    run_id      text NOT NULL,
    command     text NOT NULL,
    status      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
)
"""

CACHE_DDL = """
CREATE TABLE IF NOT EXISTS _replicator.schema_cache (
    side       text PRIMARY KEY,
    digest     text NOT NULL,
    scope      text NOT NULL,
    schema     text NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
)
"""

#: One sync per replica at a time (a cron job that overlaps the previous run): a session advisory
#: lock, held on the run's replica connection; it goes with the session, so `status` can tell a sync
#: that was killed (its record says running, the lock is free) from one that runs.
LOCK_KEY = "hashtextextended('replicator sync', 0)"

Progress = Callable[[str], None]


class SyncOptions(BaseModel):
    tables: list[str] = Field(default_factory=list)  # --table (replaces the config's include)
    exclude: list[str] = Field(default_factory=list)  # --exclude (added to the config's)
    subset: list[str] = Field(default_factory=list)  # --subset (replaces the config's [subset] start)
    with_referencing: bool | None = None
    allow_destructive: bool = False
    policy: Policy | None = None  # --policy, as for copy
    deep: bool = False  # verify --deep
    require_readonly_role: bool = False
    command: str = "replicator sync"  # how to run this sync again (for `status`), without secrets


Fingerprint = tuple[int, int]  # (rows, sum of row hashes)


class TableSync(BaseModel):
    """One line of the summary."""

    table: str
    action: Literal["copied", "in line", "not copied", "failed"]
    reason: str = ""
    policy: str | None = None
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0  # rows not written: equal on both sides, or kept as they are by the policy
    seconds: float = 0.0


class SyncResult(BaseModel):
    started_at: datetime
    finished_at: datetime | None = None
    seconds: float = 0.0
    master: str
    replica: str
    selection: str | None = None
    subset: str | None = None
    subset_rows: dict[str, int | None] = Field(default_factory=dict)
    applied: list[dict] = Field(default_factory=list)  # {"step", "object", "sql"}
    skipped: list[dict] = Field(default_factory=list)  # steps left out, with why
    plan_notes: list[str] = Field(default_factory=list)
    backup_dir: str | None = None
    tables: list[TableSync] = Field(default_factory=list)
    copy_run: str | None = None  # the copy's run id, when one ran
    sequences: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    verify: VerifyReport | None = None
    error: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    audit: list[dict] = Field(default_factory=list)
    report: str | None = None

    @property
    def in_line(self) -> bool:
        return (self.error is None and self.verify is not None and self.verify.ok
                and all(t.action in ("copied", "in line") for t in self.tables))

    @property
    def exit_code(self) -> int:
        """0 in line; 1 differences remain; 2 error."""
        if self.error is not None:
            return 2
        return 0 if self.in_line else 1


# -------------------------------------------------------------------------------------------------
# the run


def run_sync(cfg: Config, out_dir: Path, opts: SyncOptions | None = None, progress: Progress | None = None,
             copy_progress: Any = None) -> SyncResult:
    """Bring the replica in line with the master; see the module docstring. Raises `ReplicatorError`
    for bad input and connection problems found before the run starts (URLs, identities, another
    sync running); an error after that is in the result (``error``, exit code 2), with what the run
    did until then, and the report is written either way."""
    opts = opts or SyncOptions()
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    guard = MasterGuard()
    aopts = AnalyzeOptions(tables=opts.tables, exclude=opts.exclude, key_overlap=False)
    selection = Selection.from_config(cfg, opts.tables, opts.exclude)
    subset = Subset.from_options(cfg, opts.subset, opts.with_referencing)
    s = Sessions(cfg, guard)
    res = SyncResult(started_at=datetime.now(timezone.utc), master=redact(s.master_url), replica=redact(s.replica_url),
                     subset=subset.describe() if subset else None)
    run = _Run(cfg, out_dir, opts, s, res, selection, subset, say, copy_progress)
    try:
        run.lock()
        try:
            run.analyze_and_migrate(aopts)
            run.copy()
            run.migrate_after_copy()
            run.refresh_matviews()
            run.verify()
            run.store_cache()
        except ReplicatorError as e:
            # reported (one line, exit code 2) with whatever the run did until then
            res.error = str(e).splitlines()[0] if str(e) else type(e).__name__
        run.finish()
    finally:
        s.close()
        res.audit = guard.summary()
        res.finished_at = datetime.now(timezone.utc)
        res.seconds = round(time.perf_counter() - t0, 3)
    res.report = str(write_text(out_dir / "reports" / f"sync-{utc_stamp(res.started_at)}.md", sync_markdown(res)))
    return res


class _Run:
    def __init__(self, cfg: Config, out_dir: Path, opts: SyncOptions, s: Sessions, res: SyncResult,
                 selection: Selection, subset: Subset | None, say: Progress, copy_progress: Any):
        self.cfg, self.out_dir, self.opts, self.s, self.res = cfg, out_dir, opts, s, res
        self.selection, self.subset, self.say, self.copy_progress = selection, subset, say, copy_progress
        self.wrote = False  # the run record is written before the first write
        self.master: Schema | None = None
        self.replica: Schema | None = None
        self.full_master: Schema | None = None
        self.full_replica: Schema | None = None
        self.copy_cfg = cfg
        self.recheck: list[Step] = []  # held-back steps to check again after the copy
        self.written: list[str] = []  # replica tables whose rows the copy changed
        self.plan: Plan | None = None
        self.bdir: Path | None = None
        self.t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.res.timings[name] = round(now - self.t, 3)
        self.t = now

    # -- bookkeeping on the replica ----------------------------------------------------------------

    def lock(self) -> None:
        r = self.s.replica
        with r.transaction():
            got = r.execute(f"SELECT pg_try_advisory_lock({LOCK_KEY})").fetchone()[0]
        if not got:
            raise ReplicatorError("another replicator sync is running against this replica; wait for it to finish "
                                  "(replicator status shows it)")

    def before_first_write(self) -> None:
        """Mark the replica (identity) and record the run, once, right before the first write."""
        if self.wrote:
            return
        self.wrote = True
        r = self.s.replica
        identity.mark_replica(r, self.s.identity)
        with r.transaction():
            r.execute(RUN_DDL)
            r.execute("INSERT INTO _replicator.sync_run (id, run_id, command, status, started_at, finished_at) "
                      "VALUES (1, %s, %s, 'running', now(), NULL) ON CONFLICT (id) DO UPDATE SET run_id = EXCLUDED.run_id, "
                      "command = EXCLUDED.command, status = 'running', started_at = now(), finished_at = NULL",
                      (self.res.started_at.isoformat(), self.opts.command))

    def finish(self) -> None:
        if not self.wrote:
            return
        r = self.s.replica
        if r.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            r.rollback()
        with r.transaction():
            r.execute("UPDATE _replicator.sync_run SET status = %s, finished_at = now()",
                      ("done" if self.res.error is None else "failed",))

    # -- 1. analyze, 2. migrate --------------------------------------------------------------------

    def read_schemas(self) -> None:
        """Both schemas: from the cache on the replica when the side's catalog digest is the one they
        were read with, else introspected (in the same snapshot as the digest); both sides at once."""
        from concurrent.futures import ThreadPoolExecutor

        s, cfg = self.s, self.cfg
        self.cache = load_cache(s.replica)
        self.scope = cache_scope(cfg)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-replica") as pool:
            rf = pool.submit(read_side, s.replica, "replica", cfg, self.cache.get("replica"), self.scope)
            master, m_digest, m_cached = read_side(s.master, "master", cfg, self.cache.get("master"), self.scope)
            replica, r_digest, r_cached = rf.result()
        if absent := master.absent_schemas():
            raise ReplicatorError(f"schema {', '.join(absent)} does not exist on the master")
        self.full_master, self.full_replica = master, replica
        self.digests = {"master": m_digest, "replica": r_digest}
        self.res.notes += [f"{side} schema read from the cache (catalog unchanged since it was introspected)"
                           for side, hit in (("master", m_cached), ("replica", r_cached)) if hit]

    def store_cache(self) -> None:
        """Keep both schemas with their catalog digests on the replica, for the next sync. When this run
        wrote to the replica, its catalogs may have moved since they were read (replicator's own tables,
        a foreign key a copy dropped and re-added): the replica is read again first, digest and schema
        in one snapshot, so a stored digest always describes the stored schema."""
        def stale() -> list[str]:
            return [side for side in ("master", "replica")
                    if self.cache.get(side, ("", "", ""))[:2] != (self.digests[side], self.scope)]

        if not stale() and not self.wrote:
            return  # a sync that found everything in line and cached writes nothing
        self.before_first_write()
        r = self.s.replica
        if r.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            r.rollback()
        with r.transaction():
            r.execute(CACHE_DDL)
        self.full_replica, self.digests["replica"], _ = read_side(r, "replica", self.cfg, None, self.scope)
        schemas = {"master": self.full_master, "replica": self.full_replica}
        with r.transaction():
            for side in stale():
                r.execute("INSERT INTO _replicator.schema_cache (side, digest, scope, schema) VALUES (%s, %s, %s, %s) "
                          "ON CONFLICT (side) DO UPDATE SET digest = EXCLUDED.digest, scope = EXCLUDED.scope, "
                          "schema = EXCLUDED.schema, stored_at = now()",
                          (side, self.digests[side], self.scope, schemas[side].model_dump_json()))

    def analyze_and_migrate(self, aopts: AnalyzeOptions) -> None:
        s, cfg = self.s, self.cfg
        self.say("analyze: reading both schemas")
        self.read_schemas()
        self.master, self.replica = scoped(cfg, aopts, self.full_master, self.full_replica)
        self.res.selection = selection_note(cfg, aopts, self.master)
        plan = build_plan(self.master, self.replica, config_renames(cfg), managed=cfg.managed)
        run_prechecks(plan, s.replica)
        self.res.plan_notes = plan.notes + [f"not handled: {u}" for u in plan.unsupported]
        self.lap("analyze")
        main, later, self.res.skipped, self.recheck = sync_steps(plan, self.opts.allow_destructive)
        self.plan, self.bdir = plan, None
        if main or later:
            self.say(f"migrate: {len(main) + len(later)} statement(s)")
            bdir = self.back_up(plan, main + later)
            applied = list(main)
            if main:
                apply_steps(s.replica, main)
            failed: set[int] = set()
            for st in later:  # each on its own: one PostgreSQL refuses is reported, the others stand
                if failed & set(st.requires):
                    failed.add(st.n)
                    self.res.skipped.append({"step": st.n, "object": st.object, "sql": st.sql,
                                             "reason": "needs a step PostgreSQL refused"})
                    continue
                refused = self.apply_alone(st)
                if refused is None:
                    applied.append(st)
                else:
                    failed.add(st.n)
                    self.res.skipped.append({"step": st.n, "object": st.object, "sql": st.sql,
                                             "reason": f"refused: {refused}"})
            if failed:  # the rollback file undoes exactly what was applied
                write_text(bdir / "rollback.sql", plan.rollback_sql([st.n for st in applied]))
            self.res.skipped.sort(key=lambda x: x["step"])
            self.res.applied = [{"step": st.n, "object": st.object, "sql": st.sql} for st in applied]
            # the replica changed: read it again (the master did not)
            self.full_replica, self.digests["replica"], _ = read_side(s.replica, "replica", cfg, None, self.scope)
            self.master, self.replica = scoped(cfg, aopts, self.full_master, self.full_replica)
        self.lap("migrate")

    def back_up(self, plan: Plan, steps: list[Step]) -> Path:
        """Before the first schema change: mark the replica, and write the backup whose rollback.sql
        undoes ``steps`` (the data of the tables a destructive one rewrites included)."""
        self.before_first_write()
        bdir = self.bdir = self.out_dir / "reports" / "backups" / utc_stamp()
        self.res.backup_dir = str(bdir)
        backup(self.s.replica, self.s.replica_url, bdir, self.replica, plan,
               [st.table for st in steps if st.classification == "destructive" and st.table],
               applied=[st.n for st in steps])
        return bdir

    def apply_alone(self, st: Step) -> str | None:
        """Apply one step in its own transaction; why PostgreSQL refused it, or None."""
        try:
            apply_steps(self.s.replica, [st])
        except MigrationError as e:
            return str(e).split(": ", 1)[-1]
        return None

    def migrate_after_copy(self) -> None:
        """Apply the held-back steps that only check rows and whose pre-check passes now that the copy
        has run, each on its own (a foreign key to a table the migration recreated empty)."""
        if not self.recheck:
            return
        r, plan = self.s.replica, self.plan
        assert plan is not None
        done = {a["step"] for a in self.res.applied}
        reasons = {x["step"]: x for x in self.res.skipped}
        fit: list[Step] = []
        for st in self.recheck:
            p = st.precheck
            if p is None or not (p.after_copy_sql or p.sql):
                continue
            try:
                with r.transaction():
                    left = r.execute(p.after_copy_sql or p.sql).fetchone()[0]
            except psycopg.Error as e:
                reasons[st.n]["reason"] += f"; its check after the copy failed: {describe(e)}"
                continue
            if left:
                reasons[st.n]["reason"] = (f"pre-check found {left} row(s) that do not fit after the copy too "
                                           f"({p.description}): fix them, or run `replicator migrate --force`")
            else:
                fit.append(st)
        if not fit:
            return
        bdir = self.bdir or self.back_up(plan, fit)  # no migration before the copy: the backup comes now
        for st in fit:
            if any(n not in done for n in st.requires):
                continue
            refused = self.apply_alone(st)
            if refused is not None:
                reasons[st.n]["reason"] = f"refused after the copy: {refused}"
                continue
            done.add(st.n)
            self.res.skipped.remove(reasons[st.n])
            self.res.applied.append({"step": st.n, "object": st.object, "sql": st.sql, "after_copy": True})
        write_text(bdir / "rollback.sql", plan.rollback_sql(sorted(done)))  # undoes exactly what was applied
        self.full_replica, self.digests["replica"], _ = read_side(r, "replica", self.cfg, None, self.scope)
        self.lap("migrate after copy")

    def refresh_matviews(self) -> None:
        """REFRESH the replica's materialized views that read a table whose rows the copy changed (as
        pg_restore does after the data): one the migration created, over tables still empty then, would
        stay empty, and the others would keep the rows of before the sync."""
        if not self.written:
            return
        r = self.s.replica
        with r.transaction():
            views = [v for v, _depth in r.execute(identity.load_sql("matviews_over"), {"tables": self.written}).fetchall()]
        refreshed = []
        for v in views:
            try:
                with r.transaction():
                    r.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.SQL(v)))
                refreshed.append(v)
            except psycopg.Error as e:
                self.res.notes.append(f"materialized view {v}: not refreshed: {describe(e)}")
        if refreshed:
            self.res.notes.append(f"refreshed materialized view(s) over the copied tables: {', '.join(refreshed)}")
        self.lap("refresh")

    # -- 3. copy -----------------------------------------------------------------------------------

    def copy(self) -> None:
        assert self.master is not None and self.replica is not None
        cfg, s = self.cfg, self.s
        self.say("copy: comparing checksums")
        closure: Closure | None = None
        with _Snapshot(s.master, s.replica):
            if self.subset is not None:
                closure = self.subset.closure(s.master, self.full_master, cfg, self.selection)
                self.copy_cfg = closure.config(cfg)
                self.res.subset_rows = closure.rows()
                self.res.notes += closure.notes
            plans, blocked = self.plans()
            before = fingerprints(s.master, s.replica, plans)
        state = load_state(s.replica)
        with s.replica.transaction():
            unbuilt = indexes.pending_tables(s.replica)
            owned = checkpoint.owned(checkpoint.list_all(s.replica), [tp.replica_label for tp in plans])
        to_copy: list[TablePlan] = []
        for tp in plans:
            m, r = before[tp.label]
            compared = compared_text(tp)
            if tp.replica_label in unbuilt:
                # a load cut short left its indexes unbuilt, whatever the rows say: its copy builds them
                to_copy.append(tp)
            elif m == r:
                self.res.tables.append(TableSync(table=tp.label, action="in line", reason="same checksum on both sides",
                                                 policy=_policy(tp), skipped=m[0]))
            elif tp.policy in TOLERANT and state.get(tp.replica_label) == (compared, m, r):
                self.res.tables.append(TableSync(
                    table=tp.label, action="in line", policy=_policy(tp), skipped=m[0],
                    reason=f"unchanged on both sides since the last sync; the replica's own rows are kept ({_policy(tp)})"))
            elif tp.policy is None and r[0] > 0 and tp.replica_label not in owned:  # (a copy cut short resumes)
                blocked.append((tp.label, "the replica table is not empty and no policy is set: set [copy] policy "
                                          f"or [tables.{tp.master.name}] policy, or pass --policy"))
            else:
                to_copy.append(tp)
        for label, why in blocked:
            self.res.tables.append(TableSync(table=label, action="not copied", reason=why))
        self.lap("compare")
        copying = {id(tp) for tp in to_copy}
        in_line = [tp for tp in plans if id(tp) not in copying]
        self.advance_sequences(in_line)
        if to_copy:
            self.run_copy(to_copy, before, closure)
        self.lap("copy")

    def plans(self) -> tuple[list[TablePlan], list[tuple[str, str]]]:
        """What copy would do for each selected table (columns, masks, filter, policy), and the tables
        that cannot be copied as the schemas stand (a skipped migration step)."""
        assert self.master is not None and self.replica is not None
        ms, rs, cfg = self.full_master, self.full_replica, self.copy_cfg
        assert ms is not None and rs is not None
        if self.subset is not None:
            sel = Selection.from_config(cfg)
        else:
            sel = self.selection
        plans, blocked = [], []
        for t in self.master.tables.values():
            if t.partition_of or not sel.selects(ms, t):
                continue
            label = f"{t.schema_name}.{t.name}"
            rt = rs.find_table(t.schema_name, t.name)
            if rt is None:
                blocked.append((label, "missing on the replica (its creation was skipped: see the skipped steps)"))
                continue
            tp = plan_table(ms.tables[t.key], rt, cfg, mschema=ms, policy=self.opts.policy, batch_size=None)
            if tp.problems:
                blocked.append((label, "; ".join(tp.problems)))
                continue
            plans.append(tp)
        for key, t in _referenced_outside(ms, [tp.master for tp in plans]).items():
            rt = _outside_table(self.s.replica, rs, t)
            label = f"{t.schema_name}.{t.name}"
            if rt is None:
                blocked.append((label, "missing on the replica"))
                continue
            tp = plan_table(t, rt, cfg, mschema=ms, policy=self.opts.policy, batch_size=None)
            if tp.problems:
                blocked.append((label, "; ".join(tp.problems)))
            else:
                plans.append(tp)
        return plans, blocked

    def advance_sequences(self, plans: list[TablePlan]) -> None:
        """Sequences feeding tables found in line: past the data when behind (writes only then)."""
        if not plans:
            return
        r = self.s.replica
        uses = sequence_uses(r, [tp.replica.key for tp in plans])
        behind = [use for use in uses if sequence_state(r, use).behind]
        r.commit()
        for use in behind:
            self.before_first_write()
            with r.transaction():
                state = advance_locked(r, use)
            if state is not None:
                self.res.sequences.append(f"{use.key} set to {state.edge} (it was behind the data)")

    def run_copy(self, plans: list[TablePlan], before: dict[str, tuple[Fingerprint, Fingerprint]],
                 closure: Closure | None) -> None:
        s = self.s
        self.say(f"copy: {len(plans)} table(s)")
        self.before_first_write()
        names = [tp.label for tp in plans]
        kwargs: dict[str, Any] = dict(config=self.copy_cfg, policy=self.opts.policy, guard=s.guard,
                                      progress=self.copy_progress, selection=Selection.from_config(self.copy_cfg))
        if self.subset is not None:
            # the closure again, in the copy's own snapshot: the rows copied are the rows chosen
            kwargs.update(config=self.cfg, selection=None, in_snapshot=self.subset.hook(self.cfg, self.selection))
        result: CopyResult | None = None
        error: ReplicatorError | None = None
        try:
            result = copy_tables(s.master_url, s.replica_url, names, **kwargs)
        except ReplicatorError as e:
            error, result = e, getattr(e, "result", None)
        if self.subset is not None and self.subset.last is not None:
            self.copy_cfg = self.subset.last.config(self.cfg)
            self.res.subset_rows = self.subset.last.rows()
        done = {}
        if result is not None:
            self.res.copy_run = result.run_id
            self.res.sequences += [f"{q.sequence} set to {q.value}" for q in result.sequences]
            for o in result.orphans:
                self.res.notes.append(f"foreign key {o.table}.{o.constraint}: {o.rows} row(s) reference no row of "
                                      f"{o.references}: {o.hint}")
            for t in result.tables:
                done[t.table] = t
        for tp in plans:
            t = done.get(tp.label)
            if t is None or t.status != "done":
                self.res.tables.append(TableSync(table=tp.label, action="failed" if error else "not copied",
                                                 policy=_policy(tp), reason=str(error).splitlines()[0] if error else ""))
                continue
            before_m, before_r = before[tp.label]
            why = "empty on the replica" if before_r[0] == 0 else "checksums differed"
            if t.inserted or t.updated or t.deleted:
                self.written.append(tp.replica.key)
            self.res.tables.append(TableSync(table=tp.label, action="copied", policy=_policy(tp), inserted=t.inserted,
                                             updated=t.updated, deleted=t.deleted, skipped=t.unchanged,
                                             seconds=t.seconds, reason=why))
        self.remember([tp for tp in plans if done.get(tp.label) and done[tp.label].status == "done"], before)
        if error is not None:
            raise error

    def remember(self, plans: list[TablePlan], before: dict[str, tuple[Fingerprint, Fingerprint]]) -> None:
        """Store (master before the copy, replica after it) for tables whose policy keeps rows of the
        replica's own: the pair a later sync recognises as "nothing moved"."""
        tolerant = [tp for tp in plans if tp.policy in TOLERANT]
        if not tolerant:
            return
        r = self.s.replica
        after = replica_fingerprints(r, tolerant)
        r.commit()
        with r.transaction():
            r.execute(STATE_DDL)
            for tp in tolerant:
                m = before[tp.label][0]
                rows, total = after[tp.label]
                r.execute("INSERT INTO _replicator.sync_state (table_name, compared, master_rows, master_sum, replica_rows, "
                          "replica_sum) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (table_name) DO UPDATE SET "
                          "compared = EXCLUDED.compared, master_rows = EXCLUDED.master_rows, master_sum = EXCLUDED.master_sum, "
                          "replica_rows = EXCLUDED.replica_rows, replica_sum = EXCLUDED.replica_sum, synced_at = now()",
                          (tp.replica_label, compared_text(tp), m[0], m[1], rows, total))

    # -- 4. verify ---------------------------------------------------------------------------------

    def verify(self) -> None:
        assert self.full_master is not None and self.full_replica is not None
        self.say("verify")
        s = self.s
        report = run_verify(
            self.cfg, tables=self.opts.tables, exclude=self.opts.exclude, subset=self.subset, policy=self.opts.policy,
            deep=self.opts.deep,
            require_readonly_role=self.opts.require_readonly_role,
            snapshot=self.out_dir / "schemas" / "master-schema.json",
            reuse=Reuse(s.master, s.replica, s.guard, self.full_master, self.full_replica),
        )
        self.res.verify = report.without_values()
        self.lap("verify")


def _policy(tp: TablePlan) -> str | None:
    return tp.policy.value if tp.policy else None


# A statement that only checks the rows it finds (adds or validates a constraint, builds a unique
# index, sets NOT NULL): it either passes or is refused; it never rewrites a value.
_CHECKS_ROWS = re.compile(r"\bADD CONSTRAINT\b|\bVALIDATE CONSTRAINT\b|^\s*CREATE UNIQUE INDEX\b|\bSET NOT NULL\s*;?\s*$",
                          re.I | re.S)


def sync_steps(plan: Plan, allow_destructive: bool) -> tuple[list[Step], list[Step], list[dict], list[Step]]:
    """The steps sync applies in one transaction, the ones it tries one by one after it, the ones it
    reports instead (with what needs them), and of those the ones to check again after the copy.

    * safe steps, and data-dependent ones whose pre-check proved the replica's rows fit (PostgreSQL
      checks them again as they run): applied together;
    * data-dependent steps that could not be pre-checked (a check on a column the plan adds) but only
      check rows, never rewrite them (constraints, unique indexes, NOT NULL): tried each in its own
      transaction afterwards, so that one refused by PostgreSQL is reported and the rest stands;
    * destructive steps, and data-dependent ones that rewrite values unchecked (a type change that
      could not be pre-checked): only with ``allow_destructive``;
    * a step whose pre-check found rows that do not fit: never (that is `migrate --force`, by hand),
      except that one which only checks rows (a foreign key, a constraint) is checked again after the
      copy, which may have brought the rows it needs (a referenced table recreated empty, then filled);
    * and whatever needs a step left out."""
    held_back: dict[int, str] = {}
    tried: set[int] = set()
    recheck: set[int] = set()
    for s in plan.steps:
        p = s.precheck
        if p is not None and p.ok is False:
            held_back[s.n] = f"pre-check found {p.result} row(s) that do not fit ({p.description}): fix them, or " \
                             "run `replicator migrate --force`"
            if _CHECKS_ROWS.search(s.sql) and (p.after_copy_sql or p.sql):
                recheck.add(s.n)
        elif allow_destructive or s.classification == "safe":
            continue
        elif s.classification == "data-dependent" and p is not None and p.ok is True:
            continue
        elif s.classification == "data-dependent" and _CHECKS_ROWS.search(s.sql):
            tried.add(s.n)
        else:
            held_back[s.n] = f"{s.classification}" + (f" ({s.reason})" if s.reason else "") + ": needs --allow-destructive"
    needs = plan.skipped_with(list(held_back))
    after = plan.skipped_with(list(tried))  # steps needing a tried one are tried after it
    main, later, skipped, again = [], [], [], []
    for s in plan.steps:
        if s.n in held_back:
            skipped.append({"step": s.n, "object": s.object, "reason": held_back[s.n], "sql": s.sql})
        elif s.n in needs:
            skipped.append({"step": s.n, "object": s.object, "sql": s.sql, "reason": f"needs skipped step [{needs[s.n]}]"})
        elif s.n in tried or s.n in after:
            later.append(s)
        else:
            main.append(s)
        if s.n in recheck or needs.get(s.n) in recheck:
            again.append(s)
    return main, later, skipped, again


# -------------------------------------------------------------------------------------------------
# checksums of what copy would write


class _Snapshot:
    """One REPEATABLE READ READ ONLY transaction on the master (values rendered as copy renders
    them) and a transaction on the replica rendering the same way; both rolled back."""

    def __init__(self, master: psycopg.Connection, replica: psycopg.Connection):
        self.m, self.r = master, replica

    def __enter__(self) -> "_Snapshot":
        for c in (self.m, self.r):
            if c.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                c.rollback()
        # the master's transaction is opened by hand, in autocommit: its BEGIN goes with the pins and
        # the settings read back, one round trip to a distant master where psycopg's BEGIN waits alone
        self.autocommit = self.m.autocommit
        self.m.autocommit = True
        *_, (rendered,) = batch(self.m, [*open_pinned_snapshot(self.m.info.server_version),
                                         (render_settings_query(), None)])
        self.r.execute(follow_sql(dict(zip(RENDER_SETTINGS, rendered)), local=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.m.closed:
            try:
                if self.m.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    self.m.execute("ROLLBACK")
                self.m.autocommit = self.autocommit
            except psycopg.Error:
                if exc[0] is None:
                    raise  # (else the error being raised says what went wrong)
        if not self.r.closed:
            self.r.rollback()


def fingerprints(master: psycopg.Connection, replica: psycopg.Connection,
                 plans: list[TablePlan]) -> dict[str, tuple[Fingerprint, Fingerprint]]:
    """(master, replica) checksums of each table, one statement per side, both sides at once."""
    if not plans:
        return {}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-replica") as pool:
        rf = pool.submit(replica_fingerprints, replica, plans)
        mq = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {i}, {a} FROM ({s}) s").format(i=sql.Literal(i), a=range_checksum(tp.rcols),
                                                          s=tp.select_as_replica(sql.SQL("true")))
            for i, tp in enumerate(plans))
        key = next((tp.mask_key for tp in plans if tp.uses_mask_key), None)
        *_, rows = batch(master, [*([set_key(key)] if key else []), (mq, [])])
        r = rf.result()
    m = {plans[i].label: (int(n), int(total)) for i, n, total in rows}
    return {tp.label: (m[tp.label], r[tp.label]) for tp in plans}


def replica_fingerprints(replica: psycopg.Connection, plans: list[TablePlan]) -> dict[str, Fingerprint]:
    q = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {i}, {a} FROM {t}").format(i=sql.Literal(i), a=range_checksum(tp.rcols), t=tp.rfrom)
        for i, tp in enumerate(plans))
    return {plans[i].label: (int(n), int(total)) for i, n, total in replica.execute(q).fetchall()}


def compared_text(tp: TablePlan) -> str:
    """What a checksum covers (columns, masks, filter, policy): a stored checksum is only comparable
    with one taken the same way."""
    text = "\n".join([tp.select_as_replica(sql.SQL("true")).as_string(None), _policy(tp) or "", ",".join(tp.rcols)])
    return hashlib.sha256(text.encode()).hexdigest()


def cache_scope(cfg: Config) -> str:
    """What a cached schema depends on besides the catalogs: the schemas read and the code reading
    them (a newer replicator reads more, or otherwise)."""
    from importlib import resources

    h = hashlib.sha256(repr(sorted(cfg.schemas)).encode())
    pkg = resources.files("replicator")
    for name in ("introspect/core.py", "introspect/models.py", "introspect/queries.py", "introspect/__init__.py"):
        h.update(pkg.joinpath(name).read_bytes())
    for f in sorted(pkg.joinpath("introspect", "sql").iterdir(), key=lambda f: f.name):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def load_cache(replica: psycopg.Connection) -> dict[str, tuple[str, str, str]]:
    """side -> (digest, scope, schema JSON) stored by earlier syncs."""
    with replica.transaction():
        if not replica.execute("SELECT to_regclass('_replicator.schema_cache') IS NOT NULL").fetchone()[0]:
            return {}
        rows = replica.execute("SELECT side, digest, scope, schema FROM _replicator.schema_cache").fetchall()
    return {side: (d, sc, js) for side, d, sc, js in rows}


def read_side(conn: psycopg.Connection, side: str, cfg: Config, cached: tuple[str, str, str] | None,
              scope: str) -> tuple[Schema, str, bool]:
    """One side's schema and catalog digest, read in one snapshot: the cached schema when the digest
    and scope are those it was stored with, else a fresh introspection. Returns (schema, digest,
    whether it came from the cache)."""
    from pydantic import ValidationError

    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    if cached is not None and cached[1] == scope:
        # the digest alone, a transaction of its own: where it is the cached one (the usual case), the
        # schema comes from the cache; its BEGIN and COMMIT travel with it (the transaction lifts the
        # timeouts a pooler kept: a large catalog takes a while to digest)
        with statements_alone(conn):
            _, _, ((digest,),), _ = batch(conn, [("BEGIN READ ONLY", None), (LIFT_TIMEOUTS_LOCALLY, None),
                                                  (identity.load_sql("catalog_digest"), None), ("COMMIT", None)])
        if digest == cached[0]:
            try:
                return Schema.model_validate_json(cached[2]), digest, True
            except (ValidationError, ValueError):
                pass  # written by another version: read it again, below
    level = conn.isolation_level
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with conn.transaction():  # the digest of exactly what is introspected
            _, ((digest,),) = batch(conn, [(LIFT_TIMEOUTS_LOCALLY, None), (identity.load_sql("catalog_digest"), None)])
            try:
                return introspect(conn, schemas=cfg.schemas), digest, False
            except psycopg.errors.InsufficientPrivilege as e:
                raise ReplicatorError(f"{side}: no permission to read: {describe(e)}") from None
    finally:
        if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.isolation_level = level


def load_state(replica: psycopg.Connection) -> dict[str, tuple[str, Fingerprint, Fingerprint]]:
    with replica.transaction():
        if not replica.execute("SELECT to_regclass('_replicator.sync_state') IS NOT NULL").fetchone()[0]:
            return {}
        rows = replica.execute("SELECT table_name, compared, master_rows, master_sum, replica_rows, replica_sum "
                               "FROM _replicator.sync_state").fetchall()
    return {t: (c, (int(mr), int(ms)), (int(rr), int(rs))) for t, c, mr, ms, rr, rs in rows}


def _referenced_outside(schema: Schema, tables: list[Table]) -> dict[str, TableModel]:
    """Tables outside the compared schemas (auth.users) the given tables reference: copied with them."""
    out = {}
    for t in [*tables, *(p for t in tables for p in schema.partitions_of(t.key))]:
        for fk in t.foreign_keys:
            ref = fk.referenced_table or ""
            if ref in schema.external.tables:
                out[ref] = schema.external.tables[ref]
    return out


def _outside_table(replica: psycopg.Connection, rschema: Schema, t: Table) -> Table | None:
    """The replica's copy of a table outside the compared schemas (read in the caller's transaction)."""
    found = rschema.external.tables.get(t.key)
    if found is not None:
        return found
    return introspect(replica, schemas=[t.schema_name]).find_table(t.schema_name, t.name)


# -------------------------------------------------------------------------------------------------
# the report


def summary_rows(res: SyncResult) -> list[list[Any]]:
    return [[t.table, t.action, t.policy or "", t.inserted, t.updated, t.deleted, t.skipped, f"{t.seconds:.2f}",
             t.reason] for t in sorted(res.tables, key=lambda t: t.table)]


SUMMARY_HEADERS = ["table", "action", "policy", "inserted", "updated", "deleted", "skipped", "seconds", "why"]


def sync_markdown(res: SyncResult) -> str:
    state = ("error" if res.error else "in line" if res.in_line else "differences remain")
    lines = ["# Sync report", "",
             f"- master: `{res.master}`", f"- replica: `{res.replica}`",
             f"- started {res.started_at:%Y-%m-%d %H:%M:%S} UTC, {res.seconds:.2f} s; result: **{state}** "
             f"(exit code {res.exit_code})"]
    if res.selection:
        lines.append(f"- {res.selection}")
    if res.subset:
        lines.append(f"- subset: {res.subset}: " + ", ".join(
            f"{t} {'(by condition)' if n is None else n}" for t, n in res.subset_rows.items()))
    if res.error:
        lines.append(f"- error: {res.error}")
    lines += [f"- note: {n}" for n in res.notes + res.plan_notes]
    lines += ["", "## Schema", ""]
    if res.applied:
        lines.append(f"Applied {len(res.applied)} statement(s); backup in `{res.backup_dir}` (its `rollback.sql` "
                     "undoes them).")
        lines += [""] + [f"[{a['step']}] {a['object']}\n\n```sql\n{a['sql'].rstrip().rstrip(';')};\n```\n"
                         for a in res.applied]
    else:
        lines.append("Nothing applied: the replica's schema matched (within the selection)."
                     if not res.skipped else "Nothing applied.")
    if res.skipped:
        lines += ["", "Skipped (reported, not applied):", ""]
        lines += [f"- [{s['step']}] {s['object']}: {s['reason']}: `{' '.join(s['sql'].split())[:160]}`" for s in res.skipped]
    lines += ["", "## Data", "", md_table(SUMMARY_HEADERS, summary_rows(res))]
    lines += [f"- sequence {q}" for q in res.sequences]
    if res.verify is not None:
        body = verify_markdown(res.verify).split("\n", 1)[1]
        lines += ["", "## Verify", ""] + ["#" + ln if ln.startswith("## ") else ln for ln in body.splitlines()]
    lines += ["", "## Timings", "", ", ".join(f"{k} {v:.3f} s" for k, v in res.timings.items())]
    lines += ["", "## Statements sent to the master (guard audit)", ""]
    lines.append(md_table(["count", "allowed", "statement"],
                          [[r["count"], "yes" if r["allowed"] else "REFUSED", " ".join(r["statement"].split())[:140]]
                           for r in res.audit]))
    return "\n".join(lines) + "\n"


__all__ = ["SyncOptions", "SyncResult", "TableSync", "run_sync", "sync_steps", "fingerprints"]
