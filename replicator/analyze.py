"""`replicator analyze`: introspect both sides, diff, plan, and write the reports.

Outputs (under ``--out-dir``):

* ``schemas/master-schema-replication.sql``: the migration plan (header, classifications, pre-check
  results; destructive statements commented out unless ``allow_destructive``), rollback at the end;
* ``schemas/master-schema-rollback.sql``: the rollback of the whole plan, runnable on its own;
* ``schemas/master-schema.json``: the master's Schema snapshot (drift detection later);
* ``reports/schema-comparison-report.md`` (+ ``.json``): per table, where it exists, row counts,
  column / constraint / index differences; a Mermaid ER diagram of the master; the guard's audit;
* ``reports/data-migration-plan.md`` (+ ``.json``): tables in FK order, rows to move, key overlap.

Both sides are introspected with the same rendering settings (introspection pins search_path,
TimeZone, ... transaction-locally, which the master guard allows), so deparsed expressions compare
equal, also behind a transaction pooler.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field

from . import identity, order
from .config import Config, require_url
from .connect import (describe, is_transaction_pooler, open_master, open_replica, parse_conninfo, redact, statements_alone,
                      timeout_hint)
from .diff import EXTENSIONS_SCHEMA, Change, diff_schemas, extensions_in_scope, quote, resolve_renames, summarize
from .errors import ReplicatorError
from .guard import MasterGuard
from .introspect import introspect
from .introspect.models import Schema, Table
from .plan import Plan, build_plan, run_prechecks
from .selection import Selection, restrict
from .report import md_table, write_json, write_report, write_text

PLAN_FILE = "master-schema-replication.sql"
ROLLBACK_FILE = "master-schema-rollback.sql"
SNAPSHOT_FILE = "master-schema.json"
COMPARISON_STEM = "schema-comparison-report"
DATA_PLAN_STEM = "data-migration-plan"


class AnalyzeOptions(BaseModel):
    schemas: list[str] | None = None  # None: the config's schemas
    tables: list[str] = Field(default_factory=list)  # --table globs (replace the config's include)
    exclude: list[str] = Field(default_factory=list)  # --exclude globs (added to the config's)
    all_schemas: bool = False
    with_privileges: bool = False
    exact_counts: bool = False
    allow_destructive: bool = False
    key_overlap: bool = True


class KeyOverlap(BaseModel):
    key: list[str]
    master_only: int = 0
    replica_only: int = 0
    both: int = 0
    error: str | None = None


class TableMove(BaseModel):
    table: str
    order: int
    on_master: bool
    on_replica: bool
    master_rows: int | None = None
    replica_rows: int | None = None
    policy: str | None = None
    key: list[str] | None = None
    overlap: KeyOverlap | None = None
    risks: list[str] = Field(default_factory=list)


class OutsideUse(BaseModel):
    """Something the compared schemas use outside themselves (a Supabase project's platform)."""

    kind: str  # extension, table, function, type, trigger, role
    object: str
    used_by: list[str] = Field(default_factory=list)
    on_replica: bool  # the replica has it (with whatever definition: it is left alone)
    planned: bool = False  # the plan creates it


class AnalyzeResult(BaseModel):
    master_url: str
    replica_url: str
    master_pooled: bool = False
    replica_pooled: bool = False
    notes: list[str] = Field(default_factory=list)
    changes: list[Change] = Field(default_factory=list)
    plan: Plan
    moves: list[TableMove] = Field(default_factory=list)
    outside: list[OutsideUse] = Field(default_factory=list)
    guard_audit: list[dict] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)

    @property
    def differences(self) -> int:
        return len(self.changes)

    def summary(self) -> dict[str, Any]:
        return {
            "differences": len(self.changes),
            "by_kind": summarize(self.changes),
            "plan": {"statements": len(self.plan.steps), **self.plan.counts(),
                     "failed_prechecks": [
                         {"step": s.n, "object": s.object, "check": s.precheck.description, "rows": s.precheck.result}
                         for s in self.plan.failed_prechecks() if s.precheck],
                     "not_handled": self.plan.unsupported},
            "master": {"url": self.master_url, "transaction_pooler": self.master_pooled},
            "replica": {"url": self.replica_url, "transaction_pooler": self.replica_pooled},
            "notes": self.notes,
            "outside": [o.model_dump(mode="json") for o in self.outside],
            "files": self.files,
            "timings": self.timings,
            "master_statements": sum(r["count"] for r in self.guard_audit),
            "master_statements_refused": sum(r["count"] for r in self.guard_audit if not r["allowed"]),
        }


def config_renames(cfg: Config) -> dict[str, dict[str, str]]:
    return {name: dict(tc.renames) for name, tc in cfg.tables.items() if tc.renames}


def _introspect(conn: psycopg.Connection, opts: AnalyzeOptions, schemas: list[str], side: str) -> Schema:
    try:
        return introspect(conn, schemas=schemas, all_schemas=opts.all_schemas,
                          with_privileges=opts.with_privileges, exact_counts=opts.exact_counts)
    except psycopg.errors.InsufficientPrivilege as e:
        raise ReplicatorError(f"{side}: no permission to read: {describe(e)}") from None
    except psycopg.Error as e:
        raise ReplicatorError(f"{side}: introspection failed: {describe(e)}") from None


class Sessions:
    """The two connections of one analyze/migrate run, opened consistently."""

    def __init__(self, cfg: Config, guard: MasterGuard):
        self.master_url = require_url(cfg, "master")
        self.replica_url = require_url(cfg, "replica")
        mparams = parse_conninfo(self.master_url, "master")
        rparams = parse_conninfo(self.replica_url, "replica")
        self.master_pooled = is_transaction_pooler(mparams)
        self.replica_pooled = is_transaction_pooler(rparams)
        self.guard = guard
        self.master = open_master(self.master_url, guard)
        try:
            self.replica = open_replica(self.replica_url)
            self.identity = identity.check_pair(self.master, self.replica, allow_new_master=cfg.replica_of_new_master)
        except BaseException:
            self.master.close()
            if hasattr(self, "replica"):
                self.replica.close()
            raise

    def close(self) -> None:
        for c in (self.master, self.replica):
            try:
                c.close()
            except Exception:
                pass

    def __enter__(self) -> "Sessions":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def introspect_both(s: Sessions, cfg: Config, opts: AnalyzeOptions) -> tuple[Schema, Schema]:
    schemas = opts.schemas or list(cfg.schemas)
    # both sides at once (each on its own connection): the time is mostly waiting for the servers
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="introspect-replica") as pool:
        replica_future = pool.submit(_introspect, s.replica, opts, schemas, "replica")
        master = _introspect(s.master, opts, schemas, "master")
        if absent := master.absent_schemas():
            # Comparing a schema the master does not have would report "no differences" (or plan to
            # drop the replica's copy): a typo in --schema must not look like a clean result.
            replica_future.cancel()
            raise ReplicatorError(f"schema {', '.join(absent)} does not exist on the master")
        replica = replica_future.result()
    if opts.exact_counts:
        for side, sch in (("master", master), ("replica", replica)):
            uncounted = [k for k, rc in sch.row_counts.items() if not rc.exact]
            if uncounted:
                raise ReplicatorError(
                    f"{side}: cannot count rows exactly (no SELECT privilege, or row level security) on "
                    f"{', '.join(uncounted[:5])}{' …' if len(uncounted) > 5 else ''}; grant SELECT or drop --exact-counts")
    return master, replica


def selection(cfg: Config, opts: AnalyzeOptions) -> Selection:
    return Selection.from_config(cfg, opts.tables, opts.exclude)


def scoped(cfg: Config, opts: AnalyzeOptions, master: Schema, replica: Schema) -> tuple[Schema, Schema]:
    """Both schemas narrowed to the selected tables and what they need (``replicator.selection``)."""
    return restrict(master, replica, selection(cfg, opts))


def selection_note(cfg: Config, opts: AnalyzeOptions, master: Schema) -> str | None:
    sel = selection(cfg, opts)
    if sel.everything:
        return None
    how = [f"{sel.source} {', '.join(p.text for p in sel.include)}"] if sel.include else []
    how += [f"exclude {', '.join(p.text for p in sel.exclude)}"] if sel.exclude else []
    return (f"selection ({'; '.join(how)}): {len(master.tables)} table(s) compared, the selected ones and what "
            "they need; other objects are left out of the comparison and the plan")


def compute(cfg: Config, opts: AnalyzeOptions, guard: MasterGuard | None = None,
            sessions: Sessions | None = None) -> tuple[Schema, Schema, Plan, Sessions]:
    """Introspect, diff, plan and pre-check (restricted to the selected tables); returns the open
    sessions (caller closes)."""
    guard = guard or MasterGuard()
    s = sessions or Sessions(cfg, guard)
    try:
        master, replica = scoped(cfg, opts, *introspect_both(s, cfg, opts))
        plan = build_plan(master, replica, config_renames(cfg), managed=cfg.managed)
        run_prechecks(plan, s.replica)
    except BaseException:
        if sessions is None:
            s.close()
        raise
    return master, replica, plan, s


def run_analyze(cfg: Config, out_dir: Path, opts: AnalyzeOptions) -> AnalyzeResult:
    guard = MasterGuard()
    t0 = time.perf_counter()
    with Sessions(cfg, guard) as s:
        full_master, full_replica = introspect_both(s, cfg, opts)
        master, replica = scoped(cfg, opts, full_master, full_replica)
        t1 = time.perf_counter()
        renames = config_renames(cfg)
        changes = diff_schemas(master, replica, renames)
        plan = build_plan(master, replica, renames, changes, managed=cfg.managed)
        run_prechecks(plan, s.replica)
        t2 = time.perf_counter()
        moves = data_moves(master, replica, cfg, s if opts.key_overlap else None)
        t3 = time.perf_counter()
        notes = [n for n in [selection_note(cfg, opts, master)] if n]
        if s.master_pooled:
            notes.append("master URL is a transaction pooler (port 6543): sessions cannot keep settings or prepared "
                         "statements; prefer the direct port (5432) for copy and verify")
        if s.replica_pooled:
            notes.append("replica URL is a transaction pooler (port 6543)")
        outside = outside_uses(master, replica, plan)
        notes += unavailable_extension_notes(master, replica)
        estimated = [k for k, rc in master.row_counts.items() if not rc.exact]
        if estimated:
            notes.append(f"master row counts of {len(estimated)} tables are planner estimates (large, or not readable "
                         f"by this role): {', '.join(estimated[:5])}{' …' if len(estimated) > 5 else ''}")
        res = AnalyzeResult(
            master_url=redact(s.master_url), replica_url=redact(s.replica_url),
            master_pooled=s.master_pooled, replica_pooled=s.replica_pooled, notes=notes,
            changes=changes, plan=plan, moves=moves, outside=outside,
            timings={"introspect": round(t1 - t0, 3), "diff_plan": round(t2 - t1, 3), "key_overlap": round(t3 - t2, 3)},
        )
    res.guard_audit = guard.summary()
    schemas_dir, reports_dir = out_dir / "schemas", out_dir / "reports"
    header = [f"master {res.master_url}", f"replica {res.replica_url}"] + notes
    plan_path = write_text(schemas_dir / PLAN_FILE, plan.to_sql(opts.allow_destructive, header))
    rb_path = write_text(schemas_dir / ROLLBACK_FILE, plan.rollback_sql())
    snap_path = write_json(schemas_dir / SNAPSHOT_FILE, full_master)  # the whole master, whatever was selected
    cmp_md, cmp_json = write_report(reports_dir, COMPARISON_STEM, comparison_markdown(res, master, replica),
                                    {"summary": res.summary(), "changes": [c.model_dump(mode="json") for c in changes],
                                     "guard_audit": res.guard_audit})
    dm_md, dm_json = write_report(reports_dir, DATA_PLAN_STEM, data_plan_markdown(res),
                                  {"tables": [m.model_dump(mode="json") for m in moves]})
    res.files = {"plan": str(plan_path), "rollback": str(rb_path), "snapshot": str(snap_path),
                 "comparison_report": str(cmp_md), "data_migration_plan": str(dm_md)}
    res.timings["total"] = round(time.perf_counter() - t0, 3)
    return res


# -------------------------------------------------------------------------------------------------
# what the compared schemas use outside themselves


def _dependent_label(d: Any) -> str:
    return f"{d.kind} {d.key}" + (f"/{d.name}" if d.name and d.kind != "column" else f".{d.name}" if d.name else "")


def outside_uses(master: Schema, replica: Schema, plan: Plan) -> list[OutsideUse]:
    """Extensions, tables, functions and types outside the compared schemas that compared objects
    use; triggers out there calling compared functions; roles named by policies and grants. For
    each: who uses it, whether the replica has it, whether the plan creates it."""
    compared = set(master.schemas)
    planned = {s.object for s in plan.steps if s.phase.startswith("create") or s.phase.startswith("add")}
    used_by: dict[tuple[str, str], set[str]] = defaultdict(set)
    for d in master.dependencies:
        if d.schema_name in compared and d.on_schema not in compared:
            target = ("extension", d.on_extension) if d.on_extension else (
                "table" if d.on_kind in ("table", "constraint", "index") else d.on_kind, d.on_key)
            used_by[target].add(_dependent_label(d))
    for name, e in master.extensions.items():
        if e.schema_name not in compared and e.schema_name == EXTENSIONS_SCHEMA:
            used_by.setdefault(("extension", name), set())
    out: list[OutsideUse] = []
    for (kind, key), users in sorted(used_by.items()):
        if kind == "extension":
            e = master.extensions.get(key)
            obj = f"{key} {e.version} (schema {e.schema_name})" if e else key
            out.append(OutsideUse(kind=kind, object=obj, used_by=sorted(users), on_replica=key in replica.extensions,
                                  planned=quote(key) in planned or key in planned))
        elif kind in ("table", "function", "type", "view"):
            out.append(OutsideUse(kind=kind, object=key, used_by=sorted(users), on_replica=replica.external.has(kind, key),
                                  planned=key in planned))
    for et in master.external.triggers:
        out.append(OutsideUse(kind="trigger", object=f"{et.trigger.name} on {et.table}", used_by=[et.trigger.function],
                              on_replica=replica.external.has("trigger", et.table, et.trigger.name),
                              planned=f"{et.table}/{et.trigger.name}" in planned))
    policies: dict[str, set[str]] = defaultdict(set)
    for t in master.tables.values():
        for p in t.policies.values():
            for r in p.roles:
                if r != "public":
                    policies[r].add(f"policy {t.key}/{p.name}")
    for role in sorted(master.roles_used()):
        users = policies.get(role) or {"grants"}
        out.append(OutsideUse(kind="role", object=role, used_by=sorted(users), on_replica=role in replica.roles,
                              planned=quote(role) in planned))
    return out


def unavailable_extension_notes(master: Schema, replica: Schema) -> list[str]:
    """Extensions the master keeps in `extensions` that the replica's server cannot install and that
    nothing compared uses: not a difference, but worth a line."""
    scope = extensions_in_scope(master, replica)
    return [f"extension {n} (schema {e.schema_name}) is not available on the replica's server and nothing in the "
            "compared schemas uses it: not compared"
            for n, e in sorted(master.extensions.items())
            if e.schema_name == EXTENSIONS_SCHEMA and n not in scope and n not in replica.extensions]


# -------------------------------------------------------------------------------------------------
# data migration plan: FK order, rows, key overlap


def fk_order(schema: Schema) -> list[str]:
    """Table keys with referenced tables first (``replicator.order.fk_order``); each partitioned
    table is followed by its partitions, which are copied through it."""
    out: list[str] = []

    def with_partitions(k: str) -> None:
        out.append(k)
        for p in sorted(t.key for t in schema.partitions_of(k)):
            with_partitions(p)

    for k in order.fk_order(schema).tables:
        with_partitions(k)
    return out


def data_moves(master: Schema, replica: Schema, cfg: Config, s: Sessions | None) -> list[TableMove]:
    renames = resolve_renames(config_renames(cfg), master)
    moves = []
    for i, k in enumerate(fk_order(master), 1):
        t = master.tables[k]
        rt = replica.tables.get(k)
        tc = cfg.table(k if t.schema_name != "public" else t.name)
        mv = TableMove(table=k, order=i, on_master=True, on_replica=rt is not None,
                       master_rows=master.row_count(k), replica_rows=replica.row_count(k) if rt else None,
                       policy=tc.policy.value if tc.policy else None, key=t.key_columns())
        if t.partition_of:
            mv.risks.append(f"partition of {t.partition_of}: copied through its parent")
        if tc.where and not t.partition_of:
            if s is not None:
                mv.master_rows = filtered_count(s, t, tc.where)
            mv.risks.append(f"row filter: only the master rows where {tc.where}")
        if mv.key is None:
            mv.risks.append("no primary key or unique NOT NULL key: rows cannot be matched, copy can only append or replace")
        if rt is not None and mv.key and (mv.replica_rows or 0) > 0 and s is not None and not t.partition_of:
            back = {v: r for r, v in renames.get(k, {}).items()}
            rkey = [back.get(c, c) if back.get(c, c) in rt.columns else c for c in mv.key]
            if all(c in rt.columns for c in rkey):
                mv.overlap = key_overlap(s, t, mv.key, rkey, tc.where)
                o = mv.overlap
                if o.error:
                    mv.risks.append(f"key overlap not computed: {o.error}")
                else:
                    if o.both:
                        mv.risks.append(f"{o.both} keys exist on both sides: the conflict policy ({mv.policy or 'not set'}) decides")
                    if o.replica_only:
                        mv.risks.append(f"{o.replica_only} replica rows have keys absent on the master (kept unless the policy mirrors)")
            else:
                mv.risks.append("the replica lacks the key columns: migrate the schema first")
        if rt is not None and (mv.replica_rows or 0) > 0 and not mv.policy and mv.overlap and mv.overlap.both:
            mv.risks.append("no policy configured for a table with clashing keys: copy will refuse until one is set")
        moves.append(mv)
    return moves


def filtered_count(s: Sessions, t: Table, where: str) -> int | None:
    """Master rows matching a table's `where` (what copy will read)."""
    q = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(sql.Identifier(t.schema_name, t.name), _where(where))
    try:
        with statements_alone(s.master):
            return s.master.execute(q, []).fetchone()[0]  # [] : the filter's % is doubled
    except psycopg.Error:
        return None


def _where(where: str | None) -> sql.Composable:
    # user SQL by design (every statement it ends up in passes the guard); % is literal, not a placeholder
    return sql.SQL(where.replace("%", "%%")) if where else sql.SQL("true")


def _stream_keys(conn: psycopg.Connection, table: sql.Identifier, cols: list[str],
                 where: str | None = None) -> Iterator[tuple]:
    """Key tuples of a table as text, sorted by byte order (COLLATE "C"), streamed (bounded memory).

    Close the generator before ending the transaction it reads in: a suspended `cursor.stream` holds
    the connection's lock, so a ROLLBACK/COMMIT sent while it is open would wait forever. Closing it
    cancels the query and drains the connection.
    """
    exprs = sql.SQL(", ").join(sql.SQL('{}::text COLLATE "C"').format(sql.Identifier(c)) for c in cols)
    q = sql.SQL("SELECT {e} FROM {t} WHERE {w} ORDER BY {o}").format(
        e=exprs, t=table, w=_where(where), o=sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(cols))))
    with conn.cursor() as cur:
        rows = cur.stream(q, [])  # [] : the filter's % is doubled
        try:
            for row in rows:
                yield tuple(row)
        finally:
            rows.close()


def key_overlap(s: Sessions, t: Table, mcols: list[str], rcols: list[str], where: str | None = None) -> KeyOverlap:
    """Merge two sorted key streams: keys only on the master, only on the replica, on both."""
    out = KeyOverlap(key=mcols)
    try:
        table = sql.Identifier(t.schema_name, t.name)
        # the master's stream in a transaction of its own, without a BEGIN and a COMMIT to wait for
        with statements_alone(s.master), s.replica.transaction(force_rollback=True), \
                closing(_stream_keys(s.master, table, mcols, where)) as ms, closing(_stream_keys(s.replica, table, rcols)) as rs:
            a, b = next(ms, None), next(rs, None)
            while a is not None or b is not None:
                if b is None or (a is not None and _lt(a, b)):
                    out.master_only += 1
                    a = next(ms, None)
                elif a is None or _lt(b, a):
                    out.replica_only += 1
                    b = next(rs, None)
                else:
                    out.both += 1
                    a, b = next(ms, None), next(rs, None)
    except psycopg.Error as e:
        hint = timeout_hint(e)  # (one statement outside a transaction: no limit lifted for it)
        out.error = describe(e) + (f"; {hint}" if hint else "")
        for c in (s.master, s.replica):
            if c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                c.rollback()
    return out


def _lt(a: tuple, b: tuple) -> bool:
    """Tuple order matching PostgreSQL's ORDER BY with COLLATE "C" (NULLs last)."""
    for x, y in zip(a, b):
        if x == y:
            continue
        if x is None:
            return False
        if y is None:
            return True
        return x.encode() < y.encode()
    return False


# -------------------------------------------------------------------------------------------------
# Markdown


def comparison_markdown(res: AnalyzeResult, master: Schema, replica: Schema) -> str:
    c = res.plan.counts()
    lines = [
        "# Schema comparison: master vs replica",
        "",
        f"- master: `{res.master_url}` (PostgreSQL {master.server_version // 10000}, database `{master.database}`)",
        f"- replica: `{res.replica_url}` (PostgreSQL {replica.server_version // 10000}, database `{replica.database}`)",
        f"- schemas: {', '.join(master.schemas)}",
        f"- differences: **{len(res.changes)}**; plan: {len(res.plan.steps)} statements "
        f"({c['safe']} safe, {c['destructive']} destructive, {c['data-dependent']} data-dependent)",
    ]
    for n in res.notes:
        lines.append(f"- note: {n}")
    failed = res.plan.failed_prechecks()
    if failed:
        lines += ["", "## Pre-checks that fail on the replica's data", ""]
        lines.append(md_table(["step", "object", "check", "offending rows"],
                              [[s.n, s.object, s.precheck.description, s.precheck.result] for s in failed if s.precheck]))
    by_table: dict[str, list[Change]] = defaultdict(list)
    other: list[Change] = []
    for ch in res.changes:
        (by_table[ch.table] if ch.table else other).append(ch)

    lines += ["", "## Tables", ""]
    rows = []
    for k in sorted(set(master.tables) | set(replica.tables)):
        mt, rt = master.tables.get(k), replica.tables.get(k)
        where = "both" if mt and rt else ("master only" if mt else "replica only")
        rows.append([k, where, master.row_count(k) if mt else "", replica.row_count(k) if rt else "",
                     len(by_table.get(k, []))])
    lines.append(md_table(["table", "exists", "master rows", "replica rows", "differences"], rows))

    for k in sorted(set(master.tables) | set(replica.tables)):
        chs = by_table.get(k, [])
        if not chs:
            continue
        mt, rt = master.tables.get(k), replica.tables.get(k)
        lines += ["", f"### {k}", ""]
        if mt is None or rt is None:
            t = mt or rt
            assert t is not None
            lines.append(f"Exists only on the {'master' if mt else 'replica'} ({len(t.columns)} columns, "
                         f"{(master if mt else replica).row_count(k)} rows).")
            continue
        col_rows = []
        col_changes = [x for x in chs if x.kind.startswith("column_")]
        names = list(mt.columns) + [n for n in rt.columns if n not in mt.columns]
        changed = {x.name for x in col_changes} | {x.replica_name for x in col_changes if x.replica_name}
        for n in names:
            if n not in changed:
                continue
            m, r = mt.columns.get(n), rt.columns.get(n)
            rn = next((x.replica_name for x in col_changes if x.name == n and x.replica_name and x.replica_name != n), None)
            if rn:
                r = rt.columns.get(rn)
            if m is None and any(x.kind == "column_renamed" and x.replica_name == n for x in col_changes):
                continue
            kinds = ", ".join(sorted({x.kind.removeprefix("column_") for x in col_changes if x.name == n or x.replica_name == n}))
            col_rows.append([n + (f" (replica: {rn})" if rn else ""), _coldesc(m), _coldesc(r), kinds])
        if col_rows:
            lines.append(md_table(["column", "master", "replica", "difference"], col_rows))
            lines.append("")
        rest = [x for x in chs if not x.kind.startswith("column_")]
        if rest:
            lines.append(md_table(["kind", "object", "detail"], [[x.kind, x.name or x.object, x.detail] for x in rest]))

    if res.outside:
        lines += ["", "## Used outside the compared schemas", "",
                  "What the compared schemas need from elsewhere (on a Supabase project: the `extensions` schema, "
                  "`auth.users`, `auth.uid()`, the platform roles). A replica that has them keeps its own definition; "
                  "one that lacks them gets the master's (see `[managed]` in the config).", ""]
        lines.append(md_table(["kind", "object", "used by", "on the replica", "plan"],
                              [[o.kind, o.object, ", ".join(o.used_by[:4]) + (" …" if len(o.used_by) > 4 else ""),
                                "yes" if o.on_replica else "**missing**",
                                "creates it" if o.planned else ("" if o.on_replica else "not handled")]
                               for o in res.outside]))

    if other:
        lines += ["", "## Other objects", ""]
        lines.append(md_table(["kind", "object", "detail"], [[x.kind, x.object, x.detail] for x in other]))

    if res.plan.unsupported:
        lines += ["", "## Not handled by the generated plan", ""] + [f"- {u}" for u in res.plan.unsupported]

    lines += ["", "## Master ER diagram", "", "Tables and columns the replica lacks are marked `MISSING_ON_REPLICA`.", "", "```mermaid", mermaid_er(master, replica, res.changes), "```"]

    lines += ["", "## Statements sent to the master (guard audit)", ""]
    lines.append(md_table(["count", "kind", "allowed", "statement"],
                          [[r["count"], r["kind"], "yes" if r["allowed"] else f"REFUSED: {r['reason']}", _short(r["statement"])]
                           for r in res.guard_audit]))
    lines.append("")
    lines.append(f"{sum(r['count'] for r in res.guard_audit)} statements, "
                 f"{sum(r['count'] for r in res.guard_audit if not r['allowed'])} refused; every master transaction was READ ONLY.")
    return "\n".join(lines) + "\n"


def _short(s: str, n: int = 140) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _coldesc(c: Any) -> str:
    if c is None:
        return "—"
    parts = [c.type]
    if not c.nullable:
        parts.append("NOT NULL")
    if c.identity:
        parts.append(f"identity {c.identity}")
    if c.default is not None:
        parts.append(f"default {c.default}")
    if c.generated:
        parts.append(f"generated ({c.generated})")
    return " ".join(parts)


def _mermaid_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", key.replace('"', ""))


def mermaid_er(master: Schema, replica: Schema, changes: list[Change]) -> str:
    missing_cols = {(c.table, c.name) for c in changes if c.kind == "column_missing"}
    lines = ["erDiagram"]
    for k, t in master.tables.items():
        if t.partition_of:
            continue
        name = _mermaid_name(k)
        lines.append(f"    {name} {{")
        pk = set(t.primary_key or [])
        fkcols = {c for fk in t.foreign_keys for c in fk.columns}
        for cn, col in t.columns.items():
            typ = _mermaid_name(col.type.split("(")[0].split(".")[-1]) or "unknown"
            tag = "PK" if cn in pk else ("FK" if cn in fkcols else "")
            mark = '"MISSING_ON_REPLICA"' if (k, cn) in missing_cols or k not in replica.tables else ""
            lines.append(f"        {typ} {_mermaid_name(cn)} {tag} {mark}".rstrip())
        lines.append("    }")
        if k not in replica.tables:
            lines.append(f"    %% {name}: MISSING_ON_REPLICA")
    for k, t in master.tables.items():
        if t.partition_of:
            continue
        for fk in t.foreign_keys:
            if fk.referenced_table in master.tables:
                lines.append(f"    {_mermaid_name(fk.referenced_table)} ||--o{{ {_mermaid_name(k)} : \"{_mermaid_name(fk.name)}\"")
    return "\n".join(lines)


def data_plan_markdown(res: AnalyzeResult) -> str:
    lines = ["# Data migration plan", "", "Tables in foreign-key order (referenced tables first). "
             "Key overlap is computed by streaming the sorted key values of both sides (keys only, bounded memory).", ""]
    rows = []
    for m in res.moves:
        o = m.overlap
        rows.append([m.order, m.table, "yes" if m.on_replica else "no", m.master_rows, m.replica_rows if m.on_replica else "",
                     ", ".join(m.key) if m.key else "(none)", m.policy or "",
                     f"{o.both} / {o.replica_only} / {o.master_only}" if o and not o.error else "",
                     "; ".join(m.risks)])
    lines.append(md_table(["#", "table", "on replica", "master rows", "replica rows", "key", "policy",
                           "keys both / replica-only / master-only", "risks"], rows))
    total = sum(m.master_rows or 0 for m in res.moves if not any("partition of" in r for r in m.risks))
    lines += ["", f"Rows to read from the master: about {total}.", ""]
    return "\n".join(lines)
