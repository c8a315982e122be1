"""What the last complete sync of a table can vouch for, so the next one examines only what changed.

Every row version PostgreSQL writes carries the id of the transaction that wrote it (`xmin`); an UPDATE
writes a new version. So, after a sync that read the master under snapshot S and left the replica
table equal to it (under its policy):

* a master row whose `xmin` committed before S's `xmin` has not changed since that sync: it was in S;
* a replica row whose `xmin` committed before a replica snapshot taken when that sync began, or is one
  of that sync's own transactions, holds what that sync compared or wrote.

Every other row, on either side, is a *candidate*: it is compared by key and row hash, and fixed under
the policy (`replicator.copy.delta`). Deletions leave no row behind: they show as a difference between
the count and key-hash sum of the rows each side still vouches for.

A baseline is only used while nothing that would defeat this reasoning has happened, checked from the
`fingerprint`: the same master cluster (system identifier, database, timeline) and the same storage of
both tables (TRUNCATE, VACUUM FULL, CLUSTER, a rewriting ALTER TABLE, a restore all change it), the same
copied columns, masks and key; and fewer than 2^30 transactions since, on either side, so 32-bit
transaction ids still compare. Otherwise, and under `--restart`, the table is compared in full, which
records a new baseline. Transactions still running when S was taken count as after it, and
subtransaction ids (which a snapshot does not list) are only ever compared with a snapshot's `xmin`,
for which they are as good as their parent's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from . import queries
from .plan import TablePlan

MAX_AGE = 1 << 30  # transactions since a baseline beyond which 32-bit xids would not compare safely
MAX_OWN_XIDS = 100_000  # a sync that committed more transactions than this records no baseline
EXACT = "exact"  # the policy of a baseline left by a copy into an empty table
MIN_VERSION = 130000  # pg_current_snapshot(), pg_snapshot_xmin()

# policies after which every key both sides hold has the master's row: a baseline any policy can use
_MASTER_ROWS = {EXACT, "mirror", "master-wins", "fail"}


@dataclass
class Baseline:
    table_name: str
    fingerprint: str
    policy: str
    master_xmin: int
    replica_xmin: int
    own_xids: list[int]
    run_id: str
    recorded_at: datetime | None = None


@dataclass
class MasterPoint:
    """The run's master snapshot, as a baseline records it."""

    xmin: int  # 64-bit
    xmax: int
    origin: str  # system identifier, database oid and timeline


def snapshot_query() -> str:
    """The run's snapshot bounds and the cluster's timeline (NULL where the role may not read it)."""
    return ("SELECT pg_catalog.pg_snapshot_xmin(s)::text, pg_catalog.pg_snapshot_xmax(s)::text, "
            "CASE WHEN pg_catalog.has_function_privilege('pg_catalog.pg_control_checkpoint()', 'EXECUTE') "
            "THEN (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()) END "
            "FROM pg_catalog.pg_current_snapshot() AS s")


REPLICA_POINT = "SELECT txid_snapshot_xmin(txid_current_snapshot())"


def storage(conn: psycopg.Connection, tables: list[str]) -> dict[str, str]:
    """Each table's oid and leaf storage (`relation_storage.sql`)."""
    rows = conn.execute(queries.load("relation_storage"), {"tables": tables}).fetchall()
    return {t: s or "" for t, s in rows}


def fingerprint(tp: TablePlan, origin: str, master_storage: str, replica_storage: str) -> str:
    """What must be unchanged for a baseline to hold (see the module's docstring)."""
    mask = hashlib.sha256(tp.mask_key.encode()).hexdigest() if tp.mask_key else None
    parts = {
        "origin": origin, "master": master_storage, "replica": replica_storage, "key": tp.key_r,
        "columns": list(zip(tp.mcols, tp.rcols, tp.types)),
        "select": [e.as_string(None) for e in tp.select_exprs], "mask": mask,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def usable(b: Baseline, fp: str, policy: str, master: MasterPoint, replica_now: int) -> str | None:
    """Why ``b`` cannot be used by a sync under ``policy`` (None: it can)."""
    if b.fingerprint != fp:
        return "the table's storage, columns or master changed since the last sync"
    if b.policy != policy and b.policy not in _MASTER_ROWS:
        return f"the last sync kept replica rows under {b.policy}"
    if not (0 <= master.xmax - b.master_xmin < MAX_AGE) or not (0 <= replica_now - b.replica_xmin < MAX_AGE):
        return "too many transactions since the last sync"
    return None


def older_than(xmin: sql.Composable) -> sql.Composable:
    """Rows whose ``xmin`` committed before the xid given as the next parameter: `age()` counts back
    from the same point for both, so this holds across 32-bit wraparound (within `MAX_AGE`). A frozen
    row keeps its `xmin`; `age()` of the special frozen ids is the largest."""
    return sql.SQL("(pg_catalog.age({x}) > pg_catalog.age(%s::xid))").format(x=xmin)


def xid32(x: int) -> str:
    return str(x & 0xFFFFFFFF)


def load_all(conn: psycopg.Connection) -> dict[str, Baseline]:
    if not conn.execute("SELECT to_regclass('_replicator.baselines') IS NOT NULL").fetchone()[0]:
        return {}
    with conn.cursor(row_factory=class_row(Baseline)) as cur:
        cur.execute("SELECT table_name, fingerprint, policy, master_xmin, replica_xmin, own_xids, run_id::text AS run_id, "
                    "recorded_at FROM _replicator.baselines")
        return {b.table_name: b for b in cur.fetchall()}


def save(conn: psycopg.Connection, b: Baseline) -> None:
    """Upsert, inside the transaction that commits the table's last batch."""
    conn.execute(
        "INSERT INTO _replicator.baselines (table_name, fingerprint, policy, master_xmin, replica_xmin, own_xids, run_id) "
        "VALUES (%(table_name)s, %(fingerprint)s, %(policy)s, %(master_xmin)s, %(replica_xmin)s, %(own_xids)s, %(run_id)s) "
        "ON CONFLICT (table_name) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, policy = EXCLUDED.policy, "
        "master_xmin = EXCLUDED.master_xmin, replica_xmin = EXCLUDED.replica_xmin, own_xids = EXCLUDED.own_xids, "
        "run_id = EXCLUDED.run_id, recorded_at = now()", b.__dict__)


def forget(conn: psycopg.Connection, table_name: str) -> None:
    conn.execute("DELETE FROM _replicator.baselines WHERE table_name = %s", (table_name,))
