"""Referentially complete subsets: `--subset "clients: id = 2"` (or `[subset] start`).

The rows chosen by each start condition, plus every row they reference through foreign keys,
transitively, so that every foreign key holds on the replica; with `referencing`, also the rows that
reference them, transitively (that client's projects, their leads, the leads' conversations and
messages), and then again every row *those* reference. Rows added because something references them
do not pull in their own referencing rows (that would soon be the whole database).

**How.** The closure is computed on the master, read-only, through the guarded connection and inside
the snapshot of the run that copies (or verifies) the rows, so the rows chosen and the rows copied
are the same rows: `copy_tables(in_snapshot=...)` calls :meth:`Subset.hook`'s function right after
the copy has taken its snapshot. One query per (table, foreign key) step, keys passed as bound arrays;
tables are visited in foreign-key order (``replicator.order``) and the walk repeats until nothing new
is found, so cycles and self-references (a manager column) end.

**What copy receives: key lists.** Each reached table gets a `where` that names its chosen keys
(`(id) = ANY ('{...}'::uuid[])`, composite keys through `unnest`). Computed once, in the snapshot, a
key list costs the master a hashed semi-join per read; a subquery predicate instead would re-run the
whole closure (joins over every table on the way, recursive for cycles) in every batch of every
table, and could not express "referenced rows of referencing rows" without recursion. The price is
memory and statement size proportional to the subset, so a table may contribute at most
``MAX_KEYS_PER_TABLE`` keys: a subset is a slice for development, not a copy of production.
A table without a usable key is selected by the foreign-key conditions that reached it instead.

A subset's key lists replace a table's configured `where` (start and referencing rows honour that
`where`; rows that are referenced are included whatever it says, so the foreign keys hold). Tables
the subset does not reach are not copied; the selection (`--table` / `--exclude`) bounds the walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import psycopg
from psycopg import sql

from . import order
from .config import Config, TableConfig, parse_subset_start
from .errors import ConfigError, ReplicatorError
from .introspect.models import Constraint, Schema, Table
from .selection import Selection

MAX_KEYS_PER_TABLE = 100_000

Key = tuple[str, ...]


def _ident_cols(cols: Iterable[str], alias: str | None = None) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(alias, c) if alias else sql.Identifier(c) for c in cols)


def _text_cols(cols: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols)


def member_of(cols: list[str], types: list[str], values: Iterable[Key] | None = None,
              *, literal: bool = False) -> tuple[sql.Composable, list]:
    """``(cols) IN (the given key tuples)``, each value cast from text to its column's type.

    With ``literal`` the values are written into the statement (for a `where` handed to copy and
    verify); otherwise they are bound parameters (one text array per column)."""
    rows = sorted(set(values or ()))
    columns = [list(col) for col in zip(*rows)] if rows else [[] for _ in cols]
    if literal:
        arrays = [sql.SQL("{}::{}[]").format(sql.Literal(col), sql.SQL(t)) for col, t in zip(columns, types)]
        params: list = []
    else:
        arrays = [sql.SQL("%s::{}[]").format(sql.SQL(t)) for t in types]
        params = columns
    if len(cols) == 1:
        return sql.SQL("{} = ANY ({})").format(sql.Identifier(cols[0]), arrays[0]), params
    return sql.SQL("({}) IN (SELECT * FROM unnest({}))").format(_ident_cols(cols), sql.SQL(", ").join(arrays)), params


def unquote_key(key: str) -> tuple[str, str]:
    """``auth.users`` / ``"My Schema"."T"`` -> (schema, name), raw."""
    parts, cur, i, quoted = [], "", 0, False
    while i < len(key):
        ch = key[i]
        if ch == '"':
            if quoted and key[i + 1:i + 2] == '"':
                cur += '"'
                i += 2
                continue
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return (parts[0], parts[1]) if len(parts) == 2 else ("public", parts[0])


def _type_of(t: Table, col: str) -> str:
    return t.columns[col].type


@dataclass
class Chosen:
    """The rows of one table in the subset: keys, or (no usable key) the conditions that reached it."""

    table: Table
    key: list[str] | None
    keys: set[Key] = field(default_factory=set)
    conditions: list[str] = field(default_factory=list)  # keyless tables only (raw SQL), OR'ed

    @property
    def label(self) -> str:
        return f"{self.table.schema_name}.{self.table.name}"

    def predicate(self, *, literal: bool, fresh: set[Key] | None = None) -> tuple[sql.Composable, list]:
        """SQL selecting the chosen rows (or only ``fresh`` keys), and its parameters. Without
        ``literal`` the statement is sent with parameters, so a `%` in a condition is escaped."""
        if self.key is None:
            if not self.conditions:
                return sql.SQL("false"), []
            conds = self.conditions if literal else [c.replace("%", "%%") for c in self.conditions]
            return sql.SQL(" OR ").join(sql.SQL("({})").format(sql.SQL(c)) for c in conds), []
        keys = self.keys if fresh is None else fresh
        return member_of(self.key, [_type_of(self.table, c) for c in self.key], keys, literal=literal)

    def where(self) -> str:
        """The condition handed to copy and verify (values written out)."""
        return self.predicate(literal=True)[0].as_string(None)


@dataclass
class Closure:
    """The subset: chosen rows per table (master table key -> Chosen), in foreign-key order; and the
    rows of tables outside the compared schemas (auth.users) the chosen rows reference, by the
    referenced columns: (schema, name) -> {columns: values}."""

    tables: dict[str, Chosen]
    outside: dict[tuple[str, str], dict[tuple[tuple[str, ...], tuple[str, ...]], set[Key]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    queries: int = 0

    def rows(self) -> dict[str, int | None]:
        """Chosen rows per table (None: a table without a key, chosen by conditions)."""
        return {c.label: (len(c.keys) if c.key else None) for c in self.tables.values()}

    def wheres(self) -> dict[str, str]:
        """The condition of every table the subset covers, by ``schema.name``."""
        out = {c.label: c.where() for c in self.tables.values()}
        for (schema, name), by in self.outside.items():
            parts = [member_of(list(cols), list(types), vals, literal=True)[0] for (cols, types), vals in sorted(by.items())]
            out[f"{schema}.{name}"] = sql.SQL(" OR ").join(sql.SQL("({})").format(p) for p in parts).as_string(None)
        return out

    def config(self, cfg: Config) -> Config:
        """``cfg`` with each covered table's `where` set to its chosen rows, and ``include`` narrowed to
        the covered tables (exact, quoted names)."""
        out = cfg.model_copy(deep=True)
        out.include = [sql.Identifier(c.table.schema_name, c.table.name).as_string(None) for c in self.tables.values()]
        for label, where in self.wheres().items():
            bare = label.removeprefix("public.")
            key = next((k for k in (label, bare) if k in out.tables), label)
            # model_copy does not re-validate: a key list is a condition by construction, and parsing a
            # long one with sqlglot would cost seconds for nothing
            out.tables[key] = out.tables.get(key, TableConfig()).model_copy(update={"where": where})
        return out


@dataclass
class Subset:
    """Start conditions and whether referencing rows are followed too."""

    starts: list[tuple[str, str]]
    referencing: bool = False
    #: the closure computed by the last :meth:`hook` call (what a copy copied)
    last: Closure | None = None

    @classmethod
    def from_options(cls, cfg: Config, subset: Iterable[str] = (), with_referencing: bool | None = None) -> "Subset | None":
        """``--subset`` values (they replace ``[subset] start``) or the config's; None when neither."""
        texts = list(subset) or list(cfg.subset.start)
        if not texts:
            if with_referencing:
                raise ConfigError("--with-referencing needs --subset \"table: condition\" (or [subset] start)")
            return None
        starts = []
        for t in texts:
            try:
                starts.append(parse_subset_start(t))
            except ValueError as e:
                raise ConfigError(f"--subset {e}") from None
        referencing = cfg.subset.referencing if with_referencing is None else with_referencing
        return cls(starts, referencing)

    def describe(self) -> str:
        return "; ".join(f"{t}: {c}" for t, c in self.starts) + (" (with referencing rows)" if self.referencing else "")

    def hook(self, cfg: Config, selection: Selection) -> Callable[[psycopg.Connection, Schema], Config]:
        """For ``copy_tables(in_snapshot=...)``: compute the closure in the copy's snapshot and return
        the config to copy with."""

        def in_snapshot(master: psycopg.Connection, schema: Schema) -> Config:
            self.last = self.closure(master, schema, cfg, selection)
            return self.last.config(cfg)

        return in_snapshot

    def closure(self, master: psycopg.Connection, schema: Schema, cfg: Config, selection: Selection) -> Closure:
        return _Walk(master, schema, cfg, selection, self).run()


class _Walk:
    def __init__(self, conn: psycopg.Connection, schema: Schema, cfg: Config, selection: Selection, subset: Subset):
        from .copy.plan import resolve_table, tree_key

        self.conn, self.schema, self.cfg, self.selection, self.subset = conn, schema, cfg, selection, subset
        self._resolve, self._tree_key = resolve_table, tree_key
        self.chosen: dict[str, Chosen] = {}
        self.outside_rows: dict = {}
        self.notes: list[str] = []
        self.queries = 0
        roots = [k for k, t in schema.tables.items() if not t.partition_of]
        self.position = order.fk_order(schema, roots).position()
        # foreign keys between root tables (declared on a partition: its root), as (child, fk, parent)
        self.edges: list[tuple[str, Constraint, str]] = []
        for t in schema.tables.values():
            for fk in t.foreign_keys:
                if fk.inherited or not fk.referenced_table:
                    continue
                self.edges.append((order.partition_root(schema, t.key), fk,
                                   order.partition_root(schema, fk.referenced_table)))

    # -- helpers -----------------------------------------------------------------------------------

    def table(self, key: str) -> Table:
        return self.schema.tables[key]

    def entry(self, key: str) -> Chosen:
        if key not in self.chosen:
            t = self.table(key)
            self.chosen[key] = Chosen(t, t.key_columns() or self._tree_key(self.schema, t))
        return self.chosen[key]

    def selected(self, key: str) -> bool:
        return key in self.schema.tables and self.selection.selects(self.schema, self.table(key))

    def fetch(self, query: sql.Composable, params: list) -> list[Key]:
        self.queries += 1
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return [tuple(r) for r in cur.fetchall()]

    def add(self, key: str, rows: list[Key]) -> set[Key]:
        c = self.entry(key)
        new = set(rows) - c.keys
        c.keys |= new
        if len(c.keys) > MAX_KEYS_PER_TABLE:
            raise ReplicatorError(
                f"subset too large: {len(c.keys):,} rows of {c.table.schema_name}.{c.table.name} reached (at most "
                f"{MAX_KEYS_PER_TABLE:,} per table): narrow the start condition, or select fewer tables")
        return new

    def own_where(self, key: str) -> str:
        """The table's configured `where` (raw SQL text), or true."""
        t = self.table(key)
        tc = self.cfg.table(f"{t.schema_name}.{t.name}")
        if tc == TableConfig() and t.schema_name == "public":
            tc = self.cfg.table(t.name)
        return tc.where or "true"

    def reach(self, starts: list[str]) -> None:
        """Every selected table the subset covers, whether or not it ends up with rows: the start
        tables, the tables referencing them (with ``referencing``), and the tables those reference."""
        down = set(starts)
        if self.subset.referencing:
            grew = True
            while grew:
                grew = False
                for child, _fk, parent in self.edges:
                    if parent in down and child not in down and self.selected(child):
                        down.add(child)
                        grew = True
        up, grew = set(down), True
        while grew:
            grew = False
            for child, _fk, parent in self.edges:
                if child in up and parent not in up and self.selected(parent):
                    up.add(parent)
                    grew = True
        for k in up:
            self.entry(k)

    def ident(self, key: str) -> sql.Composable:
        t = self.table(key)
        return sql.Identifier(t.schema_name, t.name)

    # -- the walk ----------------------------------------------------------------------------------

    def run(self) -> Closure:
        fresh_down: dict[str, set[Key]] = {}
        fresh_up: dict[str, set[Key]] = {}
        keyless_new: set[str] = set()
        starts = []
        for name, condition in self.subset.starts:
            t = self._resolve(self.schema, name, self.cfg)
            if t is None:
                raise ConfigError(f"--subset {name}: no such table on the master (schemas: {', '.join(self.cfg.schemas)})")
            t = self.table(order.partition_root(self.schema, t.key))
            if not self.selection.selects(self.schema, t):
                raise ConfigError(f"--subset {name}: the table is not selected (--table / --exclude, include / exclude)")
            starts.append((t.key, f"({condition}) AND ({self.own_where(t.key)})"))
        self.reach([k for k, _ in starts])
        for key, condition in starts:
            c = self.chosen[key]
            if c.key is None:
                c.conditions.append(condition)
                keyless_new.add(key)
                continue
            q = sql.SQL("SELECT {k} FROM {t} WHERE {w}").format(
                k=_text_cols(c.key), t=self.ident(key), w=sql.SQL(condition.replace("%", "%%")))
            new = self.add(key, self.fetch(q, []))
            fresh_down.setdefault(key, set()).update(new)
            fresh_up.setdefault(key, set()).update(new)
        if self.subset.referencing:
            self.downstream(fresh_down, fresh_up, keyless_new)
        self.upstream(fresh_up, keyless_new)
        ordered = sorted(self.chosen, key=lambda k: (self.position.get(k, len(self.position)), k))
        return Closure({k: self.chosen[k] for k in ordered}, self.outside_rows, self.notes, self.queries)

    def downstream(self, fresh: dict[str, set[Key]], fresh_up: dict[str, set[Key]], keyless_new: set[str]) -> None:
        """Rows referencing chosen rows, transitively (parents first, until nothing new)."""
        while any(fresh.values()):
            for parent in sorted([k for k, v in fresh.items() if v], key=lambda k: self.position.get(k, 0)):
                keys = fresh.pop(parent)
                p = self.chosen[parent]
                for child, fk, ref in self.edges:
                    if ref != parent or not self.selected(child):
                        continue
                    refcols = fk.referenced_columns or []
                    if refcols == p.key:
                        values = sorted(keys)
                    else:  # the foreign key references another unique key of the parent
                        pred, params = p.predicate(literal=False, fresh=keys)
                        values = self.fetch(sql.SQL("SELECT DISTINCT {c} FROM {t} WHERE {w}").format(
                            c=_text_cols(refcols), t=self.ident(parent), w=pred), params)
                    if not values:
                        continue
                    c = self.entry(child)
                    ctypes = [_type_of(self.table(child), col) for col in fk.columns]
                    if c.key is None:
                        cond, _ = member_of(fk.columns, ctypes, values, literal=True)
                        c.conditions.append(f"({cond.as_string(None)}) AND ({self.own_where(child)})")
                        keyless_new.add(child)
                        continue
                    cond, params = member_of(fk.columns, ctypes, values)
                    q = sql.SQL("SELECT {k} FROM {t} WHERE {c} AND ({w})").format(
                        k=_text_cols(c.key), t=self.ident(child), c=cond,
                        w=sql.SQL(self.own_where(child).replace("%", "%%")))
                    new = self.add(child, self.fetch(q, params))
                    if new:
                        fresh.setdefault(child, set()).update(new)
                        fresh_up.setdefault(child, set()).update(new)

    def upstream(self, fresh: dict[str, set[Key]], keyless_new: set[str]) -> None:
        """Rows the chosen rows reference, transitively (children first, until nothing new)."""
        pending_keyless = set(keyless_new)
        while any(fresh.values()) or pending_keyless:
            todo = {k for k, v in fresh.items() if v} | pending_keyless
            for child in sorted(todo, key=lambda k: -self.position.get(k, 0)):
                c = self.chosen[child]
                if c.key is None:
                    pending_keyless.discard(child)
                    pred, params = c.predicate(literal=False)
                else:
                    keys = fresh.pop(child, set())
                    if not keys:
                        continue
                    pred, params = c.predicate(literal=False, fresh=keys)
                for src, fk, parent in self.edges:
                    if src != child:
                        continue
                    refcols = fk.referenced_columns or []
                    inner = sql.SQL("SELECT {c} FROM {t} WHERE {w}").format(
                        c=_ident_cols(fk.columns), t=self.ident(child), w=pred)
                    if parent not in self.schema.tables:
                        # outside the compared schemas (auth.users): chosen by the referenced columns
                        self.outside(child, parent, fk, inner, params)
                        continue
                    if not self.selected(parent):
                        self.notes.append(f"{self.table(child).schema_name}.{self.table(child).name} references "
                                          f"{parent}, which is not selected: foreign key {fk.name} may not hold")
                        continue
                    p = self.entry(parent)
                    if p.key is None:  # a foreign key references a unique key: the parent has one
                        continue
                    q = sql.SQL("SELECT {k} FROM {t} WHERE ({r}) IN ({inner})").format(
                        k=_text_cols(p.key), t=self.ident(parent), r=_ident_cols(refcols), inner=inner)
                    new = self.add(parent, self.fetch(q, params))
                    if new:
                        fresh.setdefault(parent, set()).update(new)

    def outside(self, child: str, parent: str, fk: Constraint, inner: sql.Composable, params: list) -> None:
        """Rows of a table outside the compared schemas (auth.users) that chosen rows reference, by
        the referenced columns' values (its key is not known here): copy --all copies that table
        with the managed tables, filtered to them."""
        rows = self.fetch(sql.SQL("SELECT DISTINCT {} FROM ({}) AS s WHERE {}").format(
            _text_cols(fk.columns), inner,
            sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in fk.columns)), params)
        types = tuple(_type_of(self.table(child), c) for c in fk.columns)
        by = self.outside_rows.setdefault(unquote_key(parent), {})
        by.setdefault((tuple(fk.referenced_columns or []), types), set()).update(rows)


__all__ = ["Subset", "Closure", "Chosen", "MAX_KEYS_PER_TABLE", "member_of"]
