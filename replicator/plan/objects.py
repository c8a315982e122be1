"""One small class per object kind: how to create it, drop it and comment on it.

Each wraps an introspected model (``replicator.introspect.models``) and knows its plan reference
(``ref``: kind, key, nested name), the SQL keyword that names it (``TABLE``, ``FUNCTION``, ...), and
its ``create()`` / ``drop()`` statements. Identifiers come from server-quoted keys or
:func:`~replicator.diff.quote`, never from raw names.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..diff import quote
from ..introspect.models import (
    Collation,
    Rule,
    Column,
    CompositeType,
    Constraint,
    Domain,
    Enum,
    Extension,
    Function,
    Index,
    Policy,
    RangeType,
    Role,
    Schema,
    Sequence,
    Table,
    Trigger,
    View,
)
from .sqltext import comment_value, ident, lit, strip_not_valid

Ref = tuple[str, str, "str | None"]


class DbObject:
    """Base: an object with a key, a keyword and a comment."""

    kind: ClassVar[str]
    keyword: ClassVar[str]

    def __init__(self, model: Any):
        self.model = model

    @property
    def key(self) -> str:
        return self.model.key

    @property
    def ref(self) -> Ref:
        return (self.kind, self.key, None)

    @property
    def target(self) -> str:
        """How COMMENT ON / GRANT name it."""
        return f"{self.keyword} {self.key}"

    def comment(self, value: str | None) -> str:
        return f"COMMENT ON {self.target} IS {comment_value(value)}"

    def drop(self) -> str:
        return f"DROP {self.keyword} {self.key}"

    def create(self) -> str:
        raise NotImplementedError


class SchemaObj(DbObject):
    kind, keyword = "schema", "SCHEMA"

    def create(self) -> str:
        return f"CREATE SCHEMA {self.key}"

    def create_if_missing(self) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {self.key}"


class RoleObj(DbObject):
    kind, keyword = "role", "ROLE"

    def __init__(self, name: str, model: Role | None = None):
        super().__init__(model)
        self.name = name

    @property
    def key(self) -> str:
        return quote(self.name)

    def create(self) -> str:
        # NOLOGIN: a role that exists so that policies and grants naming it hold; nobody logs in as it
        return f"CREATE ROLE {self.key} NOLOGIN"


class ExtensionObj(DbObject):
    kind, keyword = "extension", "EXTENSION"
    model: Extension

    @property
    def key(self) -> str:
        return quote(self.model.name)

    @property
    def ref(self) -> Ref:
        return ("extension", self.model.name, None)

    def create(self, version: str | None = None) -> str:
        text = f"CREATE EXTENSION IF NOT EXISTS {self.key} WITH SCHEMA {quote(self.model.schema_name)}"
        return text + (f" VERSION {lit(version)}" if version else "")

    def update(self, version: str) -> str:
        return f"ALTER EXTENSION {self.key} UPDATE TO {lit(version)}"


class CollationObj(DbObject):
    kind, keyword = "collation", "COLLATION"
    model: Collation

    def create(self) -> str:
        c = self.model
        opts = [f"provider = {c.provider}"]
        if c.provider == "libc":
            opts += [f"lc_collate = {lit(c.lc_collate or '')}", f"lc_ctype = {lit(c.lc_ctype or '')}"]
        elif c.locale is not None:
            opts.append(f"locale = {lit(c.locale)}")
        if c.rules:
            opts.append(f"rules = {lit(c.rules)}")
        if not c.deterministic:
            opts.append("deterministic = false")
        return f"CREATE COLLATION {self.key} ({', '.join(opts)})"


class EnumObj(DbObject):
    kind, keyword = "type", "TYPE"
    model: Enum

    def create(self) -> str:
        return f"CREATE TYPE {self.key} AS ENUM ({', '.join(lit(x) for x in self.model.labels)})"


class CompositeObj(DbObject):
    kind, keyword = "type", "TYPE"
    model: CompositeType

    def create(self) -> str:
        attrs = [f"{quote(a.name)} {a.type}" + (f" COLLATE {a.collation}" if a.collation else "")
                 for a in self.model.attributes]
        return f"CREATE TYPE {self.key} AS (" + ", ".join(attrs) + ")"

    def attribute_comments(self) -> list[str]:
        return [f"COMMENT ON COLUMN {self.key}.{quote(a.name)} IS {comment_value(a.comment)}"
                for a in self.model.attributes if a.comment is not None]


class RangeObj(DbObject):
    kind, keyword = "type", "TYPE"
    model: RangeType

    def create(self) -> str:
        r = self.model
        opts = [f"SUBTYPE = {r.subtype}"]
        if r.subtype_opclass:
            opts.append(f"SUBTYPE_OPCLASS = {r.subtype_opclass}")
        if r.collation:
            opts.append(f"COLLATION = {r.collation}")
        if r.canonical:
            opts.append(f"CANONICAL = {r.canonical}")
        if r.subtype_diff:
            opts.append(f"SUBTYPE_DIFF = {r.subtype_diff}")
        if r.multirange:
            opts.append(f"MULTIRANGE_TYPE_NAME = {r.multirange}")
        return f"CREATE TYPE {self.key} AS RANGE ({', '.join(opts)})"


class DomainObj(DbObject):
    kind, keyword = "type", "DOMAIN"
    model: Domain

    def create(self) -> str:
        d = self.model
        text = f"CREATE DOMAIN {d.key} AS {d.base_type}"
        if d.collation:
            text += f" COLLATE {d.collation}"
        if d.default is not None:
            text += f" DEFAULT {d.default}"
        if d.not_null:
            text += " NOT NULL"
        for con in d.constraints:
            text += f" CONSTRAINT {quote(con.name)} {strip_not_valid(con.definition)}"
        return text


def type_object(model: Any) -> DbObject:
    """The object class for a user-defined type model."""
    return {Enum: EnumObj, CompositeType: CompositeObj, RangeType: RangeObj, Domain: DomainObj}[type(model)](model)


class SequenceObj(DbObject):
    kind, keyword = "sequence", "SEQUENCE"
    model: Sequence

    def options(self, *, with_name: bool = False, as_type: bool = True) -> str:
        s = self.model
        parts = [f"SEQUENCE NAME {s.key}"] if with_name else []
        if as_type:
            parts.append(f"AS {s.data_type}")
        parts += [f"INCREMENT BY {s.increment}", f"MINVALUE {s.min_value}", f"MAXVALUE {s.max_value}",
                  f"START WITH {s.start}", f"CACHE {s.cache}", "CYCLE" if s.cycle else "NO CYCLE"]
        return " ".join(parts)

    def create(self) -> str:
        return f"CREATE SEQUENCE {self.key} {self.options()}"

    def alter(self) -> str:
        return f"ALTER SEQUENCE {self.key} {self.options()}"

    def owned_by(self, target: str | None) -> str:
        return f"ALTER SEQUENCE {self.key} OWNED BY {target or 'NONE'}"


class FunctionObj(DbObject):
    kind = "function"
    model: Function

    @property
    def keyword(self) -> str:  # type: ignore[override]
        return {"procedure": "PROCEDURE", "aggregate": "AGGREGATE"}.get(self.model.kind, "FUNCTION")

    def create(self) -> str:
        if self.model.definition is None:
            raise ValueError(f"{self.model.kind} {self.key} has no definition")
        return self.model.definition

    def replace(self) -> str:
        """CREATE OR REPLACE: same signature and result, new body or attributes."""
        text = self.create()
        if self.model.kind == "aggregate" and text.startswith("CREATE AGGREGATE"):
            return "CREATE OR REPLACE AGGREGATE" + text[len("CREATE AGGREGATE"):]
        return text


class ColumnDef:
    """A column as written in CREATE TABLE / ADD COLUMN."""

    def __init__(self, table: Table, column: Column, schema: Schema):
        self.table, self.column, self.schema = table, column, schema

    def identity_sequence(self) -> Sequence | None:
        for s in self.schema.sequences.values():
            if s.identity and s.owned_by_table == self.table.key and s.owned_by_column == self.column.name:
                return s
        return None

    def identity_clause(self, identity: str) -> str:
        seq = self.identity_sequence()
        opts = f" ({SequenceObj(seq).options(with_name=True, as_type=False)})" if seq else ""
        return f"GENERATED {identity.upper()} AS IDENTITY{opts}"

    def sql(self, *, with_default: bool = True, with_not_null: bool = True) -> str:
        c = self.column
        parts = [quote(c.name), c.type]
        if c.collation:
            parts.append(f"COLLATE {c.collation}")
        if c.generated:
            parts.append(f"GENERATED ALWAYS AS ({c.generated}) STORED")
        elif c.identity:
            parts.append(self.identity_clause(c.identity))
        elif c.default is not None and with_default:
            parts.append(f"DEFAULT {c.default}")
        if not c.nullable and with_not_null:
            parts.append("NOT NULL")
        return " ".join(parts)


class TableObj(DbObject):
    kind, keyword = "table", "TABLE"
    model: Table

    def __init__(self, model: Table, schema: Schema):
        super().__init__(model)
        self.schema = schema

    def create(self, *, without_defaults: set[str] = frozenset()) -> str:  # type: ignore[assignment]
        """CREATE TABLE with the columns the table declares itself (a partition or child gets the
        others from its parent). Constraints, indexes and the rest are separate steps."""
        t = self.model
        head = "CREATE UNLOGGED TABLE" if t.unlogged else "CREATE TABLE"

        def col(c: Column) -> str:
            return ColumnDef(t, c, self.schema).sql(with_default=c.name not in without_defaults)

        if t.partition_of:
            local = [c for c in t.columns.values() if c.is_local]
            text = f"{head} {t.key} PARTITION OF {t.partition_of}"
            text += (" (" + ", ".join(col(c) for c in local) + ")" if local else "") + f" {t.partition_bound}"
        else:
            cols = [col(c) for c in t.columns.values() if c.is_local or not t.inherits]
            text = f"{head} {t.key} (\n    " + ",\n    ".join(cols) + "\n)"
            if t.inherits:
                text += f" INHERITS ({', '.join(t.inherits)})"
        if t.partition_key:
            text += f" PARTITION BY {t.partition_key}"
        if t.options:
            text += f" WITH ({', '.join(t.options)})"
        return text

    def recreate_sql(self) -> str:
        """Everything that recreates the table as it is (for a rollback): table, constraints, indexes."""
        t = self.model
        parts = [self.create()]
        parts += [ConstraintObj(t, con).add() for con in t.constraints.values() if not con.inherited]
        parts += [idx.definition for idx in t.indexes.values() if idx.constraint is None and not idx.inherited]
        return ";\n".join(parts)

    def rls(self, enabled: bool) -> str:
        return f"ALTER TABLE {self.key} {'ENABLE' if enabled else 'DISABLE'} ROW LEVEL SECURITY"

    def force_rls(self, forced: bool) -> str:
        return f"ALTER TABLE {self.key} {'FORCE' if forced else 'NO FORCE'} ROW LEVEL SECURITY"

    def replica_identity(self, identity: str) -> str:
        """``identity`` as introspected: default, full, nothing, or `index <quoted name>`."""
        how = f"USING INDEX {identity.removeprefix('index ')}" if identity.startswith("index ") else identity.upper()
        return f"ALTER TABLE {self.key} REPLICA IDENTITY {how}"


class ViewObj(DbObject):
    kind = "view"
    model: View

    @property
    def keyword(self) -> str:  # type: ignore[override]
        return "MATERIALIZED VIEW" if self.model.materialized else "VIEW"

    def create(self) -> str:
        v = self.model
        opts = f" WITH ({', '.join(v.options)})" if v.options else ""
        text = f"CREATE {self.keyword} {v.key}{opts} AS\n{v.definition.rstrip().rstrip(';')}"
        if v.materialized:
            text += "\nWITH DATA" if v.populated is not False else "\nWITH NO DATA"
        return text

    def column_comments(self) -> list[str]:
        return [f"COMMENT ON COLUMN {self.key}.{quote(n)} IS {comment_value(c.comment)}"
                for n, c in self.model.columns.items() if c.comment is not None]


class Nested(DbObject):
    """An object that lives on a table (or view): constraint, index, trigger, policy."""

    def __init__(self, owner: Table | View, model: Any):
        super().__init__(model)
        self.owner = owner

    @property
    def key(self) -> str:
        return self.owner.key

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def ref(self) -> Ref:
        return (self.kind, self.owner.key, self.model.name)

    @property
    def target(self) -> str:
        return f"{self.keyword} {quote(self.name)} ON {self.owner.key}"


class ConstraintObj(Nested):
    kind, keyword = "constraint", "CONSTRAINT"
    model: Constraint

    def add(self, *, not_valid: bool = False) -> str:
        text = f"ALTER TABLE {self.key} ADD CONSTRAINT {quote(self.name)} {strip_not_valid(self.model.definition)}"
        return text + (" NOT VALID" if not_valid else "")

    def validate(self) -> str:
        return f"ALTER TABLE {self.key} VALIDATE CONSTRAINT {quote(self.name)}"

    def drop(self) -> str:
        return f"ALTER TABLE {self.key} DROP CONSTRAINT {quote(self.name)}"

    def create(self) -> str:
        return self.add()


class IndexObj(Nested):
    kind, keyword = "index", "INDEX"
    model: Index

    @property
    def qualified(self) -> str:
        return ident(self.owner.schema_name, self.name)

    @property
    def target(self) -> str:
        return f"INDEX {self.qualified}"

    def create(self) -> str:
        # pg_get_indexdef says ON ONLY for a partitioned table's index: created that way it stays
        # invalid until each partition's index is attached. Without ONLY, PostgreSQL creates (or
        # attaches) the partitions' indexes itself.
        return self.model.definition.replace(" ON ONLY ", " ON ", 1)

    def drop(self) -> str:
        return f"DROP INDEX {self.qualified}"


class Switchable(Nested):
    """A trigger or a rule: created from its definition, and switched on or off by ALTER TABLE."""

    model: Trigger | Rule

    def enable_state(self) -> str | None:
        """The ALTER TABLE that gives it its enabled state, when not the default."""
        state = {"disabled": "DISABLE", "replica": "ENABLE REPLICA", "always": "ENABLE ALWAYS"}.get(self.model.enabled)
        return f"ALTER TABLE {self.key} {state} {self.keyword} {quote(self.name)}" if state else None

    def enable_default(self) -> str:
        return f"ALTER TABLE {self.key} ENABLE {self.keyword} {quote(self.name)}"

    def drop(self) -> str:
        return f"DROP {self.keyword} {quote(self.name)} ON {self.key}"


class TriggerObj(Switchable):
    kind, keyword = "trigger", "TRIGGER"
    model: Trigger

    def create(self) -> str:
        return self.model.definition


class RuleObj(Switchable):
    kind, keyword = "rule", "RULE"
    model: Rule

    def create(self) -> str:
        return self.model.definition.rstrip().rstrip(";")


class PolicyObj(Nested):
    kind, keyword = "policy", "POLICY"
    model: Policy

    def create(self) -> str:
        p = self.model
        text = (f"CREATE POLICY {quote(p.name)} ON {self.key} AS {'PERMISSIVE' if p.permissive else 'RESTRICTIVE'}"
                f" FOR {p.command}")
        roles = p.roles or ["public"]
        text += " TO " + ", ".join("PUBLIC" if r == "public" else quote(r) for r in roles)
        if p.using is not None:
            text += f" USING ({p.using})"
        if p.with_check is not None:
            text += f" WITH CHECK ({p.with_check})"
        return text

    def drop(self) -> str:
        return f"DROP POLICY {quote(self.name)} ON {self.key}"


def grant_sql(privilege: str, on: str, grantee: str, grantable: bool) -> tuple[str, str]:
    """(GRANT, REVOKE) of one privilege; ``on`` is e.g. ``TABLE public.t``."""
    who = "PUBLIC" if grantee in ("PUBLIC", "public") else quote(grantee)
    return (f"GRANT {privilege} ON {on} TO {who}" + (" WITH GRANT OPTION" if grantable else ""),
            f"REVOKE {privilege} ON {on} FROM {who}")
