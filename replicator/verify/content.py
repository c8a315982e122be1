"""Content comparison (`--deep`): checksums per key range computed inside PostgreSQL on both sides,
differing ranges bisected down to a few keys, then those rows fetched and compared column by column.

How a range is hashed: with the row hash `replicator copy` uses too (`replicator.rowhash`, the one
meaning of "equal"): every shared column (masked ones excluded, renames honoured) in its text form,
hashed with its position in the master's column order as the seed, combined with xor; the rows of a
range summed. So the physical column order on either side does not matter, small type differences
(varchar vs text) do not either, NULL differs from '', and values that are `=` but not identical
(numeric 1.0 and 1.00, jsonb 1 and 1.0) differ. The sum is order independent, so no sort is needed.
Ranges are half-open key intervals
`[lo, hi)` written as row comparisons, `(k1, k2) >= (lo1, lo2) AND (k1, k2) < (hi1, hi2)`, which work
for any btree-ordered key (integers, uuids, text, timestamps, composite keys) and can use the key's
index. Boundaries come from an `ntile` over the master's keys (over a `TABLESAMPLE SYSTEM` sample of
a big table); one sequential scan per side then assigns every row to its range with a binary search
written as nested `CASE` expressions. Boundary values travel as text and are cast to each side's
column type; the replica session renders values with the master's settings (TimeZone, DateStyle,
...), so the texts are the same on both sides. Both sides are hashed concurrently.

Where the two sides would sort a text key differently (another default collation, see
`replicator.collation`, or another collation on a key column), ranges and boundaries compare the key
byte-wise (`COLLATE "C"`) on both sides, so a key falls in the same range on each.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from deepdiff import DeepDiff
from psycopg import sql

from ..collation import COLLATABLE
from ..rowhash import row_hash
from .context import Sides, TablePair, fetchall, fetchone

LEAF_ROWS = 256  # a range this small is fetched and compared row by row
TOP_PARTS = 256  # ranges of the first pass, at most
FANOUT = 16  # sub-ranges per bisection step
SAMPLE_MIN_PAGES = 4096  # tables bigger than this pick boundaries from a block sample
SAMPLE_PAGES = 2048  # about this many pages sampled
MAX_DEPTH = 16
VALUE_CHARS = 120  # evidence values are truncated to this many characters

Key = tuple[str, ...]


@dataclass
class SideSpec:
    conn: psycopg.Connection
    table: sql.Identifier
    keys: list[str]
    key_types: list[str]
    columns: list[str]
    #: rows of this side that take part (the master's through a table's `where` or subset)
    where: sql.Composable = field(default_factory=lambda: sql.SQL("true"))
    byte_order: bool = False  # text keys compare with COLLATE "C": the two sides sort text differently

    def _keys_ordered(self) -> list[sql.Composable]:
        return [sql.SQL('{} COLLATE "C"').format(sql.Identifier(k)) if self.byte_order and COLLATABLE.match(t)
                else sql.Identifier(k) for k, t in zip(self.keys, self.key_types)]

    @property
    def key_row(self) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(", ").join(self._keys_ordered()))

    def literal(self, key: Key) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(", ").join(
            sql.SQL("{}::{}").format(sql.Literal(v), sql.SQL(t)) for v, t in zip(key, self.key_types)))

    def keys_text(self, prefix: str = "") -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL(prefix + "{}::text").format(sql.Identifier(k)) for k in self.keys)

    @property
    def row_hash(self) -> sql.Composable:
        return row_hash(self.columns)

    def range_pred(self, lo: Key | None, hi: Key | None) -> sql.Composable:
        parts: list[sql.Composable] = [self.where]
        if lo is not None:
            parts.append(sql.SQL("{} >= {}").format(self.key_row, self.literal(lo)))
        if hi is not None:
            parts.append(sql.SQL("{} < {}").format(self.key_row, self.literal(hi)))
        return sql.SQL(" AND ").join(parts)

    def bucket_expr(self, bounds: list[Key]) -> sql.Composable:
        """Index of the range a row falls in: bucket i is [bounds[i-1], bounds[i])."""

        def tree(lo: int, hi: int) -> sql.Composable:
            if lo == hi:
                return sql.Literal(lo)
            mid = (lo + hi + 1) // 2
            return sql.SQL("CASE WHEN {} < {} THEN {} ELSE {} END").format(
                self.key_row, self.literal(bounds[mid - 1]), tree(lo, mid - 1), tree(mid, hi))

        return tree(0, len(bounds))

    # -- queries ---------------------------------------------------------------------------------

    def buckets(self, lo: Key | None, hi: Key | None, bounds: list[Key]) -> dict[int, tuple[int, int]]:
        # OFFSET 0 keeps the subquery from being flattened: the planner cannot estimate the number of
        # distinct CASE values and would otherwise sort whole rows (to disk) before grouping; this way
        # only (bucket, hash) pairs reach the aggregate.
        q = sql.SQL("SELECT b, count(*), coalesce(sum(h), 0) FROM "
                    "(SELECT {b} AS b, {h} AS h FROM {t} WHERE {r} OFFSET 0) AS s GROUP BY b").format(
            b=self.bucket_expr(bounds), h=self.row_hash, t=self.table, r=self.range_pred(lo, hi))
        return {int(b): (n, int(s)) for b, n, s in fetchall(self.conn, q)}

    def pick_bounds(self, lo: Key | None, hi: Key | None, parts: int, sample_pct: float | None) -> list[Key]:
        sample = sql.SQL(" TABLESAMPLE SYSTEM ({})").format(sql.Literal(sample_pct)) if sample_pct else sql.SQL("")
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in self.keys)
        order = sql.SQL(", ").join(self._keys_ordered())
        q = sql.SQL(
            "WITH s AS (SELECT {keys}, ntile({parts}) OVER (ORDER BY {order}) AS tile FROM {t}{sample} WHERE {r}) "
            "SELECT DISTINCT ON (tile) {keys_text} FROM s WHERE tile > 1 ORDER BY tile, {order}"
        ).format(keys=keys, order=order, parts=sql.Literal(parts), t=self.table, sample=sample,
                 r=self.range_pred(lo, hi), keys_text=self.keys_text())
        return [tuple(r) for r in fetchall(self.conn, q)]

    def rows(self, lo: Key | None, hi: Key | None) -> dict[Key, tuple[str | None, ...]]:
        cols = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in self.columns)
        q = sql.SQL("SELECT {k}, {c} FROM {t} WHERE {r}").format(
            k=self.keys_text(), c=cols, t=self.table, r=self.range_pred(lo, hi))
        n = len(self.keys)
        return {tuple(r[:n]): tuple(r[n:]) for r in fetchall(self.conn, q)}

    def whole(self) -> tuple[int, int]:
        q = sql.SQL("SELECT count(*), coalesce(sum({h}), 0) FROM {t} WHERE {w}").format(
            h=self.row_hash, t=self.table, w=self.where)
        n, s = fetchone(self.conn, q)  # type: ignore[misc]
        return n, int(s)


@dataclass
class ContentResult:
    master_rows: int = 0
    replica_rows: int = 0
    ranges: int = 0
    differing_ranges: int = 0
    queries: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    keyed: bool = True
    unexplained: bool = False  # checksums differed but no differing row was found
    seconds: float = 0.0


class ContentCheck:
    def __init__(self, sides: Sides, pair: TablePair, max_keys: int = 100):
        self.sides = sides
        self.pair = pair
        self.max_keys = max_keys
        self.columns = [c for c in pair.columns if c not in pair.masked]
        key = pair.key_columns()
        self.key = key if key and not any(k in pair.masked for k in key) else None
        keys = self.key or []
        byte_order = bool(keys) and (sides.text_orders_differ or any(
            pair.master_column(k).collation != pair.replica_column(k).collation for k in keys))
        self.m = SideSpec(sides.master, pair.master_ident, keys, [pair.master_column(k).type for k in keys],
                          self.columns, pair.master_filter, byte_order)
        self.r = SideSpec(sides.replica, pair.replica_ident, [pair.columns[k] for k in keys],
                          [pair.replica_column(k).type for k in keys], [pair.columns[c] for c in self.columns],
                          byte_order=byte_order)
        self.result = ContentResult()

    def both(self, fm, fr):
        self.result.queries += 2
        return self.sides.both(lambda _c: fm(self.m), lambda _c: fr(self.r))

    def run(self) -> ContentResult:
        t0 = time.perf_counter()
        res = self.result
        if not self.key:
            res.keyed = False
            (mn, ms), (rn, rs) = self.both(lambda s: s.whole(), lambda s: s.whole())
            res.master_rows, res.replica_rows, res.ranges = mn, rn, 1
            res.differing_ranges = int((mn, ms) != (rn, rs))
            res.seconds = time.perf_counter() - t0
            return res
        reltuples, pages = fetchone(self.sides.master, sql.SQL(
            "SELECT greatest(reltuples, 0)::float8, pg_relation_size(oid) / 8192 FROM pg_catalog.pg_class "
            "WHERE oid = {}::regclass").format(sql.Literal(self.m.table.as_string(self.sides.master))))  # type: ignore[misc]
        estimate = reltuples if reltuples > 0 else pages * 50
        parts = max(1, min(TOP_PARTS, math.ceil(estimate / LEAF_ROWS)))
        bounds: list[Key] = []
        if parts > 1:
            pct = min(100.0, 100.0 * SAMPLE_PAGES / pages) if pages > SAMPLE_MIN_PAGES else None
            res.queries += 1
            bounds = self.m.pick_bounds(None, None, parts, pct)
        mb, rb = self.both(lambda s: s.buckets(None, None, bounds), lambda s: s.buckets(None, None, bounds))
        res.master_rows = sum(n for n, _ in mb.values())
        res.replica_rows = sum(n for n, _ in rb.values())
        res.ranges = len(bounds) + 1
        self._descend(None, None, bounds, mb, rb, 0, top=True)
        res.seconds = time.perf_counter() - t0
        return res

    def _descend(self, lo, hi, bounds, mb, rb, depth, top=False) -> None:
        for i in range(len(bounds) + 1):
            if len(self.result.differences) >= self.max_keys:
                self.result.truncated = True
                return
            ms, rs = mb.get(i, (0, 0)), rb.get(i, (0, 0))
            if ms == rs:
                continue
            if top:
                self.result.differing_ranges += 1
            sub_lo = bounds[i - 1] if i > 0 else lo
            sub_hi = bounds[i] if i < len(bounds) else hi
            self._range(sub_lo, sub_hi, max(ms[0], rs[0]), ms[0] >= rs[0], depth + 1)

    def _range(self, lo, hi, n, master_bigger, depth) -> None:
        if n <= LEAF_ROWS or depth >= MAX_DEPTH:
            self._leaf(lo, hi)
            return
        parts = max(2, min(FANOUT, math.ceil(n / LEAF_ROWS)))
        side = self.m if master_bigger else self.r
        self.result.queries += 1
        picked = side.pick_bounds(lo, hi, parts, None)
        # Boundaries picked on the replica come back as the replica's column text; both sides cast it.
        if not picked:
            self._leaf(lo, hi)
            return
        mb, rb = self.both(lambda s: s.buckets(lo, hi, picked), lambda s: s.buckets(lo, hi, picked))
        before = len(self.result.differences)
        self._descend(lo, hi, picked, mb, rb, depth)
        if len(self.result.differences) == before and mb == rb:
            self.result.unexplained = True

    def _leaf(self, lo, hi) -> None:
        mrows, rrows = self.both(lambda s: s.rows(lo, hi), lambda s: s.rows(lo, hi))
        found = 0
        for key in sorted(set(mrows) | set(rrows)):
            if len(self.result.differences) >= self.max_keys:
                self.result.truncated = True
                return
            named = dict(zip(self.key or [], key))
            if key not in rrows:
                self.result.differences.append({"key": named, "kind": "missing on replica"})
            elif key not in mrows:
                self.result.differences.append({"key": named, "kind": "extra on replica"})
            elif mrows[key] != rrows[key]:
                cols = [c for c, a, b in zip(self.columns, mrows[key], rrows[key]) if a != b]
                detail = {c: self._detail(c, a, b)
                          for c, a, b in zip(self.columns, mrows[key], rrows[key]) if a != b}
                self.result.differences.append({"key": named, "kind": "changed", "columns": cols, "values": detail})
            else:
                continue
            found += 1
        if not found:
            self.result.unexplained = True

    def _detail(self, column: str, master: str | None, replica: str | None) -> dict[str, Any]:
        ctype = self.pair.master_column(column).type
        if ctype in ("jsonb", "json") and master is not None and replica is not None:
            try:
                dd = DeepDiff(json.loads(master), json.loads(replica), verbose_level=2)
                return {"deepdiff": json.loads(dd.to_json())}
            except (ValueError, TypeError):
                pass
        return {"master": _cut(master), "replica": _cut(replica)}


def _cut(v: str | None) -> str | None:
    return v if v is None or len(v) <= VALUE_CHARS else v[:VALUE_CHARS] + "…"


def describe(result: ContentResult) -> str:
    kinds: dict[str, int] = {}
    cols: dict[str, int] = {}
    for d in result.differences:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
        for c in d.get("columns", []):
            cols[c] = cols.get(c, 0) + 1
    parts = [f"{n} {k}" for k, n in kinds.items()]
    text = f"{len(result.differences)}{'+' if result.truncated else ''} row(s) differ: " + ", ".join(parts)
    if cols:
        text += f" (columns: {', '.join(sorted(cols))})"
    return text
