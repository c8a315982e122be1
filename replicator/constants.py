"""Names and bounds the command line needs to declare its options, before anything heavy is imported
(`replicator --help` should not wait for pydantic, psycopg or sqlglot). `replicator.config` builds on
them."""

from __future__ import annotations

from enum import Enum

# Bounds of the numeric settings: past them a value is a typo, and PostgreSQL would reject it later
# with a message that does not name the setting ("bigint out of range").
MAX_BATCH_ROWS = 10_000_000
MAX_BATCH_BYTES = 4 * 1024**3
MAX_LAG_SECONDS = 366 * 24 * 3600
MAX_JOBS = 32


class Policy(str, Enum):
    """What `replicator copy` does with rows whose key already exists on the replica."""

    MASTER_WINS = "master-wins"
    KEEP_REPLICA = "keep-replica"
    FAIL = "fail"
    MIRROR = "mirror"
    REPLACE = "replace"
