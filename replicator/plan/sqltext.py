"""Small helpers for writing SQL text: identifiers (server-quoted keys or ``psycopg.sql``, never
spliced raw), literals, and what sqlglot says a statement is."""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

import sqlglot
from psycopg import sql
from sqlglot import exp

from ..diff import quote

logging.getLogger("sqlglot").setLevel(logging.ERROR)


def ident(*parts: str) -> str:
    """A qualified name from raw parts, each quoted as quote_ident does."""
    return ".".join(quote(p) for p in parts)


def lit(value: Any) -> str:
    return sql.Literal(value).as_string(None)


def comment_value(value: str | None) -> str:
    return lit(value) if value is not None else "NULL"


_NOT_VALID = re.compile(r"\s+NOT VALID\s*$")


def strip_not_valid(definition: str) -> str:
    return _NOT_VALID.sub("", definition)


def one_line(s: str, width: int = 160) -> str:
    return " ".join(s.split())[:width]


def parse_statement(text: str) -> tuple[Literal["sqlglot", "statement head"], str]:
    """(parsed_by, statement type): sqlglot's node type, else the statement head."""
    try:
        tree = sqlglot.parse_one(text, read="postgres")
        if tree is not None and not isinstance(tree, exp.Command):
            kind = type(tree).__name__
            if isinstance(tree, (exp.Create, exp.Drop)) and tree.args.get("kind"):
                kind += f" {tree.args['kind']}"
            return "sqlglot", kind
    except Exception:  # sqlglot raises several error types on PostgreSQL it does not know
        pass
    words = text.split()
    head = " ".join(w.upper() for w in words[:2])
    if head in ("ALTER TABLE", "ALTER TYPE", "ALTER DOMAIN", "ALTER SEQUENCE", "ALTER EXTENSION") and len(words) > 3:
        # ALTER TABLE <name> <action ...>: keep the action's first keywords
        action = [w.upper() for w in words[3:5] if w.isalpha()]
        head += " … " + " ".join(action)
    elif head.startswith("CREATE") or head.startswith("COMMENT"):
        head = " ".join(w.upper() for w in words[:3] if w.replace("_", "").isalpha())
    return "statement head", head


def replace_value_keyword(check: str, replacement: str) -> str:
    """A domain CHECK expression with every ``VALUE`` keyword (outside string literals and quoted
    identifiers) replaced by ``replacement``: the same test applied to a column's values."""
    out: list[str] = []
    i, n = 0, len(check)
    while i < n:
        ch = check[i]
        if ch in ("'", '"'):
            j = i + 1
            while j < n:
                if check[j] == ch:
                    if j + 1 < n and check[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            out.append(check[i:j + 1])
            i = j + 1
            continue
        m = re.match(r"[A-Za-z_][A-Za-z0-9_$]*", check[i:])
        if m:
            word = m.group(0)
            prev = check[i - 1] if i else ""
            out.append(f"({replacement})" if word == "VALUE" and prev != "." else word)
            i += len(word)
            continue
        out.append(ch)
        i += 1
    return "".join(out)
