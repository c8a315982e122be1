"""Applying master rows held in a replica temp stage under a conflict policy.

The stage holds master rows (masked, in replica column names). Rows are matched by key; a row
"differs" by the one meaning of equal (`replicator.rowhash`: text forms), so values that are `=` but
not identical are updated too; only rows that differ are written, so an unchanged table costs no WAL.
"""

from __future__ import annotations

from itertools import count

import psycopg
from psycopg import sql

from ..config import Policy
from ..rowhash import rows_differ
from .models import ColumnDiff, Conflict, TableResult
from .plan import TablePlan

MAX_CONFLICT_DETAILS = 20
DISPLACED_NOTE = "replica rows holding a unique value a master row took were deleted first"
_names = count(1)


class TempTable:
    """A replica temp table shaped like some columns of a table, emptied at every commit (dropped,
    through a transaction pooler, where the next transaction may run on another session). `current()`
    makes sure it exists in the current transaction: after a rollback (a dry run, a failed batch) or on
    a pooled session it may not."""

    def __init__(self, replica: psycopg.Connection, like: sql.Composable, columns: list[sql.Composable], *,
                 pooled: bool):
        self.r = replica
        self.name = sql.Identifier(f"_replicator_tmp_{next(_names)}")
        self._create = sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {n} ON COMMIT {oc} AS SELECT {c} FROM {t} WITH NO DATA").format(
            n=self.name, oc=sql.SQL("DROP" if pooled else "DELETE ROWS"), c=sql.SQL(", ").join(columns), t=like)
        self.used = False

    def current(self) -> sql.Identifier:
        self.r.execute(self._create)
        self.used = True
        return self.name

    def close(self) -> None:
        if self.used and not self.r.closed and self.r.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            self.r.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.name))
            self.r.commit()


class Stage(TempTable):
    """A temp table holding master rows for one table, and the policy applied from it."""

    def __init__(self, replica: psycopg.Connection, tp: TablePlan, *, pooled: bool, displace: bool = False):
        super().__init__(replica, tp.rfrom, [sql.Identifier(c) for c in tp.rcols], pooled=pooled)
        self.tp = tp
        self.displace = displace  # see _displace: False where deleting a row would cascade

    # -- predicates --------------------------------------------------------------------------------
    def join(self) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier("t", k), sql.Identifier("s", k)) for k in self.tp.key_r)

    def _differ(self) -> sql.Composable:
        others = [c for c in self.tp.rcols if c not in self.tp.key_r]
        return rows_differ("t", "s", others)

    # -- policies ------------------------------------------------------------------------------------
    def conflicts(self, stage: sql.Identifier) -> tuple[int, list[Conflict]]:
        """Keys on both sides whose rows differ: how many, and the first few with their columns."""
        tp = self.tp
        base = sql.SQL("FROM {s} s JOIN {t} t ON {j} WHERE {d}").format(
            s=stage, t=tp.rfrom, j=self.join(), d=self._differ())
        n = self.r.execute(sql.SQL("SELECT count(*) ") + base).fetchone()[0]
        if not n:
            return 0, []
        from deepdiff import DeepDiff  # only to describe conflicts: not worth its import time otherwise

        rows = self.r.execute(sql.SQL("SELECT to_jsonb(s), to_jsonb(t) ") + base + sql.SQL(" ORDER BY {} LIMIT %s").format(
            sql.SQL(", ").join(sql.Identifier("s", k) for k in tp.key_r)), [MAX_CONFLICT_DETAILS]).fetchall()
        details = []
        for srow, trow in rows:
            trow = {c: trow.get(c) for c in tp.rcols}
            srow = {c: srow.get(c) for c in tp.rcols}
            changed = sorted(str(k) for k in DeepDiff(trow, srow).affected_root_keys)
            details.append(Conflict(key={k: srow[k] for k in tp.key_r},
                                    columns=[ColumnDiff(column=c, master=srow.get(c), replica=trow.get(c)) for c in changed]))
        return int(n), details

    def count_changes(self, stage: sql.Identifier, policy: Policy | None) -> tuple[int, int]:
        """(rows an apply would insert, rows it would update), for dry runs."""
        tp = self.tp
        ins = self.r.execute(sql.SQL("SELECT count(*) FROM {s} s WHERE NOT EXISTS (SELECT 1 FROM {t} t WHERE {j})").format(
            s=stage, t=tp.rfrom, j=self.join())).fetchone()[0]
        upd = 0
        if policy in (Policy.MASTER_WINS, Policy.MIRROR):
            upd = self.r.execute(sql.SQL("SELECT count(*) FROM {s} s JOIN {t} t ON {j} WHERE {d}").format(
                s=stage, t=tp.rfrom, j=self.join(), d=self._differ())).fetchone()[0]
        return int(ins), int(upd)

    def apply(self, stage: sql.Identifier, policy: Policy | None, res: TableResult, *,
              known_different: bool = False) -> tuple[int, int]:
        """Update (master-wins, mirror) rows that differ and insert rows the replica lacks; returns
        (inserted, updated). ``known_different``: the stage holds only rows already found to differ (by
        their row hashes), so they are not compared again. Deletions are the caller's: only it knows the
        range the stage covers."""
        tp = self.tp
        updated = 0
        if self.r.execute(sql.SQL("SELECT count(*) > 1000 FROM {}").format(stage)).fetchone()[0]:
            self.r.execute(sql.SQL("ANALYZE {}").format(stage))  # a temp table has no statistics of its own
        if policy in (Policy.MASTER_WINS, Policy.MIRROR):
            if self.displace:
                self._displace(stage, res)
            others = [c for c in tp.rcols if c not in tp.key_r]
            if others:
                # An identity column GENERATED ALWAYS can only be SET to DEFAULT: let it take the
                # master's value inside this transaction (the ALTER commits or rolls back with it).
                always = [c for c in tp.identity_always if c in others]
                for c in always:
                    self.r.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET GENERATED BY DEFAULT").format(
                        tp.rident, sql.Identifier(c)))
                sets = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Identifier("s", c)) for c in others)
                differ = sql.SQL("true") if known_different else self._differ()
                cur = self.r.execute(sql.SQL("UPDATE {t} t SET {sets} FROM {s} s WHERE {j} AND {d}").format(
                    t=tp.rfrom, sets=sets, s=stage, j=self.join(), d=differ))
                updated = max(cur.rowcount, 0)
                for c in always:
                    self.r.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET GENERATED ALWAYS").format(
                        tp.rident, sql.Identifier(c)))
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in tp.rcols)
        scols = sql.SQL(", ").join(sql.Identifier("s", c) for c in tp.rcols)
        cur = self.r.execute(sql.SQL(
            "INSERT INTO {t} ({c}){o} SELECT {sc} FROM {s} s WHERE NOT EXISTS (SELECT 1 FROM {tf} t WHERE {j})").format(
            t=tp.rident, c=cols, o=tp.overriding, sc=scols, s=stage, tf=tp.rfrom, j=self.join()))
        inserted = max(cur.rowcount, 0)
        res.inserted += inserted
        res.updated += updated
        return inserted, updated

    def _displace(self, stage: sql.Identifier, res: TableResult) -> None:
        """Delete the replica rows that hold a value of another unique key which a master row of the
        stage takes, under another key: the master has moved that value (a freed email reused, two
        values swapped), and writing it would fail on every run. A displaced row the master still has
        comes back, with its new value, when its own range is applied (it differs now); one only the
        replica had is gone: the master's row wins."""
        tp = self.tp
        for cols in tp.unique_r:
            same = sql.SQL(" AND ").join(
                sql.SQL("{} = {}").format(sql.Identifier("t", c), sql.Identifier("s", c)) for c in cols)
            cur = self.r.execute(sql.SQL("DELETE FROM {t} t USING {s} s WHERE {same} AND NOT ({j})").format(
                t=tp.rfrom, s=stage, same=same, j=self.join()))
            n = max(cur.rowcount, 0)
            if n:
                res.deleted += n
                res.displaced += n
                if not any(note.startswith(DISPLACED_NOTE) for note in res.notes):
                    res.notes.append(DISPLACED_NOTE + f" (unique on {', '.join(cols)}); counted as deleted, "
                                     "and those the master still has are written again with their new values")

    def delete_missing(self, stage: sql.Identifier, where: sql.Composable, params: list) -> int:
        """Delete replica rows in ``where`` (the range the stage covers) whose key is not in the stage."""
        tp = self.tp
        cur = self.r.execute(sql.SQL("DELETE FROM {t} t WHERE {w} AND NOT EXISTS (SELECT 1 FROM {s} s WHERE {j})").format(
            t=tp.rfrom, w=where, s=stage, j=self.join()), params)
        return max(cur.rowcount, 0)
