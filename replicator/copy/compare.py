"""Comparing a key range of the master with the same range of the replica, cheapest first.

1. **Checksums**: `count(*)` and the sum of row hashes (`replicator.rowhash`) over the range, on both
   sides at once. Equal: nothing to transfer. Two different row sets match only by a 64-bit collision.
2. **Keys and hashes**: the master streams `(key, row hash)` of the range as raw COPY bytes (spooled,
   not parsed) while the replica computes its own `(key, row hash)` pairs into a temp table, at the
   same time; the master's pairs then go into a second temp table and one join of the two names exactly
   the keys whose rows are missing or differ, and the keys the master no longer has. Only keys and
   8-byte hashes cross the wire, nothing is created on the master, each side hashes its rows once, and
   Python holds only the differing keys.

The master side hashes what copy would write (masked values, in the replica's column names), so a
range the replica holds a faithful copy of compares equal.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from ..rowhash import range_checksum, row_hash
from .keys import Key, KeyRanges
from .merge import TempTable
from .plan import TablePlan
from .stream import blocks, copy_in, copy_out, pipe

HASH_COLUMN = "_replicator_row_hash"
SPOOL_IN_MEMORY = 32 * 1024 * 1024  # the master's (key, hash) stream beyond this goes to a temp file


@dataclass
class KeyDiff:
    """What a keys-and-hashes comparison of one range found."""

    master_rows: int
    missing: list[Key] = field(default_factory=list)  # keys only on the master (text form)
    changed: list[Key] = field(default_factory=list)  # keys on both sides whose rows differ
    replica_only: int = 0  # replica keys in the range the master does not have


class Comparer:
    def __init__(self, master: psycopg.Connection, replica: psycopg.Connection, tp: TablePlan, ranges: KeyRanges,
                 pool: ThreadPoolExecutor, *, pooled: bool):
        self.m = master
        self.r = replica
        self.tp = tp
        self.ranges = ranges
        self.pool = pool
        self.pooled = pooled
        cols = [sql.Identifier(k) for k in tp.key_r] + [sql.SQL("0::bigint AS {}").format(sql.Identifier(HASH_COLUMN))]
        self.mkeys = TempTable(replica, tp.rfrom, cols, pooled=pooled)  # the master's (key, hash) pairs
        self.rkeys = TempTable(replica, tp.rfrom, cols, pooled=pooled)  # the replica's

    def close(self) -> None:
        self.mkeys.close()
        self.rkeys.close()

    # -- checksums ---------------------------------------------------------------------------------
    def checksums(self, lo: Key | None, hi: Key | None) -> tuple[tuple[int, int], tuple[int, int]]:
        """(count, sum of row hashes) of the range on the master and on the replica, run concurrently."""
        tp = self.tp
        mrng, mparams = self.ranges.predicate("master", lo, hi)
        mq = sql.SQL("SELECT {a} FROM ({s}) s").format(a=range_checksum(tp.rcols), s=tp.select_as_replica(mrng))
        rrng, rparams = self.ranges.predicate("replica", lo, hi)
        rq = sql.SQL("SELECT {a} FROM {t} WHERE {w}").format(a=range_checksum(tp.rcols), t=tp.rfrom, w=rrng)
        fut = self.pool.submit(lambda: tuple(self.r.execute(rq, rparams).fetchone()))
        try:
            m = self.m.execute(mq, mparams).fetchone()
        finally:
            r = fut.result()
        return (int(m[0]), int(m[1])), (int(r[0]), int(r[1]))

    # -- keys and hashes ------------------------------------------------------------------------------
    def key_diff(self, lo: Key | None, hi: Key | None, *, want_changed: bool) -> KeyDiff:
        """Compare the range key by key, both sides hashing at once. Runs in the replica's current
        transaction; the temp rows go at its commit."""
        tp, rk = self.tp, self.tp.key_r
        mkeys, rkeys = self.mkeys.current(), self.rkeys.current()
        keycols = sql.SQL(", ").join(sql.Identifier(k) for k in rk)
        mrng, mparams = self.ranges.predicate("master", lo, hi)
        out = copy_out(sql.SQL("SELECT {k}, {h} FROM ({s}) s").format(
            k=keycols, h=row_hash(tp.rcols), s=tp.select_as_replica(mrng)), tp.fmt)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            def read_master() -> None:
                with self.m.cursor() as cur, cur.copy(out, mparams):
                    for block in blocks(self.m):
                        spool.write(block)

            fut = self.pool.submit(read_master)
            try:
                rrng, rparams = self.ranges.predicate("replica", lo, hi)
                self.r.execute(sql.SQL("INSERT INTO {k} SELECT {c}, {h} FROM {t} WHERE {w}").format(
                    k=rkeys, c=keycols, h=row_hash(tp.rcols), t=tp.rfrom, w=rrng), rparams)
            finally:
                fut.result()
            spool.seek(0)
            with self.r.cursor() as cur:
                with cur.copy(copy_in(mkeys, rk + [HASH_COLUMN], tp.fmt)) as dst:
                    while block := spool.read(1 << 20):
                        dst.write(block)
                n = max(cur.rowcount, 0)
        join = sql.SQL(" AND ").join(sql.SQL("{} = {}").format(sql.Identifier("r", k), sql.Identifier("m", k)) for k in rk)
        h = sql.Identifier(HASH_COLUMN)
        cond = sql.SQL("r.{f} IS NULL OR r.{h} <> m.{h}").format(f=sql.Identifier(rk[0]), h=h) if want_changed \
            else sql.SQL("r.{} IS NULL").format(sql.Identifier(rk[0]))
        rows = self.r.execute(sql.SQL("SELECT r.{f} IS NULL, {mk} FROM {m} m LEFT JOIN {r} r ON {j} WHERE {c}").format(
            f=sql.Identifier(rk[0]), mk=self.ranges.keys_text(rk, "m"), m=mkeys, r=rkeys, j=join, c=cond)).fetchall()
        diff = KeyDiff(master_rows=n)
        for row in rows:
            (diff.missing if row[0] else diff.changed).append(list(row[1:]))
        diff.replica_only = self.r.execute(sql.SQL(
            "SELECT count(*) FROM {r} r WHERE NOT EXISTS (SELECT 1 FROM {m} m WHERE {j})").format(
            r=rkeys, m=mkeys, j=join)).fetchone()[0]
        return diff

    def delete_replica_only(self) -> int:
        """Delete the replica rows whose key the last `key_diff` did not see on the master."""
        tp, rk = self.tp, self.tp.key_r
        join = sql.SQL(" AND ").join(sql.SQL("{} = {}").format(sql.Identifier("t", k), sql.Identifier("x", k)) for k in rk)
        mjoin = sql.SQL(" AND ").join(sql.SQL("{} = {}").format(sql.Identifier("r", k), sql.Identifier("m", k)) for k in rk)
        cols = sql.SQL(", ").join(sql.Identifier("r", k) for k in rk)
        cur = self.r.execute(sql.SQL(
            "DELETE FROM {t} t USING (SELECT {c} FROM {r} r WHERE NOT EXISTS (SELECT 1 FROM {m} m WHERE {mj})) x "
            "WHERE {j}").format(t=tp.rfrom, c=cols, r=self.rkeys.name, m=self.mkeys.name, mj=mjoin, j=join))
        return max(cur.rowcount, 0)

    def fetch_by_key(self, keys: list[Key], stage: sql.Identifier, chunk: int = 5000) -> int:
        """Copy the master rows of ``keys`` (text forms) into ``stage``; returns the rows fetched."""
        tp = self.tp
        where = self.ranges.in_list("master")
        out = copy_out(tp.select(where), tp.fmt)
        into = copy_in(stage, tp.rcols, tp.fmt)
        total = 0
        for i in range(0, len(keys), chunk):
            part = keys[i:i + chunk]
            total += pipe(self.m, self.r, out, self.ranges.key_arrays(part, len(tp.key_types)), into)
        return total
