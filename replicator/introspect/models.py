"""Pydantic models describing a database's structure, one small class per object kind.

Every top-level object carries a ``key``: its schema-qualified name quoted exactly as PostgreSQL's
``quote_ident`` does (``public.leads``, ``public."end"``, ``"MySchema"."Tbl"``), computed by the
server. Functions are keyed with their identity arguments (``public.touch(integer, text)``).
Objects nested in a table (columns, constraints, indexes, triggers, policies) are keyed by their
plain, unquoted name; columns keep their attnum order.

Names and definitions are captured with ``search_path`` pinned to ``pg_catalog``, so every type,
relation and function in types, defaults and definitions is schema-qualified and independent of the
session that ran the introspection.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Grant(_Model):
    """One privilege held by one role (``PUBLIC`` for everyone)."""

    grantee: str
    privilege: str
    grantable: bool = False


class Namespace(_Model):
    """A schema (``CREATE SCHEMA``)."""

    key: str
    name: str
    comment: str | None = None
    grants: list[Grant] = Field(default_factory=list)


class Column(_Model):
    name: str
    type: str
    nullable: bool = True
    default: str | None = None
    identity: Literal["always", "by default"] | None = None
    generated: str | None = None  # expression of a STORED generated column
    collation: str | None = None  # only when it differs from the type's default collation
    comment: str | None = None
    is_local: bool = True  # False when inherited from a parent table / partitioned table
    inherited: bool = False  # comes from a parent (partition or inheritance), local or not


ConstraintKind = Literal["primary key", "foreign key", "unique", "check", "exclusion"]


class Constraint(_Model):
    name: str
    kind: ConstraintKind
    definition: str  # pg_get_constraintdef
    columns: list[str] = Field(default_factory=list)
    referenced_table: str | None = None  # quoted qualified key, foreign keys only
    referenced_columns: list[str] | None = None
    on_update: str | None = None  # NO ACTION / RESTRICT / CASCADE / SET NULL / SET DEFAULT
    on_delete: str | None = None
    match: str | None = None  # SIMPLE / FULL / PARTIAL
    deferrable: bool = False
    initially_deferred: bool = False
    validated: bool = True
    index: str | None = None  # backing index (primary key / unique / exclusion)
    inherited: bool = False  # cloned from a parent (partition) or inherited
    comment: str | None = None


class Index(_Model):
    name: str
    definition: str  # pg_get_indexdef
    unique: bool = False
    primary: bool = False
    method: str = "btree"
    predicate: str | None = None  # partial index WHERE clause
    columns: list[str | None] = Field(default_factory=list)  # key columns; None = expression
    expressions: list[str] = Field(default_factory=list)  # text of the expression key columns
    include: list[str] = Field(default_factory=list)  # INCLUDE (...) columns
    valid: bool = True
    immediate: bool = True  # False when the uniqueness check is deferrable
    constraint: str | None = None  # name of the constraint this index backs, if any
    inherited: bool = False  # attached to an index of the partitioned parent
    comment: str | None = None

    @property
    def has_expressions(self) -> bool:
        return any(c is None for c in self.columns)


class Trigger(_Model):
    name: str
    definition: str  # pg_get_triggerdef
    function: str  # key of the trigger function
    enabled: Literal["origin", "disabled", "replica", "always"] = "origin"
    is_constraint: bool = False
    inherited: bool = False  # cloned from the partitioned parent's trigger
    comment: str | None = None


class Rule(_Model):
    """``CREATE RULE`` on a table or view (a view's own ``_RETURN`` rule is its definition)."""

    name: str
    definition: str  # pg_get_ruledef
    enabled: Literal["origin", "disabled", "replica", "always"] = "origin"
    comment: str | None = None


class Policy(_Model):
    name: str
    command: Literal["ALL", "SELECT", "INSERT", "UPDATE", "DELETE"]
    permissive: bool = True
    roles: list[str] = Field(default_factory=list)
    using: str | None = None
    with_check: str | None = None
    comment: str | None = None


class Table(_Model):
    key: str
    schema_name: str
    name: str
    kind: Literal["table", "partitioned table"] = "table"
    unlogged: bool = False
    rls_enabled: bool = False
    rls_forced: bool = False
    replica_identity: str = "default"  # default | full | nothing | index <quoted name>
    comment: str | None = None
    options: list[str] = Field(default_factory=list)  # reloptions, e.g. fillfactor=70
    partition_of: str | None = None  # key of the partitioned parent
    partition_bound: str | None = None  # FOR VALUES ... / DEFAULT
    partition_key: str | None = None  # RANGE (created_at), partitioned tables only
    inherits: list[str] = Field(default_factory=list)  # classic (non-partition) inheritance
    columns: dict[str, Column] = Field(default_factory=dict)
    constraints: dict[str, Constraint] = Field(default_factory=dict)
    indexes: dict[str, Index] = Field(default_factory=dict)
    triggers: dict[str, Trigger] = Field(default_factory=dict)
    policies: dict[str, Policy] = Field(default_factory=dict)
    rules: dict[str, Rule] = Field(default_factory=dict)
    grants: list[Grant] = Field(default_factory=list)

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_name

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    @property
    def primary_key(self) -> list[str] | None:
        """Columns of the primary key, in key order, or None when the table has none."""
        for con in self.constraints.values():
            if con.kind == "primary key":
                return list(con.columns)
        return None

    @property
    def foreign_keys(self) -> list[Constraint]:
        return [c for c in self.constraints.values() if c.kind == "foreign key"]

    @property
    def check_constraints(self) -> list[Constraint]:
        return [c for c in self.constraints.values() if c.kind == "check"]

    def unique_not_null_index(self) -> Index | None:
        """A unique index usable as a row key when there is no primary key.

        It must be valid, immediate (not deferrable), without predicate or expressions, and every
        key column NOT NULL. Among candidates the one with fewest columns wins, then by name.
        """
        candidates = []
        for idx in self.indexes.values():
            if not idx.unique or not idx.valid or not idx.immediate:
                continue
            if idx.predicate is not None or idx.has_expressions or not idx.columns:
                continue
            cols = [self.columns.get(c) for c in idx.columns]  # type: ignore[arg-type]
            if any(c is None or c.nullable for c in cols):
                continue
            candidates.append(idx)
        if not candidates:
            return None
        return min(candidates, key=lambda i: (len(i.columns), i.name))

    def key_columns(self) -> list[str] | None:
        """The primary key, else the columns of :meth:`unique_not_null_index`, else None."""
        pk = self.primary_key
        if pk:
            return pk
        idx = self.unique_not_null_index()
        return [c for c in idx.columns if c is not None] if idx else None


class ViewColumn(_Model):
    name: str
    type: str
    comment: str | None = None


class View(_Model):
    key: str
    schema_name: str
    name: str
    materialized: bool = False
    definition: str  # pg_get_viewdef
    options: list[str] = Field(default_factory=list)  # security_barrier, check_option, ...
    populated: bool | None = None  # materialized views only
    comment: str | None = None
    columns: dict[str, ViewColumn] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)  # keys of relations read by the view
    depends_on_functions: list[str] = Field(default_factory=list)  # keys of user functions used
    indexes: dict[str, Index] = Field(default_factory=dict)  # materialized views only
    triggers: dict[str, Trigger] = Field(default_factory=dict)  # INSTEAD OF triggers
    rules: dict[str, Rule] = Field(default_factory=dict)  # ON INSERT ... DO INSTEAD rules
    grants: list[Grant] = Field(default_factory=list)

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_name


class Sequence(_Model):
    key: str
    schema_name: str
    name: str
    data_type: str = "bigint"
    start: int = 1
    increment: int = 1
    min_value: int = 1
    max_value: int = 9223372036854775807
    cache: int = 1
    cycle: bool = False
    owned_by_table: str | None = None  # key of the owning table
    owned_by_column: str | None = None
    owned_by: str | None = None  # OWNED BY target as written: public.leads.id
    identity: bool = False  # backs an identity column (its OWNED BY is implicit)
    comment: str | None = None
    grants: list[Grant] = Field(default_factory=list)

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_name


class Enum(_Model):
    key: str
    schema_name: str
    name: str
    labels: list[str] = Field(default_factory=list)  # in sort order
    comment: str | None = None

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_name


class Collation(_Model):
    """``CREATE COLLATION``: its provider and locale(s), whether it is deterministic, ICU rules."""

    key: str
    schema_name: str
    name: str
    provider: Literal["icu", "libc", "builtin", "default"] = "libc"
    locale: str | None = None  # ICU / builtin
    lc_collate: str | None = None  # libc
    lc_ctype: str | None = None
    deterministic: bool = True
    rules: str | None = None  # ICU tailoring rules (PostgreSQL 16)
    comment: str | None = None

    @classmethod
    def from_catalog(cls, key: str, schema_name: str, name: str, catalog: dict[str, Any], comment: str | None) -> "Collation":
        """From `collations.sql`'s row, whose `catalog` is the pg_collation row of whatever version."""
        provider = {"i": "icu", "c": "libc", "b": "builtin", "d": "default"}.get(catalog.get("collprovider") or "c", "libc")
        return cls(key=key, schema_name=schema_name, name=name, provider=provider,  # type: ignore[arg-type]
                   locale=catalog.get("colllocale") or catalog.get("colliculocale"),
                   lc_collate=catalog.get("collcollate") if provider == "libc" else None,
                   lc_ctype=catalog.get("collctype") if provider == "libc" else None,
                   deterministic=catalog.get("collisdeterministic", True), rules=catalog.get("collicurules"),
                   comment=comment)

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_name


class DomainConstraint(_Model):
    name: str
    definition: str
    validated: bool = True


class Domain(_Model):
    key: str
    schema_name: str
    name: str
    base_type: str
    not_null: bool = False
    default: str | None = None
    collation: str | None = None
    constraints: list[DomainConstraint] = Field(default_factory=list)
    comment: str | None = None

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_name


class Function(_Model):
    key: str  # schema.name(identity arguments)
    schema_name: str
    name: str
    kind: Literal["function", "procedure", "aggregate", "window"] = "function"
    identity_arguments: str = ""
    arguments: str = ""
    result: str | None = None
    language: str
    security_definer: bool = False
    volatility: Literal["immutable", "stable", "volatile"] = "volatile"
    # pg_get_functiondef; for an aggregate, its CREATE AGGREGATE statement (read from pg_aggregate)
    definition: str | None = None
    comment: str | None = None
    grants: list[Grant] = Field(default_factory=list)

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_name


class CompositeAttribute(_Model):
    name: str
    type: str
    collation: str | None = None
    comment: str | None = None


class CompositeType(_Model):
    """``CREATE TYPE name AS (attribute type, ...)``."""

    key: str
    schema_name: str
    name: str
    attributes: list[CompositeAttribute] = Field(default_factory=list)
    comment: str | None = None

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_name


class RangeType(_Model):
    """``CREATE TYPE name AS RANGE (SUBTYPE = ...)``."""

    key: str
    schema_name: str
    name: str
    subtype: str
    subtype_opclass: str | None = None  # only when not the subtype's default btree class
    collation: str | None = None  # only when not the subtype's default collation
    canonical: str | None = None
    subtype_diff: str | None = None
    multirange: str | None = None  # key of the multirange type PostgreSQL made for it
    comment: str | None = None

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_name


class Extension(_Model):
    name: str
    schema_name: str
    version: str

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_name


class Role(_Model):
    """A role of the cluster. Roles are cluster-wide: every database on the server shares them."""

    name: str
    login: bool = False
    inherit: bool = True
    bypassrls: bool = False
    superuser: bool = False


DependencyKind = Literal[
    "table", "view", "sequence", "type", "function", "constraint", "index", "trigger", "policy",
    "rule", "column", "extension", "collation",
]


class Dependency(_Model):
    """One object uses another (``pg_depend``): ``kind key [name]`` depends on
    ``on_kind on_key [on_name]``.

    ``key`` is the object's key; for objects nested in a table (column, constraint, index, trigger,
    policy) it is the table's key and ``name`` the nested object's name. ``on_name`` is the column
    when the dependency is on one column of a table or view. Row types, array types and multirange
    types are folded into the table, element type or range they stand for; an index backing a
    constraint is the constraint. ``on_extension`` names the extension the used object belongs to
    (``extensions.uuid_generate_v4()`` belongs to ``uuid-ossp``)."""

    kind: DependencyKind
    key: str
    name: str | None = None
    schema_name: str
    on_kind: DependencyKind
    on_key: str
    on_name: str | None = None
    on_schema: str
    on_extension: str | None = None

    @property
    def ref(self) -> tuple[str, str, str | None]:
        return (self.kind, self.key, self.name)


class ExternalTrigger(_Model):
    """A trigger on a table outside the compared schemas that calls a function inside them (the
    usual ``on_auth_user_created`` trigger on ``auth.users`` creating ``public.profiles`` rows)."""

    table: str  # key of the table it is on
    trigger: "Trigger"


class External(_Model):
    """What the compared schemas use outside themselves: in a Supabase project, objects of the
    managed schemas (``auth.users`` behind foreign keys, ``auth.uid()`` in policies and defaults),
    found through ``pg_depend``; plus the triggers out there that call compared functions.

    ``tables`` are introspected like compared tables (columns, constraints, indexes; no triggers or
    policies), so that a replica lacking them can be given the master's definition, and so that
    ``copy`` can read, e.g., the ``auth.users`` rows that ``public.profiles.id`` points to.
    ``enums`` / ``domains`` / ``composites`` / ``ranges`` are the outside types those tables'
    columns use. ``present`` names everything that exists outside the compared schemas
    (``"table auth.users"``, ``"function auth.uid()"``, ``"schema extensions"``,
    ``"trigger auth.users/on_auth_user_created"``), so that the other side can tell what it lacks."""

    tables: dict[str, "Table"] = Field(default_factory=dict)
    functions: dict[str, "Function"] = Field(default_factory=dict)
    enums: dict[str, "Enum"] = Field(default_factory=dict)
    domains: dict[str, "Domain"] = Field(default_factory=dict)
    composites: dict[str, CompositeType] = Field(default_factory=dict)
    ranges: dict[str, RangeType] = Field(default_factory=dict)
    triggers: list[ExternalTrigger] = Field(default_factory=list)
    present: list[str] = Field(default_factory=list)

    def has(self, kind: str, key: str, name: str | None = None) -> bool:
        return present_ref(kind, key, name) in self.present

    @property
    def schemas(self) -> list[str]:
        """Keys (quoted names) of the outside schemas that exist."""
        return [p.split(" ", 1)[1] for p in self.present if p.startswith("schema ")]


def present_ref(kind: str, key: str, name: str | None = None) -> str:
    """How :attr:`External.present` names an object: ``"table auth.users"``,
    ``"trigger auth.users/on_auth_user_created"``."""
    return f"{kind} {key}" + (f"/{name}" if name is not None else "")


class RowCount(_Model):
    """Rows in a table: exact ``count(*)``, or the planner's estimate (``exact=False``)."""

    rows: int
    exact: bool


# Fields of Schema that describe the data or the server rather than the structure.
NON_STRUCTURAL_FIELDS = frozenset(
    {"server_version", "database", "search_path", "settings_pinned", "row_counts", "sequence_values",
     "available_extensions"}
)


class Schema(_Model):
    """Everything introspected from one database."""

    server_version: int  # server_version_num, e.g. 150004
    database: str
    schemas: list[str]  # the schema names that were looked at
    namespaces: dict[str, Namespace] = Field(default_factory=dict)
    extensions: dict[str, Extension] = Field(default_factory=dict)  # keyed by extension name
    tables: dict[str, Table] = Field(default_factory=dict)
    views: dict[str, View] = Field(default_factory=dict)
    sequences: dict[str, Sequence] = Field(default_factory=dict)
    enums: dict[str, Enum] = Field(default_factory=dict)
    collations: dict[str, Collation] = Field(default_factory=dict)
    domains: dict[str, Domain] = Field(default_factory=dict)
    functions: dict[str, Function] = Field(default_factory=dict)
    composites: dict[str, CompositeType] = Field(default_factory=dict)
    ranges: dict[str, RangeType] = Field(default_factory=dict)
    # Which object uses which (pg_depend), for ordering a plan: see Dependency.
    dependencies: list[Dependency] = Field(default_factory=list)
    # Every role of the cluster (not pg_*): policies and grants name them, and roles are cluster-wide.
    roles: dict[str, Role] = Field(default_factory=dict)
    # What the compared schemas use outside themselves (Supabase's auth.users, auth.uid(), ...).
    external: External = Field(default_factory=External)
    with_privileges: bool = False
    # How the introspection ran (not structure). settings_pinned is False when the connection
    # refused set_config (a guarded master): expressions and definitions then render names as
    # seen from ``search_path`` (types are still always schema-qualified).
    search_path: str = ""
    settings_pinned: bool = True
    # Data, not structure: excluded by structure_dump().
    row_counts: dict[str, RowCount] = Field(default_factory=dict)
    sequence_values: dict[str, int | None] = Field(default_factory=dict)  # last_value per sequence
    # The server, not the database: extensions it could install, name -> versions shipped.
    available_extensions: dict[str, list[str]] = Field(default_factory=dict)

    def structure_dump(self) -> dict[str, Any]:
        """A JSON-compatible dict of the structure only (no counts, versions or sequence values),
        suitable for a structural comparison."""
        return self.model_dump(mode="json", exclude=set(NON_STRUCTURAL_FIELDS))

    def absent_schemas(self) -> list[str]:
        """Schemas that were asked for (`schemas`) but do not exist in this database."""
        present = {n.name for n in self.namespaces.values()}
        return [s for s in self.schemas if s not in present]

    def find_table(self, schema: str, name: str) -> Table | None:
        """Look a table up by its raw (unquoted) schema and name."""
        for t in self.tables.values():
            if t.schema_name == schema and t.name == name:
                return t
        return None

    def find_view(self, schema: str, name: str) -> View | None:
        for v in self.views.values():
            if v.schema_name == schema and v.name == name:
                return v
        return None

    def row_count(self, key: str) -> int | None:
        rc = self.row_counts.get(key)
        return rc.rows if rc else None

    def partitions_of(self, key: str) -> list[Table]:
        return [t for t in self.tables.values() if t.partition_of == key]

    def types(self) -> dict[str, "Enum | Domain | CompositeType | RangeType"]:
        """Every user-defined type of the compared schemas, by key."""
        return {**self.enums, **self.domains, **self.composites, **self.ranges}

    def roles_used(self) -> set[str]:
        """Roles the compared schemas name: in policies, and in grants when they were read."""
        used = {r for t in self.tables.values() for p in t.policies.values() for r in p.roles}
        holders: list[Any] = [*self.namespaces.values(), *self.tables.values(), *self.views.values(),
                              *self.sequences.values(), *self.functions.values()]
        used |= {g.grantee for h in holders for g in h.grants}
        return used - {"public", "PUBLIC"}


External.model_rebuild()
ExternalTrigger.model_rebuild()

