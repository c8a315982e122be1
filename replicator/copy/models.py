"""Results of a copy run, as pydantic models (serialised into reports/copy-<stamp>.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ColumnDiff(BaseModel):
    column: str
    master: Any = None
    replica: Any = None


class Conflict(BaseModel):
    """A key present on both sides whose rows differ (reported by the `fail` policy and dry runs)."""

    key: dict[str, Any]
    columns: list[ColumnDiff] = Field(default_factory=list)


class TableResult(BaseModel):
    table: str  # master table, quoted qualified
    replica_table: str
    policy: str | None = None
    mode: str = "full"  # full | incremental | replace
    key: list[str] = Field(default_factory=list)
    rows_copied: int = 0  # rows read from the master in this run (transferred, or compared by checksum)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0  # keys present on both sides with identical rows (or kept under keep-replica)
    conflicts: int = 0
    conflict_details: list[Conflict] = Field(default_factory=list)
    batches: int = 0
    direct_batches: int = 0  # batches that went straight into the table (no stage, no compare)
    skipped_batches: int = 0  # key ranges whose checksums matched on both sides: nothing transferred
    skipped_rows: int = 0  # rows in those ranges (counted in rows_copied and unchanged)
    resumed_after: list[str] | None = None
    last_key: list[str] | None = None
    watermark: str | None = None
    masked_columns: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    status: str = "done"  # done | failed | dry-run
    notes: list[str] = Field(default_factory=list)


class SequenceFix(BaseModel):
    table: str
    column: str
    sequence: str
    value: int


class CopyResult(BaseModel):
    run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    snapshot_at: datetime | None = None
    snapshot_mode: str = "single transaction"
    dry_run: bool = False
    incremental: bool = False
    tables: list[TableResult] = Field(default_factory=list)
    sequences: list[SequenceFix] = Field(default_factory=list)
    deferred_constraints: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    ok: bool = True
    error: str | None = None
    audit: list[dict] = Field(default_factory=list)

    def table(self, name: str) -> TableResult:
        for t in self.tables:
            if name in (t.table, t.replica_table) or t.table.endswith("." + name):
                return t
        raise KeyError(name)
