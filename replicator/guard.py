"""The master guard: every statement is classified before it is sent to the master.

Allowed: queries (SELECT / WITH / VALUES / TABLE) that contain no data-modifying part, SHOW,
`COPY (query) TO STDOUT` and `COPY table TO STDOUT`, transaction control, and `SET TRANSACTION`.
Everything else raises `GuardViolation` before it reaches the wire. The guard fails closed: a statement
it cannot parse is refused.

It is one of three layers (see DESIGN.md): the session also runs READ ONLY transactions, and `verify`
audits what the credentials could do. A user-defined function called from a SELECT could still try to
write; the READ ONLY transaction is what stops that.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from datetime import datetime, timezone

import sqlglot
from pydantic import BaseModel, ConfigDict
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from .errors import GuardViolation

# Functions with side effects that a SELECT could call; the READ ONLY transaction stops some of them
# (nextval, setval), but not all (pg_terminate_backend, set_config can switch read-only off).
SIDE_EFFECT_FUNCTIONS = frozenset(
    {
        "nextval", "setval", "set_config", "pg_terminate_backend", "pg_cancel_backend",
        "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal", "pg_create_restore_point",
        "pg_promote", "pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
        "pg_drop_replication_slot", "pg_replication_origin_create", "pg_replication_origin_drop",
        "pg_logical_emit_message", "pg_stat_reset", "pg_stat_reset_shared",
        "pg_stat_reset_single_table_counters", "pg_file_write", "pg_file_unlink", "pg_file_rename",
        "lo_create", "lo_creat", "lo_import", "lo_export", "lo_unlink", "lo_put", "lo_from_bytea",
        "lo_truncate", "dblink", "dblink_exec", "dblink_connect", "pg_read_file", "pg_read_binary_file",
    }
)

# set_config() may pin these, transaction-locally only (is_local = true): they change how values are
# rendered, never what the session may write. Read-only settings are deliberately absent.
PRESENTATION_SETTINGS = frozenset({"search_path", "timezone", "datestyle", "intervalstyle", "extra_float_digits"})

# Node types that make a query something other than a read.
_WRITE_NODES = tuple(
    getattr(exp, name)
    for name in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable",
        "Into", "Lock", "Command", "Grant", "Revoke", "Comment", "Analyze", "Set", "Copy",
    )
    if hasattr(exp, name)
)

_TXN_WORDS = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"}
# Words that may follow a transaction-control keyword; anything else is refused.
_TXN_OPTION_WORDS = {
    "TRANSACTION", "WORK", "ISOLATION", "LEVEL", "SERIALIZABLE", "REPEATABLE", "READ", "COMMITTED",
    "UNCOMMITTED", "ONLY", "DEFERRABLE", "NOT", "TO", "SAVEPOINT", "AND", "NO", "CHAIN", ",",
}

# psycopg placeholders (%s, %b, %t, %(name)s); replaced by NULL only for classification.
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[sbt]")


class AuditEntry(BaseModel):
    """One statement a run tried to send to the master."""

    at: datetime
    statement: str
    kind: str
    allowed: bool
    reason: str | None = None


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    allowed: bool
    kind: str
    reason: str | None = None


class MasterGuard:
    """Classifies statements and keeps the audit log of one run."""

    def __init__(self) -> None:
        self.audit: list[AuditEntry] = []
        self._lock = threading.Lock()

    def check(self, statement: str) -> None:
        """Record the statement and raise `GuardViolation` unless it is read-only."""
        verdict = classify(statement)
        with self._lock:
            self.audit.append(
                AuditEntry(
                    at=datetime.now(timezone.utc),
                    statement=statement,
                    kind=verdict.kind,
                    allowed=verdict.allowed,
                    reason=verdict.reason,
                )
            )
        if not verdict.allowed:
            snippet = " ".join(statement.split())[:80]
            raise GuardViolation(f"refused to send to the master ({verdict.reason}): {snippet}")

    def summary(self) -> list[dict]:
        """Distinct statements with how often each was sent, for reports."""
        counts: dict[tuple[str, bool], dict] = {}
        for e in self.audit:
            key = (" ".join(e.statement.split()), e.allowed)
            row = counts.setdefault(
                key, {"statement": key[0], "kind": e.kind, "allowed": e.allowed, "reason": e.reason, "count": 0}
            )
            row["count"] += 1
        return list(counts.values())


@lru_cache(maxsize=1024)
def classify(statement: str) -> Verdict:
    """Classify a (possibly multi-statement) string; allowed only if every statement is read-only.

    Pure in the text, so verdicts are memoized: batch loops send the same text many times (values are
    bound parameters), and parsing costs milliseconds. Verdicts are frozen so the cache cannot be altered."""
    text = _PLACEHOLDER.sub("NULL", statement).replace("%%", "%")
    try:
        tokens = sqlglot.tokenize(text, read="postgres")
    except (TokenError, ValueError) as e:
        return Verdict(allowed=False, kind="unparsed", reason=f"cannot tokenize: {e}")
    statements = _split(tokens)
    if not statements:
        return Verdict(allowed=False, kind="empty", reason="empty statement")
    kinds = []
    for toks in statements:
        v = _classify_one(text, toks)
        if not v.allowed:
            return v
        kinds.append(v.kind)
    return Verdict(allowed=True, kind="+".join(kinds))


def _split(tokens: list[Token]) -> list[list[Token]]:
    out, cur = [], []
    for t in tokens:
        if t.token_type == TokenType.SEMICOLON:
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        out.append(cur)
    return out


def _words(tokens: list[Token]) -> list[str]:
    return [t.text.upper() for t in tokens]


def _source(text: str, tokens: list[Token]) -> str:
    return text[tokens[0].start : tokens[-1].end + 1]


def _classify_one(text: str, tokens: list[Token]) -> Verdict:
    words = _words(tokens)
    first = words[0]
    if first in _TXN_WORDS:
        return _transaction_control(words)
    if first == "SET":
        return _set(words)
    if first == "SHOW":
        return Verdict(allowed=True, kind="show")
    if first == "COPY":
        return _copy(text, tokens)
    if first in {"SELECT", "WITH", "VALUES", "TABLE", "("}:
        return _query(_source(text, tokens))
    return Verdict(allowed=False, kind=first.lower(), reason=f"{first} is not a read")


def _transaction_control(words: list[str]) -> Verdict:
    if words[0] in {"SAVEPOINT", "RELEASE"} or (words[0] == "ROLLBACK" and "TO" in words):
        # The savepoint name is an identifier; it follows the keywords.
        return Verdict(allowed=True, kind="transaction")
    rest = words[1:]
    if "WRITE" in rest:
        return Verdict(allowed=False, kind="transaction", reason="READ WRITE transaction")
    unknown = [w for w in rest if w not in _TXN_OPTION_WORDS]
    if unknown:
        return Verdict(allowed=False, kind="transaction", reason=f"unexpected {unknown[0]} in transaction control")
    return Verdict(allowed=True, kind="transaction")


def _set(words: list[str]) -> Verdict:
    # Only SET TRANSACTION (isolation, READ ONLY, SNAPSHOT) and the settings that make a session
    # *more* read-only are allowed; never READ WRITE.
    if "WRITE" in words:
        return Verdict(allowed=False, kind="set", reason="READ WRITE")
    if words[1:2] == ["TRANSACTION"] or words[1:5] == ["SESSION", "CHARACTERISTICS", "AS", "TRANSACTION"]:
        return Verdict(allowed=True, kind="set transaction")
    if len(words) >= 4 and words[1] in {"DEFAULT_TRANSACTION_READ_ONLY", "TRANSACTION_READ_ONLY"}:
        if words[2] in {"=", "TO"} and words[3].strip("'").upper() in {"ON", "TRUE", "1", "YES"}:
            return Verdict(allowed=True, kind="set")
    return Verdict(allowed=False, kind="set", reason="only SET TRANSACTION is allowed")


def _copy(text: str, tokens: list[Token]) -> Verdict:
    words = _words(tokens)
    i = 1
    if words[i] == "(":
        depth, j = 0, i
        while j < len(tokens):
            if words[j] == "(":
                depth += 1
            elif words[j] == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= len(tokens):
            return Verdict(allowed=False, kind="copy", reason="unbalanced parentheses")
        inner = _query(_source(text, tokens[i + 1 : j]))
        if not inner.allowed:
            return Verdict(allowed=False, kind="copy", reason=inner.reason)
        i = j + 1
    else:
        # table name, optionally schema-qualified, optionally with a column list
        while i < len(tokens) and words[i] not in {"TO", "FROM"}:
            i += 1
    if words[i : i + 2] != ["TO", "STDOUT"]:
        return Verdict(allowed=False, kind="copy", reason="only COPY ... TO STDOUT is allowed")
    return Verdict(allowed=True, kind="copy to")


def _query(sql_text: str) -> Verdict:
    try:
        trees = sqlglot.parse(sql_text, read="postgres")
    except (ParseError, TokenError) as e:
        return Verdict(allowed=False, kind="query", reason=f"cannot parse: {str(e).splitlines()[0]}")
    for tree in trees:
        if tree is None:
            continue
        if not isinstance(tree, exp.Query):
            return Verdict(allowed=False, kind="query", reason=f"{type(tree).__name__} is not a query")
        for node in tree.walk():
            if isinstance(node, _WRITE_NODES):
                return Verdict(allowed=False, kind="query", reason=f"contains {type(node).__name__.upper()}")
            if isinstance(node, exp.Func):
                name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
                if name == "set_config" and _is_local_presentation_setting(node):
                    continue
                if name in SIDE_EFFECT_FUNCTIONS:
                    return Verdict(allowed=False, kind="query", reason=f"calls {name}()")
    return Verdict(allowed=True, kind="select")


def _is_local_presentation_setting(node: exp.Func) -> bool:
    """`set_config('search_path', 'x', true)`: a literal setting name we allow, scoped to the transaction."""
    args = node.expressions
    if len(args) != 3:
        return False
    name, _value, is_local = args
    return (
        isinstance(name, exp.Literal)
        and name.is_string
        and name.this.lower() in PRESENTATION_SETTINGS
        and isinstance(is_local, exp.Boolean)
        and is_local.this is True
    )
