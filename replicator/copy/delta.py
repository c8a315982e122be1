"""Re-syncing a table from its baseline (`replicator.copy.baseline`): only the rows that changed since.

1. **One scan per side**, both at once: the keys of the rows written since the baseline (the
   *candidates*), and per key-hash bucket the count and key-hash sum of the rows the side still vouches
   for. No row is hashed, nothing crosses the wire but candidate keys and the buckets' sums: an
   unchanged table costs a sequential read of each side and one round trip to each.
2. **Candidates by key**: `(key, row hash)` of every candidate on both sides, and whether that side
   vouches for it; they are sorted into missing, differing and replica-only keys, as a key-by-key
   comparison of a range would (`replicator.copy.compare.KeyDiff`).
3. **Deletions** leave no row to notice: the first pass sums the vouched-for rows per bucket of key
   hashes (`BUCKETS`), and outside the candidates each bucket's count and key-hash sum must agree on
   the two sides. A bucket that does not has lost a row on one side since the baseline (or holds a row
   the replica keeps and the master never had): the vouched-for keys of those buckets alone are read
   from both sides and set against each other. Where most buckets differ, this path gives way to the
   full comparison.

Nothing here writes: the caller applies the differences under its policy, in one transaction, with
the checkpoint and the new baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from ..rowhash import key_hash, row_hash
from .baseline import Baseline, older_than, xid32
from .compare import KeyDiff
from .keys import Key, KeyRanges
from .plan import TablePlan

XMIN = "_replicator_xmin"
CHUNK = 5_000  # candidate keys per statement (20,000 held 30 MB more at 50,000 changed rows, and was no faster)
MOST_CANDIDATES = 0.3  # beyond this share of a table, comparing by ranges costs less
MAX_CANDIDATES = 250_000  # nor more keys than this: their list is held in memory (about 50 MB)
BUCKETS = 1024  # key-hash buckets the first pass sums the vouched-for rows in (a power of two)
KH = "_replicator_key_hash"
VOUCHED = "_replicator_vouched"


@dataclass
class Scan:
    """One side's first pass."""

    buckets: dict[int, tuple[int, int]]  # key-hash bucket: (rows vouched for, sum of their key hashes)
    candidates: list[tuple[str, ...]] = field(default_factory=list)
    cut: bool = False  # more than MAX_CANDIDATES candidates: the scan stopped reading them

    @property
    def rows(self) -> int:
        return sum(c for c, _ in self.buckets.values()) + len(self.candidates)


@dataclass
class Outcome:
    master_rows: int
    candidates: int
    complete: bool = True  # False: most buckets disagree; roll back what was applied, compare in full
    master_candidates: int = 0  # rows fetched or compared by key (the others: unchanged, not transferred)
    deleted_since: int = 0  # keys one side deleted since the baseline, found by their buckets


class Delta:
    def __init__(self, master: psycopg.Connection, replica: psycopg.Connection, tp: TablePlan, ranges: KeyRanges,
                 pool: ThreadPoolExecutor, base: Baseline):
        self.m, self.r, self.tp, self.ranges, self.pool = master, replica, tp, ranges, pool
        self.mold = older_than(sql.Identifier(XMIN))
        self.mold_params = [xid32(base.master_xmin)]
        own = [xid32(x) for x in base.own_xids]
        self.rold = sql.SQL("({} OR {} = ANY(%s::xid[]))").format(older_than(sql.Identifier(XMIN)), sql.Identifier(XMIN))
        self.rold_params = [xid32(base.replica_xmin), own]
        # the key types are the same on both sides (the plan refuses a mismatch), so both hash alike
        self.key_hash = key_hash(tp.key_r, tp.key_types)

    # each side's rows with their xmin, in the replica's column names; the master's as copy reads them
    # (masked), or only their keys (never masked on this path), which is all the first pass needs
    def _master_rows(self, where: sql.Composable, *, keys_only: bool = False) -> sql.Composable:
        tp = self.tp
        pairs = zip(tp.key_m, tp.key_r) if keys_only else zip(tp.select_exprs, tp.rcols)
        return sql.SQL("SELECT {e}, xmin AS {x} FROM {t} WHERE {w}").format(
            e=sql.SQL(", ").join(sql.SQL("{} AS {}").format(sql.Identifier(e) if keys_only else e, sql.Identifier(c))
                                 for e, c in pairs),
            x=sql.Identifier(XMIN), t=tp.mfrom, w=tp.mwhere(where))

    def _replica_rows(self, where: sql.Composable, *, keys_only: bool = False) -> sql.Composable:
        tp = self.tp
        return sql.SQL("SELECT {c}, xmin AS {x} FROM {t} WHERE {w}").format(
            c=sql.SQL(", ").join(sql.Identifier(c) for c in (tp.key_r if keys_only else tp.rcols)),
            x=sql.Identifier(XMIN), t=tp.rfrom, w=where)

    def _with_key_hash(self, rows: sql.Composable) -> sql.Composable:
        return sql.SQL("SELECT *, {h} AS {kh} FROM ({rows}) s0").format(
            h=self.key_hash, kh=sql.Identifier(KH), rows=rows)

    def _scan_sql(self, rows: sql.Composable, old: sql.Composable) -> sql.Composable:
        """Per bucket, the count and key-hash sum of the rows the side vouches for; and each other row's
        key (a group of its own, so the server holds no list: past its memory, groups go to disk).
        OFFSET 0 keeps the inner select whole: each row's `old` is evaluated once, and the planner,
        with no statistics on what it groups by, hashes the groups. Flattened, it took the key's
        distinct count for the number of buckets and sorted every row instead (500,000 keys: an
        external merge sort on disk; this form takes about half the time)."""
        kh, vouched = sql.Identifier(KH), sql.Identifier(VOUCHED)
        keys = [sql.Identifier(k) for k in self.tp.key_r]
        # at most BUCKETS groups are vouched for: past the limit, the candidates alone are too many,
        # and the client never holds more than MAX_CANDIDATES of them
        return sql.SQL("SELECT {kh} & {m}, {v}, {cand}, count(*), coalesce(sum({kh}), 0)::text "
                       "FROM (SELECT {keys}, {h} AS {kh}, {o} AS {v} FROM ({rows}) s0 OFFSET 0) s GROUP BY {by} "
                       "LIMIT {most}").format(
            kh=kh, m=sql.Literal(BUCKETS - 1), v=vouched, o=old, h=self.key_hash, rows=rows,
            keys=sql.SQL(", ").join(keys),
            cand=sql.SQL(", ").join(sql.SQL("CASE WHEN {} THEN NULL ELSE {}::text END").format(vouched, k) for k in keys),
            by=sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(keys) + 3)),
            most=sql.Literal(BUCKETS + MAX_CANDIDATES + 1))

    def scan(self) -> tuple[Scan, Scan]:
        """Both sides' first pass, run concurrently; the master's inside the run's snapshot."""
        mq = self._scan_sql(self._master_rows(sql.SQL("true"), keys_only=True), self.mold)
        rq = self._scan_sql(self._replica_rows(sql.SQL("true"), keys_only=True), self.rold)
        fut = self.pool.submit(lambda: self.r.execute(rq, self.rold_params).fetchall())
        try:
            m = self.m.execute(mq, self.mold_params).fetchall()
        finally:
            r = fut.result()
        width = len(self.tp.key_r)
        return _scan(m, width), _scan(r, width)

    @staticmethod
    def too_many(ms: Scan, rs: Scan) -> str | None:
        """Why the candidates are not worth comparing by key (None: they are)."""
        candidates = len(ms.candidates) + len(rs.candidates)
        if ms.cut or rs.cut:
            return f"more than {MAX_CANDIDATES} rows changed since the last sync, too many to compare by key"
        if candidates > min(MOST_CANDIDATES * max(ms.rows, rs.rows, 1), MAX_CANDIDATES):
            return f"{candidates} rows changed since the last sync, too many to compare by key"
        return None

    def compare(self, ms: Scan, rs: Scan, apply: Callable[[KeyDiff, list[Key]], None]) -> Outcome:
        """Compare the candidates of both sides, `CHUNK` keys at a time, handing each chunk's difference
        to ``apply`` (a `KeyDiff` and the replica-only keys), then the keys deleted on one side since the
        baseline. Where most buckets disagree, the outcome is not ``complete``: the caller rolls back
        what ``apply`` wrote and compares the table in full. Memory holds the candidate keys and one
        chunk's rows."""
        tp = self.tp
        candidates = list(dict.fromkeys(ms.candidates + rs.candidates))
        ms.candidates = rs.candidates = []
        width = len(tp.key_r)
        keys_text = self.ranges.keys_text(tp.key_r)
        mq = sql.SQL("SELECT {k}, {h}, {o}, {kh} FROM ({rows}) s").format(
            k=keys_text, h=row_hash(tp.rcols), o=self.mold, kh=self.key_hash,
            rows=self._master_rows(self.ranges.in_list("master")))
        rq = sql.SQL("SELECT {k}, {h}, {o}, {kh} FROM ({rows}) s").format(
            k=keys_text, h=row_hash(tp.rcols), o=self.rold, kh=self.key_hash,
            rows=self._replica_rows(self.ranges.in_list("replica")))
        # what each side vouches for outside the candidates must be the same set of keys, bucket by bucket
        outside = [dict(ms.buckets), dict(rs.buckets)]
        out = Outcome(master_rows=ms.rows, candidates=len(candidates))
        for i in range(0, len(candidates), CHUNK):
            arrays = self.ranges.key_arrays(candidates[i:i + CHUNK], width)  # type: ignore[arg-type]
            fut = self.pool.submit(lambda a=arrays: self.r.execute(rq, self.rold_params + a).fetchall())
            try:
                mrows = self.m.execute(mq, self.mold_params + arrays).fetchall()
            finally:
                rrows = fut.result()
            master, replica = {tuple(r[:width]): r[width:] for r in mrows}, {tuple(r[:width]): r[width:] for r in rrows}
            for sums, found in zip(outside, (master, replica)):
                for _h, vouched, kh in found.values():
                    if vouched:  # (the bucket may lack it: a concurrent write on the replica since the scan)
                        c, t = sums.get(kh & (BUCKETS - 1), (0, 0))
                        sums[kh & (BUCKETS - 1)] = (c - 1, t - kh)
            diff = KeyDiff(master_rows=0)
            for k, (h, _vouched, _kh) in master.items():
                other = replica.get(k)
                if other is None:
                    diff.missing.append(list(k))
                elif other[0] != h:
                    diff.changed.append(list(k))
            only = [list(k) for k in replica if k not in master]
            diff.replica_only = len(only)
            out.master_candidates += len(master)
            apply(diff, only)
        kept = [{b: v for b, v in sums.items() if v[0]} for sums in outside]
        differ = sorted(b for b in kept[0].keys() | kept[1].keys() if kept[0].get(b) != kept[1].get(b))
        if len(differ) > BUCKETS // 4:
            out.complete = False
            return out
        lost_on_replica, lost_on_master = self._lost(differ, set(candidates))
        if lost_on_replica or lost_on_master:
            out.master_candidates += len(lost_on_replica)
            out.deleted_since = len(lost_on_replica) + len(lost_on_master)
            apply(KeyDiff(master_rows=0, missing=lost_on_replica, replica_only=len(lost_on_master)), lost_on_master)
        return out

    def _lost(self, buckets: list[int], candidates: set[tuple]) -> tuple[list[Key], list[Key]]:
        """The vouched-for keys of ``buckets`` that only one side has: (on the master only, on the
        replica only), candidates left out (they are compared already)."""
        if not buckets:
            return [], []
        tp = self.tp
        keys = self.ranges.keys_text(tp.key_r)
        pick = sql.SQL("({} & {}) = ANY(%s::bigint[])").format(sql.Identifier(KH), sql.Literal(BUCKETS - 1))
        mq = sql.SQL("SELECT {k} FROM ({rows}) s WHERE {o} AND {p}").format(
            k=keys, rows=self._with_key_hash(self._master_rows(sql.SQL("true"), keys_only=True)), o=self.mold, p=pick)
        rq = sql.SQL("SELECT {k} FROM ({rows}) s WHERE {o} AND {p}").format(
            k=keys, rows=self._with_key_hash(self._replica_rows(sql.SQL("true"), keys_only=True)), o=self.rold, p=pick)
        fut = self.pool.submit(lambda: self.r.execute(rq, self.rold_params + [buckets]).fetchall())
        try:
            m = {tuple(r) for r in self.m.execute(mq, self.mold_params + [buckets]).fetchall()} - candidates
        finally:
            r = {tuple(x) for x in fut.result()} - candidates
        return [list(k) for k in sorted(m - r)], [list(k) for k in sorted(r - m)]

    def delete(self, keys: list[Key]) -> int:
        """Delete the replica rows of ``keys`` (under `mirror`: keys the master no longer has)."""
        total = 0
        for i in range(0, len(keys), CHUNK):
            cur = self.r.execute(sql.SQL("DELETE FROM {t} WHERE {w}").format(t=self.tp.rfrom, w=self.ranges.in_list("replica")),
                                 self.ranges.key_arrays(keys[i:i + CHUNK], len(self.tp.key_r)))
            total += max(cur.rowcount, 0)
        return total


def _scan(rows: list, width: int) -> Scan:
    out = Scan(buckets={}, cut=len(rows) > BUCKETS + MAX_CANDIDATES)
    for bucket, vouched, *rest in rows:
        if vouched:
            out.buckets[int(bucket)] = (int(rest[width]), int(rest[width + 1]))
        else:
            out.candidates.append(tuple(rest[:width]))
    return out
