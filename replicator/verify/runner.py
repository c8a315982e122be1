"""`run_verify`: open both sides in one read-only snapshot each, run every check, return the report."""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import psycopg
from psycopg import IsolationLevel

from .. import identity
from ..config import Config, Policy, require_url
from ..connect import describe, lost_connections, open_master, open_replica, redact, timeout_hint
from ..diff import quote
from ..errors import ConfigError, ConnectError, GuardViolation
from ..guard import MasterGuard
from ..introspect import Schema, introspect
from .access import check_master_access
from .content import ContentCheck, describe as describe_content
from .context import Sides, TablePair, align_render_settings, pair_tables
from .counts import check_row_counts, count_all, record_counts
from .foreign_keys import check_foreign_keys
from .model import VerifyReport
from .schema import check_schema, check_snapshot
from .sequences import check_sequences
from ..selection import Pattern, Selection

if TYPE_CHECKING:
    from ..subset import Subset

DEFAULT_SNAPSHOT = Path("schemas") / "master-schema.json"


def resolve_tables(names: list[str], master: Schema, selection: Selection | None = None) -> list[str]:
    """Master table keys for `--table` names (bare, schema.name, or quoted as in SQL: `"end"`,
    `app."Odd Table"`); a bare name means the one in public, else the only table of that name. A
    glob (`lead*`, `analytics.*`) stands for every table it matches (``replicator.selection``)."""
    keys = []
    for name in names:
        try:
            pattern: Pattern | None = Pattern.parse(name)
        except ConfigError:
            pattern = None  # not a pattern (`Mixed Case.we"ird`, the unquoted label): a name
        if pattern is not None and pattern.is_glob:
            sel = Selection((pattern,), selection.exclude if selection else (), "--table")
            keys += sel.table_keys(master)
            continue
        found = [t.key for t in master.tables.values()
                 if name in (t.key, f"{t.schema_name}.{t.name}")
                 or (name in (t.name, quote(t.name)) and t.schema_name == "public")]
        if not found:
            found = [t.key for t in master.tables.values() if name in (t.name, quote(t.name))]
        if len(found) != 1:
            raise ConfigError(f"--table {name}: {'no such table' if not found else 'ambiguous'} on the master "
                              f"(schemas: {', '.join(master.schemas)})")
        keys.append(found[0])
    return list(dict.fromkeys(keys))


@dataclass
class Reuse:
    """What an enclosing run (`replicator sync`) already holds, so verify does not do it again: the
    two connections, whose pair passed the identity check, the guard that audits the master one, and
    both schemas as introspected by that run (the replica's after its migration). The connections
    stay open; verify still takes a fresh snapshot on each."""

    master: psycopg.Connection
    replica: psycopg.Connection
    guard: MasterGuard
    master_schema: Schema
    replica_schema: Schema


def run_verify(
    config: Config,
    *,
    tables: list[str] | None = None,
    exclude: list[str] | None = None,
    subset: "Subset | None" = None,
    policy: "Policy | None" = None,
    deep: bool = False,
    examples: int = 5,
    require_readonly_role: bool = False,
    snapshot: Path | str | None = DEFAULT_SNAPSHOT,
    max_keys: int = 100,
    parallel: bool = True,
    progress: Callable[[str], None] | None = None,
    reuse: Reuse | None = None,
) -> VerifyReport:
    """Verify the replica against the master; never writes to either.

    `tables` (names or globs) replaces the config's `include`, `exclude` adds to its `exclude`. A
    table with a `where` (config) is verified as that part of the master: the master side read through
    it, the replica side whole; a `subset` (or the config's `[subset]`) is computed in verify's own
    master snapshot and each table it covers verified as its rows. Differences a table's copy policy
    keeps on purpose warn instead of failing: its own policy, else `policy` (a sync's --policy), else
    `[copy] policy`.

    Raises `ReplicatorError` (exit 2) for configuration and connection problems; every finding,
    including a database error inside one check, is a `Check` in the report.
    """
    master_url, replica_url = require_url(config, "master"), require_url(config, "replica")
    say = progress or (lambda _msg: None)
    report = VerifyReport(started_at=datetime.now(timezone.utc), master=redact(master_url),
                          replica=redact(replica_url), deep=deep, require_readonly_role=require_readonly_role)
    guard = reuse.guard if reuse else MasterGuard()
    audit_from = len(guard.audit)
    selection = Selection.from_config(config, tables or (), exclude or ())
    with ExitStack() as stack:
        if reuse is None:
            m = open_master(master_url, guard)
            stack.callback(m.close)
            r = open_replica(replica_url)
            stack.callback(r.close)
            identity.check_pair(m, r, allow_new_master=config.replica_of_new_master)
        else:
            m, r = reuse.master, reuse.replica
            for conn in (m, r):
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()
                stack.callback(_restore, conn, conn.isolation_level, conn.read_only)
        for conn in (m, r):
            conn.isolation_level = IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        sides = Sides(m, r, parallel=parallel)
        stack.callback(sides.close)
        # One snapshot per side for the whole run; both transactions only read and are rolled back.
        stack.enter_context(m.transaction(force_rollback=True))
        stack.enter_context(r.transaction(force_rollback=True))
        # Ctrl-C must not wait for the query the other thread is running.
        stack.enter_context(_cancel_queries_on_sigint(m, r))
        settings = align_render_settings(sides)

        if reuse is None:
            say("introspecting both sides")
            # no count(*) here: the row_counts check counts the verified tables itself
            ms, rs = sides.both(
                lambda c: introspect(c, schemas=config.schemas, count_threshold=0, defer_counts=[]),
                lambda c: introspect(c, schemas=config.schemas, count_threshold=0, defer_counts=[]),
            )
        else:
            ms, rs = reuse.master_schema, reuse.replica_schema
        if absent := ms.absent_schemas():
            # Otherwise a mistyped schema in the config verifies nothing and passes.
            raise ConfigError(f"schema {', '.join(absent)} (from the config's schemas) does not exist on the master")
        subset_tables: frozenset[str] = frozenset()
        if subset is not None:
            say("subset")
            closure = subset.closure(m, ms, config, selection)
            config = closure.config(config)
            subset_tables = frozenset(closure.wheres())
            selection = Selection.from_config(config, (), exclude or ())
            tables = None
        pairs = pair_tables(config, ms, rs, subset_tables, policy)
        if tables:
            keys = _leaves(ms, resolve_tables(tables, ms, selection))
            for k in keys:
                if p := selection.excluded_by(ms.tables[k].schema_name, ms.tables[k].name):
                    raise ConfigError(f"--table {ms.tables[k].schema_name}.{ms.tables[k].name} is excluded "
                                      f"(exclude {p}): leave it out, or drop the pattern")
        else:
            selected = set(selection.table_keys(ms))
            keys = [k for k in ms.tables if k in pairs and k in selected]
        selected = [pairs[k] for k in keys if k in pairs]
        report.tables = [pairs[k].label if k in pairs else k for k in keys]
        for k in keys:
            if k not in pairs:
                t = ms.tables[k]
                report.add("row_counts", "fail", "table missing on the replica", f"{t.schema_name}.{t.name}")

        def guarded(name: str, table: str | None, fn: Callable[[], None], master: bool = True) -> None:
            """`fn` in a savepoint (on the replica alone where `fn` reads only the replica)."""
            try:
                with sides.savepoint(master=master):
                    fn()
            except (psycopg.Error, GuardViolation) as e:
                if m.closed or r.closed:
                    # A lost connection is not a finding about the replica: exit 2, not failed checks.
                    raise _connection_lost(e, name, table) from e
                # failed, not passed: the check could not run (a limit it met says so, with what to do)
                hint = timeout_hint(e)
                report.add(name, "fail", f"error: {describe(e)}" + (f"; {hint}" if hint else ""), table,
                           error=type(e).__name__)

        # a partition's rows are read through its partitioned tables, whose own structure (policies,
        # triggers, columns) is then checked too: _leaves left them out of `keys`
        scope = _with_partitioned_parents(ms, keys) if not selection.everything else None
        say("schema")
        renames = {p.key: config.table(p.label).renames for p in pairs.values()}
        check_schema(report, ms, rs, {k: v for k, v in renames.items() if v}, scope)
        check_snapshot(report, ms, Path(snapshot) if snapshot else DEFAULT_SNAPSHOT, scope)

        say("master access")
        guarded("master_access", None, lambda: check_master_access(
            report, sides, list(ms.schemas), [p.label for p in selected], require_readonly_role))

        counted: dict[str, tuple[int, int]] = {}
        if not deep and selected:
            say("row counts")
            try:  # every table's count at once: a distant master waits once, not three times a table
                with sides.savepoint():
                    counted = count_all(sides, selected)
            except (psycopg.Error, GuardViolation) as e:
                if m.closed or r.closed:
                    counting = selected[0].label if len(selected) == 1 else f"{len(selected)} tables"
                    raise _connection_lost(e, "row_counts", counting) from e
                # each table is counted on its own below, and the failing one reported against its table
        for pair in selected:
            if deep:
                say(f"content {pair.label}")
                guarded("content", pair.label, lambda pair=pair: _content(report, sides, pair, max_keys))
            elif pair.key in counted:
                record_counts(report, pair, *counted[pair.key], "count(*)")
            else:
                say(f"row counts {pair.label}")
                guarded("row_counts", pair.label, lambda pair=pair: check_row_counts(report, sides, pair))
        say("foreign keys")
        parents = pair_tables(config, ms, rs, subset_tables, policy, partitioned=True)
        for pair in selected:
            guarded("foreign_keys", pair.label, lambda pair=pair: check_foreign_keys(report, sides, pair, parents, examples),
                    master=False)
        say("sequences")
        guarded("sequences", None, lambda: check_sequences(report, sides, rs, selected), master=False)

        read_only = settings["read_only"]
        hide_masked_values(report, selected)
    _audit(report, guard, read_only, settings, audit_from)
    report.finished_at = datetime.now(timezone.utc)
    return report


def _connection_lost(e: BaseException, check: str, table: str | None) -> ConnectError:
    lost = lost_connections()
    where = f" during the {check} check" + (f" of {table}" if table else "")
    if lost:
        return ConnectError(lost[0].message() + where)
    return ConnectError(f"lost a connection{where}: {describe(e)}")


@contextmanager
def _cancel_queries_on_sigint(*conns: psycopg.Connection) -> Iterator[None]:
    """On Ctrl-C, cancel the queries running on `conns` (in any thread) before KeyboardInterrupt is
    raised: the side that did not receive the signal would otherwise run its query to the end, and the
    run would wait for it."""
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if not callable(previous):  # not the main thread, or Ctrl-C ignored / handled outside Python
        yield
        return

    def on_sigint(signum, frame):
        for c in conns:
            try:
                c.cancel_safe(timeout=5)
            except Exception:  # noqa: BLE001 - best effort: the connections are closed next anyway
                pass
        previous(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


MASKED = "(masked)"


def _with_partitioned_parents(schema: Schema, keys: list[str]) -> set[str]:
    out = set(keys)
    for key in keys:
        t = schema.tables.get(key)
        while t is not None and t.partition_of and t.partition_of not in out:
            out.add(t.partition_of)
            t = schema.tables.get(t.partition_of)
    return out


def _leaves(schema: Schema, keys: list[str]) -> list[str]:
    """``keys`` with each partitioned table replaced by its partitions, theirs in turn: they hold the rows."""
    out: list[str] = []
    for k in keys:
        parts = [t.key for t in schema.partitions_of(k)]
        out.extend(_leaves(schema, parts) if schema.tables[k].kind == "partitioned table" else [k])
    return list(dict.fromkeys(out))


def hide_masked_values(report: VerifyReport, pairs: list[TablePair]) -> None:
    """Values of masked columns never appear in a report, even with --show-values: orphan examples
    show them as "(masked)"."""
    masked = {p.label: {p.columns.get(c, c) for c in p.masked} | set(p.masked) for p in pairs if p.masked}
    for c in report.checks:
        hidden = masked.get(c.table or "")
        if not hidden:
            continue
        for example in c.evidence.get("examples") or []:
            for col in example:
                if col in hidden:
                    example[col] = MASKED


def _content(report: VerifyReport, sides: Sides, pair: TablePair, max_keys: int) -> None:
    check = ContentCheck(sides, pair, max_keys=max_keys)
    res = check.run()
    record_counts(report, pair, res.master_rows, res.replica_rows, "content scan")
    evidence = dict(
        compared_columns=check.columns, key=check.key, masked_excluded=pair.masked,
        only_on_master=pair.only_master, only_on_replica=pair.only_replica,
        renamed={m: r for m, r in pair.columns.items() if m != r},
        ranges=res.ranges, differing_ranges=res.differing_ranges, queries=res.queries,
        seconds=round(res.seconds, 3), master_rows=res.master_rows, replica_rows=res.replica_rows,
        **pair.filter_evidence(),
    )
    notes = []
    if pair.masked:
        notes.append(f"masked columns not compared: {', '.join(pair.masked)}")
    if not res.keyed:
        notes.append("no usable key: whole-table checksum only")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    kept = [d for d in res.differences if d["kind"] in pair.tolerated()]
    if res.differences and len(kept) == len(res.differences) and not res.truncated and not res.unexplained:
        # Every difference is one the table's copy policy keeps on purpose (e.g. keep-replica rows).
        report.add("content", "warn", describe_content(res) + f", kept by policy {pair.policy.value}" + suffix,
                   pair.label, differences=res.differences, policy=pair.policy.value, **evidence)
    elif res.differences:
        report.add("content", "fail", describe_content(res) + suffix, pair.label,
                   differences=res.differences, truncated=res.truncated, **evidence)
    elif res.differing_ranges:
        what = "table checksums differ" if not res.keyed else "checksums differ but no differing row was isolated"
        report.add("content", "fail", what + suffix, pair.label, **evidence)
    else:
        report.add("content", "pass", f"{res.master_rows} rows identical in {len(check.columns)} column(s){suffix}",
                   pair.label, **evidence)


def _restore(conn: psycopg.Connection, isolation: IsolationLevel | None, read_only: bool | None) -> None:
    if conn.closed:
        return
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    conn.isolation_level, conn.read_only = isolation, read_only


def _audit(report: VerifyReport, guard: MasterGuard, read_only: str, settings: dict, audit_from: int = 0) -> None:
    """The audit of the statements this run sent (a reused guard also holds the enclosing run's:
    the report's audit lists them all, the check counts verify's own)."""
    report.audit = guard.summary()
    own = guard.audit[audit_from:]
    refused = [e for e in own if not e.allowed]
    kinds: dict[str, int] = {}
    for e in own:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    ev = dict(statements=len(own), distinct=len(report.audit), by_kind=kinds,
              transaction_read_only=read_only, render_settings=settings["master"])
    if refused:
        report.add("audit_log", "fail", f"{len(refused)} statement(s) refused by the guard", None,
                   refused=[{"statement": e.statement[:200], "reason": e.reason} for e in refused[:10]], **ev)
    else:
        report.add("audit_log", "pass", f"{len(own)} statement(s) sent to the master, all read-only "
                   f"(transaction_read_only={read_only})", None, **ev)
