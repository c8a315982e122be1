"""The one meaning of "equal", shared by `replicator copy` and `replicator verify`.

Two values are equal when their text forms are identical, both sides rendering with the same settings
(:data:`RENDER_SETTINGS`, pinned by :func:`pin_render_settings`). That is stricter than SQL's `=` on
purpose: `numeric` 1.000 and 1.0, `float8` -0 and 0, the intervals `-1 days +25:00:00` and `01:00:00`,
`jsonb` 1 and 1.0 and two `citext` values that differ in case are all `=` yet not the same data, and a
replica holding one where the master holds the other is not a copy of it. (For the same reason jsonb
is hashed through its text: `jsonb_hash_extended` hashes 1 and 1.0 alike.)

A row's hash combines, with xor, one 64-bit hash per column seeded with the column's position:

    coalesce(hashtextextended(c1::text, 1), 1) # coalesce(hashtextextended(c2::text, 2), 2) # ...

so NULL differs from '' and from any value, columns cannot trade places unnoticed, and the physical
column order on either side does not matter (columns are named, in an agreed list). Ranges of rows are
compared by `count(*)` and the sum of their row hashes; single rows by their hash or, where the exact
answer is needed (which rows to update), by comparing the text forms themselves.

xml is the one type whose COPY form is not its text: the output function drops the `<?xml ...?>`
declaration. Copy therefore transfers xml as text (:func:`transfer_expr`), which the replica's input
stores as is, so both sides keep, and hash, the same text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from psycopg import sql

#: Session settings that change the text form of values (and of keys passed around as text).
RENDER_SETTINGS = ("TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits", "bytea_output", "lc_monetary")

#: What both sides render with during a copy or a verify. Only these are pinned on the master (the
#: guard allows them, transaction-locally); bytea_output and lc_monetary follow the master's values.
PINNED = {"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres"}


def _ident(column: str, alias: str | None) -> sql.Composable:
    return sql.Identifier(alias, column) if alias else sql.Identifier(column)


def value_text(column: str, alias: str | None = None) -> sql.Composable:
    """The text form of one column's value: what "equal" compares, byte for byte. The cast keeps the
    column's collation, and under a nondeterministic one (case-insensitive ICU) both hashing and
    `IS DISTINCT FROM` would take 'alice' and 'ALICE' for the same; "C" is deterministic (and
    changes no hash under a deterministic collation)."""
    return sql.SQL('({}::text COLLATE "C")').format(_ident(column, alias))


def row_hash(columns: Sequence[str], alias: str | None = None) -> sql.Composable:
    """The 64-bit hash of a row over ``columns`` (seeded by position in that list)."""
    return _combined([sql.SQL("hashtextextended({}, {})").format(value_text(c, alias), sql.Literal(pos))
                      for pos, c in enumerate(columns, start=1)])


def _combined(hashes: Sequence[sql.Composable]) -> sql.Composable:
    """Per-column hashes (the n-th seeded with n) xor-ed into one, a NULL column counting as n."""
    if not hashes:
        return sql.SQL("0::bigint")
    return sql.SQL("({})").format(sql.SQL(" # ").join(
        sql.SQL("coalesce({}, {})").format(h, sql.Literal(pos)) for pos, h in enumerate(hashes, start=1)))


#: Key types hashed by their own extended hash function instead of through their text form, which
#: spares a key scan the text cast of every key. The same value hashes alike on every server (hash
#: partitioning relies on it across major versions), and for these types equal text means equal value.
#: Not enums (their hash is of OIDs, which differ between servers), nor anything else.
NATIVE_KEY_HASH = {"smallint": "hashint2extended", "integer": "hashint4extended", "bigint": "hashint8extended",
                   "uuid": "uuid_hash_extended"}


def key_hash(columns: Sequence[str], types: Sequence[str]) -> sql.Composable:
    """A 64-bit hash of a key, for grouping keys into buckets that both sides sum alike: `row_hash`'s
    shape, with each column of a type in `NATIVE_KEY_HASH` hashed natively. ``types`` are the
    columns' types, the same on both sides."""
    hashes = []
    for pos, (c, t) in enumerate(zip(columns, types, strict=True), start=1):
        native = NATIVE_KEY_HASH.get(t)
        hashes.append(sql.SQL(f"pg_catalog.{native}({{}}, {{}})").format(sql.Identifier(c), sql.Literal(pos)) if native
                      else sql.SQL("hashtextextended({}, {})").format(value_text(c), sql.Literal(pos)))
    return _combined(hashes)


def range_checksum(columns: Sequence[str], alias: str | None = None) -> sql.Composable:
    """`count(*), coalesce(sum(<row hash>), 0)`: the aggregate two sides compare for a set of rows."""
    return sql.SQL("count(*), coalesce(sum({}), 0)").format(row_hash(columns, alias))


def rows_differ(left: str, right: str, columns: Sequence[str], right_columns: Sequence[str] | None = None) -> sql.Composable:
    """True when rows ``left`` and ``right`` differ in any of ``columns`` (text forms, NULL-aware)."""
    if not columns:
        return sql.SQL("false")
    rcols = right_columns or columns
    return sql.SQL("({}) IS DISTINCT FROM ({})").format(
        sql.SQL(", ").join(value_text(c, left) for c in columns),
        sql.SQL(", ").join(value_text(c, right) for c in rcols))


_XML = re.compile(r"^(pg_catalog\.)?xml$")


def transfer_expr(expr: sql.Composable, column_type: str) -> sql.Composable:
    """What copy selects on the master for a column: the value itself, except xml as its text."""
    if _XML.match(column_type):
        return sql.SQL("{}::text").format(expr)
    return expr


def render_settings_query() -> sql.Composable:
    return sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("current_setting({})").format(sql.Literal(n)) for n in RENDER_SETTINGS))


def pin_master_sql(server_version: int) -> sql.Composable:
    """Pin the master's rendering for the current transaction (set_config(..., true): the guard allows
    these presentation settings transaction-locally). extra_float_digits 1 gives the shortest exact text
    of a float from PostgreSQL 12 on; older servers need 3."""
    values = dict(PINNED, extra_float_digits="1" if server_version >= 120000 else "3")
    return sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("pg_catalog.set_config({}, {}, true)").format(sql.Literal(k), sql.Literal(v)) for k, v in values.items()))


def open_pinned_snapshot(server_version: int, imported: str | None = None) -> list[tuple[Any, None]]:
    """The statements opening a master transaction that reads one snapshot with the pinned rendering
    (`imported`: an exported snapshot's id to take, as the first statement must), lifting the timeouts
    the session's startup options could not; sent together on a connection in autocommit, they cost a
    distant master one round trip."""
    from .connect import LIFT_TIMEOUTS_LOCALLY

    take = [(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(imported)), None)] if imported else []
    return [("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", None), *take, (pin_master_sql(server_version), None),
            (LIFT_TIMEOUTS_LOCALLY, None)]


def follow_sql(settings: dict[str, Any], *, local: bool) -> sql.Composable:
    """Make a (replica) session render like ``settings`` (the master's, read after pinning)."""
    return sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("pg_catalog.set_config({}, {}, {})").format(sql.Literal(k), sql.Literal(v), sql.Literal(local))
        for k, v in settings.items()))
