"""`replicator copy`: master rows into the replica, in checkpointed batches, under a conflict policy.

    from replicator.copy import copy_tables, CopyResult
    result: CopyResult = copy_tables(master_url, replica_url, ["whatsapp_messages"], policy="master-wins")

The pipeline, one module per step:

- `engine`: a run: one master snapshot, the tables in foreign-key order, sequences, foreign keys;
- `preflight`: every table checked before anything is written, every problem reported at once;
- `plan`: what to copy for one table (columns, key, masks, policy, COPY format);
- `lock`: one run per table at a time (session advisory locks on the replica);
- `logic`: the replica's triggers and rules kept from firing; foreign keys checked after;
- `table`: one table: the direct, compare and transfer paths, checkpoints, resuming;
- `keys`: key ranges and their boundaries;
- `compare`: range checksums, and key-by-key comparison by (key, row hash);
- `merge`: a temp stage of master rows applied under a policy;
- `keyless`: `replace`, and tables without a usable key (multisets);
- `stream`: raw COPY pipes, TID-range batches, binary framing;
- `checkpoint`, `models`: `_replicator.checkpoints` as the typed `Checkpoint`, and the results;
- `managed`: the managed tables (auth.users) copied tables reference, secrets masked;
- `masking`: mask expressions evaluated on the master.

The README's "Copying data" section describes the behaviour; `replicator.rowhash` the one meaning of
"equal" copy shares with verify.
"""

from .engine import copy_tables
from .models import Checkpoint, ColumnDiff, Conflict, CopyResult, Orphans, SequenceFix, TableResult
from .plan import CopyError, TablePlan
from .table import CopyConflict

__all__ = [
    "Checkpoint", "ColumnDiff", "Conflict", "CopyConflict", "CopyError", "CopyResult", "Orphans", "SequenceFix",
    "TablePlan", "TableResult", "copy_tables",
]
