"""A copy run: one master snapshot, the pre-flight pass, tables in foreign-key order, then sequences and
the foreign keys the replica did not enforce while rows arrived."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable

import psycopg
from psycopg import sql

from .. import identity, order
from ..config import Config, Policy
from ..connect import (batch, describe, error_side, is_transaction_pooler, open_master, open_replica, parse_conninfo,
                       timeout_hint)
from ..errors import ReplicatorError
from ..guard import MasterGuard
from ..introspect import Ahead, Schema, Table, introspect
from ..rowhash import RENDER_SETTINGS, follow_sql, open_pinned_snapshot, render_settings_query
from ..selection import Selection
from ..sequences import sequence_uses
from . import baseline, checkpoint, indexes, logic as replica_logic
from .jobs import Openers, Worker, run_tables
from .lock import TableLocks, holder
from .masking import mask_key, set_key
from .managed import referenced_managed_tables
from .models import Checkpoint, CopyResult, TableResult
from .plan import POLICIES, CopyError, TablePlan, resolve_table
from .preflight import preflight, resolve
from .table import Progress, RunContext, TableCopy, advance_sequences

DEFERRED_DDL = """
CREATE TABLE IF NOT EXISTS _replicator.dropped_constraints (
    table_name text NOT NULL, constraint_name text NOT NULL, definition text NOT NULL,
    dropped_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, constraint_name))
"""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def copy_tables(
    master_url: str | None = None,
    replica_url: str | None = None,
    tables: list[str] | None = None,
    *,
    all_tables: bool = False,
    config: Config | None = None,
    policy: Policy | str | None = None,
    batch_size: int | None = None,
    restart: bool = False,
    incremental: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    guard: MasterGuard | None = None,
    checksum_skip: bool = True,
    jobs: int | None = None,
    selection: Selection | None = None,
    in_snapshot: Callable[[psycopg.Connection, Schema], Config] | None = None,
) -> CopyResult:
    """Copy `tables` (or every table with `all_tables=True`) from the master into the replica.

    All master reads share one REPEATABLE READ READ ONLY transaction. `checksum_skip=False` transfers and
    compares every batch of a non-empty replica table instead of comparing key ranges first. Raises
    `ReplicatorError` (with the partial `CopyResult` as `.result`) on bad input, conflicts under `fail`,
    or database errors, naming the side (master/replica) an error came from. `jobs` (default: the
    config's `[copy] jobs`) copies that many tables at once, all reading the run's one snapshot.

    `in_snapshot(master, master_schema)` is called on the guarded master connection inside the run's
    snapshot, before anything is planned, and returns the config to copy with (a subset's tables and
    per-table `where`, computed from the very rows this run reads). `selection` (default: that
    config's `include` / `exclude`) narrows `all_tables`, and refuses a named table it excludes.
    """
    cfg = config or Config()
    master_url = master_url or cfg.master_url
    replica_url = replica_url or cfg.replica_url
    if not master_url or not replica_url:
        raise ReplicatorError("copy needs both a master and a replica URL")
    if not tables and not all_tables:
        raise ReplicatorError("name tables with --table, or pass --all")
    if policy is not None and not isinstance(policy, Policy):
        try:
            policy = Policy(policy)
        except ValueError:
            raise ReplicatorError(f"unknown policy {policy!r}: choose one of {POLICIES}") from None
    guard = guard or MasterGuard()
    started = time.monotonic()
    result = CopyResult(run_id=str(uuid.uuid4()), started_at=_now(), dry_run=dry_run, incremental=incremental)
    jobs = jobs or cfg.copy_.jobs
    # the other workers connect while this run connects and prepares; through a pooler there are none
    pooled = is_transaction_pooler(parse_conninfo(master_url, "master"))
    openers = Openers(jobs - 1, master_url, replica_url, guard) if jobs > 1 and not pooled else None
    try:
        master = open_master(master_url, guard, autocommit=True)  # the run's one transaction is opened by hand
        try:
            replica = open_replica(replica_url)
        except BaseException:
            master.close()
            raise
    except BaseException:
        if openers is not None:
            openers.close()
        raise
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replica")
    held: list[TableLocks] = []  # filled by _run; released here whatever happens
    try:
        _run(master, replica, master_url, replica_url, cfg, result, pool, held, tables=tables, all_tables=all_tables,
             policy=policy, batch_size=batch_size, restart=restart, incremental=incremental, dry_run=dry_run,
             progress=progress, checksum_skip=checksum_skip, jobs=jobs, guard=guard,
             selection=selection, in_snapshot=in_snapshot, openers=openers)
    except BaseException as e:
        # the side an error came from: tagged by the connection that raised it (a worker's too), else
        # the connection left broken or in a failed transaction (checked before the rollback below)
        side = error_side(e) or _failed_side(master, replica)
        result.ok = False
        result.error = str(e).splitlines()[0] if str(e) else type(e).__name__
        _finish(result, guard, started)
        _rollback(replica)
        if isinstance(e, ReplicatorError):
            e.result = result  # type: ignore[attr-defined]
            raise
        if isinstance(e, psycopg.Error):
            message = f"{side + ': ' if side else ''}{describe(e)}" + ("" if dry_run else _resume_hint(e))
            if unbuilt := result.indexes_unbuilt:
                message += (f"; {', '.join(unbuilt)} {'lacks' if len(unbuilt) == 1 else 'lack'} the indexes dropped "
                            "for the load until the next copy builds them")
            err = ReplicatorError(message)
            err.result = result  # type: ignore[attr-defined]
            raise err from None
        raise
    finally:
        pool.shutdown(wait=True)
        if openers is not None:
            openers.close()
        # no ROLLBACK to wait for: closing the session ends its read-only transaction
        master.close()
        replica.close()
        for lock in held:
            lock.close()
    _finish(result, guard, started)
    return result


def _run(master, replica, master_url, replica_url, cfg: Config, result: CopyResult, pool, held: list[TableLocks], *,
         tables, all_tables, policy, batch_size, restart, incremental, dry_run, progress, checksum_skip, jobs,
         guard, selection, in_snapshot, openers: Openers | None) -> None:
    # One transaction holds the snapshot for the whole run; with only this connection reading the
    # master, no pg_export_snapshot is needed, which also works through a transaction pooler. The
    # session is in autocommit and the transaction is opened by a plain BEGIN, so it goes to the server
    # with the pinned rendering, the settings read back, the master's identity and the introspection:
    # one round trip.
    pooled = getattr(master, "pooled", False)
    if jobs > 1 and pooled:
        result.notes.append("a transaction pooler cannot share a snapshot between sessions: --jobs ignored, one connection")
        jobs = 1
    first = [*open_pinned_snapshot(master.info.server_version), ("SELECT now()", None), (render_settings_query(), None)]
    baselines_apply = not dry_run and master.info.server_version >= baseline.MIN_VERSION
    if baselines_apply:
        first.append((baseline.snapshot_query(), None))
    if jobs > 1:
        first.append(("SELECT pg_catalog.pg_export_snapshot()", None))
    key = mask_key(cfg)
    if key:  # read by the masked columns' expressions: never part of a statement's text
        first.append(set_key(key))
    # the statements ending the master introspection's savepoint ride on the next master batch
    closing: list = []

    def close_introspection() -> None:
        if closing:
            batch(master, closing)
            closing.clear()

    # estimates are all copy needs (progress, how to cut a table): no count(*) of analyzed tables, and of
    # the never analyzed ones (`uncounted`) only those the run copies, counted by the pre-flight
    uncounted: list[Table] = []
    mschema, (_begin, _pin, _lift, (now,), (rendered,), *more), master_identity = _open_snapshot(
        master, first, schemas=cfg.schemas, defer_close=closing, defer_counts=uncounted)
    # Which server is which, before anything touches the replica: never the master's own database, nor a
    # standby of it, nor a database that is itself a replica used as the master (the marker is written
    # later, once the pre-flight pass has found nothing wrong, right before the first write).
    pair = identity.check_pair(master, replica, allow_new_master=cfg.replica_of_new_master, master=master_identity)
    if not dry_run:
        identity.refuse_read_only(pair.replica)
    point = more.pop(0)[0] if baselines_apply else None
    snapshot = more.pop(0)[0][0] if jobs > 1 else None
    result.snapshot_at = now[0]
    result.snapshot_mode = "single REPEATABLE READ READ ONLY transaction" + (
        " (transaction pooler)" if pooled else "") + (f", shared by {jobs} jobs" if jobs > 1 else "")
    settings = dict(zip(RENDER_SETTINGS, rendered))
    # The replica renders like the master for the whole session: keys and checksums travel as text.
    replica.execute(follow_sql(settings, local=False))
    replica.commit()
    pooled_replica = is_transaction_pooler(parse_conninfo(replica_url, "replica"))
    rschema = introspect(replica, schemas=cfg.schemas, count_threshold=0, tables_only=True, defer_counts=[])
    replica.commit()
    if in_snapshot is not None:
        close_introspection()
        cfg = in_snapshot(master, mschema)
    selection = selection or Selection.from_config(cfg)
    if all_tables:
        selection.check(mschema)
        chosen = [t for t in mschema.tables.values() if selection.selects(mschema, t)]  # partitions with their root
        names = [f"{t.schema_name}.{t.name}" for t in chosen if not t.partition_of]
        close_introspection()
        _add_referenced_managed(master, replica, mschema, rschema, names, chosen)
    else:
        names = list(dict.fromkeys(tables or []))
        named_managed = {n.split(".", 1)[0].strip('"') for n in names if "." in n} - set(cfg.schemas)
        if named_managed:  # `--table auth.users`: a schema outside the configured ones, named explicitly
            close_introspection()
            _merge_schemas(master, replica, mschema, rschema, sorted(named_managed))
    def resolved():
        pairs, problems = resolve(names, mschema, rschema, cfg)
        problems[:0] = [f"{mt.schema_name}.{mt.name} is excluded (exclude {p}): leave it out, or drop the pattern"
                        for mt in filter(None, (resolve_table(mschema, n, cfg) for n in names))
                        if (p := selection.excluded_by(mt.schema_name, mt.name))]
        return pairs, problems

    pairs, problems = resolved()
    if not dry_run and pairs:
        held.append(TableLocks(replica_url))
        held[0].acquire([f"{rt.schema_name}.{rt.name}" for _, rt in pairs])
    if _build_pending_indexes(replica, [rt for _, rt in pairs], rschema, cfg, result, dry_run):
        pairs, problems = resolved()  # the plan sees the keys just built
    checkpoints = {c.table_name: c for c in checkpoint.list_all(replica)}
    labels = [f"{rt.schema_name}.{rt.name}" for _, rt in pairs]
    owned = set() if restart else checkpoint.owned(checkpoints.values(), labels)
    kept = {} if restart or incremental else checkpoint.kept(checkpoints.values(), labels)
    baselines = baseline.load_all(replica) if point is not None else {}
    replica.commit()
    logic = (replica_logic.setup(replica, [rt.key for _, rt in pairs]) if not dry_run
             else replica_logic.ReplicaLogic(replication_role=False))
    result.replica_logic = logic.description if not dry_run else ""
    plans = preflight(master, replica, pairs, cfg, mschema=mschema, rschema=rschema, problems=problems, policy=policy, batch_size=batch_size,
                      incremental=incremental, dry_run=dry_run,
                      logic=logic if not dry_run else None, owned=owned, first=closing,
                      uncounted=uncounted, kept=kept)
    close_introspection()  # when preflight had nothing to ask the master
    plans, kept_plans = _keep(master, replica, plans, result, dry_run)
    plans, deferred = _fk_order(rschema, plans)
    sequences = _sequences_by_table(replica, plans + kept_plans)
    _check_sequence_privileges(replica, sequences)
    enforce_fks = not logic.replication_role
    still_dropped: list[str] = []
    if not dry_run:
        identity.mark_replica(replica, pair)
        checkpoint.ensure(replica)
        checkpoint.adopt(replica, labels, checkpoint.stopped_runs(checkpoints.values(), labels), result.run_id)
        _queue_own(replica, plans, checkpoints, result, incremental)
        # (a kept table's key to a table copied now is re-added once that table is copied)
        copied_roots = {order.partition_root(rschema, tp.replica.key) for tp in plans + kept_plans}
        still_dropped = _restore_constraints(replica, lambda table: order.partition_root(rschema, table) in copied_roots)
        if deferred and enforce_fks:
            _drop_constraints(replica, deferred)
            result.deferred_constraints = [
                f"{t}.{n}: dropped during the copy (FK cycle or self-reference), re-added and validated after"
                for t, n, _ in deferred]
    ctx = RunContext(master=master, replica=replica, result=result, logic=logic, pool=pool, replica_schema=rschema,
                     progress=progress or (lambda *a, **k: None), pooled_replica=pooled_replica, dry_run=dry_run,
                     restart=restart, incremental=incremental, checksum_skip=checksum_skip, checkpoints=checkpoints, owned=owned,
                     batch_bytes=cfg.batch_bytes, baselines=baselines, mask_key=key)
    if not dry_run:  # each table's last transaction advances them (TableCopy.advance_sequences)
        ctx.sequences = sequences
        for tp in kept_plans:  # (a stopped run of an older release advanced them only at its end)
            advance_sequences(ctx, replica, tp.replica.key)
        replica.commit()
    if point is not None:
        ctx.master_point = baseline.MasterPoint(
            xmin=int(point[0]), xmax=int(point[1]),
            origin=f"{pair.master.system_identifier}/{pair.master.database_oid}/{point[2]}")
    if jobs > 1 and plans and openers is not None:
        # as many workers as asked even for fewer tables: a table copied in heap order shares its page
        # ranges with the idle ones
        _run_jobs(ctx, plans, rschema, enforce_fks, openers, snapshot=snapshot, settings=settings)
    else:
        for tp in plans:
            TableCopy(ctx, tp).run()
    if dry_run:
        return
    if (deferred and enforce_fks) or still_dropped:
        _restore_constraints(replica)
        result.deferred_constraints += [f"{c}: left dropped by an interrupted run, re-added and validated after the copy"
                                        for c in still_dropped]
    if logic.replication_role:
        copied = {tp.replica.key for tp in plans}
        result.orphans = replica_logic.foreign_key_orphans(replica, sorted(copied), copied)


def _keep(master, replica, plans: list[TablePlan], result: CopyResult,
          dry_run: bool) -> tuple[list[TablePlan], list[TablePlan]]:
    """The plans to copy, and those of the tables a stopped run finished (`TablePlan.kept_from`) that
    still equal the master: count and sum of row hashes on both sides, the master's read on this run's
    snapshot as copy reads it (masks, filter). Kept, they are as this run would leave them, and their
    rows agree with the other tables' (one snapshot). One that differs (the master changed it since,
    or the replica, or the config's masks or filter) is refused, as any table holding rows is with
    no policy: nothing is copied."""
    kept = [tp for tp in plans if tp.kept_from is not None]
    if not kept:
        return plans, []
    sums = [tp.checksums() for tp in kept]
    msums, rsums = batch(master, [(m, None) for m, _ in sums]), batch(replica, [(r, None) for _, r in sums])
    replica.rollback()
    refused, lines = [], []
    for tp, ((mn, ms),), ((rn, rs),) in zip(kept, msums, rsums):
        cp = tp.kept_from
        assert cp is not None
        if (mn, int(ms)) != (rn, int(rs)):
            refused.append(f"replica table {tp.replica_label} is not empty, and no longer equals the master since the "
                           f"stopped run {cp.run_id[:8]} copied it (changed on either side, or by the config's masks or "
                           f"filter): choose a policy with --policy, [copy] policy or [tables.{tp.master.name}] policy "
                           f"({POLICIES})")
            continue
        lines.append(TableResult(
            table=tp.label, replica_table=tp.replica_label, mode="kept", key=tp.key_r, rows_copied=mn, unchanged=mn,
            skipped_rows=mn, status="dry-run" if dry_run else "done", notes=[
                f"kept as the stopped run {cp.run_id[:8]} left it: its {mn} rows still equal the master's (count and "
                "row checksums, on this run's snapshot)"]))
    if refused:
        listed = "; ".join(f"{i}) {p}" for i, p in enumerate(refused, 1)) if len(refused) > 1 else refused[0]
        raise CopyError(f"nothing was copied: {listed}")
    result.tables += lines
    result.notes.append(f"resumed the stopped run {', '.join(sorted({tp.kept_from.run_id[:8] for tp in kept if tp.kept_from}))}: "
                        "the tables it finished, still equal to the master, are kept; the others copied")
    return [tp for tp in plans if tp.kept_from is None], kept


def _queue_own(replica, plans: list[TablePlan], checkpoints: dict[str, Checkpoint], result: CopyResult,
               incremental: bool) -> None:
    """Before anything is copied, write this run's tables `queued` in the checkpoints (with their
    policy), but for those a stopped copy left `running`, which keep their progress. Killed between two tables, the run still shows the tables it had not reached, `status`
    the command that copies them, and its rerun keeps what it finished (`checkpoint.kept`)."""
    if incremental:  # an --incremental run keeps its own watermarks per table
        return
    queued = []
    for tp in plans:
        cp = checkpoints.get(tp.replica_label)
        if cp is not None and cp.status == "running":
            continue  # a stopped copy's progress, which this run carries on
        queued.append(Checkpoint(
            table_name=tp.replica_label, master_table=tp.label, run_id=result.run_id,
            mode=("direct" if tp.policy is None else "full") if tp.keyed else "keyless",
            policy=tp.policy.value if tp.policy else None, status="queued", key_columns=tp.key_r,
            was_empty=tp.policy is None, snapshot_at=result.snapshot_at,
            watermark=cp.watermark if cp else None))  # (an --incremental run's, kept for the next)
    checkpoint.queue(replica, queued)
    replica.commit()


def _open_snapshot(master: psycopg.Connection, first: list[tuple[Any, Any]], **introspection: Any,
                   ) -> tuple[Schema, list[list], identity.ServerIdentity]:
    """Send `first` (the statements opening the run's transaction), the master's identity and the
    master's introspection together; return the schema, `first`'s rows and the identity."""
    for system_identifier in (True, False):
        opening = Ahead(first + identity.identity_statements(system_identifier))
        try:
            mschema = introspect(master, count_threshold=0, tables_only=True, ahead=opening, **introspection)
        except psycopg.errors.InsufficientPrivilege:
            if not system_identifier:
                raise
            # EXECUTE on pg_control_system() revoked (some hosted services): the whole batch failed with
            # it, so the transaction is begun again without it (the identity check then probes sessions)
            master.execute("ROLLBACK")
            continue
        break
    return mschema, opening.rows[:len(first)], identity.read_identity(master, "master", opening.rows[len(first):])


def _run_jobs(ctx: RunContext, plans: list[TablePlan], rschema: Schema, enforce_fks: bool, openers: Openers, *,
              snapshot: str | None, settings: dict[str, str]) -> None:
    """The tables on this run's own connections and the workers `openers` has connected."""
    assert snapshot is not None
    extra = openers.workers(ctx, snapshot, settings)
    try:
        ordering = order.fk_order(rschema, [p.replica.key for p in plans])
        run_tables([Worker(ctx)] + extra, plans, ordering.parents if enforce_fks else {},
                   lambda key: order.partition_root(rschema, key))
    finally:
        for w in extra:
            w.close()


def _merge_schemas(master, replica, mschema: Schema, rschema: Schema, schemas: list[str],
                   only: set[str] | None = None) -> None:
    """Introspect more schemas on both sides into the run's schemas (only the tables ``only`` names)."""
    for conn, schema in ((master, mschema), (replica, rschema)):
        extra = introspect(conn, schemas=schemas, count_threshold=0, tables_only=True, defer_counts=[])
        schema.tables.update({k: t for k, t in extra.tables.items() if only is None or k in only})
    replica.commit()


def _add_referenced_managed(master, replica, mschema: Schema, rschema: Schema, names: list[str], chosen) -> None:
    """`--all` also copies the managed tables (auth.users, ...) the copied tables reference."""
    refs = referenced_managed_tables(mschema, chosen)
    if not refs:
        return
    _merge_schemas(master, replica, mschema, rschema, sorted({r.split(".", 1)[0].strip('"') for r in refs}), set(refs))
    for r in refs:
        t = mschema.tables.get(r)
        if t is not None:
            names.append(f"{t.schema_name}.{t.name}")


def _fk_order(rschema: Schema, plans: list[TablePlan]) -> tuple[list[TablePlan], list[tuple[str, str, str]]]:
    """Plans with referenced tables first (the replica's foreign keys, over whole partition trees), and
    the foreign keys that close a cycle or reference their own table."""
    keys = [p.replica.key for p in plans]
    ordering = order.fk_order(rschema, keys)
    pos = ordering.position()
    ordered = sorted(plans, key=lambda p: (pos.get(order.partition_root(rschema, p.replica.key), len(pos)), p.replica.key))
    deferred = [(d.table, d.name, d.definition) for d in ordering.deferred]
    return ordered, deferred


def _sequences_by_table(replica: psycopg.Connection, plans: list[TablePlan]):
    """Per copied table, the sequences feeding its columns (owned, identity, or merely used by a
    DEFAULT, with every column they feed), sorted by name."""
    keys = {p.replica.key for p in plans}
    out: dict[str, list] = {}
    for use in sorted(sequence_uses(replica, keys), key=lambda u: u.key):
        for table in dict.fromkeys(c[0] for c in use.columns):
            if table in keys:
                out.setdefault(table, []).append(use)
    replica.commit()
    return out


def _check_sequence_privileges(replica: psycopg.Connection, sequences: dict[str, list]) -> None:
    """Refuse up front, before anything is written, when the replica role may not read or set a
    sequence the copy brings past the rows it copies (each table's last transaction does)."""
    uses = {u.key: u for us in sequences.values() for u in us}
    if not uses:
        return
    rows = replica.execute(
        "SELECT s, has_sequence_privilege(s, 'SELECT'), has_sequence_privilege(s, 'UPDATE'), current_user "
        "FROM unnest(%s::text[]) s", (sorted(uses),)).fetchall()
    replica.rollback()
    lacking = [(s, role, [p for p, ok in (("SELECT", sel), ("UPDATE", upd)) if not ok]) for s, sel, upd, role in rows
               if not (sel and upd)]
    if lacking:
        what = "; ".join(f"{', '.join(p)} on sequence {s}, which feeds "
                         f"{', '.join(sorted({f'{sc}.{t}.{c}' for _k, sc, t, c in uses[s].columns}))}"
                         for s, _role, p in lacking)
        raise CopyError(f"nothing was copied: the replica role {lacking[0][1]} lacks {what} (the copy brings each "
                        f"sequence past the rows it copies): GRANT SELECT, UPDATE ON SEQUENCE "
                        f"{', '.join(s for s, _r, _p in lacking)} TO {lacking[0][1]}")


def _build_pending_indexes(replica: psycopg.Connection, tables: list[Table], rschema: Schema, cfg: Config,
                           result: CopyResult, dry_run: bool) -> bool:
    """Before the pre-flight plans anything: build the indexes an interrupted copy into one of these
    (then empty) tables dropped and left unbuilt (`replicator.copy.indexes`), under this run's table
    locks, and read those tables again. A resumed copy compares by key, which needs them. Returns
    whether any was built."""
    todo = indexes.pending_tables(replica) & {f"{t.schema_name}.{t.name}" for t in tables}
    replica.commit()
    if not todo:
        return False
    if dry_run:
        for t in sorted(todo):
            if who := holder(replica, t):
                raise CopyError(f"{t} is being loaded by another run (replica session pid {who[0]}), its indexes "
                                "dropped until it ends: wait for it, then rerun")
        raise CopyError(f"{', '.join(sorted(todo))}: an interrupted copy left indexes to build (replicator status "
                        "lists them); run the copy without --dry-run first, which builds them")
    for t in tables:
        label = f"{t.schema_name}.{t.name}"
        if label in todo:
            built = indexes.build(replica, label, sql.Identifier(t.schema_name, t.name))
            replica.commit()
            if built:
                result.notes.append(f"{label}: built the indexes an interrupted copy had left unbuilt: {', '.join(built)}")
    fresh = introspect(replica, schemas=sorted({t.schema_name for t in tables if f"{t.schema_name}.{t.name}" in todo}),
                       count_threshold=0, tables_only=True, defer_counts=[])
    replica.commit()
    for key, table in fresh.tables.items():
        if f"{table.schema_name}.{table.name}" in todo:
            rschema.tables[key] = table
    return True


def _restore_constraints(replica: psycopg.Connection, hold: Callable[[str], bool] = lambda table: False) -> list[str]:
    """Re-add (and so validate) FKs an earlier run dropped for a cycle, including after a crash; returns
    those left dropped because ``hold`` names their table: this run copies it again, and re-adding the
    key to a table whose copy a crash cut short fails (rows whose referenced rows are still to come),
    so they are re-added after the copy."""
    if not replica.execute("SELECT to_regclass('_replicator.dropped_constraints') IS NOT NULL").fetchone()[0]:
        replica.commit()
        return []
    held = []
    for table, name, definition in replica.execute(
            "SELECT table_name, constraint_name, definition FROM _replicator.dropped_constraints").fetchall():
        if hold(table):
            held.append(f"{table}.{name}")
            continue
        # re-added meanwhile (`migrate`, or `sync`'s migration, creates what the master has): done
        if not replica.execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint WHERE conrelid = %s::regclass "
                               "AND conname = %s)", (table, name)).fetchone()[0]:
            replica.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.SQL(table), sql.Identifier(name), sql.SQL(definition)))
        replica.execute("DELETE FROM _replicator.dropped_constraints WHERE table_name = %s AND constraint_name = %s",
                        (table, name))
        replica.commit()
    replica.commit()
    return held


def _drop_constraints(replica: psycopg.Connection, deferred: list[tuple[str, str, str]]) -> None:
    replica.execute(DEFERRED_DDL)
    for table, name, definition in deferred:
        replica.execute("INSERT INTO _replicator.dropped_constraints (table_name, constraint_name, definition) "
                        "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (table, name, definition))
        replica.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.SQL(table), sql.Identifier(name)))
    replica.commit()  # the record and the drop commit together: a crash leaves them restorable


#: SQLSTATE classes a rerun may not meet again: the connection, a deadlock or serialization failure,
#: resources, a cancel or shutdown, a lock not granted in time.
_TRANSIENT = ("08", "40", "53", "55P03", "57", "58")


def _resume_hint(e: psycopg.Error) -> str:
    """What to do next: rerun, or first fix what a rerun would meet again (a constraint, a privilege)."""
    state = e.sqlstate or ""
    if hint := timeout_hint(e):
        return f"; {hint}"
    if not state or state.startswith(_TRANSIENT):
        return "; rerun to resume"
    return "; fix that first: a rerun resumes from the last committed batch but would meet it again"


def _failed_side(master: psycopg.Connection, replica: psycopg.Connection) -> str | None:
    """Which connection an error came from: the one that broke, else the one whose transaction failed."""
    for name, conn in (("master", master), ("replica", replica)):
        if conn.broken or conn.closed:
            return name
    for name, conn in (("replica", replica), ("master", master)):
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            return name
    return None


def _rollback(conn: psycopg.Connection) -> None:
    try:
        if not conn.closed:
            conn.rollback()
    except psycopg.Error:
        pass


def _finish(result: CopyResult, guard: MasterGuard, started: float) -> None:
    result.finished_at = _now()
    result.seconds = round(time.monotonic() - started, 3)
    result.audit = guard.summary()
