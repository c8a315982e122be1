"""The verify report: one `Check` per (check, table), each pass / fail / warn / skip with evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

Status = Literal["pass", "fail", "warn", "skip"]

#: Order in which checks are shown, and their one-line meaning.
CHECKS: dict[str, str] = {
    "schema": "master vs replica structure",
    "schema_snapshot": "master vs the stored snapshot (schemas/master-schema.json)",
    "row_counts": "exact row counts on both sides",
    "foreign_keys": "orphan rows on the replica for every master foreign key",
    "sequences": "replica sequences / identity ahead of the column's max",
    "content": "per-key-range checksums, bisected to the differing keys (--deep)",
    "master_access": "could the master credentials write?",
    "master_rls": "could row-level security hide master rows from this role?",
    "audit_log": "statements this run sent to the master",
}


class Check(BaseModel):
    name: str
    status: Status
    table: str | None = None
    summary: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)


class VerifyReport(BaseModel):
    started_at: datetime
    finished_at: datetime | None = None
    master: str  # redacted URL
    replica: str
    deep: bool = False
    require_readonly_role: bool = False
    tables: list[str] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    audit: list[dict[str, Any]] = Field(default_factory=list)  # MasterGuard.summary()
    #: False in a report made safe to publish (`without_values`): differing rows name their keys and
    #: columns, not the values.
    values_shown: bool = True

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skips allowed)."""
        return not any(c.status == "fail" for c in self.checks)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "warn": 0, "skip": 0}
        for c in self.checks:
            out[c.status] += 1
        return out

    def add(self, name: str, status: Status, summary: str = "", table: str | None = None, **evidence: Any) -> Check:
        check = Check(name=name, status=status, table=table, summary=summary, evidence=evidence)
        self.checks.append(check)
        return check

    def without_values(self) -> "VerifyReport":
        """A copy safe to publish (CI job summaries, artifacts): the keys and column names of differing
        rows stay, their values go."""
        safe = self.model_copy(deep=True)
        for c in safe.checks:
            for d in c.evidence.get("differences") or []:
                if "values" in d:
                    d["values"] = None
        safe.values_shown = False
        return safe

    def failures(self, name: str | None = None) -> list[Check]:
        return [c for c in self.checks if c.status == "fail" and (name is None or c.name == name)]

    def find(self, name: str, table: str | None = None) -> list[Check]:
        return [c for c in self.checks if c.name == name and (table is None or c.table == table)]
