"""Column type changes: whether a cast keeps every value, the explicit ``USING`` expression, and a
read-only pre-check that counts the replica values the new type would refuse.

* between enums (or enum arrays), values go through their text: ``col::text::new_enum``; the
  pre-check counts values that are not labels of the new type (the master's labels);
* to a domain, ``col::base::domain``; the pre-check evaluates the domain's CHECK expressions (and
  NOT NULL) on the column's values, ``VALUE`` replaced by the value;
* otherwise ``col::new``, with pre-checks for lengths, integer ranges and numeric precision, and on
  PostgreSQL 16 ``pg_input_is_valid`` for anything else.
"""

from __future__ import annotations

import re

from psycopg import sql

from ..diff import quote
from ..introspect.models import Domain, Enum
from .model import Classification, PreCheck
from .sqltext import replace_value_keyword, strip_not_valid

_INT_RANK = {"smallint": 1, "integer": 2, "bigint": 3}
_INT_LIMITS = {1: (-32768, 32767), 2: (-2147483648, 2147483647), 3: (-9223372036854775808, 9223372036854775807)}
_TEXTY = {"text", "character varying", "character", "citext", "varchar"}


def split_type(t: str) -> tuple[str, list[int], bool]:
    """(base name, modifiers, is array) of a formatted type: ``numeric(10,2)[]``."""
    arr = t.endswith("[]")
    base = t[:-2] if arr else t
    m = re.match(r"^(.*?)\((\d+)(?:,\s*(\d+))?\)(.*)$", base)
    if m:
        name = (m.group(1) + m.group(4)).strip()
        mods = [int(m.group(2))] + ([int(m.group(3))] if m.group(3) else [])
        return name, mods, arr
    return base.strip(), [], arr


#: A shorter varchar: the USING cast (to unbounded varchar, then the column's assignment cast) refuses a
#: value that does not fit instead of cutting it, so every value is kept or the statement fails.
_VARCHAR = {"character varying", "varchar"}


def _must_fit(new: str) -> tuple[Classification, str]:
    return "data-dependent", f"values must fit {new}"


def classify_type_change(old: str, new: str) -> tuple[Classification, str]:
    """Whether ``ALTER COLUMN ... TYPE new USING col::new`` from ``old`` keeps every value."""
    on, om, oa = split_type(old)
    nn, nm, na = split_type(new)
    if oa != na:
        return "destructive", "array-ness changes"
    if on == nn:
        if not nm:
            return "safe", "modifier removed (widening)"
        if on in _VARCHAR and (not om or nm[0] < om[0]):
            return _must_fit(new)
        if not om:
            return "destructive", f"narrowing {old} to {new}"
        if on == "numeric":
            (op, os_), (np_, ns) = (om + [0])[:2], (nm + [0])[:2]
            if np_ - ns >= op - os_ and ns >= os_:
                return "safe", "widening numeric"
            return "destructive", f"narrowing {old} to {new}"
        if nm[0] >= om[0]:
            return "safe", "widening"
        return "destructive", f"narrowing {old} to {new}"
    if on in _INT_RANK and nn in _INT_RANK:
        if _INT_RANK[nn] > _INT_RANK[on]:
            return "safe", "widening integer"
        return _must_fit(new)  # the cast refuses a value out of range: none is changed
    if on in _INT_RANK and nn == "numeric" and not nm:
        return "safe", "integer to numeric"
    if on in {*_INT_RANK, "real", "double precision"} and nn == "double precision":
        return "safe", "widening to double precision"
    if nn == "text" or (nn in _TEXTY and not nm):
        return "safe", "any value has a text form"
    if on in {"character varying", "character", "varchar"} and nn in _TEXTY and nm and om and nm[0] >= om[0]:
        return "safe", "widening"
    if on in _TEXTY and on not in ("character", "bpchar") and nn in _VARCHAR:
        return _must_fit(new)
    if on in _TEXTY and nn in _TEXTY:
        return "destructive", f"narrowing {old} to {new}"
    if on == "timestamp without time zone" and nn == "timestamp with time zone":
        return "data-dependent", "reinterpreted in the session time zone"
    if on in _TEXTY:
        return "destructive", f"lossy cast {old} to {new} (values that do not parse fail, formatting is lost)"
    if nn in _INT_RANK or (nn == "numeric" and nm) or nn in {"date", "real"}:
        return "destructive", f"lossy cast {old} to {new}"
    return "data-dependent", f"cast {old} to {new} may fail"


#: Length-limited types whose explicit cast truncates, and their unbounded form.
_UNBOUNDED = {"character varying": "character varying", "varchar": "character varying", "character": "bpchar",
              "char": "bpchar", "bpchar": "bpchar", "bit": "bit varying", "bit varying": "bit varying",
              "varbit": "bit varying"}


def _base_name(typ: str) -> str:
    return typ.split("(", 1)[0].strip().removeprefix("pg_catalog.")


class TypeChange:
    """One column's type change on the replica: ``old`` (the replica's type) to ``new``.

    ``enums`` and ``domains`` are the master's (the types as they will be), so that casts and
    pre-checks use the labels and checks the new type will have."""

    def __init__(self, table: str, column: str, replica_column: str, old: str, new: str,
                 enums: dict[str, Enum], domains: dict[str, Domain], server_version: int,
                 old_is_enum: bool = False):
        self.table, self.column, self.replica_column = table, column, replica_column
        self.old, self.new, self.old_is_enum = old, new, old_is_enum
        self.enums, self.domains, self.server_version = enums, domains, server_version
        self.new_base, self.array = new.removesuffix("[]"), new.endswith("[]")

    @property
    def to_enum(self) -> Enum | None:
        return self.enums.get(self.new_base)

    @property
    def to_domain(self) -> Domain | None:
        return self.domains.get(self.new_base)

    def classify(self) -> tuple[Classification, str]:
        if self.to_enum is not None:
            return "data-dependent", f"values must be labels of {self.new_base}"
        if (d := self.to_domain) is not None:
            if self.old.removesuffix("[]") == d.base_type and not d.constraints and not d.not_null:
                return "safe", f"domain over {d.base_type} without checks"
            return "data-dependent", f"values must satisfy the checks of domain {self.new_base}"
        return classify_type_change(self.old, self.new)

    def using(self) -> str:
        """The USING expression, on the column's (new) name."""
        col = quote(self.column)
        arr = "[]" if self.array else ""
        if self.to_enum is not None or self.old_is_enum:
            # there is no cast between two enum types: their values go through text
            return f"{col}::text{arr}::{self.new}"
        if (d := self.to_domain) is not None and not self.array:
            return f"{col}::{d.base_type}::{self.new}"
        if ((unbounded := _UNBOUNDED.get(_base_name(self.new_base))) and "(" in self.new_base
                and self.classify()[0] != "safe"):
            # An explicit cast to varchar(n), char(n) or bit(n) cuts a longer value silently; to the
            # unbounded type, the column's own assignment cast to (n) refuses it instead. (Not for a
            # widening: bit(8) -> bit(16) pads by the explicit cast, and its assignment cast refuses.)
            return f"{col}::{unbounded}{arr}"
        return f"{col}::{self.new}"

    def precheck(self) -> PreCheck | None:
        cls, _ = self.classify()
        if cls == "safe":
            return None
        t, c = self.table, sql.Identifier(self.replica_column)
        where = f"{self.table}.{quote(self.replica_column)}"
        if (e := self.to_enum) is not None:
            labels = sql.SQL(", ").join(sql.Literal(x) for x in e.labels)
            test = (sql.SQL("NOT ({}::text[] <@ ARRAY[{}]::text[])") if self.array
                    else sql.SQL("{}::text <> ALL (ARRAY[{}]::text[])")).format(c, labels)
            q = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL AND {}").format(sql.SQL(t), c, test)
            return PreCheck(description=f"values of {where} that are not labels of {e.key}",
                            sql=q.as_string(None), table=t, column=self.replica_column)
        if (d := self.to_domain) is not None and not self.array:
            value = sql.SQL("{}::{}").format(c, sql.SQL(d.base_type)).as_string(None)
            tests = [sql.SQL("NOT coalesce(({}), true)").format(
                sql.SQL(replace_value_keyword(_check_body(con.definition), value))) for con in d.constraints]
            if d.not_null:
                tests.append(sql.SQL("{} IS NULL").format(c))
            if not tests:
                return None
            q = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(sql.SQL(t), sql.SQL(" OR ").join(
                sql.SQL("({})").format(x) for x in tests))
            return PreCheck(description=f"values of {where} that domain {d.key} refuses",
                            sql=q.as_string(None), table=t, column=self.replica_column)
        return self._cast_precheck()

    def _cast_precheck(self) -> PreCheck:
        name, mods, arr = split_type(self.new)
        t, cid = self.table, sql.Identifier(self.replica_column)
        desc = f"values of {self.table}.{quote(self.replica_column)} that do not fit {self.new}"
        q: sql.Composable | None = None
        old_name = split_type(self.old)[0]
        if not arr:
            if name in ("character varying", "character", "varchar") and mods:
                q = sql.SQL("SELECT count(*) FROM {} WHERE length({}::text) > {}").format(sql.SQL(t), cid, sql.Literal(mods[0]))
            elif name in _INT_RANK or name == "numeric":
                if name in _INT_RANK:
                    lo, hi = _INT_LIMITS[_INT_RANK[name]]
                    test = sql.SQL("NOT ({c}::text ~ '^\\s*[-+]?[0-9]+\\s*$') OR {c}::text::numeric NOT BETWEEN {lo} AND {hi}").format(
                        c=cid, lo=sql.Literal(lo), hi=sql.Literal(hi))
                    if old_name in {*_INT_RANK, "numeric", "real", "double precision"}:
                        test = sql.SQL("round({c}::numeric) NOT BETWEEN {lo} AND {hi}").format(c=cid, lo=sql.Literal(lo), hi=sql.Literal(hi))
                else:
                    num = sql.SQL("NOT ({c}::text ~ '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?\\s*$')").format(c=cid)
                    if mods:
                        p, s = (mods + [0])[:2]
                        fit = sql.SQL("abs(round({c}::text::numeric, {s})) >= {lim}").format(c=cid, s=sql.Literal(s), lim=sql.Literal(10 ** (p - s)))
                        test = sql.SQL("{} OR ({})").format(num, fit) if old_name in _TEXTY else fit
                    else:
                        test = num
                q = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL AND ({})").format(sql.SQL(t), cid, test)
        if q is None and self.server_version >= 160000:
            q = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL AND NOT pg_input_is_valid({}::text, {})").format(
                sql.SQL(t), cid, cid, sql.Literal(self.new))
        if q is None:
            return PreCheck(description=f"non-NULL values of {self.table}.{quote(self.replica_column)} to cast to "
                                        f"{self.new} (cannot test the cast before PostgreSQL 16)",
                            sql=None, table=t, column=self.replica_column)
        return PreCheck(description=desc, sql=q.as_string(None), table=t, column=self.replica_column)


def _check_body(definition: str) -> str:
    m = re.match(r"^CHECK\s*\((.*)\)\s*$", strip_not_valid(definition), re.S)
    return m.group(1) if m else "true"
