"""The master guard: every statement is classified before it is sent to the master.

Allowed, by allow-list:

* a plain query (SELECT / WITH / VALUES / TABLE) with no data-modifying part and no row lock, in
  which **every function called** is either one the tool uses (`TOOL_FUNCTIONS`), a SQL construct
  that looks like a call (`SQL_CONSTRUCTS`: coalesce, greatest, ARRAY(...)...), or a pg_catalog
  function whose every overload is immutable or stable (read once per connection from the master's
  own catalog); never one of `DENIED_FUNCTIONS` (they run SQL given as text, or assign a
  transaction id), and `set_config` only for a presentation setting, the mask key or a lifted timeout
  (`TIMEOUT_SETTINGS` to '0'), transaction-locally;
* `SHOW`, `COPY (query) TO STDOUT` and `COPY table [(columns)] TO STDOUT`;
* transaction control (BEGIN / START TRANSACTION / COMMIT / ROLLBACK / SAVEPOINT / RELEASE / ROLLBACK
  TO, `SET TRANSACTION`, never READ WRITE, never PREPARED), matched on token types so a string or a
  quoted name is never mistaken for a keyword; `DEALLOCATE` (psycopg's prepared-statement upkeep).

Everything else raises `GuardViolation` before it reaches the wire, including anything the guard
cannot parse. Names are normalised the way PostgreSQL does before they are checked (unquoted names
folded to lower case, `U&"..."` escapes decoded, 63-byte truncation), so a function cannot hide
behind its spelling.

It is one of three layers (see DESIGN.md): the session also runs READ ONLY transactions, and `verify`
audits what the credentials could do. Function calls hidden inside views or operators are out of the
guard's sight: the READ ONLY transaction is what stops those.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime, timezone
from functools import lru_cache
from typing import Callable, Collection

import sqlglot
from pydantic import BaseModel, ConfigDict
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import Token, TokenType

from .errors import GuardViolation

_POSTGRES = Dialect.get_or_raise("postgres")

#: Built-in functions the tool itself calls on the master (introspection, copy, masking, verify,
#: analyze, identity), whatever their volatility. Extend it when the tool needs another one; a
#: function not listed here is still allowed when the master's catalog says it is immutable or stable.
TOOL_FUNCTIONS = frozenset({
    # snapshots and sizes (volatile, but read-only)
    "pg_export_snapshot", "txid_current_snapshot", "pg_current_snapshot", "pg_snapshot_xmin", "pg_snapshot_xmax",
    "pg_relation_size", "pg_relation_filenode", "pg_column_size", "age",
    "pg_total_relation_size", "pg_table_size", "pg_indexes_size", "pg_sequence_last_value",
    "pg_is_in_recovery", "pg_control_system", "pg_stat_clear_snapshot", "pg_control_checkpoint", "clock_timestamp", "pg_partition_tree",
    # hashing, masking and row comparison
    "hashtext", "hashtextextended", "hashint2extended", "hashint4extended", "hashint8extended", "uuid_hash_extended",
    "jsonb_hash_extended", "md5", "sha256", "encode", "decode", "convert_to",
    "left", "right", "lpad", "rpad", "octet_length", "length", "lower", "upper", "replace", "substr",
    "split_part", "regexp_replace", "starts_with", "concat_ws", "make_interval", "to_json", "to_jsonb", "ntile", "row_number",
    # aggregates
    "count", "sum", "min", "max", "avg", "array_agg", "string_agg", "json_agg", "jsonb_agg", "bool_and", "bool_or",
    # settings and names
    "current_setting", "set_config", "current_database", "current_schema", "version", "now", "pg_backend_pid",
    "to_regclass", "to_regnamespace", "to_regtype", "to_regproc", "quote_ident", "quote_literal", "format",
    "format_type", "pg_encoding_to_char",
    # introspection
    "pg_get_expr", "pg_get_constraintdef", "pg_get_indexdef", "pg_get_viewdef", "pg_get_triggerdef",
    "pg_get_functiondef", "pg_get_function_arguments", "pg_get_function_identity_arguments",
    "pg_get_function_result", "pg_get_partkeydef", "pg_get_userbyid", "pg_get_serial_sequence",
    "pg_get_statisticsobjdef", "pg_get_ruledef", "obj_description", "col_description", "acldefault", "aclexplode",
    "json_build_object", "jsonb_build_object", "unnest", "generate_series", "array_length", "array_to_string",
    "abs", "ceil", "floor", "round", "power", "greatest", "least",
    # privileges (verify's master_access check)
    "has_table_privilege", "has_sequence_privilege", "has_schema_privilege", "has_database_privilege",
    "has_any_column_privilege", "has_column_privilege", "has_function_privilege", "pg_has_role",
    "row_security_active",
})

#: Syntax that sqlglot represents as a call but that is not a function of the catalog.
SQL_CONSTRUCTS = frozenset({
    "coalesce", "greatest", "least", "nullif", "array", "row", "exists", "any", "all", "some",
    "current_user", "current_role", "session_user", "user", "current_catalog", "current_schema",
    "current_date", "current_time", "current_timestamp", "localtime", "localtimestamp",
    "extract", "overlay", "position", "substring", "trim", "cast", "normalize",
})

#: Refused whatever their volatility: they execute SQL handed to them as text (so a write could hide
#: in a string), or assign a transaction id on the master.
DENIED_FUNCTIONS = frozenset({
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
    "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml", "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
    "ts_stat", "txid_current", "pg_current_xact_id", "dblink", "dblink_exec", "dblink_open", "dblink_send_query",
})

#: set_config() may pin these, transaction-locally only (is_local = true): they change how values are
#: rendered, never what the session may write. Read-only settings are deliberately absent.
PRESENTATION_SETTINGS = frozenset({"search_path", "timezone", "datestyle", "intervalstyle", "extra_float_digits"})

#: Settings of our own namespace set_config() may also give a transaction: the masking key, which the
#: masked columns' expressions read (see copy/masking.py). No server code reads these names.
OWN_SETTINGS = frozenset({"replicator.mask_key"})

#: Timeouts set_config() may lift (to '0' only, transaction-locally): a transaction whose session's
#: startup options a pooler dropped gets them this way (sql/lift_timeouts.sql). Lifting a limit on how
#: long we read writes nothing.
TIMEOUT_SETTINGS = frozenset({"statement_timeout", "idle_in_transaction_session_timeout"})

#: Names sqlglot parses with a dedicated parser (its FUNCTION_PARSERS), producing nodes that do not
#: record where they came from: the guard checks these calls on the tokens instead, and only these
#: PostgreSQL built-ins (or syntax) may be called that way; `argmax(...)`, `"INITCAP"(...)` or
#: `public.initcap(...)` would reach a user's function and are refused.
PARSED_BUILTINS = frozenset({
    "cast", "ceil", "chr", "char", "convert", "date_part", "decode", "extract", "floor", "initcap", "jsonb_exists",
    "json_agg", "json_object", "json_objectagg", "json_table", "json_value", "normalize", "overlay", "position",
    "string_agg", "substring", "trim", "xmlelement", "xmltable",
})
_PARSER_KEYS = frozenset(k.lower() for k in sqlglot.Dialect.get_or_raise("postgres").parser_class.FUNCTION_PARSERS)

# Typed sqlglot nodes that carry no source position: SQL syntax (CAST, CASE, ANY(...), operators such
# as ~ or @>) and calls made through sqlglot's dedicated parsers (checked on the tokens, above). Any
# other typed node without a position is refused: the guard could not tell which function it is.
_SYNTAX_NODES = tuple(
    getattr(exp, name)
    for name in (
        "Cast", "TryCast", "Case", "If", "And", "Or", "Xor", "Exists", "Unnest", "Collate", "Extract", "Trim",
        "Substring", "StrPosition", "Overlay", "CurrentDate", "CurrentTime", "CurrentTimestamp", "CurrentUser",
        "SessionUser", "CurrentRole", "CurrentSchema", "CurrentCatalog", "Localtime", "Localtimestamp",
        "GroupConcat", "JSONArrayAgg", "RegexpLike", "RegexpILike", "ArrayContains", "ArrayContainsAll",
        "ArrayContained", "ArrayOverlaps", "JSONExtract", "JSONExtractScalar", "JSONBExtract",
        "JSONBExtractScalar", "JSONBContains", "Array", "Struct", "Pow", "Coalesce", "Nullif",
    )
    if hasattr(exp, name)
)

# Node types that make a query something other than a read.
_WRITE_NODES = tuple(
    getattr(exp, name)
    for name in (
        "DML", "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable",
        "Into", "Lock", "Command", "Grant", "Revoke", "Comment", "Analyze", "Set", "Copy", "Transaction",
        "Commit", "Rollback", "Use", "Pragma",
    )
    if hasattr(exp, name)
)

# Token types whose text is a literal or a quoted name, never a keyword.
_QUOTED = {
    getattr(TokenType, name)
    for name in ("STRING", "IDENTIFIER", "UNICODE_STRING", "HEREDOC_STRING", "NATIONAL_STRING", "RAW_STRING",
                 "BIT_STRING", "HEX_STRING", "BYTE_STRING", "NUMBER")
    if hasattr(TokenType, name)
}
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_ISOLATION = (["SERIALIZABLE"], ["REPEATABLE", "READ"], ["READ", "COMMITTED"], ["READ", "UNCOMMITTED"])
NAMEDATALEN = 64

# psycopg placeholders (%s, %b, %t, %(name)s) and server-side ones ($1); classified as NULL.
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[sbt]|\$\d+")

Catalog = Callable[[], Collection[str]] | Collection[str] | None


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
    #: Functions the statement calls that only the master's catalog can vouch for (normalised names).
    functions: tuple[str, ...] = ()


class MasterGuard:
    """Classifies statements and keeps the audit log of one run."""

    def __init__(self) -> None:
        self.audit: list[AuditEntry] = []
        self._lock = threading.Lock()

    def check(self, statement: str, catalog: Catalog = None) -> Verdict:
        """Record the statement and raise `GuardViolation` unless it is allowed.

        `catalog`: the master's immutable/stable pg_catalog function names, or a callable returning
        them (called only when a statement needs it)."""
        verdict = classify(statement, catalog)
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
        return verdict

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


def classify(statement: str, catalog: Catalog = None) -> Verdict:
    """Classify a (possibly multi-statement) string; allowed only if every statement is allowed.

    Without `catalog`, a function outside `TOOL_FUNCTIONS` / `SQL_CONSTRUCTS` is refused (fail closed)."""
    verdict = _classify_text(statement)
    if not verdict.allowed or not verdict.functions:
        return verdict
    names = catalog() if callable(catalog) else catalog
    names = names or ()
    for name in verdict.functions:
        if name.rpartition(".")[2] not in names:
            return Verdict(allowed=False, kind=verdict.kind,
                           reason=f"calls {name}(), which is neither on the allow-list nor immutable/stable")
    return verdict


def function_allowed_statically(name: str) -> bool:
    """A normalised function name (`fn` or `pg_catalog.fn`) the guard allows without the catalog."""
    schema, _, fn = name.rpartition(".")
    return fn not in DENIED_FUNCTIONS and (fn in TOOL_FUNCTIONS or (not schema and fn in SQL_CONSTRUCTS))


@lru_cache(maxsize=2048)
def _classify_text(statement: str) -> Verdict:
    """Pure in the text, so memoized: batch loops send the same text many times (values are bound
    parameters) and parsing costs milliseconds. Verdicts are frozen so the cache cannot be altered."""
    text = _PLACEHOLDER.sub("NULL", statement).replace("%%", "%")
    try:
        text = _decode_unicode_identifiers(text)
        tokens = sqlglot.tokenize(text, read="postgres")
    except Exception as e:  # noqa: BLE001 - whatever the tokenizer trips on, fail closed
        return Verdict(allowed=False, kind="unparsed", reason=f"cannot tokenize: {_first_line(e)}")
    statements = _split(tokens)
    if not statements:
        return Verdict(allowed=False, kind="empty", reason="empty statement")
    kinds, functions = [], []
    for toks in statements:
        v = _classify_one(text, toks)
        if not v.allowed:
            return v
        kinds.append(v.kind)
        functions += [f for f in v.functions if f not in functions]
    return Verdict(allowed=True, kind="+".join(kinds), functions=tuple(functions))


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


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


def _word(tok: Token) -> str | None:
    """The upper-cased text of an unquoted word (keyword or bare name); None for literals and quoted names."""
    if tok.token_type in _QUOTED or not _WORD.match(tok.text):
        return None
    return tok.text.upper()


def _words(tokens: list[Token]) -> list[str | None]:
    return [_word(t) for t in tokens]



def _refuse(kind: str, reason: str) -> Verdict:
    return Verdict(allowed=False, kind=kind, reason=reason)


_TXN_WORDS = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"}


def _classify_one(text: str, tokens: list[Token]) -> Verdict:
    words = _words(tokens)
    first = words[0]
    if first in _TXN_WORDS:
        return _transaction_control(tokens, words)
    if first == "SET":
        return _set(tokens, words)
    if first == "SHOW":
        if len(tokens) > 1 and all(t.token_type in _QUOTED or _word(t) or t.token_type == TokenType.DOT
                                   for t in tokens[1:]):
            return Verdict(allowed=True, kind="show")
        return _refuse("show", "malformed SHOW")
    if first == "DEALLOCATE":
        rest = tokens[2:] if words[1:2] == ["PREPARE"] else tokens[1:]
        if len(rest) == 1 and (_word(rest[0]) or rest[0].token_type == TokenType.IDENTIFIER):
            return Verdict(allowed=True, kind="deallocate")
        return _refuse("deallocate", "malformed DEALLOCATE")
    if first == "COPY":
        return _copy(text, tokens, words)
    if first in {"SELECT", "WITH", "VALUES", "TABLE"} or tokens[0].token_type == TokenType.L_PAREN:
        return _query(text, tokens)
    shown = first or tokens[0].text[:20]
    return _refuse(shown.lower(), f"{shown} is not a read")


# ------------------------------------------------------------------------------------------------
# transaction control


def _transaction_control(tokens: list[Token], w: list[str | None]) -> Verdict:
    first, i = w[0], 1
    if first == "BEGIN":
        if w[1:2] in (["WORK"], ["TRANSACTION"]):
            i = 2
        return _modes(tokens, w, i, "transaction")
    if first == "START":
        if w[1:2] != ["TRANSACTION"]:
            return _refuse("transaction", "START must be followed by TRANSACTION")
        return _modes(tokens, w, 2, "transaction")
    if first == "SAVEPOINT":
        return _name_only(tokens, 1)
    if first == "RELEASE":
        return _name_only(tokens, 2 if w[1:2] == ["SAVEPOINT"] else 1)
    # COMMIT / END / ROLLBACK / ABORT
    if w[1:2] in (["WORK"], ["TRANSACTION"]):
        i = 2
    if first in ("ROLLBACK", "ABORT") and w[i : i + 1] == ["TO"]:
        i += 1
        return _name_only(tokens, i + 1 if w[i : i + 1] == ["SAVEPOINT"] else i)
    if w[i:] in ([], ["AND", "CHAIN"], ["AND", "NO", "CHAIN"]):
        return Verdict(allowed=True, kind="transaction")
    return _refuse("transaction", f"unexpected {tokens[i].text!r} after {first}")


def _name_only(tokens: list[Token], i: int) -> Verdict:
    """Exactly one savepoint name (a bare word or a quoted identifier) from position i."""
    rest = tokens[i:]
    if len(rest) == 1 and (_word(rest[0]) or rest[0].token_type == TokenType.IDENTIFIER):
        return Verdict(allowed=True, kind="transaction")
    return _refuse("transaction", "malformed savepoint command")


def _modes(tokens: list[Token], w: list[str | None], i: int, kind: str) -> Verdict:
    """Transaction modes from position i: ISOLATION LEVEL ..., READ ONLY, [NOT] DEFERRABLE; never READ WRITE."""
    n = len(w)
    while i < n:
        if tokens[i].token_type == TokenType.COMMA:
            i += 1
            continue
        if w[i : i + 2] == ["ISOLATION", "LEVEL"]:
            for level in _ISOLATION:
                if w[i + 2 : i + 2 + len(level)] == level:
                    i += 2 + len(level)
                    break
            else:
                return _refuse(kind, "unknown isolation level")
        elif w[i : i + 2] == ["READ", "WRITE"]:
            return _refuse(kind, "READ WRITE transaction")
        elif w[i : i + 2] == ["READ", "ONLY"]:
            i += 2
        elif w[i : i + 2] == ["NOT", "DEFERRABLE"]:
            i += 2
        elif w[i] == "DEFERRABLE":
            i += 1
        else:
            return _refuse(kind, f"unexpected {tokens[i].text!r} in transaction control")
    return Verdict(allowed=True, kind=kind)


def _set(tokens: list[Token], w: list[str | None]) -> Verdict:
    # Only SET TRANSACTION (isolation, READ ONLY, SNAPSHOT) and the settings that make a session
    # *more* read-only are allowed; never READ WRITE.
    if w[1:3] == ["TRANSACTION", "SNAPSHOT"]:
        if len(tokens) == 4 and tokens[3].token_type == TokenType.STRING:
            return Verdict(allowed=True, kind="set transaction")
        return _refuse("set transaction", "malformed SET TRANSACTION SNAPSHOT")
    if w[1:2] == ["TRANSACTION"]:
        return _modes(tokens, w, 2, "set transaction")
    if w[1:5] == ["SESSION", "CHARACTERISTICS", "AS", "TRANSACTION"]:
        return _modes(tokens, w, 5, "set transaction")
    if len(tokens) == 4 and w[1] in {"DEFAULT_TRANSACTION_READ_ONLY", "TRANSACTION_READ_ONLY"}:
        value = tokens[3].text if tokens[3].token_type == TokenType.STRING else (w[3] or "")
        if (tokens[2].text == "=" or w[2] == "TO") and value.upper() in {"ON", "TRUE", "1", "YES"}:
            return Verdict(allowed=True, kind="set")
    return _refuse("set", "only SET TRANSACTION is allowed")


# ------------------------------------------------------------------------------------------------
# COPY


def _copy(text: str, tokens: list[Token], w: list[str | None]) -> Verdict:
    i = 1
    if len(tokens) < 2:
        return _refuse("copy", "incomplete COPY")
    inner: Verdict | None = None
    if tokens[1].token_type == TokenType.L_PAREN:
        j = _closing(tokens, 1)
        if j is None or j == 2:
            return _refuse("copy", "unbalanced parentheses")
        inner = _query(text, tokens[2:j])
        if not inner.allowed:
            return Verdict(allowed=False, kind="copy", reason=inner.reason)
        i = j + 1
    else:
        # table name (optionally schema-qualified), then an optional column list
        i = _qualified_name(tokens, 1)
        if i is None:
            return _refuse("copy", "COPY needs a table name or a (query)")
        if i < len(tokens) and tokens[i].token_type == TokenType.L_PAREN:
            j = _closing(tokens, i)
            if j is None or not _name_list(tokens[i + 1 : j]):
                return _refuse("copy", "malformed column list")
            i = j + 1
    if w[i : i + 2] != ["TO", "STDOUT"]:
        return _refuse("copy", "only COPY ... TO STDOUT is allowed")
    # Options after TO STDOUT only say how rows are printed.
    for t in tokens[i + 2 :]:
        if not (t.token_type in _QUOTED or _word(t) or t.token_type in (TokenType.COMMA, TokenType.L_PAREN,
                                                                         TokenType.R_PAREN, TokenType.STAR)):
            return _refuse("copy", f"unexpected {t.text!r} in COPY options")
    return Verdict(allowed=True, kind="copy to", functions=inner.functions if inner else ())


def _closing(tokens: list[Token], i: int) -> int | None:
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].token_type == TokenType.L_PAREN:
            depth += 1
        elif tokens[j].token_type == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return j
    return None


def _is_name(t: Token) -> bool:
    return bool(_word(t)) or t.token_type == TokenType.IDENTIFIER


def _qualified_name(tokens: list[Token], i: int) -> int | None:
    """Position after `name` or `schema.name` starting at i; None when there is none."""
    if i >= len(tokens) or not _is_name(tokens[i]):
        return None
    i += 1
    if i + 1 < len(tokens) and tokens[i].token_type == TokenType.DOT and _is_name(tokens[i + 1]):
        i += 2
    return i


def _name_list(tokens: list[Token]) -> bool:
    return bool(tokens) and all(_is_name(t) if k % 2 == 0 else t.token_type == TokenType.COMMA
                                for k, t in enumerate(tokens)) and len(tokens) % 2 == 1


# ------------------------------------------------------------------------------------------------
# queries


def _query(sql_text: str, tokens: list[Token]) -> Verdict:
    """`tokens`: one query's tokens (already split off the statement); `sql_text`: the text they were
    read from. Parsed from those tokens: tokenizing again would double the cost of a cold statement."""
    try:
        trees = _POSTGRES.parser().parse(tokens, sql_text)
        parsed_calls = _parsed_builtin_calls(tokens)
    except Exception as e:  # noqa: BLE001 - ParseError, TokenError, or anything else: fail closed
        return _refuse("query", f"cannot parse: {_first_line(e)}")
    if isinstance(parsed_calls, str):
        return _refuse("query", parsed_calls)
    functions: list[str] = []
    for tree in trees:
        if tree is None:
            continue
        if not isinstance(tree, (exp.Query, exp.Values)):
            return _refuse("query", f"{type(tree).__name__} is not a query")
        for node in tree.walk():
            if isinstance(node, _WRITE_NODES):
                return _refuse("query", f"contains {type(node).__name__.upper()}")
            if isinstance(node, exp.Func):
                refusal = _check_call(node, sql_text, functions, parsed_calls)
                if refusal:
                    return _refuse("query", refusal)
    return Verdict(allowed=True, kind="select", functions=tuple(functions))


def _parsed_builtin_calls(tokens: list[Token]) -> int | str:
    """How many calls of names sqlglot parses with a dedicated parser the statement makes, each checked
    to be a PostgreSQL built-in (`PARSED_BUILTINS`, unqualified or in pg_catalog); or why not."""
    calls = 0
    for k, tok in enumerate(tokens[:-1]):
        if tokens[k + 1].token_type != TokenType.L_PAREN or tok.text.lower() not in _PARSER_KEYS:
            continue
        if tok.token_type == TokenType.IDENTIFIER:
            name = normalize_identifier('"' + tok.text.replace('"', '""') + '"')
        elif _word(tok):
            name = tok.text.lower()
        else:
            continue
        if k >= 2 and tokens[k - 1].token_type == TokenType.DOT:
            qualifier = tokens[k - 2]
            q = qualifier.text if qualifier.token_type == TokenType.IDENTIFIER else qualifier.text.lower()
            if q != "pg_catalog" or (k >= 3 and tokens[k - 3].token_type == TokenType.DOT):
                return f"calls {q}.{name}(): only pg_catalog functions are allowed"
        if name not in PARSED_BUILTINS:
            return f"calls {name}(), which is not a PostgreSQL built-in"
        calls += 1
    return calls


def _check_call(node: exp.Func, sql_text: str, functions: list[str], parsed_calls: int) -> str | None:
    """None when the call is allowed (appending names that need the catalog to `functions`), else why not."""
    name = _function_name(node, sql_text)
    if name is None:
        if isinstance(node, _SYNTAX_NODES) or parsed_calls:
            return None
        return f"cannot tell which function {node.sql_name().lower()} is"
    schema, _, fn = name.rpartition(".")
    if schema not in ("", "pg_catalog"):
        return f"calls {name}(): only pg_catalog functions are allowed"
    if fn == "set_config":
        return None if _is_local_allowed_setting(node) else ("calls set_config() outside a local presentation setting, "
                                                         "the mask key or a lifted timeout")
    if fn in DENIED_FUNCTIONS:
        return f"calls {fn}(), which runs SQL given as text or assigns a transaction id"
    if not function_allowed_statically(name) and name not in functions:
        functions.append(name)
    return None


def _function_name(node: exp.Func, sql_text: str) -> str | None:
    """The called name as PostgreSQL resolves it (`fn` or `schema.fn`), from the source text."""
    meta = node.meta or {}
    if "start" in meta and "end" in meta:
        name = normalize_identifier(sql_text[meta["start"] : meta["end"] + 1])
    elif isinstance(node, exp.Anonymous):
        this = node.this
        if isinstance(this, exp.Identifier):
            name = _truncate(this.name if this.quoted else this.name.lower())
        else:
            name = normalize_identifier(str(this))
    else:
        return None
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        qualifier = ".".join(normalize_identifier(p.sql(dialect="postgres")) for p in _dot_parts(parent.this))
        return f"{qualifier}.{name}"
    return name


def _dot_parts(e: exp.Expression) -> list[exp.Expression]:
    if isinstance(e, exp.Dot):
        return _dot_parts(e.this) + _dot_parts(e.expression)
    if isinstance(e, exp.Column):
        return [p for p in (e.args.get("catalog"), e.args.get("db"), e.args.get("table"), e.this) if p is not None]
    return [e]


def normalize_identifier(raw: str) -> str:
    """An identifier as PostgreSQL stores it: quoted kept as written, unquoted folded to lower case,
    both truncated to NAMEDATALEN - 1 bytes."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        return _truncate(raw[1:-1].replace('""', '"'))
    return _truncate(raw.lower())


def _truncate(name: str) -> str:
    data = name.encode("utf-8")
    if len(data) < NAMEDATALEN:
        return name
    return data[: NAMEDATALEN - 1].decode("utf-8", "ignore")


def _is_local_allowed_setting(node: exp.Func) -> bool:
    """`set_config('search_path', 'x', true)`: a literal setting name we allow (a timeout only set to '0'),
    scoped to the transaction.

    search_path may not put another schema before pg_catalog: unqualified function names would then
    resolve to that schema's functions first."""
    args = node.expressions
    if len(args) != 3:
        return False
    name, value, is_local = args
    if (isinstance(name, exp.Literal) and name.is_string and name.this.lower() in TIMEOUT_SETTINGS
            and isinstance(value, exp.Literal) and value.is_string and value.this == "0"
            and isinstance(is_local, exp.Boolean) and is_local.this is True):
        return True
    if not (isinstance(name, exp.Literal) and name.is_string and name.this.lower() in PRESENTATION_SETTINGS | OWN_SETTINGS
            and isinstance(is_local, exp.Boolean) and is_local.this is True):
        return False
    if name.this.lower() == "search_path":
        if not (isinstance(value, exp.Literal) and value.is_string):
            return False
        path = [normalize_identifier(p) for p in value.this.split(",") if p.strip()]
        if "pg_catalog" in path and path[0] != "pg_catalog":
            return False
    return True


# ------------------------------------------------------------------------------------------------
# U&"..." identifiers


_UNICODE_IDENTIFIER = re.compile(r'[Uu]&"')


def _decode_unicode_identifiers(text: str) -> str:
    """Rewrite every `U&"..."` identifier (with its optional UESCAPE) as the plain quoted identifier
    PostgreSQL reads it as, so `U&"set\\005fconfig"` is checked as "set_config"."""
    if not _UNICODE_IDENTIFIER.search(text):  # PostgreSQL allows no space inside U&"
        return text
    tokens = sqlglot.tokenize(text, read="postgres")
    edits = []
    for k in range(len(tokens) - 2):
        u, amp, ident = tokens[k], tokens[k + 1], tokens[k + 2]
        if (u.text in ("U", "u") and u.token_type not in _QUOTED and amp.text == "&"
                and ident.token_type == TokenType.IDENTIFIER and amp.start == u.end + 1 and ident.start == amp.end + 1):
            escape, end = "\\", ident.end
            if (k + 4 < len(tokens) and _word(tokens[k + 3]) == "UESCAPE"
                    and tokens[k + 4].token_type == TokenType.STRING):
                escape, end = tokens[k + 4].text, tokens[k + 4].end
            raw = text[ident.start + 1 : ident.end].replace('""', '"')
            decoded = _unicode_unescape(raw, escape)
            edits.append((u.start, end, '"' + decoded.replace('"', '""') + '"'))
    for start, end, replacement in reversed(edits):
        text = text[:start] + replacement + text[end + 1 :]
    return text


def _unicode_unescape(s: str, escape: str) -> str:
    if len(escape) != 1 or escape in "0123456789abcdefABCDEF+'\" \t\n":
        raise ValueError("invalid UESCAPE character")
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != escape:
            out.append(c)
            i += 1
        elif s[i + 1 : i + 2] == escape:
            out.append(escape)
            i += 2
        elif s[i + 1 : i + 2] == "+" and re.fullmatch(r"[0-9A-Fa-f]{6}", s[i + 2 : i + 8]):
            out.append(chr(int(s[i + 2 : i + 8], 16)))
            i += 8
        elif re.fullmatch(r"[0-9A-Fa-f]{4}", s[i + 1 : i + 5]):
            out.append(chr(int(s[i + 1 : i + 5], 16)))
            i += 5
        else:
            raise ValueError("invalid Unicode escape")
    return "".join(out)
