"""`replicator copy`: master rows into the replica, in checkpointed batches.

    from replicator.copy import copy_tables, CopyResult
    result: CopyResult = copy_tables(master_url, replica_url, ["whatsapp_messages"], policy="master-wins")

How data moves. All master reads of a run happen in one ``REPEATABLE READ READ ONLY`` transaction on
one guarded connection (one snapshot, so the tables of an ``--all`` run are consistent with each
other; no ``pg_export_snapshot`` is needed, which also keeps a transaction-mode pooler usable). Each
table is walked in keyset order over its primary key (else a NOT NULL unique index; row comparison
``(a, b) > (%s, %s)`` for composite keys). A batch's closing key comes from a cheap index query
(``ORDER BY key OFFSET n-1 LIMIT 1``); the batch itself is ``COPY (SELECT … WHERE key > last AND
key <= upper) TO STDOUT (FORMAT binary)`` whose chunks are written straight into the replica's
``COPY … FROM STDIN``: rows are never parsed in Python and a batch is never held in memory. Batches
hold at most ``batch_size`` rows and about ``batch_bytes`` bytes (estimated from a 200-row sample).

A table that is empty on the replica when a (non-incremental) copy begins takes the sequential path
instead: one ``COPY (SELECT …) TO STDOUT (FORMAT binary)`` in heap order (no ORDER BY, no boundary
queries; key-ordered reads of random keys such as uuids are random I/O), its row messages (one
CopyData message per row; the binary header and trailer are checked, so a change of framing fails
loudly) cut into replica transactions of the same batch size, each ``COPY … FROM STDIN`` committed
with its checkpoint (mode ``direct``, no ``last_key``). A rerun after an interrupted sequential copy
cannot resume after a key: it walks the whole key range comparing (mode ``reconcile``), master
wins for rows on both sides (deleting replica-only keys only under ``mirror``), which converges the
replica to the new snapshot; the result's notes say so. ``--restart`` starts over.

When the replica has no row in the batch's key range the bytes go straight into the table. Otherwise
the key range is first compared by checksum (policies master-wins, keep-replica, fail, mirror, and
the reconciliation of an interrupted sequential copy): on the master ``SELECT count(*),
coalesce(sum(<row hash>), 0) FROM (SELECT <the batch's select list, masked values, aliased to the
replica column names> FROM t WHERE <range>) s``, on the replica the same aggregate over its stored
columns for the same key range, concurrently (the replica query in a thread). The row hash is the one
``verify --deep`` uses (``replicator.verify.content.row_hash``: every column cast to text, jsonb in
binary when both servers share a major version, hashed with its position in the replica column list as
seed, xor-combined), so identical rows give identical sums. A range of up to ``CHECK_SPAN`` batches
whose count and sum match is skipped: no transfer, no stage table; its checkpoint commits alone and its
rows count as unchanged (``skipped_batches``, ``skipped_rows``). A range that differs is walked in
batches, each checksummed again before it is transferred. Two different row sets match only by a
64-bit collision of the sum (about 2**-64 per range); ``checksum_skip=False`` disables the skip. It is
not used with a masked key, under ``--incremental`` (the master range is filtered by the cursor), when
the two sessions render values differently (``RENDER_SETTINGS``), or for float columns whose text form
is not exact (``extra_float_digits``); those batches take the transfer path.

A batch that is transferred goes into a temporary stage table and the policy is applied in SQL: rows
are compared first (``IS DISTINCT FROM`` over the copied columns) and only rows that differ are
written, so an unchanged table costs almost no WAL.

Policies (``--policy`` or ``[tables.X] policy``): ``master-wins``, ``keep-replica``, ``fail``,
``mirror`` (the only one that deletes: replica keys missing on the master, per key range as it
goes), ``replace`` (one transaction: TRUNCATE, or DELETE when referenced, never CASCADE; then one
COPY). Into a non-empty table without a policy the copy refuses.

Checkpoint table, on the replica, committed in the same transaction as the batch it describes::

    _replicator.checkpoints
      table_name    text PRIMARY KEY  -- replica table, schema.name
      master_table  text              -- master table, schema.name
      run_id        uuid              -- run that wrote the row last
      mode          text              -- full | incremental | replace | direct | reconcile
      policy        text              -- conflict policy (NULL: straight copy into an empty table)
      status        text              -- running | done
      key_columns   text[]            -- keyset columns (replica names)
      last_key      text[]            -- text form of the last committed key; resume after it (NULL: direct)
      rows_copied, inserted, updated, deleted bigint; batches integer  -- totals since the copy began
      was_empty     boolean           -- the replica table was empty when the copy began
      snapshot_at   timestamptz       -- master snapshot time (now() of the master transaction)
      watermark     text              -- incremental: cursor value the next --incremental starts from
      run_watermark text              -- incremental: max(cursor) seen by the copy in progress
      started_at, updated_at timestamptz

A rerun of an interrupted copy (status ``running``) resumes after ``last_key``; ``--restart``
starts over. ``_replicator.dropped_constraints`` records FKs dropped for a cycle or a
self-reference during ``--all``; they are re-added (and so validated) at the end, or at the start
of the next run after a crash.
"""

from .engine import CopyConflict, copy_tables, fk_order
from .models import ColumnDiff, Conflict, CopyResult, SequenceFix, TableResult
from .plan import CopyError, TablePlan

__all__ = [
    "ColumnDiff", "Conflict", "CopyConflict", "CopyError", "CopyResult", "SequenceFix", "TablePlan",
    "TableResult", "copy_tables", "fk_order",
]
