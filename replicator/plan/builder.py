"""Changes → steps in the plan graph. One handler per change family; each knows which tier its
statements belong to (:mod:`.graph`) and which object they are about, and the graph orders them.

Objects that must be dropped for another change to go through (a view over a column whose type
changes, a trigger calling a function whose signature changes, a foreign key on the key of a
recreated table) are found from the replica's dependencies (:meth:`Builder.drop_dependents`),
dropped first and recreated from the master's definition afterwards.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from ..config import ManagedConfig
from ..diff import Change, quote, returning_rows
from ..introspect.models import (
    Column,
    Constraint,
    Dependency,
    Extension,
    Function,
    Index,
    Namespace,
    Policy,
    Rule,
    Schema,
    Sequence,
    Table,
    Trigger,
    View,
)
from .bounds import may_overlap
from .casts import TypeChange
from .graph import CLEANUP, CREATE, DROP, PlanGraph
from .model import Classification, PreCheck, Step
from .objects import (
    CollationObj,
    ColumnDef,
    CompositeObj,
    ConstraintObj,
    EnumObj,
    ExtensionObj,
    FunctionObj,
    IndexObj,
    PolicyObj,
    RuleObj,
    Ref,
    RoleObj,
    SchemaObj,
    SequenceObj,
    TableObj,
    TriggerObj,
    ViewObj,
    grant_sql,
    type_object,
)
from .prechecks import PreChecks
from .sqltext import comment_value, ident, lit

RECREATE_TABLE_ATTRS = {"kind", "partition_key"}
NAMEDATALEN = 64


class Builder:
    def __init__(self, master: Schema, replica: Schema, changes: list[Change], renames: dict[str, dict[str, str]],
                 managed: ManagedConfig | None = None):
        self.m, self.r = master, replica
        self.changes = changes
        self.renames = renames
        self.managed = managed or ManagedConfig()
        self.g = PlanGraph(master, replica)
        self.unsupported: list[str] = []
        self.notes: list[str] = []
        self.by_kind: dict[str, list[Change]] = defaultdict(list)
        for c in changes:
            self.by_kind[c.kind].append(c)
        # replica dependencies by the object used: (on_kind, on_key) -> deps
        self.r_used_by: dict[tuple[str, str], list[Dependency]] = defaultdict(list)
        for d in replica.dependencies:
            self.r_used_by[(d.on_kind, d.on_key)].append(d)
        self.m_deps: dict[tuple[str, str, str | None], list[Dependency]] = defaultdict(list)
        for d in master.dependencies:
            self.m_deps[d.ref].append(d)
        self.dropped: dict[Ref, list[Step]] = {}  # replica objects dropped in tier 0 -> their drop steps
        self.retyped: dict[tuple[str, str], list[Step]] = {}  # replica (table, column) retyped -> steps
        self.created: set[Ref] = set()  # master objects (re)created whole, comments included
        self.extra_tables = {c.object for c in self.by_kind["table_extra"]}
        self.recreated_tables = self._recreated_tables()
        self.new_tables = {c.object for c in self.by_kind["table_missing"]} | self.recreated_tables
        # tables whose row type the master reads by position, in another column order on the replica
        self.misordered = {c.object for c in self.by_kind["table_changed"] if "column_order" in c.diff}
        self.pre = PreChecks(replica, renames, self.new_tables)

    # -- emitting ----------------------------------------------------------------------------------

    def step(self, tier: int, ref: Ref, phase: str, text: str, rollback: str | None, cls: Classification = "safe",
             reason: str = "", precheck: PreCheck | None = None, table: str | None = None, transaction: int = 1,
             requires: Iterable[Step | None] = (), schema: str | None = None, obj: str | None = None) -> Step:
        st = Step(phase=phase, object=obj or _ref_label(ref), sql=text, rollback=rollback, classification=cls,
                  reason=reason, precheck=precheck, table=table, transaction=transaction)
        self.g.add(tier, ref, st, requires=[r for r in requires if r is not None], schema=schema)
        return st

    def schema_of(self, schema_name: str) -> str:
        return quote(schema_name)

    def table_model(self, key: str) -> Table | None:
        return self.m.tables.get(key) or self.m.external.tables.get(key)

    def drop(self, ref: Ref, step: Step) -> Step:
        self.dropped.setdefault(ref, []).append(step)
        return step

    # -- build ---------------------------------------------------------------------------------

    def build(self) -> list[Step]:
        self.extensions()
        self.schemas()
        self.roles()
        self.collations()
        self.types()
        self.sequences()
        self.functions()
        self.external()
        self.tables()
        self.columns()
        self.constraints()
        self.indexes()
        self.triggers()
        self.rules()
        self.policies()
        self.views()
        self.partitions_wait_for_local_drops()
        self.dependents_wait_for_recreated_tables()
        # before comments: an object recreated because it depends on a change gets its comment with its
        # CREATE, not a COMMENT of its own between the DROP and the CREATE
        self.drop_dependents()
        self.comments()
        self.grants()
        steps = self.g.ordered_steps()
        from .sqltext import parse_statement
        for s in steps:
            s.parsed_by, s.statement_type = parse_statement(s.sql)
        return steps

    # -- extensions, schemas, roles --------------------------------------------------------------

    def ensure_schema(self, schema_name: str, why: str) -> None:
        """``CREATE SCHEMA IF NOT EXISTS`` for a schema outside the compared ones that the replica
        lacks (``extensions``, ``auth``)."""
        key = quote(schema_name)
        if schema_name in self.m.schemas or self.r.external.has("schema", key) or self.g.has(CREATE, ("schema", key, None)):
            return
        obj = SchemaObj(Namespace(key=key, name=schema_name))
        self.step(CREATE, ("schema", key, None), "create schema", obj.create_if_missing(), f"DROP SCHEMA {key}",
                  reason=why)

    def extensions(self) -> None:
        for c in self.by_kind["extension_missing"]:
            e = Extension(**c.master)
            obj = ExtensionObj(e)
            outside = e.schema_name not in self.m.schemas
            if outside and not self.managed.create_extensions:
                self.unsupported.append(f"extension {e.name} ({e.schema_name}) missing on the replica: create it, or set "
                                        "[managed] create_extensions = true")
                continue
            if outside:
                self.ensure_schema(e.schema_name, "the schema the master keeps this extension in")
            available = self.r.available_extensions.get(e.name)
            pre = None
            cls: Classification = "safe"
            if self.r.available_extensions and available is None:
                cls = "data-dependent"
                pre = PreCheck(description=f"extension {e.name} is not available on the replica's server "
                                           "(install its package there)", sql=None, ok=False)
            version = e.version if available and e.version in available else None
            self.step(CREATE, obj.ref, "create extension", obj.create(version), f"DROP EXTENSION {obj.key}", cls,
                      "" if version or not available else f"version {e.version} is not shipped by the replica's server: "
                      "its default version is installed", pre, schema=quote(e.schema_name))
        for c in self.by_kind["extension_version"]:
            e = Extension(**c.master)
            old = c.diff["version"][1]
            obj = ExtensionObj(e)
            q = (f"SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_extension_update_paths({lit(e.name)}) "
                 f"WHERE source = {lit(old)} AND target = {lit(e.version)} AND path IS NOT NULL) THEN 0 ELSE 1 END")
            self.step(CREATE, obj.ref, "update extension", obj.update(e.version), obj.update(old), "data-dependent",
                      f"needs an update path {old} -> {e.version} on the replica's server",
                      PreCheck(description=f"no update path for {e.name} from {old} to {e.version} on the replica's server",
                               sql=q))
        for c in self.by_kind["extension_extra"]:
            e = Extension(**c.replica)
            obj = ExtensionObj(e)
            self.step(CLEANUP, obj.ref, "drop extension", obj.drop(), obj.create(e.version), "destructive",
                      "only on the replica")

    def schemas(self) -> None:
        for c in self.by_kind["schema_missing"]:
            ns = self.m.namespaces[c.object]
            obj = SchemaObj(ns)
            self.step(CREATE, obj.ref, "create schema", obj.create(), obj.drop())
            if ns.comment is not None:
                self.step(CREATE, obj.ref, "comment", obj.comment(ns.comment), obj.comment(None))
            self.created.add(obj.ref)
        for c in self.by_kind["schema_extra"]:
            obj = SchemaObj(self.r.namespaces[c.object])
            self.step(CLEANUP, obj.ref, "drop schema", obj.drop(), obj.create(), "destructive", "only on the replica")

    def roles(self) -> None:
        missing = [c for c in self.by_kind["role_missing"]]
        if not missing:
            return
        if not self.managed.create_roles:
            for c in missing:
                self.unsupported.append(f"role {c.object} missing on the replica's server: create it, or set "
                                        "[managed] create_roles = true")
            return
        self.notes.append("roles are cluster-wide: CREATE ROLE makes " + ", ".join(c.object for c in missing)
                          + " exist for every database on the replica's server (NOLOGIN: nobody can log in as them)")
        for c in missing:
            obj = RoleObj(c.object.strip('"').replace('""', '"'))
            self.step(CREATE, obj.ref, "create role", obj.create(), obj.drop(),
                      reason="named by policies or grants; roles are cluster-wide")

    # -- types -----------------------------------------------------------------------------------

    def type_used_by_columns(self, key: str) -> list[Dependency]:
        return [d for d in self.r_used_by[("type", key)] if d.kind in ("column", "type")]

    def create_type(self, model: Any, *, requires: Iterable[Step | None] = ()) -> Step:
        obj = type_object(model)
        st = self.step(CREATE, obj.ref, f"create {obj.keyword.lower()}", obj.create(), obj.drop(), requires=requires,
                       schema=quote(model.schema_name))
        if model.comment is not None:
            self.step(CREATE, obj.ref, "comment", obj.comment(model.comment), obj.comment(None))
        if isinstance(obj, CompositeObj):
            for text in obj.attribute_comments():
                self.step(CREATE, obj.ref, "comment", text, None)
        self.created.add(obj.ref)
        return st

    def recreate_type(self, key: str, why: str) -> None:
        """Drop and create a type nothing stores values of (no column has it)."""
        users = self.type_used_by_columns(key)
        if users:
            cols = ", ".join(f"{d.key}.{quote(d.name)}" if d.name else d.key for d in users[:3])
            self.unsupported.append(f"type {key}: {why}; columns have this type ({cols}): needs a manual migration")
            return
        rmodel = self.r.types()[key]
        obj = type_object(rmodel)
        drop = self.drop(obj.ref, self.step(DROP, obj.ref, f"drop {obj.keyword.lower()}", obj.drop(), obj.create(),
                                            reason=f"recreated: {why}"))
        self.create_type(self.m.types()[key], requires=[drop])

    def create_with_comment(self, obj: Any, what: str, comment: str | None, **kw: Any) -> Step:
        """A new object's CREATE and its comment; marked created, so its comment is not planned again."""
        st = self.step(CREATE, obj.ref, what, obj.create(), obj.drop(), **kw)
        if comment is not None:
            self.step(CREATE, obj.ref, "comment", obj.comment(comment), obj.comment(None))
        self.created.add(obj.ref)
        return st

    def collations(self) -> None:
        for c in self.by_kind["collation_missing"]:
            coll = self.m.collations[c.object]
            self.create_with_comment(CollationObj(coll), "create collation", coll.comment, schema=quote(coll.schema_name))
        for c in self.by_kind["collation_changed"]:
            # columns and indexes sort by it: recreating it means recreating them, by hand
            self.unsupported.append(f"{c.detail}: recreate it, and what uses it, by hand")
        for c in self.by_kind["collation_extra"]:
            obj = CollationObj(self.r.collations[c.object])
            self.step(CLEANUP, obj.ref, "drop collation", obj.drop(), obj.create(), "destructive", "only on the replica")

    def types(self) -> None:
        for kind in ("enum_missing", "composite_missing", "range_missing", "domain_missing"):
            for c in self.by_kind[kind]:
                self.create_type(self.m.types()[c.object])
        for c in self.by_kind["enum_labels"]:
            self.enum_labels(c)
        for c in self.by_kind["composite_changed"]:
            self.composite_changed(c)
        for c in self.by_kind["range_changed"]:
            self.recreate_type(c.object, f"range type differs in {', '.join(c.diff)}")
        for c in self.by_kind["domain_changed"]:
            self.domain_changed(c)
        for kind in ("enum_extra", "composite_extra", "range_extra", "domain_extra"):
            for c in self.by_kind[kind]:
                obj = type_object(self.r.types()[c.object])
                self.step(CLEANUP, obj.ref, f"drop {obj.keyword.lower()}", obj.drop(), obj.create(), "destructive",
                          "only on the replica")

    def enum_labels(self, c: Change) -> None:
        master, replica = self.m.enums[c.object], self.r.enums[c.object]
        m, r = master.labels, replica.labels
        pos = [m.index(x) for x in r if x in m]
        if set(r) <= set(m) and pos == sorted(pos):
            have = list(r)
            obj = EnumObj(master)
            for i, label in enumerate(m):
                if label in have:
                    continue
                # place it after its predecessor in the master's order, else before its successor
                prev = next((x for x in reversed(m[:i]) if x in have), None)
                if prev is not None:
                    where = f" AFTER {lit(prev)}"
                    have.insert(have.index(prev) + 1, label)
                else:
                    nxt = next((x for x in m[i + 1:] if x in have), None)
                    where = f" BEFORE {lit(nxt)}" if nxt is not None else ""
                    have.insert(have.index(nxt) if nxt is not None else len(have), label)
                self.step(CREATE, obj.ref, "add enum label", f"ALTER TYPE {obj.key} ADD VALUE {lit(label)}{where}", None,
                          reason="enum labels cannot be removed without recreating the type", transaction=0)
            return
        self.recreate_enum(c.object, master, replica)

    def recreate_enum(self, key: str, master: Any, replica: Any) -> None:
        """Labels removed or reordered: rename the old type, create the new one, move every column
        over through text, drop the old type at the end."""
        tmp_name = f"{replica.name}__replicator_old"
        tmp = ident(replica.schema_name, tmp_name)
        removed = [x for x in replica.labels if x not in master.labels]
        cls: Classification = "destructive" if removed else "safe"
        reason = f"labels removed: {', '.join(removed)}" if removed else "labels reordered: the type is recreated"
        ref: Ref = ("type", key, None)
        rename = self.step(CREATE, ref, "rename enum", f"ALTER TYPE {key} RENAME TO {quote(tmp_name)}",
                           f"ALTER TYPE {tmp} RENAME TO {quote(replica.name)}", cls, reason)
        self.create_type(master, requires=[rename])
        moved: list[Step] = []
        for d in self.type_used_by_columns(key):
            if d.kind != "column":
                self.unsupported.append(f"enum {key}: used by type {d.key}, which would keep the old type: needs a manual migration")
                continue
            t = self.r.tables.get(d.key)
            col = t.columns.get(d.name or "") if t else None
            if t is None or col is None or col.inherited or d.key in self.extra_tables or d.key in self.recreated_tables:
                continue
            mname = self.renames.get(d.key, {}).get(col.name, col.name)
            mt = self.m.tables.get(d.key)
            mcol = mt.columns.get(mname) if mt else None
            if mcol is None or mcol.type.removesuffix("[]") != key:
                continue  # the column goes or gets another type: its own change handles it
            arr = "[]" if col.type.endswith("[]") else ""
            cref: Ref = ("column", d.key, mname)
            cn = quote(col.name)  # the replica's name: a configured rename runs after, in the same node
            pre = None
            if removed:
                pre = TypeChange(d.key, mname, col.name, col.type, mcol.type, self.m.enums, self.m.domains,
                                 self.r.server_version, old_is_enum=True).precheck()
            if col.default is not None:
                self.step(CREATE, cref, "alter column", f"ALTER TABLE {d.key} ALTER COLUMN {cn} DROP DEFAULT",
                          f"ALTER TABLE {d.key} ALTER COLUMN {cn} SET DEFAULT {col.default}", requires=[rename])
            st = self.step(CREATE, cref, "alter column",
                           f"ALTER TABLE {d.key} ALTER COLUMN {cn} TYPE {key}{arr} USING {cn}::text{arr}::{key}{arr}",
                           f"ALTER TABLE {d.key} ALTER COLUMN {cn} TYPE {tmp}{arr} USING {cn}::text{arr}::{tmp}{arr}",
                           "data-dependent" if removed else "safe", reason, pre, table=d.key, requires=[rename])
            moved.append(st)
            self.retyped[(d.key, col.name)] = [st]
            if mcol.default is not None:
                self.step(CREATE, cref, "alter column", f"ALTER TABLE {d.key} ALTER COLUMN {cn} SET DEFAULT {mcol.default}",
                          f"ALTER TABLE {d.key} ALTER COLUMN {cn} DROP DEFAULT", requires=[st])
        # functions taking or returning the type would keep the old one: recreate them
        for d in self.r_used_by[("type", key)]:
            if d.kind == "function":
                self.drop_dependent(d, rename)
        self.step(CLEANUP, ("type", tmp, None), "drop type", f"DROP TYPE {tmp}",
                  f"CREATE TYPE {tmp} AS ENUM ({', '.join(lit(x) for x in replica.labels)})",
                  reason="the old type, no longer used", requires=[rename, *moved])

    def composite_changed(self, c: Change) -> None:
        master, replica = self.m.composites[c.object], self.r.composites[c.object]
        ma = {a.name: a for a in master.attributes}
        ra = {a.name: a for a in replica.attributes}
        # in place when dropping, appending and retyping attributes yields the master's order
        kept = [a.name for a in replica.attributes if a.name in ma]
        added = [a.name for a in master.attributes if a.name not in ra]
        retyped = [n for n in kept if (ma[n].type, ma[n].collation) != (ra[n].type, ra[n].collation)]
        in_place = kept + added == [a.name for a in master.attributes]
        used = bool(self.type_used_by_columns(c.object))
        if not in_place or (retyped and used):
            self.recreate_type(c.object, "attributes reordered or retyped")
            return
        ref: Ref = ("type", c.object, None)
        for n in [a.name for a in replica.attributes if a.name not in ma]:
            a = ra[n]
            self.step(CREATE, ref, "alter type", f"ALTER TYPE {c.object} DROP ATTRIBUTE {quote(n)}",
                      f"ALTER TYPE {c.object} ADD ATTRIBUTE {quote(n)} {a.type}" + (f" COLLATE {a.collation}" if a.collation else ""),
                      "destructive" if used else "safe", "values of this attribute in columns of the type are lost" if used else "")
        for n in retyped:
            a, old = ma[n], ra[n]
            self.step(CREATE, ref, "alter type", f"ALTER TYPE {c.object} ALTER ATTRIBUTE {quote(n)} TYPE {a.type}"
                      + (f" COLLATE {a.collation}" if a.collation else ""),
                      f"ALTER TYPE {c.object} ALTER ATTRIBUTE {quote(n)} TYPE {old.type}")
        for n in added:
            a = ma[n]
            self.step(CREATE, ref, "alter type", f"ALTER TYPE {c.object} ADD ATTRIBUTE {quote(n)} {a.type}"
                      + (f" COLLATE {a.collation}" if a.collation else ""), f"ALTER TYPE {c.object} DROP ATTRIBUTE {quote(n)}")
        for n, a in ma.items():
            if a.comment != (ra[n].comment if n in ra else None):
                self.step(CREATE, ref, "comment", f"COMMENT ON COLUMN {c.object}.{quote(n)} IS {comment_value(a.comment)}",
                          f"COMMENT ON COLUMN {c.object}.{quote(n)} IS {comment_value(ra[n].comment if n in ra else None)}")

    def domain_changed(self, c: Change) -> None:
        m, r, k = self.m.domains[c.object], self.r.domains[c.object], c.object
        if m.base_type != r.base_type or m.collation != r.collation:
            self.recreate_type(k, f"base type or collation changes ({r.base_type} -> {m.base_type})")
            return
        ref: Ref = ("type", k, None)
        if m.default != r.default:
            new = f"ALTER DOMAIN {k} SET DEFAULT {m.default}" if m.default is not None else f"ALTER DOMAIN {k} DROP DEFAULT"
            old = f"ALTER DOMAIN {k} SET DEFAULT {r.default}" if r.default is not None else f"ALTER DOMAIN {k} DROP DEFAULT"
            self.step(CREATE, ref, "alter domain", new, old)
        if m.not_null != r.not_null:
            if m.not_null:
                self.step(CREATE, ref, "alter domain", f"ALTER DOMAIN {k} SET NOT NULL", f"ALTER DOMAIN {k} DROP NOT NULL",
                          "data-dependent", "columns of this domain may hold NULLs",
                          PreCheck(description="NULLs in columns of the domain (checked by PostgreSQL when applied)"))
            else:
                self.step(CREATE, ref, "alter domain", f"ALTER DOMAIN {k} DROP NOT NULL", f"ALTER DOMAIN {k} SET NOT NULL")
        mc = {x.name: x for x in m.constraints}
        rc = {x.name: x for x in r.constraints}
        for n, x in rc.items():
            if n not in mc or mc[n].definition != x.definition:
                self.step(DROP if n not in mc else CREATE, ref, "alter domain", f"ALTER DOMAIN {k} DROP CONSTRAINT {quote(n)}",
                          f"ALTER DOMAIN {k} ADD CONSTRAINT {quote(n)} {x.definition}",
                          "safe" if n in mc else "destructive", "recreated" if n in mc else "only on the replica")
        for n, x in mc.items():
            if n not in rc or rc[n].definition != x.definition:
                self.step(CREATE, ref, "alter domain", f"ALTER DOMAIN {k} ADD CONSTRAINT {quote(n)} {x.definition}",
                          f"ALTER DOMAIN {k} DROP CONSTRAINT {quote(n)}", "data-dependent",
                          "values in columns of the domain may violate it",
                          PreCheck(description="values violating the new domain constraint (checked by PostgreSQL when applied)"))

    # -- sequences, functions ----------------------------------------------------------------------

    def sequences(self) -> None:
        for c in self.by_kind["sequence_missing"]:
            s = self.m.sequences[c.object]
            self.create_with_comment(SequenceObj(s), "create sequence", s.comment, schema=quote(s.schema_name))
            if s.owned_by:
                self.owned_by(s, None)
        for c in self.by_kind["sequence_changed"]:
            s, r = self.m.sequences[c.object], self.r.sequences[c.object]
            obj = SequenceObj(s)
            if set(c.diff) - {"owned_by_table", "owned_by_column", "owned_by"}:
                narrower = s.max_value < r.max_value or s.min_value > r.min_value
                self.step(CREATE, obj.ref, "alter sequence", obj.alter(), SequenceObj(r).alter(),
                          "data-dependent" if narrower else "safe",
                          "narrower range: the current value may not fit" if narrower else "")
            if r.owned_by != s.owned_by:
                self.owned_by(s, r)
        for c in self.by_kind["sequence_extra"]:
            s = self.r.sequences[c.object]
            if s.owned_by_table and s.owned_by_table in self.extra_tables:
                continue  # goes with its table
            if self.serial_becoming_identity(s):
                continue  # dropped by the column's change, before its identity takes the name
            obj = SequenceObj(s)
            self.step(CLEANUP, obj.ref, "drop sequence", obj.drop(), obj.create(), "destructive", "only on the replica")

    def serial_becoming_identity(self, s: Sequence) -> bool:
        """``s`` (a replica sequence) feeds a serial column that is an identity column on the master."""
        mt = self.m.tables.get(s.owned_by_table or "")
        rt = self.r.tables.get(s.owned_by_table or "")
        mcol = mt.columns.get(s.owned_by_column or "") if mt else None
        rcol = rt.columns.get(s.owned_by_column or "") if rt else None
        kept = self.m.sequences.get(s.key)  # the master's plain sequence of that name, which the replica keeps
        return bool(not s.identity and mcol and rcol and mcol.identity and not rcol.identity
                    and (kept is None or kept.identity))

    def owned_by(self, s: Sequence, r: Sequence | None) -> None:
        ref: Ref = ("owned", s.key, None)
        self.step(CREATE, ref, "sequence owner", SequenceObj(s).owned_by(s.owned_by),
                  SequenceObj(s).owned_by(r.owned_by if r else None), obj=s.key)
        node = self.g.node(CREATE, ref)
        if s.owned_by_table:
            node.needs.add(("table", s.owned_by_table, s.owned_by_column))
        node.needs.add(("sequence", s.key, None))

    def functions(self) -> None:
        for c in self.by_kind["function_missing"]:
            self.create_function(self.m.functions[c.object])
        for c in self.by_kind["function_changed"]:
            f, r = self.m.functions[c.object], self.r.functions[c.object]
            obj = FunctionObj(f)
            if f.result != r.result or f.arguments != r.arguments or f.kind != r.kind:
                ro = FunctionObj(r)
                drop = self.drop(ro.ref, self.step(DROP, ro.ref, f"drop {r.kind}", ro.drop(), r.definition,
                                                   reason="recreated: signature or result changes"))
                self.create_function(f, requires=[drop])
            else:
                self.step(CREATE, obj.ref, f"replace {f.kind}", obj.replace(), FunctionObj(r).replace(),
                          schema=quote(f.schema_name))
        for c in self.by_kind["function_extra"]:
            r = self.r.functions[c.object]
            obj = FunctionObj(r)
            self.step(CLEANUP, obj.ref, f"drop {r.kind}", obj.drop(), r.definition, "destructive", "only on the replica")

    def create_function(self, f: Function, *, requires: Iterable[Step | None] = ()) -> Step | None:
        obj = FunctionObj(f)
        if f.definition is None:
            self.unsupported.append(f"{f.kind} {f.key}: no definition to create it from")
            return None
        st = self.step(CREATE, obj.ref, f"create {f.kind}", obj.create(), obj.drop(), requires=requires,
                       schema=quote(f.schema_name))
        if f.comment is not None:
            self.step(CREATE, obj.ref, "comment", obj.comment(f.comment), obj.comment(None))
        self.created.add(obj.ref)
        return st

    # -- outside the compared schemas --------------------------------------------------------------

    def external(self) -> None:
        missing = self.by_kind["external_missing"]
        if missing and not self.managed.create_referenced:
            for c in missing:
                self.unsupported.append(f"{c.detail}: create it, or set [managed] create_referenced = true")
            return
        ext = self.m.external
        for c in missing:
            kind = c.master.get("kind")
            if kind == "trigger":
                continue
            if kind == "table":
                t = ext.tables[c.object]
                self.ensure_schema(t.schema_name, f"holds {t.key}, which the compared schemas use")
                self.new_tables.add(t.key)
                self.create_table(t, external=True)
            elif kind == "function":
                f = ext.functions[c.object]
                self.ensure_schema(f.schema_name, f"holds {f.key}, which the compared schemas use")
                self.create_function(f)
            else:
                model = {**ext.enums, **ext.domains, **ext.composites, **ext.ranges}[c.object]
                self.ensure_schema(model.schema_name, f"holds {model.key}, which the compared schemas use")
                self.create_type(model)
        for c in missing:
            if c.master.get("kind") == "trigger":
                et = next(x for x in ext.triggers if x.table == c.table and x.trigger.name == c.name)
                owner = ext.tables.get(et.table) or self.r.external.tables.get(et.table)
                self.create_trigger(owner or _stub_table(et.table), et.trigger)

    # -- tables ----------------------------------------------------------------------------------

    def _recreated_tables(self) -> set[str]:
        """Tables whose kind or partition key changes (recreated), with their master partitions."""
        out = {c.object for c in self.by_kind["table_changed"] if set(c.diff) & RECREATE_TABLE_ATTRS}
        grew = True
        while grew:
            grew = False
            for t in self.m.tables.values():
                if t.partition_of in out and t.key not in out:
                    out.add(t.key)
                    grew = True
        return out

    def split_defaults(self, t: Table) -> set[str]:
        """Columns of a new table whose default calls a function that is created in this plan and
        uses the table's row type: the default is set after the function exists (else the two
        would each wait for the other)."""
        out = set()
        for cname in t.columns:
            for d in self.m_deps.get(("column", t.key, cname), []):
                if d.on_kind == "function" and self.g.has(CREATE, ("function", d.on_key, None)):
                    if any(x.on_kind == "table" and x.on_key == t.key for x in self.m_deps.get(("function", d.on_key, None), [])):
                        out.add(cname)
        return out

    def create_table(self, t: Table, *, requires: Iterable[Step | None] = (), external: bool = False) -> Step:
        obj = TableObj(t, self.m)
        split = self.split_defaults(t)
        st = self.step(CREATE, obj.ref, "create table", obj.create(without_defaults=split), obj.drop(),
                       requires=requires, schema=quote(t.schema_name))
        self.created.add(obj.ref)
        node = self.g.node(CREATE, obj.ref)
        for parent in [t.partition_of, *t.inherits]:
            if parent:
                node.needs.add(("table", parent, None))
        for col in t.columns.values():
            node.needs.add(("type", col.type.removesuffix("[]"), None))
        for cname in split:
            col = t.columns[cname]
            self.step(CREATE, ("column", t.key, cname), "alter column",
                      f"ALTER TABLE {t.key} ALTER COLUMN {quote(cname)} SET DEFAULT {col.default}",
                      f"ALTER TABLE {t.key} ALTER COLUMN {quote(cname)} DROP DEFAULT", requires=[st],
                      reason="set once the function it calls exists")
        if t.rls_enabled:
            self.step(CREATE, obj.ref, "row level security", obj.rls(True), obj.rls(False))
        if t.rls_forced:
            self.step(CREATE, obj.ref, "row level security", obj.force_rls(True), obj.force_rls(False))
        if t.replica_identity != "default":
            self.set_replica_identity(t, "default")
        for con in t.constraints.values():
            if con.inherited:
                continue
            if external and con.kind == "foreign key" and con.referenced_table not in self.new_tables \
                    and not self.r.external.has("table", con.referenced_table or ""):
                self.notes.append(f"{t.key}: foreign key {con.name} to {con.referenced_table} left out "
                                  "(that table is not created on the replica)")
                continue
            self.add_constraint(t, con, new_table=True, requires=[st])
        for idx in t.indexes.values():
            if idx.constraint is None and not idx.inherited:
                self.create_index(t, idx, requires=[st])
        if not external:
            for trg in t.triggers.values():
                if not trg.inherited:
                    self.create_trigger(t, trg, requires=[st])
            for rule in t.rules.values():
                self.create_rule(t, rule, requires=[st])
            for pol in t.policies.values():
                self.create_policy(t, pol, requires=[st])
        self.table_comments(t)
        return st

    def table_comments(self, t: Table) -> None:
        obj = TableObj(t, self.m)
        if t.comment is not None:
            self.step(CREATE, obj.ref, "comment", obj.comment(t.comment), obj.comment(None))
        for c in t.columns.values():
            if c.comment is not None and not c.inherited:
                ck = f"{t.key}.{quote(c.name)}"
                self.step(CREATE, obj.ref, "comment", f"COMMENT ON COLUMN {ck} IS {lit(c.comment)}",
                          f"COMMENT ON COLUMN {ck} IS NULL", obj=ck)

    def tables(self) -> None:
        recreated = [self.r.tables[k] for k in sorted(self.recreated_tables) if k in self.r.tables]
        for rt in recreated:
            if rt.partition_of not in self.recreated_tables:  # partitions go with their parent
                ref: Ref = ("table", rt.key, None)
                self.drop(ref, self.step(DROP, ref, "drop table", f"DROP TABLE {rt.key}",
                                         TableObj(rt, self.r).recreate_sql(), "destructive",
                                         "recreated: its kind or partition key changes (rows are backed up first)",
                                         table=rt.key))
        for t in [self.m.tables[k] for k in sorted(self.new_tables) if k in self.m.tables]:
            requires = self.swap_drops(t.key, "table")
            if t.key in self.recreated_tables:  # needs the drop of the old table (of its tree's root)
                root = t.key
                while (parent := self.m.tables[root].partition_of) in self.recreated_tables:
                    root = parent
                requires += self.dropped.get(("table", root, None), [])
            self.create_table(t, requires=requires)
        for c in self.by_kind["table_changed"]:
            if c.object in self.recreated_tables:
                continue
            self.table_changed(c)
        for c in self.by_kind["table_rls"]:
            if c.object in self.new_tables:
                continue
            obj = TableObj(self.m.tables[c.object], self.m)
            m, r = c.master, c.replica
            if m["enabled"] != r["enabled"]:
                self.step(CREATE, obj.ref, "row level security", obj.rls(m["enabled"]), obj.rls(r["enabled"]))
            if m["forced"] != r["forced"]:
                self.step(CREATE, obj.ref, "row level security", obj.force_rls(m["forced"]), obj.force_rls(r["forced"]))
        for c in self.by_kind["table_replica_identity"]:
            if c.object not in self.new_tables:  # (recreated ones too: create_table sets theirs)
                self.set_replica_identity(self.m.tables[c.object], c.replica["replica_identity"])
        for c in self.by_kind["table_extra"]:
            rt = self.r.tables[c.object]
            if rt.partition_of in self.extra_tables or rt.partition_of in self.recreated_tables:
                continue  # dropped with its parent
            rows = self.r.row_count(rt.key)
            ref: Ref = ("table", rt.key, None)
            self.drop(ref, self.step(DROP, ref, "drop table", f"DROP TABLE {rt.key}", TableObj(rt, self.r).recreate_sql(),
                                     "destructive", f"table only on the replica ({rows if rows is not None else '?'} rows)",
                                     table=rt.key))
        self.recreate_owned_sequences()

    def partitions_wait_for_local_drops(self) -> None:
        """A new partition waits for the drop of a partition only the replica has whose bounds may
        overlap its own (`bounds.may_overlap`), and of a parent index only the replica has that would
        be cloned onto it under a name one of the master's own indexes of the partition takes; it is
        skipped with those drops."""
        for t in [self.m.tables[k] for k in sorted(self.new_tables) if k in self.m.tables]:
            if not t.partition_of or t.partition_of in self.new_tables:
                continue
            local = [step for rt in self.r.tables.values() if rt.partition_of == t.partition_of
                     and rt.key not in self.m.tables and may_overlap(rt.partition_bound, t.partition_bound)
                     for step in self.dropped.get(("table", rt.key, None), [])]
            parent = self.r.tables.get(t.partition_of)
            taken = set(t.indexes) | set(t.constraints)
            for (kind, key, name), steps in self.dropped.items():
                index = parent.indexes.get(name or "") if parent is not None and kind == "index" and key == t.partition_of else None
                if index is not None and _clone_names(t.name, index.columns) & taken:
                    local += steps
            created = self.g.steps_of(CREATE, ("table", t.key, None))
            if local and created:
                self.g.require(created[0], *local)

    def dependents_wait_for_recreated_tables(self) -> None:
        """Functions and views of the master that use a recreated table (a function returning its rows,
        a view calling that function) are created after it and skipped with it: against the old
        table they would be wrong (a view names the function's columns in the master's order)."""
        waiting: dict[tuple[str, str], Step] = {}
        for key in self.recreated_tables:
            if created := self.g.steps_of(CREATE, ("table", key, None)):
                waiting[("table", key)] = created[0]
        grew = True
        while grew:
            grew = False
            for d in self.m.dependencies:
                cause = waiting.get(("table" if d.on_kind == "column" else d.on_kind, d.on_key))
                if cause is None or d.kind not in ("function", "view") or (d.kind, d.key) in waiting:
                    continue
                if steps := self.g.steps_of(CREATE, (d.kind, d.key, None)):
                    for st in steps:
                        self.g.require(st, cause)
                    waiting[(d.kind, d.key)] = steps[0]
                    grew = True

    def recreate_owned_sequences(self) -> None:
        """DROP TABLE also drops the sequences its columns own (serial): those the master has are
        created again, from the master's definition."""
        for ref, drops in list(self.dropped.items()):
            if ref[0] != "table":
                continue
            for s in self.r.sequences.values():
                ms = self.m.sequences.get(s.key)
                if (s.identity or s.owned_by_table != ref[1] or ms is None or ms.identity
                        or ("sequence", s.key, None) in self.created):
                    continue  # (the master's identity sequence comes with its recreated column)
                obj = SequenceObj(ms)
                self.step(CREATE, obj.ref, "create sequence", obj.create(), obj.drop(), requires=drops,
                          reason=f"dropped with {ref[1]}, which owned it", schema=quote(ms.schema_name))
                self.created.add(obj.ref)
                if ms.owned_by:
                    self.owned_by(ms, None)

    def set_replica_identity(self, t: Table, was: str) -> None:
        """The master's replica identity, set once the table (and the index it names) exist."""
        obj = TableObj(t, self.m)
        ref: Ref = ("replica identity", t.key, None)
        self.step(CREATE, ref, "replica identity", obj.replica_identity(t.replica_identity), obj.replica_identity(was))
        node = self.g.node(CREATE, ref)
        node.needs.add(("table", t.key, None))
        if t.replica_identity.startswith("index "):
            name = t.replica_identity.removeprefix("index ")
            name = name[1:-1].replace('""', '"') if name.startswith('"') else name
            node.needs |= {("index", t.key, name), ("constraint", t.key, name)}

    def swap_drops(self, key: str, kind: str) -> list[Step]:
        """Drop steps of a replica object of another kind holding the same name (a table that
        became a view): the new object needs them."""
        return [s for k in ("table", "view") if k != kind for s in self.dropped.get((k, key, None), [])]

    def table_changed(self, c: Change) -> None:
        k = c.object
        m, r = self.m.tables[k], self.r.tables[k]
        obj = TableObj(m, self.m)
        d = c.diff
        if "column_order" in d:
            self.unsupported.append(f"table {k}: {c.detail}; ALTER TABLE cannot reorder columns: recreate it by "
                                    "hand in the master's column order")
        if "unlogged" in d:
            to = "UNLOGGED" if m.unlogged else "LOGGED"
            back = "LOGGED" if m.unlogged else "UNLOGGED"
            self.step(CREATE, obj.ref, "alter table", f"ALTER TABLE {k} SET {to}", f"ALTER TABLE {k} SET {back}",
                      reason="rewrites the table")
        if "options" in d:
            mo = dict(o.split("=", 1) for o in m.options)
            ro = dict(o.split("=", 1) for o in r.options)
            sets = [f"{n}={v}" for n, v in mo.items() if ro.get(n) != v]
            resets = [n for n in ro if n not in mo]
            back_sets = [f"{n}={v}" for n, v in ro.items() if mo.get(n) != v]
            back_resets = [n for n in mo if n not in ro]

            def actions(to_set: list[str], to_reset: list[str]) -> str:
                return ", ".join(([f"SET ({', '.join(to_set)})"] if to_set else [])
                                 + ([f"RESET ({', '.join(to_reset)})"] if to_reset else []))

            self.step(CREATE, obj.ref, "alter table", f"ALTER TABLE {k} {actions(sets, resets)}",
                      f"ALTER TABLE {k} {actions(back_sets, back_resets)}")
        if {"partition_of", "partition_bound"} & set(d):
            detach = None
            if r.partition_of:
                detach = self.step(DROP, ("detach", k, None), "detach partition",
                                   f"ALTER TABLE {r.partition_of} DETACH PARTITION {k}",
                                   f"ALTER TABLE {r.partition_of} ATTACH PARTITION {k} {r.partition_bound}",
                                   reason="its rows stay in the table, no longer part of the partitioned table", obj=k)
            if m.partition_of:
                self.step(CREATE, ("attach", k, None), "attach partition",
                          f"ALTER TABLE {m.partition_of} ATTACH PARTITION {k} {m.partition_bound}",
                          f"ALTER TABLE {m.partition_of} DETACH PARTITION {k}", "data-dependent",
                          "every row must fit the partition bound (PostgreSQL checks when attaching)",
                          PreCheck(description=f"rows of {k} outside {m.partition_bound} (checked by PostgreSQL when attached)"),
                          requires=[detach], obj=k)
                node = self.g.node(CREATE, ("attach", k, None))
                node.needs |= {("table", m.partition_of, None), ("table", k, None)}
        if "inherits" in d:
            for p in r.inherits:
                if p not in m.inherits:
                    self.step(DROP, ("detach", k, None), "no inherit", f"ALTER TABLE {k} NO INHERIT {p}",
                              f"ALTER TABLE {k} INHERIT {p}", obj=k)
            for p in m.inherits:
                if p not in r.inherits:
                    # INHERIT wants the parent's CHECKs on the child already, under their names
                    parent = self.m.tables.get(p)
                    for con in (parent.constraints.values() if parent else ()):
                        if con.kind == "check" and "NO INHERIT" not in con.definition and con.name not in r.constraints:
                            obj = ConstraintObj(m, con)
                            self.step(CREATE, ("attach", k, None), "add constraint", obj.add(), obj.drop(), obj=k,
                                      reason=f"{p}'s, which INHERIT requires the child to have")
                    self.step(CREATE, ("attach", k, None), "inherit", f"ALTER TABLE {k} INHERIT {p}",
                              f"ALTER TABLE {k} NO INHERIT {p}", obj=k)
                    self.g.node(CREATE, ("attach", k, None)).needs |= {("table", p, None), ("table", k, None)}

    # -- columns ---------------------------------------------------------------------------------

    def columns(self) -> None:
        groups: dict[tuple[str, str], dict[str, Change]] = defaultdict(dict)
        for c in self.changes:
            if c.kind.startswith("column_") and c.kind != "column_extra" and c.table in self.m.tables:
                if c.table in self.new_tables:
                    continue
                groups[(c.table, c.name or "")][c.kind] = c
        for (table, name), chs in groups.items():
            if "column_missing" in chs:
                self.add_column(self.m.tables[table], Column(**chs["column_missing"].master))
            else:
                self.alter_column(self.m.tables[table], name, chs)
        for c in self.by_kind["column_extra"]:
            if c.table in self.extra_tables or c.table in self.recreated_tables:
                continue
            rt = self.r.tables[c.table]
            col = rt.columns[c.name or ""]
            ref: Ref = ("column", c.table, c.name)
            self.drop(ref, self.step(DROP, ref, "drop column", f"ALTER TABLE {c.table} DROP COLUMN {quote(col.name)}",
                                     f"ALTER TABLE {c.table} ADD COLUMN {ColumnDef(rt, col, self.r).sql()}", "destructive",
                                     f"column only on the replica; its values are lost (rows: {self.r.row_count(c.table)})",
                                     table=c.table))

    def _from_domains(self, type_name: str) -> tuple[bool, bool]:
        """Whether a column of this type is NOT NULL through its domains, and whether they give it a
        default (the nearest domain's, over its base domain's); not for an array of them."""
        not_null, default, seen = False, None, set()
        d = self.m.domains.get(type_name)
        while d is not None and d.key not in seen:
            seen.add(d.key)
            not_null = not_null or d.not_null
            default = default if default is not None else d.default
            d = self.m.domains.get(d.base_type)
        return not_null, default is not None and not default.upper().startswith("NULL")

    def add_column(self, t: Table, col: Column) -> None:
        k = t.key
        pre, cls, reason = None, "safe", ""
        # what PostgreSQL fills the table's rows with: the column's default, else its domain's
        domain_not_null, domain_default = self._from_domains(col.type)
        not_null = not col.nullable or domain_not_null
        if not_null and col.default is None and not domain_default and not col.identity and not col.generated:
            cls, reason = "data-dependent", "NOT NULL without a default: the replica's table must be empty"
            pre = self.pre.rows(k, "a NOT NULL column without default needs an empty table", col.name)
        ref: Ref = ("column", k, col.name)
        self.step(CREATE, ref, "add column", f"ALTER TABLE {k} ADD COLUMN {ColumnDef(t, col, self.m).sql()}",
                  f"ALTER TABLE {k} DROP COLUMN {quote(col.name)}", cls, reason, pre)  # type: ignore[arg-type]
        if col.comment is not None:
            self.step(CREATE, ref, "comment", f"COMMENT ON COLUMN {k}.{quote(col.name)} IS {lit(col.comment)}",
                      f"COMMENT ON COLUMN {k}.{quote(col.name)} IS NULL")
        self.created.add(ref)

    def alter_column(self, t: Table, name: str, chs: dict[str, Change]) -> None:
        """Every change of one column, in an order PostgreSQL accepts: rename, drop identity /
        expression / default, type and collation, nullability, default, identity, comment."""
        k = t.key
        ref: Ref = ("column", k, name)
        cn = quote(name)
        any_change = next(iter(chs.values()))
        rname = any_change.replica_name or name
        mcol = t.columns[name]
        rt = self.r.tables[k]
        rcol = rt.columns[rname]
        alter = f"ALTER TABLE {k} ALTER COLUMN {cn}"

        def add(text: str, rollback: str | None, cls: Classification = "safe", reason: str = "",
                pre: PreCheck | None = None, table: str | None = None, requires: Iterable[Step | None] = ()) -> Step:
            return self.step(CREATE, ref, "alter column", text, rollback, cls, reason, pre, table, requires=requires)

        if "column_renamed" in chs:
            add(f"ALTER TABLE {k} RENAME COLUMN {quote(rname)} TO {cn}", f"ALTER TABLE {k} RENAME COLUMN {cn} TO {quote(rname)}",
                reason="rename from config")
        if "column_generated" in chs and mcol.generated:
            self.recreate_generated(t, mcol, rt, rcol, ref)
            return
        if rcol.identity and not mcol.identity:
            add(f"{alter} DROP IDENTITY", f"{alter} ADD GENERATED {rcol.identity.upper()} AS IDENTITY")
        if rcol.generated and not mcol.generated:
            add(f"{alter} DROP EXPRESSION", None, reason="its values are kept, no longer computed")
        type_change = "column_type" in chs
        default_dropped = False
        if rcol.default is not None and not rcol.identity and (type_change or mcol.identity or mcol.default is None):
            add(f"{alter} DROP DEFAULT", f"{alter} SET DEFAULT {rcol.default}")
            default_dropped = True
        if type_change or "column_collation" in chs:
            tc = TypeChange(k, name, rname, rcol.type, mcol.type, self.m.enums, self.m.domains, self.r.server_version,
                            old_is_enum=rcol.type.removesuffix("[]") in self.r.enums)
            coll = f" COLLATE {mcol.collation}" if mcol.collation else ""
            ocoll = f" COLLATE {rcol.collation}" if rcol.collation else ""
            if type_change:
                cls, reason = tc.classify()
                pre = tc.precheck()
                text = f"{alter} TYPE {mcol.type}{coll} USING {tc.using()}"
                back = f"{alter} TYPE {rcol.type}{ocoll} USING {cn}::{rcol.type}"
            else:
                cls, reason, pre = "data-dependent", "collation change reorders and may break unique indexes", None
                text = f"{alter} TYPE {mcol.type}{coll}"
                back = f"{alter} TYPE {rcol.type}{ocoll}"
            st = add(text, back, cls, reason, pre, table=k if cls != "safe" else None)  # type: ignore[arg-type]
            self.retyped[(k, rname)] = [st]
            # the table's CHECKs and defaults are parsed again for the new type: a function they call with
            # it (a new overload, `pos(bigint)` for `pos(int)`) must exist by then
            called = {(d.on_kind, d.on_key, None) for con in t.constraints
                      for d in self.m_deps.get(("constraint", k, con), []) + self.m_deps.get(("column", k, name), [])
                      if d.on_kind == "function"}
            self.g.node(CREATE, ref).needs |= {f for f in called if self.g.has(CREATE, f)}
        if mcol.nullable != rcol.nullable:
            if not mcol.nullable:
                add(f"{alter} SET NOT NULL", f"{alter} DROP NOT NULL", "data-dependent", "the column may hold NULLs",
                    self.pre.nulls(k, name))
            else:
                add(f"{alter} DROP NOT NULL", f"{alter} SET NOT NULL")
        if mcol.default is not None and not mcol.identity and not mcol.generated and (
                default_dropped or mcol.default != rcol.default):
            add(f"{alter} SET DEFAULT {mcol.default}", f"{alter} DROP DEFAULT")
        if "column_identity" in chs and "options" in chs["column_identity"].diff:
            opts = chs["column_identity"].diff["options"]
            new = " ".join(_identity_option(a, v[0]) for a, v in opts.items())
            old = " ".join(_identity_option(a, v[1]) for a, v in opts.items())
            add(f"{alter} {new}", f"{alter} {old}", reason="identity sequence options")
        if mcol.identity and mcol.identity != rcol.identity:
            if rcol.identity:
                add(f"{alter} SET GENERATED {mcol.identity.upper()}", f"{alter} SET GENERATED {rcol.identity.upper()}")
            else:
                # serial -> identity: the serial's own sequence goes first (its name is often the one
                # the identity's sequence takes); the column's default, which used it, is dropped above
                for old in self.r.sequences.values():
                    if old.owned_by_table == k and old.owned_by_column == rname and self.serial_becoming_identity(old):
                        add(SequenceObj(old).drop(), SequenceObj(old).create(),
                            reason="the serial's sequence, replaced by the identity's")
                max_q = f"SELECT count(*) FROM {k} WHERE {quote(rname)} IS NOT NULL"
                add(f"{alter} ADD {ColumnDef(t, mcol, self.m).identity_clause(mcol.identity)}", f"{alter} DROP IDENTITY",
                    "data-dependent", "the identity starts at its START value: values already in the column may collide "
                    "(set it past them with setval, as `replicator copy` does after copying)",
                    PreCheck(description=f"existing values in {k}.{cn}: the identity may hand out one of them "
                                         "(informational)", sql=max_q, ok=True))
        if "column_comment" in chs:
            c = chs["column_comment"]
            add(f"COMMENT ON COLUMN {k}.{cn} IS {comment_value(c.master)}",
                f"COMMENT ON COLUMN {k}.{cn} IS {comment_value(c.replica)}")

    def recreate_generated(self, t: Table, mcol: Column, rt: Table, rcol: Column, ref: Ref) -> None:
        """A generated column whose expression changes (or that becomes generated): in place on
        PostgreSQL >= 17 (SET EXPRESSION), else dropped and added again."""
        k, cn = t.key, quote(mcol.name)
        if rcol.generated and self.r.server_version >= 170000 and mcol.type == rcol.type:
            self.step(CREATE, ref, "alter column", f"ALTER TABLE {k} ALTER COLUMN {cn} SET EXPRESSION AS ({mcol.generated})",
                      f"ALTER TABLE {k} ALTER COLUMN {cn} SET EXPRESSION AS ({rcol.generated})",
                      reason="the table is rewritten with the new values")
            return
        drop = self.step(DROP, ref, "drop column", f"ALTER TABLE {k} DROP COLUMN {quote(rcol.name)}",
                         f"ALTER TABLE {k} ADD COLUMN {ColumnDef(rt, rcol, self.r).sql()}", "destructive",
                         "recreated: PostgreSQL cannot change a generated expression in place before version 17 "
                         "(the values are computed again)", table=k)
        self.drop(ref, drop)
        self.step(CREATE, ref, "add column", f"ALTER TABLE {k} ADD COLUMN {ColumnDef(t, mcol, self.m).sql()}",
                  f"ALTER TABLE {k} DROP COLUMN {cn}", requires=[drop])
        if mcol.comment is not None:
            self.step(CREATE, ref, "comment", f"COMMENT ON COLUMN {k}.{cn} IS {lit(mcol.comment)}", None)
        self.created.add(ref)

    # -- constraints, indexes, triggers, policies --------------------------------------------------

    def skip_table(self, table: str | None) -> bool:
        return table is None or table in self.new_tables or table in self.extra_tables

    def add_constraint(self, t: Table, con: Constraint, *, new_table: bool, requires: Iterable[Step | None] = ()) -> None:
        obj = ConstraintObj(t, con)
        k = t.key
        if con.kind == "foreign key":
            partitioned = t.kind == "partitioned table"
            if partitioned or new_table:
                self.step(CREATE, obj.ref, "add foreign key", obj.add(not_valid=not con.validated and not partitioned),
                          obj.drop(), requires=requires)
            else:
                st = self.step(CREATE, obj.ref, "add foreign key", obj.add(not_valid=True), obj.drop(),
                               reason="added NOT VALID, validated separately", requires=requires)
                if con.validated:
                    self.step(CREATE, obj.ref, "validate", obj.validate(), None, "data-dependent",
                              "replica rows may reference missing keys (orphans)", self.pre.orphans(k, con), requires=[st])
        else:
            pre, cls, reason = None, "safe", ""
            if not new_table:
                if con.kind in ("primary key", "unique"):
                    cls = "data-dependent"
                    reason = "existing rows may hold duplicates" + (" or NULLs" if con.kind == "primary key" else "")
                    pre = self.pre.duplicates(k, con)
                elif con.kind == "check":
                    if con.validated:
                        cls, reason, pre = "data-dependent", "existing rows may violate the check", self.pre.check(k, con)
                    else:
                        reason = "NOT VALID on the master: existing rows are not checked"
                elif con.kind == "exclusion":
                    cls, reason = "data-dependent", "existing rows may conflict"
                    pre = PreCheck(description=f"conflicting rows for exclusion constraint {con.name} (not pre-checked: any "
                                               "conflict fails the migration, which then rolls back)", table=k)
            self.step(CREATE, obj.ref, f"add {con.kind}", obj.add(not_valid=con.kind == "check" and not con.validated),
                      obj.drop(), cls, reason, pre, requires=requires)  # type: ignore[arg-type]
        if con.kind == "foreign key" and con.referenced_table:
            # after every partition of the referenced table, as pg_dump does: PostgreSQL clones the
            # key onto each partition present when it is added
            node = self.g.node(CREATE, obj.ref)
            todo = [con.referenced_table]
            while todo:
                parts = [p.key for p in self.m.partitions_of(todo.pop())]
                node.needs |= {("table", p, None) for p in parts}
                todo += parts
        if con.comment is not None:
            self.step(CREATE, obj.ref, "comment", obj.comment(con.comment), obj.comment(None))
        self.created.add(obj.ref)

    def constraints(self) -> None:
        for c in self.by_kind["constraint_missing"] + self.by_kind["constraint_changed"]:
            if self.skip_table(c.table):
                continue
            t = self.m.tables[c.table]  # type: ignore[index]
            con = Constraint(**c.master)
            if c.kind == "constraint_changed" and set(c.diff) == {"validated"}:
                if con.validated:
                    self.step(CREATE, ConstraintObj(t, con).ref, "validate", ConstraintObj(t, con).validate(), None,
                              "data-dependent", "existing rows may violate it",
                              self.pre.orphans(t.key, con) if con.kind == "foreign key" else None)
                continue
            requires = []
            if c.kind == "constraint_changed":
                requires.append(self.drop_nested(c, "constraint", safe=True))
            self.add_constraint(t, con, new_table=False, requires=requires)
        for c in self.by_kind["constraint_extra"]:
            mt = self.m.tables.get(c.table or "")
            if mt is not None and c.name in mt.constraints and mt.constraints[c.name].inherited:
                continue  # the child's own copy of a parent's constraint: the planned INHERIT adopts it
            if not self.skip_table(c.table):
                self.drop_nested(c, "constraint", safe=False)

    def drop_nested(self, c: Change, kind: str, *, safe: bool) -> Step:
        """Drop the replica's constraint / index / trigger / policy / rule of change ``c``."""
        owner = self.r.tables.get(c.table or "") or self.r.views.get(c.table or "")
        assert owner is not None
        model: Any = {"constraint": Constraint, "index": Index, "trigger": Trigger, "policy": Policy,
                      "rule": Rule}[kind](**c.replica)
        obj = {"constraint": ConstraintObj, "index": IndexObj, "trigger": TriggerObj, "policy": PolicyObj,
               "rule": RuleObj}[kind](owner, model)
        return self.drop(obj.ref, self.step(DROP, obj.ref, f"drop {kind}", obj.drop(), obj.create(),
                                            "safe" if safe else "destructive",
                                            "recreated from the master's definition" if safe else "only on the replica"))

    def create_index(self, owner: Table | View, idx: Index, *, requires: Iterable[Step | None] = (),
                     precheck: bool = False) -> None:
        obj = IndexObj(owner, idx)
        pre, cls, reason = None, "safe", ""
        if precheck and idx.unique:
            cls, reason = "data-dependent", "existing rows may hold duplicates"
            if not idx.predicate and None not in idx.columns and isinstance(owner, Table):
                fake = Constraint(name=idx.name, kind="unique", definition="", columns=[x for x in idx.columns if x])
                pre = self.pre.duplicates(owner.key, fake)
        self.step(CREATE, obj.ref, "create index", obj.create(), obj.drop(), cls, reason, pre,  # type: ignore[arg-type]
                  requires=requires)
        if idx.comment is not None:
            self.step(CREATE, obj.ref, "comment", obj.comment(idx.comment), obj.comment(None))
        self.created.add(obj.ref)

    def indexes(self) -> None:
        for c in self.by_kind["index_missing"] + self.by_kind["index_changed"]:
            if self.skip_table(c.table) or c.table in self.changed_views():
                continue
            owner = self.m.tables.get(c.table or "") or self.m.views.get(c.table or "")
            assert owner is not None
            requires = [self.drop_nested(c, "index", safe=True)] if c.kind == "index_changed" else []
            self.create_index(owner, Index(**c.master), requires=requires, precheck=True)
        for c in self.by_kind["index_extra"]:
            if not self.skip_table(c.table) and c.table not in self.changed_views():
                self.drop_nested(c, "index", safe=False)

    def create_switchable(self, obj: TriggerObj | RuleObj, requires: Iterable[Step | None]) -> None:
        """A trigger or rule: created, given its enabled state when not the default, commented."""
        self.step(CREATE, obj.ref, f"create {obj.kind}", obj.create(), obj.drop(), requires=requires)
        if (state := obj.enable_state()) is not None:
            self.step(CREATE, obj.ref, f"{obj.kind} state", state, obj.enable_default())
        if obj.model.comment is not None:
            self.step(CREATE, obj.ref, "comment", obj.comment(obj.model.comment), obj.comment(None))
        self.created.add(obj.ref)

    def create_trigger(self, owner: Table | View, trg: Trigger, *, requires: Iterable[Step | None] = ()) -> None:
        obj = TriggerObj(owner, trg)
        self.create_switchable(obj, requires)
        self.g.node(CREATE, obj.ref).needs.add(("function", trg.function, None))

    def create_rule(self, owner: Table | View, rule: Rule, *, requires: Iterable[Step | None] = ()) -> None:
        self.create_switchable(RuleObj(owner, rule), requires)

    def switchable_changes(self, kind: str, model: type, create: Any) -> None:
        """Triggers or rules the master has and the replica lacks or has otherwise, and the replica's own."""
        for c in self.by_kind[f"{kind}_missing"] + self.by_kind[f"{kind}_changed"]:
            if self.skip_table(c.table) or c.table in self.changed_views():
                continue
            owner = self.m.tables.get(c.table or "") or self.m.views.get(c.table or "")
            assert owner is not None
            requires = [self.drop_nested(c, kind, safe=True)] if c.kind == f"{kind}_changed" else []
            create(owner, model(**c.master), requires=requires)
        for c in self.by_kind[f"{kind}_extra"]:
            if not self.skip_table(c.table) and c.table not in self.changed_views():
                self.drop_nested(c, kind, safe=False)

    def triggers(self) -> None:
        self.switchable_changes("trigger", Trigger, self.create_trigger)

    def rules(self) -> None:
        self.switchable_changes("rule", Rule, self.create_rule)

    def create_policy(self, t: Table, pol: Policy, *, requires: Iterable[Step | None] = ()) -> None:
        obj = PolicyObj(t, pol)
        self.step(CREATE, obj.ref, "create policy", obj.create(), obj.drop(), requires=requires)
        self.g.node(CREATE, obj.ref).needs |= {("role", quote(r), None) for r in pol.roles if r != "public"}
        if pol.comment is not None:
            self.step(CREATE, obj.ref, "comment", obj.comment(pol.comment), obj.comment(None))
        self.created.add(obj.ref)

    def policies(self) -> None:
        for c in self.by_kind["policy_missing"] + self.by_kind["policy_changed"]:
            if self.skip_table(c.table):
                continue
            requires = [self.drop_nested(c, "policy", safe=True)] if c.kind == "policy_changed" else []
            self.create_policy(self.m.tables[c.table or ""], Policy(**c.master), requires=requires)
        for c in self.by_kind["policy_extra"]:
            if not self.skip_table(c.table):
                self.drop_nested(c, "policy", safe=False)

    # -- views -----------------------------------------------------------------------------------

    def changed_views(self) -> set[str]:
        """Views recreated whole (or dropped): their indexes and triggers go with them."""
        if not hasattr(self, "_changed_views"):
            self._changed_views = {c.object for c in self.by_kind["view_changed"] + self.by_kind["view_extra"]}
        return self._changed_views

    def misordered_rows(self, view: str) -> str | None:
        """A function the view calls that returns the rows of a table whose columns the replica
        orders otherwise: the view's text names that function's columns by position."""
        for d in self.m_deps.get(("view", view, None), []):
            if d.on_kind == "function" and any(d.on_key in returning_rows(self.m, t) for t in self.misordered):
                return d.on_key
        return None

    def create_view(self, v: View, *, requires: Iterable[Step | None] = ()) -> None:
        if fn := self.misordered_rows(v.key):
            self.unsupported.append(f"view {v.key} is not created: it names the columns of {fn} by position, and the "
                                    "table it returns orders them otherwise on the replica (see that table)")
            return
        obj = ViewObj(v)
        st = self.step(CREATE, obj.ref, f"create {obj.keyword.lower()}", obj.create(), obj.drop(), requires=requires,
                       schema=quote(v.schema_name))
        if v.comment is not None:
            self.step(CREATE, obj.ref, "comment", obj.comment(v.comment), obj.comment(None))
        for text in obj.column_comments():
            self.step(CREATE, obj.ref, "comment", text, None)
        for idx in v.indexes.values():
            self.create_index(v, idx, requires=[st])
        for trg in v.triggers.values():
            self.create_trigger(v, trg, requires=[st])
        for rule in v.rules.values():
            self.create_rule(v, rule, requires=[st])
        self.created.add(obj.ref)

    def drop_view(self, v: View, *, extra: bool) -> Step:
        obj = ViewObj(v)
        return self.drop(obj.ref, self.step(DROP, obj.ref, f"drop {obj.keyword.lower()}", obj.drop(), obj.create(),
                                            "destructive" if extra else "safe",
                                            "only on the replica" if extra else "recreated from the master's definition"))

    def views(self) -> None:
        for c in self.by_kind["view_extra"]:
            self.drop_view(self.r.views[c.object], extra=True)
        for c in self.by_kind["view_changed"]:
            if self.misordered_rows(c.object):
                self.create_view(self.m.views[c.object])  # says why it is left as it is
                continue
            drop = self.drop_view(self.r.views[c.object], extra=False)
            self.create_view(self.m.views[c.object], requires=[drop])
        for c in self.by_kind["view_missing"]:
            self.create_view(self.m.views[c.object], requires=self.swap_drops(c.object, "view"))

    # -- comments, grants ------------------------------------------------------------------------

    def comments(self) -> None:
        def comment(ref: Ref, target: str, c: Change) -> None:
            if ref in self.created:
                return
            self.step(CREATE, ref, "comment", f"COMMENT ON {target} IS {comment_value(c.master)}",
                      f"COMMENT ON {target} IS {comment_value(c.replica)}", obj=c.object)

        for c in self.by_kind["schema_comment"]:
            comment(("schema", c.object, None), f"SCHEMA {c.object}", c)
        for c in self.by_kind["collation_comment"]:
            comment(("collation", c.object, None), f"COLLATION {c.object}", c)
        for kind, kw in (("enum", "TYPE"), ("composite", "TYPE"), ("range", "TYPE"), ("domain", "DOMAIN")):
            for c in self.by_kind[f"{kind}_comment"]:
                comment(("type", c.object, None), f"{kw} {c.object}", c)
        for c in self.by_kind["sequence_comment"]:
            comment(("sequence", c.object, None), f"SEQUENCE {c.object}", c)
        for c in self.by_kind["function_comment"]:
            f = self.m.functions[c.object]
            comment(("function", c.object, None), FunctionObj(f).target, c)
        for c in self.by_kind["table_comment"]:
            if c.object not in self.new_tables:
                comment(("table", c.object, None), f"TABLE {c.object}", c)
        for c in self.by_kind["view_comment"]:
            comment(("view", c.object, None), ViewObj(self.m.views[c.object]).target, c)
        for c in self.by_kind["column_comment"]:
            if c.table in self.m.views and c.table not in self.changed_views():
                comment(("view", c.table, None), f"COLUMN {c.table}.{quote(c.name or '')}", c)
            # table columns: handled with the column's other changes
        for kind in ("constraint", "index", "trigger", "policy", "rule"):
            for c in self.by_kind[f"{kind}_comment"]:
                if self.skip_table(c.table) or c.table in self.changed_views():
                    continue
                owner = self.m.tables.get(c.table or "") or self.m.views.get(c.table or "")
                assert owner is not None
                models = {"constraint": owner.constraints if isinstance(owner, Table) else {}, "index": owner.indexes,
                          "trigger": owner.triggers, "policy": owner.policies if isinstance(owner, Table) else {},
                          "rule": owner.rules}[kind]
                obj: Any = {"constraint": ConstraintObj, "index": IndexObj, "trigger": TriggerObj,
                            "policy": PolicyObj, "rule": RuleObj}[kind](owner, models[c.name])
                comment(obj.ref, obj.target, c)

    def grants(self) -> None:
        kw = {"table": "TABLE", "sequence": "SEQUENCE", "schema": "SCHEMA"}
        for c in self.by_kind["grant_missing"] + self.by_kind["grant_extra"]:
            g = c.master if c.kind == "grant_missing" else c.replica
            if g["on"] == "function":
                f = self.m.functions.get(c.object) or self.r.functions[c.object]
                on = FunctionObj(f).target
                obj_ref: Ref = ("function", c.object, None)
            else:
                on = f"{kw[g['on']]} {c.object}"
                kind = {"table": "view" if c.object in self.m.views else "table"}.get(g["on"], g["on"])
                obj_ref = (kind, c.object, None)
            grant, revoke = grant_sql(g["privilege"], on, g["grantee"], g["grantable"])
            ref: Ref = ("grant", c.object, f"{g['grantee']} {g['privilege']}")
            if c.kind == "grant_missing":
                self.step(CREATE, ref, "grant", grant, revoke, reason="privilege", obj=c.object)
                node = self.g.node(CREATE, ref)
                node.needs.add(obj_ref)
                if g["grantee"] not in ("PUBLIC", "public"):
                    node.needs.add(("role", quote(g["grantee"]), None))
            else:
                self.step(CREATE, ref, "revoke", revoke, grant, "destructive", "privilege only on the replica", obj=c.object)

    # -- what depends on dropped or retyped objects ------------------------------------------------

    def dependents(self, ref: Ref) -> list[Dependency]:
        kind, key, name = ref
        if kind == "table":
            return [d for k in ("table", "constraint", "index", "trigger", "policy") for d in self.r_used_by[(k, key)]
                    if d.key != key]
        if kind == "column":
            return [d for d in self.r_used_by[("table", key)] if d.on_name == name
                    and not (d.kind == "column" and d.key == key and d.name == name)]
        return [d for d in self.r_used_by[(kind, key)] if name is None or d.on_name == name]

    def drop_dependents(self) -> None:
        """Objects on the replica that use something dropped (or a column whose type changes) are
        dropped first and recreated from the master's definition afterwards."""
        queue: list[tuple[Ref, Step]] = [(ref, steps[0]) for ref, steps in self.dropped.items()]
        queue += [(("column", t, c), steps[0]) for (t, c), steps in self.retyped.items()]
        seen: set[Ref] = set()
        while queue:
            ref, cause = queue.pop(0)
            if ref in seen:
                continue
            seen.add(ref)
            for d in self.dependents(ref):
                nxt = self.drop_dependent(d, cause)
                if nxt is not None:
                    queue.append(nxt)

    def drop_dependent(self, d: Dependency, cause: Step) -> tuple[Ref, Step] | None:
        """Drop (and recreate from the master) replica object ``d``, which uses what ``cause``
        drops or changes. Returns the dropped reference, for its own dependents."""
        kind, key, name = d.kind, d.key, d.name
        if key in self.extra_tables or key in self.recreated_tables:
            return None  # goes with its table
        ref: Ref = (kind, key, None if kind in ("view", "function", "type", "table", "sequence") else name)
        if ref in self.dropped:
            # dropped anyway (say, only on the replica): the change must wait for that drop, and is
            # skipped with it when the drop is (a destructive step without --allow-destructive)
            self.g.require(cause, self.dropped[ref][0])
            return None
        why = "depends on what step {n} changes; recreated from the master's definition"
        if kind == "view":
            rv = self.r.views.get(key)
            if rv is None:
                return None
            drop = self.drop_view(rv, extra=False)
            self.g.require(drop, cause)
            if key in self.m.views and ("view", key, None) not in self.created:
                self.create_view(self.m.views[key], requires=[drop])
            return ref, drop
        if kind in ("trigger", "policy", "constraint", "index", "rule"):
            owner = self.r.tables.get(key) or self.r.views.get(key)
            mowner = self.m.tables.get(key) or self.m.views.get(key)
            if owner is None:
                self.unsupported.append(f"{kind} {name} on {key} (outside the compared schemas) uses an object the "
                                        "plan drops or recreates: drop it first and recreate it after, by hand")
                return None
            members = {"constraint": "constraints", "index": "indexes", "trigger": "triggers", "policy": "policies",
                       "rule": "rules"}[kind]
            rmodel = getattr(owner, members).get(name)
            if rmodel is None:
                return None
            fake = Change(kind=f"{kind}_changed", object=f"{key}/{name}", detail="", table=key, name=name,  # type: ignore[arg-type]
                          replica=rmodel.model_dump(mode="json"))
            drop = self.drop_nested(fake, kind, safe=True)
            self.g.require(drop, cause)
            mmodel = getattr(mowner, members, {}).get(name) if mowner else None
            if mmodel is not None and (kind, key, name) not in self.created:
                if kind == "constraint":
                    self.add_constraint(mowner, mmodel, new_table=False, requires=[drop])  # type: ignore[arg-type]
                elif kind == "index":
                    self.create_index(mowner, mmodel, requires=[drop])  # type: ignore[arg-type]
                elif kind == "trigger":
                    self.create_trigger(mowner, mmodel, requires=[drop])  # type: ignore[arg-type]
                elif kind == "rule":
                    self.create_rule(mowner, mmodel, requires=[drop])  # type: ignore[arg-type]
                else:
                    self.create_policy(mowner, mmodel, requires=[drop])  # type: ignore[arg-type]
            return (kind, key, name), drop
        if kind == "function":
            rf = self.r.functions.get(key)
            if rf is None:
                return None
            obj = FunctionObj(rf)
            drop = self.drop(obj.ref, self.step(DROP, obj.ref, f"drop {rf.kind}", obj.drop(), rf.definition,
                                                reason=why.format(n=cause.n or "")))
            self.g.require(drop, cause)
            if key in self.m.functions and obj.ref not in self.created:
                self.create_function(self.m.functions[key], requires=[drop])
            return obj.ref, drop
        if kind == "column":
            # a default that calls a dropped function or sequence: dropped, and set again
            rt = self.r.tables.get(key)
            rcol = rt.columns.get(name or "") if rt else None
            if rcol is None or rcol.default is None:
                if rcol is not None and rcol.generated:
                    self.unsupported.append(f"generated column {key}.{quote(name or '')} uses a column or function the "
                                            "plan changes: recreate it by hand")
                return None
            mname = self.renames.get(key, {}).get(rcol.name, rcol.name)
            cref: Ref = ("column", key, rcol.name)
            alter = f"ALTER TABLE {key} ALTER COLUMN {quote(rcol.name)}"
            drop = self.drop(cref, self.step(DROP, cref, "alter column", f"{alter} DROP DEFAULT",
                                             f"{alter} SET DEFAULT {rcol.default}", reason="its default uses what is dropped"))
            self.g.require(drop, cause)
            mt = self.m.tables.get(key)
            mcol = mt.columns.get(mname) if mt else None
            if mcol is not None and mcol.default is not None and not mcol.identity and not mcol.generated:
                self.step(CREATE, ("column", key, mname), "alter column",
                          f"ALTER TABLE {key} ALTER COLUMN {quote(mname)} SET DEFAULT {mcol.default}",
                          f"ALTER TABLE {key} ALTER COLUMN {quote(mname)} DROP DEFAULT", requires=[drop])
            return None
        if kind == "type":
            self.unsupported.append(f"type {key} uses an object the plan drops or changes: needs a manual migration")
        return None


def _clone_names(partition: str, columns: list[str | None]) -> set[str]:
    """The names PostgreSQL may give the clone of a parent's index on a partition (ChooseIndexName:
    the partition's name, the columns, a suffix), truncated as it truncates them."""
    stem = "_".join([partition, *[c or "expr" for c in columns]])
    return {(stem.encode()[:NAMEDATALEN - 1 - len(suffix) - 1].decode(errors="ignore") + "_" + suffix)
            for suffix in ("idx", "key", "excl")}


def _identity_option(attr: str, value: Any) -> str:
    """``SET <sequence option>`` for ALTER COLUMN of an identity column."""
    return {"increment": f"SET INCREMENT BY {value}", "min_value": f"SET MINVALUE {value}",
            "max_value": f"SET MAXVALUE {value}", "start": f"SET START WITH {value}",
            "cache": f"SET CACHE {value}", "cycle": "SET CYCLE" if value else "SET NO CYCLE"}[attr]


def _ref_label(ref: Ref) -> str:
    kind, key, name = ref
    if name is None:
        return key
    return f"{key}.{quote(name)}" if kind == "column" else f"{key}/{name}"


def _stub_table(key: str) -> Table:
    schema, _, name = key.partition(".")
    return Table(key=key, schema_name=schema.strip('"'), name=name.strip('"'))
