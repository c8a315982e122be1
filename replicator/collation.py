"""Whether two databases sort text the same way by default.

Key ranges are compared with each side's own ordering; when the two orderings differ, a key could fall
in a range on one side and outside it on the other, so those comparisons use `COLLATE "C"` (byte
order, the same everywhere) instead. `datcollate` alone does not tell: an ICU database shows `C` or
the libc locale it was created with there, whatever its ICU locale sorts like, and the same libc
locale name sorts differently across C library versions (`datcollversion`)."""

from __future__ import annotations

import json
import re
from importlib import resources

import psycopg

#: Types whose values sort by a collation (a key column of one of these may need `COLLATE "C"`).
COLLATABLE = re.compile(r'^(?:(?:[A-Za-z_][\w$]*|"[^"]+")\.)?(text|character varying|varchar|character|bpchar|char|name|citext)\b')

DEFAULT_COLLATION_SQL = resources.files("replicator").joinpath("sql", "default_collation.sql").read_text(encoding="utf-8")


def ordering(db_row_json: str) -> tuple:
    """What decides the default sort order, from a row of :data:`DEFAULT_COLLATION_SQL`."""
    row = json.loads(db_row_json)
    provider = row.get("datlocprovider", "c")
    # libc sorts by datcollate; ICU (and PostgreSQL 17's builtin provider) by its own locale
    locale = row.get("datcollate") if provider == "c" else row.get("datlocale") or row.get("daticulocale")
    return provider, locale, row.get("daticurules"), row.get("datcollversion")


def default_ordering(conn: psycopg.Connection) -> tuple:
    return ordering(conn.execute(DEFAULT_COLLATION_SQL).fetchone()[0])


def orderings_differ(a: tuple, b: tuple) -> bool:
    """Whether two :func:`ordering` results may sort text differently. A collation version only one
    side reports (PostgreSQL 14 and older report none) is not taken for a difference: byte order
    would cost every key range its index."""
    if a[:3] != b[:3]:
        return True
    return a[3] is not None and b[3] is not None and a[3] != b[3]
