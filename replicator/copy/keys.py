"""Key ranges: half-open intervals `(lo, hi]` over a table's key, written as row comparisons
(`(k1, k2) > (%s, %s)`), so any btree-ordered key works (integers, uuids, text, timestamps,
composite keys) and every range query can use the key's index.

Key values travel as text (checkpoints store them so) and are cast back to the column type on each
side; both sessions render alike (`replicator.rowhash.pin_render_settings`), so a timestamp's text
means the same instant on both. Text keys compare with each side's collation; when the two sides'
collations differ, ranges compare byte-wise (`COLLATE "C"`) instead, so a key falls in the same range
on both sides.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import psycopg
from psycopg import sql

from ..collation import COLLATABLE
from .plan import TablePlan

Key = list[str]

SAMPLE_PAGES = 2048  # about this many pages are sampled to cut a big table into ranges



class KeyRanges:
    """Range predicates and boundary queries for one table, on either side."""

    def __init__(self, tp: TablePlan):
        self.tp = tp
        self._casts = sql.SQL("({})").format(sql.SQL(", ").join(
            sql.SQL("%s::" + t) + (sql.SQL(' COLLATE "C"') if self._c(t) else sql.SQL("")) for t in tp.key_types))

    def _c(self, typ: str) -> bool:
        return self.tp.collate_c and bool(COLLATABLE.match(typ))

    def row(self, columns: Sequence[str], alias: str | None = None) -> sql.Composable:
        parts = []
        for c, t in zip(columns, self.tp.key_types):
            ident = sql.Identifier(alias, c) if alias else sql.Identifier(c)
            parts.append(sql.SQL('{} COLLATE "C"').format(ident) if self._c(t) else ident)
        return sql.SQL("({})").format(sql.SQL(", ").join(parts))

    def order(self, columns: Sequence[str], desc: bool = False) -> sql.Composable:
        d = sql.SQL(" DESC") if desc else sql.SQL("")
        return sql.SQL(", ").join(
            (sql.SQL('{} COLLATE "C"').format(sql.Identifier(c)) if self._c(t) else sql.Identifier(c)) + d
            for c, t in zip(columns, self.tp.key_types))

    def in_list(self, side: str, alias: str | None = None) -> sql.Composable:
        """`(key) IN (...)` over a list of keys, passed as one text array per key column
        (`key_arrays`) and cast back to the key's types on the server."""
        cols = self.tp.key_m if side == "master" else self.tp.key_r
        names = [sql.Identifier(f"k{i}") for i in range(len(cols))]
        return sql.SQL("({k}) IN (SELECT {c} FROM unnest({a}) AS u({n}))").format(
            k=sql.SQL(", ").join(sql.Identifier(alias, c) if alias else sql.Identifier(c) for c in cols),
            c=sql.SQL(", ").join(sql.SQL("u.{}::{}").format(n, sql.SQL(t)) for n, t in zip(names, self.tp.key_types)),
            a=sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in cols), n=sql.SQL(", ").join(names))

    @staticmethod
    def key_arrays(keys: Sequence[Key], width: int) -> list[list[str]]:
        """The parameters of `in_list`: ``keys`` (text forms) as one list per key column."""
        return [[k[j] for k in keys] for j in range(width)]

    def predicate(self, side: str, lo: Key | None, hi: Key | None, alias: str | None = None) -> tuple[sql.Composable, list]:
        """`(key) > lo AND (key) <= hi` over the master's or the replica's key columns."""
        cols = self.tp.key_m if side == "master" else self.tp.key_r
        parts, params = [], []
        if lo is not None:
            parts.append(sql.SQL("{} > {}").format(self.row(cols, alias), self._casts))
            params += lo
        if hi is not None:
            parts.append(sql.SQL("{} <= {}").format(self.row(cols, alias), self._casts))
            params += hi
        return (sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")), params

    def keys_text(self, columns: Sequence[str], alias: str | None = None) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier(alias, c) if alias else sql.Identifier(c)) for c in columns)

    def sample_boundaries(self, master: psycopg.Connection, estimate: int | None, rows_per_interval: int, *,
                          include: Key | None = None, probe: int | None = None) -> list[Key]:
        """Keys cutting the master table into intervals of about ``rows_per_interval`` rows, in one query:
        ntile over the keys of a block sample (`TABLESAMPLE SYSTEM`, about `SAMPLE_PAGES` pages) of a big
        table, of every key of a small one. Approximate sizes are all a walk needs: any keys cut the key
        space into ranges that cover it. ``include`` (the key an interrupted run stopped at) becomes a
        boundary too, and so does the key ``probe`` rows in (exactly, from the index), in the same
        statement. A table of about one interval gets none: one range, no query."""
        tp = self.tp
        parts = -(-(estimate or 0) // rows_per_interval)
        if parts <= 1 and include is None:
            return []
        # A block sample of about SAMPLE_PAGES pages for a table bigger than twice that (the percentage
        # is worked out by the server in the same statement: no round trip to read the size first).
        heaps = sql.SQL(
            "(SELECT coalesce(sum(pg_catalog.pg_relation_size(c.oid)), 0) / current_setting('block_size')::int "
            "FROM pg_catalog.pg_class c WHERE c.relkind = 'r' AND (c.oid = {t}::regclass OR "
            "c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree({t}::regclass))))").format(
            t=sql.Literal(tp.mident.as_string(None)))
        sample = sql.SQL(" TABLESAMPLE SYSTEM ((SELECT CASE WHEN p > {two} THEN 100.0 * {n} / p ELSE 100 END "
                         "FROM {h} AS s(p)))").format(two=sql.Literal(2 * SAMPLE_PAGES), n=sql.Literal(SAMPLE_PAGES),
                                                      h=heaps)
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in tp.key_m)
        picked = sql.SQL(
            "SELECT DISTINCT ON (tile) {keys} FROM (SELECT {keys}, ntile({n}) OVER (ORDER BY {order}) AS tile "
            "FROM {t}{sample} WHERE {f}) s WHERE tile > 1 ORDER BY tile, {order}"
        ).format(keys=keys, n=sql.Literal(max(parts, 1)), order=self.order(tp.key_m), t=tp.mfrom, sample=sample,
                 f=tp.where)
        params: list = []
        if include is not None:
            # the resume key becomes a boundary, placed among the others in the table's key order
            picked = sql.SQL("({}) UNION SELECT {}").format(picked, sql.SQL(", ").join(
                sql.SQL("%s::" + t) for t in tp.key_types))
            params = list(include)
        if probe is not None and parts > 1:
            picked = sql.SQL("({}) UNION (SELECT {k} FROM {t} WHERE {f} ORDER BY {o} OFFSET %s LIMIT 1)").format(
                picked, k=keys, t=tp.mfrom, f=tp.where, o=self.order(tp.key_m))
            params.append(probe - 1)
        aliased = sql.SQL(", ").join(sql.SQL("{}::text AS {}").format(sql.Identifier(k), sql.Identifier(f"_replicator_k{i}"))
                                     for i, k in enumerate(tp.key_m))
        q = sql.SQL("SELECT {a} FROM ({p}) b ORDER BY {o}").format(a=aliased, p=picked, o=self.order(tp.key_m))
        return [list(r) for r in master.execute(q, params).fetchall()]

    def boundary(self, master: psycopg.Connection, lo: Key | None, n: int, *, cap: Key | None = None,
                 extra: tuple[sql.Composable, list] = (sql.SQL("true"), [])) -> tuple[Key | None, bool]:
        """The key closing a range of ``n`` master rows after ``lo`` (within ``cap``), and whether rows
        follow it there; with fewer rows left, the last of them (None when none) and False. One round
        trip: the n-th and (n+1)-th keys, and the last key, in one statement."""
        tp = self.tp
        rng, params = self.predicate("master", lo, cap)
        where = tp.mwhere(sql.SQL("{} AND {}").format(rng, extra[0]))
        # aliased: an output named like a key column would take its place in ORDER BY (as text)
        keys = sql.SQL(", ").join(sql.SQL("{}::text AS {}").format(sql.Identifier(k), sql.Identifier(f"_replicator_k{i}"))
                                  for i, k in enumerate(tp.key_m))
        q = sql.SQL(
            "(SELECT 0 AS o, {k} FROM {t} WHERE {w} ORDER BY {asc} OFFSET %s LIMIT 2) "
            "UNION ALL (SELECT 1, {k} FROM {t} WHERE {w} ORDER BY {desc} LIMIT 1)"
        ).format(k=keys, t=tp.mfrom, w=where, asc=self.order(tp.key_m), desc=self.order(tp.key_m, desc=True))
        rows = master.execute(q, params + extra[1] + [n - 1] + params + extra[1]).fetchall()
        ahead = [list(r[1:]) for r in rows if r[0] == 0]
        last = [list(r[1:]) for r in rows if r[0] == 1]
        if len(ahead) == 2:
            return ahead[0], True
        if ahead:
            return ahead[0], False
        return (last[0] if last else None), False


class Intervals:
    """The intervals a table's key space is cut into, ``(None, b0], (b0, b1], ..., (b_last, None]``,
    handed out in key order as ranges of one or more intervals to one walk or to several at once.

    A range never straddles the end of the ``prefix`` an interrupted run committed (those intervals are
    reconciled, the ones after them copied or compared afresh). Ranges may commit out of order when
    several walks share the intervals: `through` says how far every interval is committed, which is what
    a checkpoint's resume key may claim."""

    def __init__(self, bounds: list[Key], prefix: int = 0):
        self.bounds = bounds
        self.total = len(bounds) + 1
        self.prefix = prefix
        self._next = 0
        self._done: set[int] = set()
        self.through = 0  # intervals [0, through) are all committed
        self.walks = 1  # walks sharing the intervals: a range leaves the others their share
        self.stopped = False
        self._lock = threading.Lock()

    def lo(self, i: int) -> Key | None:
        return self.bounds[i - 1] if i else None

    def upper(self, j: int) -> Key | None:
        """The upper bound of a range ending before interval ``j`` (None: the end of the key space)."""
        return self.bounds[j - 1] if j <= len(self.bounds) else None

    def claim(self, width: int) -> tuple[int, int] | None:
        """The next ``width`` intervals not handed out yet, as ``(i, j)``; None when none is left."""
        with self._lock:
            i = self._next
            if i >= self.total:
                return None
            share = -(-(self.total - i) // self.walks)  # no wider than an even split of what is left
            j = min(i + min(width, share), self.total, self.prefix if i < self.prefix else self.total)
            self._next = j
            return i, j

    def stop(self) -> None:
        """Hand out no more ranges (a walk failed; the others end with the range they hold)."""
        with self._lock:
            self._next = self.total
            self.stopped = True

    def through_with(self, i: int, j: int) -> int:
        """How far every interval would be committed once ``[i, j)`` is."""
        k = self.through
        while k < self.total and (k in self._done or i <= k < j):
            k += 1
        return k

    def resume_key(self, through: int) -> Key | None:
        """The key a rerun may resume after once intervals ``[0, through)`` are committed (None: none
        is). The last interval has no upper key: with every interval in, the last boundary (a checkpoint
        that is not done never claims the whole key space)."""
        return self.bounds[min(through, len(self.bounds)) - 1] if through and self.bounds else None

    def committed(self, i: int, j: int) -> None:
        self._done.update(range(i, j))
        self.through = self.through_with(i, j)
