"""`replicator migrate`: apply the plan to the replica, after backing up what it may lose.

By default the plan is recomputed from live introspection of both sides (so it is never stale), the
pre-checks are run, and then:

* destructive steps are skipped (and reported) unless ``allow_destructive``, and so are the steps
  that need them (creating a view where a table must first be dropped);
* a data-dependent step whose pre-check found offending rows stops the migration before anything is
  changed, with one line naming the table / column and the count, unless ``force`` (then the step is
  attempted: if the data really does not fit, PostgreSQL refuses and the whole transaction rolls back);
* a backup is written under ``reports/backups/<timestamp>/``: ``schema.sql`` (``pg_dump
  --schema-only`` when a pg_dump at least as new as the server is found), always ``replica-schema.json``,
  ``plan.sql`` (the whole plan) and ``rollback.sql`` (the inverse of exactly the steps that are
  applied), and ``data/<table>.copy`` (COPY text format) for each table a destructive step that will
  run alters;
* the statements run in one transaction. New enum labels are the exception: PostgreSQL cannot use a
  label added in the same transaction, so ``ALTER TYPE ... ADD VALUE`` steps are committed first, in
  their own transaction (they are additive and harmless if the rest then fails).

``plan_file`` applies a reviewed plan file as written (its own ``BEGIN``/``COMMIT`` blocks) instead,
after the schema backup. Its pre-checks are not re-run: it is what was reviewed.
"""

from __future__ import annotations

import re
import shutil
import os
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field

from . import ephemeral, identity
from .analyze import AnalyzeOptions, Sessions, compute, config_renames
from .config import Config, require_url
from .connect import describe, open_replica, redact, without_password
from .errors import ReplicatorError
from .guard import MasterGuard
from .introspect import introspect
from .plan import Plan, Step
from .report import utc_stamp, write_json, write_report, write_text


class MigrationError(ReplicatorError):
    pass


class MigrateOptions(AnalyzeOptions):
    dry_run: bool = False
    force: bool = False
    plan_file: Path | None = None


class MigrateResult(BaseModel):
    applied: list[int] = Field(default_factory=list)
    applied_statements: list[dict] = Field(default_factory=list)  # {"step", "object", "sql"} in order
    skipped: list[dict] = Field(default_factory=list)
    forced: list[dict] = Field(default_factory=list)
    dry_run: bool = False
    backup_dir: str | None = None
    backup_files: list[str] = Field(default_factory=list)
    statements: list[str] = Field(default_factory=list)
    plan_file: str | None = None
    plan: Plan | None = None
    nothing_to_do: bool = False
    master_audit: list[dict] = Field(default_factory=list)  # every statement sent to the master (guard)


def select_steps(plan: Plan, allow_destructive: bool, force: bool) -> tuple[list[Step], list[dict], list[dict]]:
    """The steps to run; the skipped ones (destructive without ``allow_destructive``, and those that
    need a skipped step); the ones forced past a failing pre-check. A failing pre-check without
    ``force`` raises before anything is changed."""
    run, skipped, forced = [], [], []
    destructive = [] if allow_destructive else [s.n for s in plan.steps if s.classification == "destructive"]
    held = plan.skipped_with(destructive)
    for s in plan.steps:
        if s.n in destructive:
            skipped.append({"step": s.n, "object": s.object, "reason": "destructive (needs --allow-destructive)", "sql": s.sql})
            continue
        if s.n in held:
            skipped.append({"step": s.n, "object": s.object, "sql": s.sql,
                            "reason": f"needs skipped destructive step [{held[s.n]}]"})
            continue
        p = s.precheck
        if p is not None and p.ok is False:
            where = p.table or s.object
            if p.column:
                where += f".{p.column}"
            found = f"{p.result} rows ({p.description})" if p.result is not None else p.description
            if not force:
                raise MigrationError(
                    f"pre-check failed for step [{s.n}] on {where}: {found}; "
                    "fix the data or rerun with --force; nothing was changed")
            forced.append({"step": s.n, "object": s.object, "rows": p.result, "check": p.description})
        run.append(s)
    return run, skipped, forced


def run_migrate(cfg: Config, out_dir: Path, opts: MigrateOptions) -> MigrateResult:
    if opts.plan_file is not None:
        return _apply_file(cfg, out_dir, opts)
    guard = MasterGuard()
    master, replica, plan, s = compute(cfg, opts, guard)
    res = MigrateResult(dry_run=opts.dry_run, plan=plan)
    try:
        if plan.empty:
            res.nothing_to_do = True
        else:
            steps, res.skipped, res.forced = select_steps(plan, opts.allow_destructive, opts.force)
            res.statements = [st.sql for st in steps]
            if steps and not opts.dry_run:
                identity.mark_replica(s.replica, s.identity)  # refuses a read-only replica before the first write
                bdir = out_dir / "reports" / "backups" / utc_stamp()
                res.backup_dir = str(bdir)
                res.backup_files = backup(s.replica, s.replica_url, bdir, replica, plan,
                                          [st.table for st in steps if st.classification == "destructive" and st.table],
                                          applied=[st.n for st in steps])
                apply_steps(s.replica, steps)
                res.applied = [st.n for st in steps]
                res.applied_statements = [{"step": st.n, "object": st.object, "sql": st.sql} for st in steps]
    finally:
        s.close()
        res.master_audit = guard.summary()
    return _reported(res, out_dir)


def _reported(res: MigrateResult, out_dir: Path) -> MigrateResult:
    """Every run that could have changed the replica leaves its report (a stale one would mislead):
    what was applied, what was skipped and why, and what was sent to the master."""
    if not res.dry_run:
        write_report(out_dir / "reports", "migration-report", migration_markdown(res), res)
    return res


def apply_steps(conn: psycopg.Connection, steps: list[Step]) -> None:
    """Run the steps: transaction 0 (new enum labels) committed first, then the rest in one transaction."""
    conn.autocommit = False
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    for txn in sorted({st.transaction for st in steps}):
        current = None
        try:
            with conn.transaction():
                conn.execute("SET LOCAL check_function_bodies = off")
                for st in (x for x in steps if x.transaction == txn):
                    current = st
                    conn.execute(st.sql)  # type: ignore[arg-type]  # plan text: identifiers already quoted
        except psycopg.Error as e:
            assert current is not None
            done = "" if txn == min(x.transaction for x in steps) else " (new enum labels were already committed)"
            raise MigrationError(
                f"step [{current.n}] {current.object} failed: {describe(e)}; the transaction was rolled back{done}"
            ) from None


# -------------------------------------------------------------------------------------------------
# backups


def find_pg_dump(server_version: int) -> str | None:
    """A pg_dump whose major version is at least the server's."""
    candidates = [shutil.which("pg_dump")]
    for d in (ephemeral.system_bindir(), ephemeral.embedded_bindir()):
        if d is not None:
            candidates.append(str(Path(d) / "pg_dump"))
    best = None
    for c in candidates:
        if not c or not Path(c).is_file():
            continue
        try:
            out = subprocess.run([c, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        m = re.search(r"(\d+)(?:\.(\d+))?", out)
        if m and int(m.group(1)) >= server_version // 10000:
            if best is None or int(m.group(1)) > best[0]:
                best = (int(m.group(1)), c)
    return best[1] if best else None


def backup(conn: psycopg.Connection, url: str, bdir: Path, replica, plan: Plan, tables: list[str],
           applied: list[int] | None = None) -> list[str]:
    """Write the backup; ``rollback.sql`` undoes the ``applied`` steps only (all when None)."""
    bdir.mkdir(parents=True, exist_ok=True)
    files = [str(write_json(bdir / "replica-schema.json", replica)),
             str(write_text(bdir / "plan.sql", plan.to_sql(True))),
             str(write_text(bdir / "rollback.sql", plan.rollback_sql(applied)))]
    dump = find_pg_dump(conn.info.server_version)
    if dump:
        target = bdir / "schema.sql"
        try:
            dsn, secret_env = without_password(url)
            proc = subprocess.run([dump, "--schema-only", "--no-owner", "--file", str(target), "--dbname", dsn],
                                  capture_output=True, text=True, timeout=600, env={**os.environ, **secret_env})
            if proc.returncode == 0:
                files.append(str(target))
            else:
                write_text(bdir / "pg_dump-error.txt", proc.stderr.replace(url, redact(url)))
        except (OSError, subprocess.SubprocessError) as e:
            write_text(bdir / "pg_dump-error.txt", str(e))
    else:
        write_text(bdir / "schema.sql", "-- no compatible pg_dump found: see replica-schema.json and plan.sql\n")
    for t in dict.fromkeys(tables):
        if t not in replica.tables:
            continue
        rt = replica.tables[t]
        path = bdir / "data" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', t)}.copy"
        path.parent.mkdir(parents=True, exist_ok=True)
        # COPY (SELECT ...) also reads a partitioned table (COPY <table> TO refuses one)
        q = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT").format(sql.Identifier(rt.schema_name, rt.name))
        with conn.transaction(), conn.cursor() as cur, open(path, "wb") as f:
            cur.execute("SET TRANSACTION READ ONLY")
            with cur.copy(q) as cp:
                for chunk in cp:
                    f.write(chunk)
        cols = ", ".join(sql.Identifier(c).as_string(None) for c in rt.columns)
        write_text(path.with_suffix(".restore.sql"),
                   f"-- restore: psql -c \"\\copy {t} ({cols}) FROM '{path.name}'\"\n")
        files.append(str(path))
    return files


def _apply_file(cfg: Config, out_dir: Path, opts: MigrateOptions) -> MigrateResult:
    path = Path(opts.plan_file)  # type: ignore[arg-type]
    if not path.is_file():
        raise MigrationError(f"plan file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MigrationError(f"plan file {path} is not UTF-8 text (is it a plan written by analyze?)") from None
    res = MigrateResult(dry_run=opts.dry_run, plan_file=str(path))
    res.statements = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("--")]
    if opts.dry_run:
        return res
    url = require_url(cfg, "replica")
    conn = open_replica(url, autocommit=True)
    try:
        identity.check_plan_target(cfg, conn)
        replica = introspect(conn, schemas=opts.schemas or list(cfg.schemas), all_schemas=opts.all_schemas)
        bdir = out_dir / "reports" / "backups" / utc_stamp()
        res.backup_dir = str(bdir)
        res.backup_files = backup(conn, url, bdir, replica, Plan(), [])
        conn.autocommit = True
        try:
            conn.execute(text)  # type: ignore[arg-type]  # the reviewed plan file, BEGIN/COMMIT inside
        except psycopg.Error as e:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
            raise MigrationError(f"plan file {path} failed: {describe(e)}; the failing transaction was rolled back") from None
        res.applied_statements = plan_file_statements(text)
        res.applied = [a["step"] for a in res.applied_statements if a["step"]]
    finally:
        conn.close()
    write_report(out_dir / "reports", "migration-report", migration_markdown(res), res)
    return res


_STEP_HEADER = re.compile(r"^-- \[(\d+)\] \S+ [^:]*: (.*?)(?: \(.*\))?$")
_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SET LOCAL check_function_bodies\b)", re.I)


def plan_file_statements(text: str) -> list[dict]:
    """The statements a plan file runs, in order: under each step header written by analyze (`-- [n]
    ...`), the SQL that is not commented out (a commented-out step did not run), and any SQL a reviewer
    added outside the steps (step None). Transaction control is left out."""
    out: list[dict] = []
    current: dict | None = None
    for line in text.splitlines():
        m = _STEP_HEADER.match(line)
        if m:
            current = {"step": int(m.group(1)), "object": m.group(2), "sql": ""}
            out.append(current)
            continue
        if _CONTROL.match(line):
            current = None
            continue
        if line.lstrip().startswith("--") or (not line.strip() and (current is None or not current["sql"])):
            continue
        if current is None:
            current = {"step": None, "object": "(added to the plan file)", "sql": ""}
            out.append(current)
        current["sql"] += line + "\n"
    return [s for s in out if s["sql"].strip()]


def migration_markdown(res: MigrateResult) -> str:
    lines = ["# Migration report", ""]
    if res.backup_dir:
        lines.append(f"Backup: `{res.backup_dir}` (its `rollback.sql` undoes exactly the applied statements)")
    lines.append(f"Applied {len(res.applied)} statements; skipped {len(res.skipped)}; forced {len(res.forced)}.")
    if res.plan is not None:
        lines += [f"- note: {n}" for n in res.plan.notes]
        lines += [f"- not handled: {u}" for u in res.plan.unsupported]
    if res.applied_statements:
        lines += ["", "## Applied statements", ""]
        for a in res.applied_statements:
            lines += [f"[{a['step']}] {a['object']}", "", "```sql", a["sql"].rstrip().rstrip(";") + ";", "```", ""]
    if res.skipped:
        lines += ["", "## Skipped", ""] + [f"- [{s['step']}] {s['object']} ({s['reason']}): `{' '.join(s['sql'].split())[:160]}`"
                                           for s in res.skipped]
    if res.forced:
        lines += ["", "## Forced past a failing pre-check", ""] + [f"- [{s['step']}] {s['object']}: {s['rows']} rows ({s['check']})" for s in res.forced]
    if res.master_audit:
        lines += ["", "## Statements sent to the master (guard audit)", ""]
        lines += [f"- {r['count']}× {'allowed' if r['allowed'] else 'REFUSED'}: `{' '.join(r['statement'].split())[:140]}`"
                  for r in res.master_audit]
    return "\n".join(lines) + "\n"


__all__ = ["MigrateOptions", "MigrateResult", "MigrationError", "run_migrate", "apply_steps", "select_steps", "backup",
           "config_renames", "Sessions"]
