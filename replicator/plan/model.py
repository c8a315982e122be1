"""The plan as data: steps (one statement each, classified, with rollback and pre-check) and how it
renders as a reviewable SQL file and as rollback SQL."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Literal

from pydantic import BaseModel, Field

from ..diff import Change
from .sqltext import one_line

Classification = Literal["safe", "destructive", "data-dependent"]


class PreCheck(BaseModel):
    """A read-only query against the replica that tells whether a data-dependent step can succeed."""

    description: str
    sql: str | None = None  # None: nothing to query (e.g. the table is new, so empty)
    result: int | None = None  # rows that would make the step fail
    ok: bool | None = None  # None: not run / could not run
    error: str | None = None
    table: str | None = None
    column: str | None = None
    #: the query that tells once the copy has filled the tables ``sql`` takes as empty (sync runs it then)
    after_copy_sql: str | None = None


class Step(BaseModel):
    n: int = 0
    phase: str  # what it does, e.g. "create table", "alter column", "drop view"
    object: str
    sql: str
    rollback: str | None = None  # None: not reversible (noted in the rollback file)
    classification: Classification = "safe"
    reason: str = ""
    parsed_by: Literal["sqlglot", "statement head"] = "sqlglot"
    statement_type: str = ""
    precheck: PreCheck | None = None
    table: str | None = None  # table whose data a destructive step touches (backed up by migrate)
    transaction: int = 1  # 0: committed before the rest (new enum labels must be committed to be used)
    # Steps this one cannot run without: when one of them is skipped (a destructive step without
    # --allow-destructive), this one is skipped too (creating a view where a table must first be
    # dropped, recreating what depends on a dropped object).
    requires: list[int] = Field(default_factory=list)


class Plan(BaseModel):
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    master_database: str = ""
    replica_database: str = ""
    changes: list[Change] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    unsupported: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.steps

    def counts(self) -> dict[str, int]:
        out = {"safe": 0, "destructive": 0, "data-dependent": 0}
        for s in self.steps:
            out[s.classification] += 1
        return out

    def failed_prechecks(self) -> list[Step]:
        return [s for s in self.steps if s.precheck is not None and s.precheck.ok is False]

    def skipped_with(self, skipped: Iterable[int]) -> dict[int, int]:
        """Every step that cannot run once ``skipped`` are not applied: step -> the skipped step it
        needs (directly or through others). ``skipped`` themselves are not in the result."""
        out: dict[int, int] = {}
        down = set(skipped)
        grew = True
        while grew:
            grew = False
            for s in self.steps:
                if s.n in down:
                    continue
                missing = next((r for r in s.requires if r in down), None)
                if missing is not None:
                    out[s.n] = missing if missing not in out else out[missing]
                    down.add(s.n)
                    grew = True
        return out

    def rollback_sql(self, applied: Iterable[int] | None = None) -> str:
        """Inverse statements of the steps (all, or the ``applied`` ones), in reverse order of
        application: the main transaction's steps, then the ones committed before it."""
        chosen = set(applied) if applied is not None else {s.n for s in self.steps}
        steps = sorted((s for s in self.steps if s.n in chosen), key=lambda s: (s.transaction, s.n), reverse=True)
        lines = [
            "-- Rollback of the replica migration plan: inverse statements in reverse order.",
            "-- Data removed by destructive steps comes back only from the backup taken by `replicator migrate`.",
        ]
        if applied is not None:
            lines.append(f"-- Covers the {len(steps)} step(s) that were applied; skipped steps are not undone.")
        lines.append("BEGIN;")
        for s in steps:
            if s.rollback is None:
                lines.append(f"-- [{s.n}] not reversible: {one_line(s.sql)}")
            else:
                lines.append(f"-- [{s.n}] undo {s.phase} {s.object}")
                lines.append(s.rollback.rstrip().rstrip(";") + ";")
        lines.append("COMMIT;")
        return "\n".join(lines) + "\n"

    def to_sql(self, allow_destructive: bool = False, header: Iterable[str] = ()) -> str:
        """The plan as a reviewable SQL file. Destructive statements, and the statements that need
        them, are commented out unless ``allow_destructive``. Statements are grouped in
        transactions (new enum labels first)."""
        c = self.counts()
        out = [
            "-- replicator migration plan: turns the replica's schema into the master's.",
            f"-- generated {self.created_at.strftime('%Y-%m-%d %H:%M:%S UTC')}"
            f" master={self.master_database} replica={self.replica_database}",
            f"-- {len(self.steps)} statements: {c['safe']} safe, {c['destructive']} destructive,"
            f" {c['data-dependent']} data-dependent; {len(self.changes)} differences.",
            "-- Destructive statements are " + ("INCLUDED (--allow-destructive)." if allow_destructive
                                                 else "commented out (rerun with --allow-destructive to include them)."),
        ]
        out += [f"-- {h}" for h in header]
        out += [f"-- NOTE: {n}" for n in self.notes]
        out += [f"-- NOT HANDLED: {u}" for u in self.unsupported]
        if not self.steps:
            out.append("-- No differences: nothing to do.")
            return "\n".join(out) + "\n"
        destructive = {s.n for s in self.steps if s.classification == "destructive"}
        held = {} if allow_destructive else self.skipped_with(destructive)
        for txn in sorted({s.transaction for s in self.steps}):
            out += ["", "BEGIN;", "SET LOCAL check_function_bodies = off;"]
            for s in (s for s in self.steps if s.transaction == txn):
                out.append("")
                out.append(f"-- [{s.n}] {s.classification.upper()} {s.phase}: {s.object}"
                           + (f" ({s.reason})" if s.reason else ""))
                if s.parsed_by != "sqlglot":
                    out.append(f"--   sqlglot could not parse this statement; classified by its head ({s.statement_type})")
                if s.precheck is not None:
                    out.append(f"--   pre-check: {precheck_text(s.precheck)}")
                body = s.sql.rstrip().rstrip(";") + ";"
                if s.n in destructive and not allow_destructive:
                    out += ["-- " + ln for ln in body.splitlines()]
                elif s.n in held:
                    out.append(f"--   needs destructive step [{held[s.n]}]")
                    out += ["-- " + ln for ln in body.splitlines()]
                else:
                    out.append(body)
            out.append("COMMIT;")
        out += ["", "-- ===================== rollback (whole plan) =====================", ""]
        out += ["-- " + ln if ln and not ln.startswith("--") else ln for ln in self.rollback_sql().splitlines()]
        return "\n".join(out) + "\n"


def precheck_text(p: PreCheck) -> str:
    if p.ok is None:
        state = f"not run{': ' + p.error if p.error else ''}"
    elif p.ok:
        state = f"OK ({p.result} offending rows)" if p.result is not None else "OK"
    else:
        state = f"FAILS: {p.result} offending rows" if p.result is not None else "FAILS"
    return f"{p.description} -> {state}"
