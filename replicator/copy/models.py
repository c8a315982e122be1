"""Results and checkpoints of a copy run, as pydantic models (serialised into reports/copy-<stamp>.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

CheckpointMode = Literal["full", "incremental", "replace", "direct", "keyless", "reconcile"]
CheckpointStatus = Literal["queued", "running", "done"]  # queued: a run's table it has not begun


class Checkpoint(BaseModel):
    """One row of `_replicator.checkpoints`: where the copy of one replica table stands.

    Written in the same replica transaction as the batch it describes, so it never claims rows that
    did not commit, nor misses rows that did."""

    table_name: str  # replica table, schema.name
    master_table: str  # master table, schema.name
    run_id: str
    mode: CheckpointMode
    policy: str | None = None  # conflict policy; None: a straight copy into a table that was empty
    status: CheckpointStatus = "running"
    key_columns: list[str] = Field(default_factory=list)  # replica names
    last_key: list[str] | None = None  # text form of the last committed key (None: no key order)
    rows_copied: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    batches: int = 0
    was_empty: bool = False  # the replica table was empty when the copy began
    snapshot_at: datetime | None = None  # master snapshot time of the run that wrote this row
    watermark: str | None = None  # incremental: where the next --incremental starts
    run_watermark: str | None = None  # incremental: max(cursor) seen by the copy in progress
    started_at: datetime | None = None
    updated_at: datetime | None = None

    def totals(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("rows_copied", "inserted", "updated", "deleted", "batches")}


class ColumnDiff(BaseModel):
    column: str
    master: Any = None
    replica: Any = None


class Conflict(BaseModel):
    """A key present on both sides whose rows differ (reported by the `fail` policy and dry runs)."""

    key: dict[str, Any]
    columns: list[ColumnDiff] = Field(default_factory=list)


class Orphans(BaseModel):
    """Rows of a replica table whose foreign key points at no row (checked after a copy that ran with
    the replica's triggers, and so its foreign-key checks, switched off)."""

    table: str
    constraint: str
    references: str
    rows: int
    examples: list[dict[str, Any]] = Field(default_factory=list)
    hint: str = ""


class TableResult(BaseModel):
    table: str  # master table, schema.name
    replica_table: str
    policy: str | None = None
    mode: str = "full"  # full | delta | incremental | replace | direct | keyless
    key: list[str] = Field(default_factory=list)
    rows_copied: int = 0  # master rows read in this run (transferred, or compared by checksum)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0  # keys present on both sides with identical rows (or kept under keep-replica)
    reconciled: int = 0  # rows fixed in key ranges an interrupted earlier run had committed
    displaced: int = 0  # replica rows deleted (in `deleted`) because a master row took their unique value
    conflicts: int = 0
    conflict_details: list[Conflict] = Field(default_factory=list)
    batches: int = 0
    direct_batches: int = 0  # batches that went straight into the table (no stage, no compare)
    skipped_batches: int = 0  # key ranges whose checksums matched on both sides: nothing transferred
    skipped_rows: int = 0  # rows in those ranges (counted in rows_copied and unchanged)
    diffed_ranges: int = 0  # ranges compared key by key (keys and row hashes only)
    fetched_by_key: int = 0  # rows fetched by key after such a comparison
    candidates: int | None = None  # mode delta: keys compared because a side changed them since the last sync
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
    replica_logic: str = ""  # how replica triggers and rules were kept from firing
    notes: list[str] = Field(default_factory=list)
    tables: list[TableResult] = Field(default_factory=list)
    sequences: list[SequenceFix] = Field(default_factory=list)
    deferred_constraints: list[str] = Field(default_factory=list)
    # tables a failed run left without the indexes it dropped for their load (the next copy builds them)
    indexes_unbuilt: list[str] = Field(default_factory=list)
    orphans: list[Orphans] = Field(default_factory=list)
    seconds: float = 0.0
    ok: bool = True
    error: str | None = None
    audit: list[dict] = Field(default_factory=list)

    def table(self, name: str) -> TableResult:
        for t in self.tables:
            if name in (t.table, t.replica_table) or t.table.endswith("." + name):
                return t
        raise KeyError(name)
