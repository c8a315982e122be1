"""Which tables a command works on: `include` / `exclude` globs in the config, `--table` / `--exclude`
on the command line, for analyze, migrate, copy, verify and sync alike.

A pattern is a shell glob (`*`, `?`, `[...]`, matched case-sensitively against the raw names):
`leads`, `lead_*` or `"Odd Table"` match a table name in any compared schema; `public.lead*` or
`analytics.*` match `schema.name`. Double-quoted parts are taken literally, glob characters included
(`"weird*name"`), and may hold dots (`app."v1.2 data"`). A partition is selected with its partitioned
table (it is copied, compared and verified through it), never on its own.

`--table` replaces the config's `include` for one run; `exclude` patterns (config and options) always
apply. An `include` or `--table` pattern that matches no table on the master is an error: a typo
must not turn into "nothing to do".

For analyze and migrate a selection narrows the comparison to the selected tables **and what they
need** (`restrict`): the types, sequences, functions and extensions they use and the tables their
foreign keys reference (followed through the catalog's dependencies, transitively), plus the views
that read nothing but selected tables. Objects outside it are neither compared nor planned: a plan for
`--table leads` creates `leads` and the `projects` it references, not the unrelated analytics tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Iterable

from .errors import ConfigError
from .introspect.models import Schema, Table
from .order import partition_root

GLOB_CHARS = frozenset("*?[")
_BRACKETED = re.compile(r"\[[*?\[]\]")  # a glob character made literal by _literal

# Objects nested in a table or view: a dependency of one is a dependency of its table or view.
_NESTED = frozenset({"column", "constraint", "index", "trigger", "policy", "rule"})


def _literal(text: str) -> str:
    """A quoted identifier as a glob that matches exactly it (glob characters bracketed)."""
    return "".join(f"[{c}]" if c in GLOB_CHARS else c for c in text)


def _split(text: str) -> list[str]:
    """Dot-separated parts as globs; double-quoted parts are literal (`""` is a quote)."""
    parts, cur, i = [], "", 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j, buf = i + 1, ""
            while j < len(text):
                if text[j] == '"' and text[j + 1:j + 2] == '"':
                    buf, j = buf + '"', j + 2
                elif text[j] == '"':
                    break
                else:
                    buf, j = buf + text[j], j + 1
            if j >= len(text):
                raise ConfigError(f"table pattern {text!r}: unclosed double quote")
            cur += _literal(buf)
            i = j + 1
        elif c == ".":
            parts.append(cur)
            cur = ""
            i += 1
        else:
            cur += c
            i += 1
    parts.append(cur)
    return parts


@dataclass(frozen=True)
class Pattern:
    """One table glob: ``schema`` is None when the pattern names no schema (any compared one)."""

    text: str
    name: str
    schema: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Pattern":
        raw = text.strip()
        if not raw:
            raise ConfigError("empty table pattern")
        parts = _split(raw)
        if len(parts) > 2 or not all(parts):
            raise ConfigError(f"table pattern {text!r}: write `table`, `schema.table` or globs such as `lead*`, "
                              "`analytics.*` (quote names holding dots: `app.\"v1.2\"`)")
        return cls(raw, parts[-1], parts[0] if len(parts) == 2 else None)

    @classmethod
    def name_or_pattern(cls, text: str) -> "Pattern":
        """A ``--table`` value: a pattern when it parses as one, else the name as written (a raw
        `schema.name` such as `Mixed Case.we"ird`), which the command resolves, or reports as not found."""
        try:
            return cls.parse(text)
        except ConfigError:
            schema, dot, name = text.partition(".")
            return cls(text, _literal(name if dot else schema), _literal(schema) if dot else None)

    @property
    def is_glob(self) -> bool:
        """It may match several names: a glob character that is not a quoted (bracketed) literal."""
        bare = _BRACKETED.sub("", self.name + "." + (self.schema or ""))
        return any(c in GLOB_CHARS for c in bare)

    def matches(self, schema_name: str, name: str) -> bool:
        return fnmatchcase(name, self.name) and (self.schema is None or fnmatchcase(schema_name, self.schema))


@dataclass(frozen=True)
class Selection:
    """Include / exclude patterns; no include pattern means every table."""

    include: tuple[Pattern, ...] = ()
    exclude: tuple[Pattern, ...] = ()
    #: where the include patterns came from, for messages: "--table" or "include"
    source: str = "include"

    @classmethod
    def build(cls, include: Iterable[str] = (), exclude: Iterable[str] = (), *,
              tables: Iterable[str] = (), more_exclude: Iterable[str] = ()) -> "Selection":
        """From the config's ``include``/``exclude`` and the command's ``--table``/``--exclude``:
        ``--table`` replaces ``include``; excludes add up."""
        tables = list(tables)
        chosen = [Pattern.name_or_pattern(p) for p in tables] if tables else [Pattern.parse(p) for p in include]
        return cls(tuple(chosen), tuple(Pattern.parse(p) for p in [*exclude, *more_exclude]),
                   "--table" if tables else "include")

    @classmethod
    def from_config(cls, cfg, tables: Iterable[str] = (), exclude: Iterable[str] = ()) -> "Selection":
        return cls.build(cfg.include, cfg.exclude, tables=tables, more_exclude=exclude)

    @property
    def everything(self) -> bool:
        return not self.include and not self.exclude

    @property
    def has_globs(self) -> bool:
        return any(p.is_glob for p in self.include)

    def selects_name(self, schema_name: str, name: str) -> bool:
        if self.include and not any(p.matches(schema_name, name) for p in self.include):
            return False
        return not any(p.matches(schema_name, name) for p in self.exclude)

    def excluded_by(self, schema_name: str, name: str) -> str | None:
        """The exclude pattern that rules a table out, if one does."""
        return next((p.text for p in self.exclude if p.matches(schema_name, name)), None)

    def selects(self, schema: Schema, table: Table) -> bool:
        """A table (a partition: its partitioned table) is selected."""
        root = schema.tables.get(partition_root(schema, table.key), table)
        return self.selects_name(root.schema_name, root.name)

    def table_keys(self, schema: Schema) -> list[str]:
        """Keys of the selected tables of ``schema`` (partitions included with their root), after
        checking that every include pattern matches a table."""
        self.check(schema)
        return [k for k, t in schema.tables.items() if self.selects(schema, t)]

    def check(self, schema: Schema, side: str = "master") -> None:
        """Every include pattern must match a table (a typo must not select nothing)."""
        for p in self.include:
            if not any(p.matches(t.schema_name, t.name) for t in schema.tables.values()):
                raise ConfigError(f"{self.source} {p.text}: matches no table on the {side} "
                                  f"(schemas: {', '.join(schema.schemas)})")


# -------------------------------------------------------------------------------------------------
# analyze / migrate: the comparison restricted to the selected tables and what they need

Obj = tuple[str, str]  # (kind, key): table, view, sequence, type, function, extension


def _top(schema: Schema, kind: str, key: str) -> Obj:
    if kind in _NESTED:
        return ("view" if key in schema.views else "table", key)
    return (kind, key)


@dataclass
class _Needs:
    """What each object of a schema uses, folded to top-level objects."""

    schema: Schema
    uses: dict[Obj, set[Obj]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.schema
        for d in s.dependencies:
            src = _top(s, d.kind, d.key)
            on = ("extension", d.on_extension) if d.on_extension else _top(s, d.on_kind, d.on_key)
            if on != src:
                self.uses.setdefault(src, set()).add(on)
        for t in s.tables.values():
            deps = self.uses.setdefault(("table", t.key), set())
            for con in t.foreign_keys:
                if con.referenced_table:
                    deps.add(("table", con.referenced_table))
            for parent in [t.partition_of, *t.inherits]:
                if parent:
                    deps.add(("table", parent))
            for p in s.partitions_of(t.key):  # a partitioned table comes with its partitions
                deps.add(("table", p.key))
        for v in s.views.values():
            deps = self.uses.setdefault(("view", v.key), set())
            deps.update(("view" if k in s.views else "table", k) for k in v.depends_on)
            deps.update(("function", f) for f in v.depends_on_functions)

    def closure(self, start: Iterable[Obj]) -> set[Obj]:
        seen: set[Obj] = set()
        todo = list(start)
        while todo:
            o = todo.pop()
            if o in seen:
                continue
            seen.add(o)
            todo.extend(self.uses.get(o, ()))
        return seen

    def views_within(self, kept: set[Obj]) -> set[Obj]:
        """Views that read only ``kept`` relations (views on such views too)."""
        out: set[Obj] = set()
        grew = True
        while grew:
            grew = False
            for v in self.schema.views.values():
                ref = ("view", v.key)
                if ref in out or not v.depends_on:
                    continue
                reads = {("view" if k in self.schema.views else "table", k) for k in v.depends_on}
                if reads <= kept | out:
                    out.add(ref)
                    grew = True
        return out


def restrict(master: Schema, replica: Schema, selection: Selection) -> tuple[Schema, Schema]:
    """Copies of both schemas holding only the selected tables and what they need (see the module's
    docstring). Tables are selected by name on either side (a table only on the replica that matches
    is still compared: the plan may drop it). Everything else (namespaces, roles) is kept."""
    if selection.everything:
        return master, replica
    selection.check(master)
    needs = [_Needs(master), _Needs(replica)]
    start = {("table", k) for s in (master, replica) for k, t in s.tables.items() if selection.selects(s, t)}
    kept: set[Obj] = set()
    for n in needs:
        kept |= n.closure(start)
    views: set[Obj] = set()
    for n in needs:
        views |= n.views_within(start)  # views over selected tables only, not over tables merely needed
    for n in needs:
        kept |= n.closure(views)
    return _filtered(master, kept), _filtered(replica, kept)


def _filtered(schema: Schema, kept: set[Obj]) -> Schema:
    s = schema.model_copy(deep=True)
    s.tables = {k: t for k, t in s.tables.items() if ("table", k) in kept}
    s.views = {k: v for k, v in s.views.items() if ("view", k) in kept}
    s.sequences = {k: q for k, q in s.sequences.items()
                   if ("sequence", k) in kept or ("table", q.owned_by_table or "") in kept}
    s.functions = {k: f for k, f in s.functions.items() if ("function", k) in kept}
    for attr in ("enums", "domains", "composites", "ranges"):
        setattr(s, attr, {k: t for k, t in getattr(s, attr).items() if ("type", k) in kept})
    s.extensions = {n: e for n, e in s.extensions.items() if ("extension", n) in kept}
    s.row_counts = {k: c for k, c in s.row_counts.items() if ("table", k) in kept}
    s.dependencies = [d for d in s.dependencies if _top(schema, d.kind, d.key) in kept]
    # what the kept objects use outside the compared schemas (auth.users behind a kept foreign key)
    ext = s.external
    ext.tables = {k: t for k, t in ext.tables.items() if ("table", k) in kept}
    ext.functions = {k: f for k, f in ext.functions.items() if ("function", k) in kept}
    for attr in ("enums", "domains", "composites", "ranges"):
        setattr(ext, attr, {k: t for k, t in getattr(ext, attr).items() if ("type", k) in kept})
    ext.triggers = [et for et in ext.triggers if ("function", et.trigger.function) in kept]
    return s


__all__ = ["GLOB_CHARS", "Pattern", "Selection", "restrict"]
