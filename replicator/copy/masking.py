"""Masking expressions, evaluated in the master's SELECT so raw values never leave the master.

Rules (per column, `[tables.X.mask]`):

- ``"null"``: NULL.
- ``{ value = "..." }``: one literal for every row (NULLs stay NULL).
- ``"hash"``: keyed and deterministic, so equal inputs give equal outputs and joins on hashed keys
  still work. Uses core functions only (``md5``, ``sha256`` from PostgreSQL 11; no pgcrypto):
  uuid → ``md5(key || value)::uuid``; integers → 60 bits of the same digest (folded into the type's
  range); text-like → ``h_`` + hex digest, cut to the column's length.
- ``"phone"``: ``+44 7700 9xxxxx`` with the five digits derived from the keyed hash.
- ``"email"``: ``user_<12 hex>@example.invalid``.

The key comes from ``mask_key`` in the config or ``REPLICATOR_MASK_KEY``. Expressions read it from a
setting of the master transaction (:data:`KEY_SETTING`), which :func:`set_key` fills with a bound
parameter at the transaction's start: COPY cannot take server-side parameters (psycopg writes them into
the text it sends), so a key in the expression would show in the master's `pg_stat_activity`,
`pg_stat_statements` and statement log. It never appears in the guard's audit log or in reports either.
"""

from __future__ import annotations

import os
import re

from psycopg import sql

from ..config import Config, FixedValue
from ..errors import ConfigError

MASK_KEY_ENV = "REPLICATOR_MASK_KEY"

#: The transaction-local setting that holds the key on the master (a name of our own namespace).
KEY_SETTING = "replicator.mask_key"
_KEY = sql.SQL("pg_catalog.current_setting({})").format(sql.Literal(KEY_SETTING))

_TEXTLIKE = re.compile(r"^(text|character varying|varchar|character|char|bpchar|citext)(\((\d+)\))?$")
_INTS = {"smallint": 15, "integer": 31, "bigint": 63}


def mask_key(cfg: Config) -> str | None:
    return cfg.mask_key or os.environ.get(MASK_KEY_ENV)


def set_key(key: str) -> tuple[sql.Composable, list[str]]:
    """The statement (and its parameter) that gives this master transaction the mask key."""
    return sql.SQL("SELECT pg_catalog.set_config({}, %s, true)").format(sql.Literal(KEY_SETTING)), [key]


def _length(col_type: str) -> int | None:
    m = _TEXTLIKE.match(col_type)
    return int(m.group(3)) if m and m.group(3) else None


def mask_expr(rule, column: str, col_type: str, table: str) -> tuple[sql.Composable, bool]:
    """The SELECT expression for a masked column, and whether it reads the mask key."""
    col = sql.Identifier(column)
    typ = sql.SQL(col_type)
    if isinstance(rule, FixedValue):
        return sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE {v}::{t} END").format(
            c=col, v=sql.Literal(str(rule.value) if not isinstance(rule.value, bool) else rule.value), t=typ
        ), False
    if rule == "null":
        return sql.SQL("NULL::{t}").format(t=typ), False
    # keyed digest of the value's text form
    md5 = sql.SQL("md5({k} || {c}::text)").format(k=_KEY, c=col)
    sha = sql.SQL("encode(sha256(convert_to({k} || {c}::text, 'UTF8')), 'hex')").format(k=_KEY, c=col)
    length = _length(col_type)
    textlike = bool(_TEXTLIKE.match(col_type))

    def fit(e: sql.Composable) -> sql.Composable:
        return sql.SQL("left({e}, {n})").format(e=e, n=sql.Literal(length)) if length else e

    if rule == "hash":
        if col_type == "uuid":
            body = sql.SQL("{h}::uuid").format(h=md5)
        elif col_type in _INTS:
            bits = _INTS[col_type]
            body = sql.SQL("((('x' || left({h}, 15))::bit(60)::bigint) %% {m})::{t}").format(
                h=md5, m=sql.Literal(2**bits - 1), t=typ
            )
        elif textlike:
            body = sql.SQL("{e}::{t}").format(e=fit(sql.SQL("'h_' || {h}").format(h=sha)), t=typ)
        else:
            raise ConfigError(f"{table}.{column}: cannot hash a column of type {col_type} (use null or a value)")
    elif rule == "phone":
        if not textlike:
            raise ConfigError(f"{table}.{column}: phone masking needs a text column, not {col_type}")
        digits = sql.SQL("lpad(((('x' || left({h}, 8))::bit(32)::bigint) %% 100000)::text, 5, '0')").format(h=sha)
        body = sql.SQL("{e}::{t}").format(e=fit(sql.SQL("'+44 7700 9' || {d}").format(d=digits)), t=typ)
    elif rule == "email":
        if not textlike:
            raise ConfigError(f"{table}.{column}: email masking needs a text column, not {col_type}")
        body = sql.SQL("{e}::{t}").format(
            e=fit(sql.SQL("'user_' || left({h}, 12) || '@example.invalid'").format(h=sha)), t=typ
        )
    else:  # pragma: no cover - config validation rejects other rules
        raise ConfigError(f"{table}.{column}: unknown mask rule {rule!r}")
    return sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE {b} END").format(c=col, b=body), True
