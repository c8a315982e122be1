"""Resolving what to copy for one table: columns, key, masking, policy, COPY format.

`plan_table` never raises for a problem with the table: it records it in `TablePlan.problems`, so the
pre-flight pass can report every problem of a run at once, before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from psycopg import sql

from ..config import Config, Policy, TableConfig
from ..errors import ReplicatorError
from ..introspect import Schema, Table
from ..rowhash import range_checksum, transfer_expr
from .managed import default_masks
from .masking import mask_expr, mask_key

if TYPE_CHECKING:
    from .models import Checkpoint

POLICIES = ", ".join(p.value for p in Policy)


class CopyError(ReplicatorError):
    """A table cannot be copied as asked."""


@dataclass
class TablePlan:
    master: Table
    replica: Table
    cfg: TableConfig
    label: str  # schema.name on the master, unquoted
    policy: Policy | None
    batch_size: int
    mcols: list[str]  # master column names, in copy order
    rcols: list[str]  # matching replica column names
    types: list[str]  # column types (master)
    select_exprs: list[sql.Composable]
    uses_mask_key: bool  # the select list reads the mask key (masking.KEY_SETTING)
    mask_key: str | None
    masked: list[str]
    key_m: list[str] = field(default_factory=list)  # key columns (master names); empty: a keyless table
    key_r: list[str] = field(default_factory=list)
    key_types: list[str] = field(default_factory=list)
    key_masked: bool = False
    #: the replica's other unique keys (plain columns, all copied): a master row may take a value a
    #: replica row still holds (a freed email reused, two values swapped)
    unique_r: list[list[str]] = field(default_factory=list)
    binary: bool = True
    cursor: str | None = None
    cursor_type: str | None = None
    identity_always: list[str] = field(default_factory=list)  # replica columns GENERATED ALWAYS AS IDENTITY
    collate_c: bool = False  # compare key ranges byte-wise: the two sides' key collations differ
    problems: list[str] = field(default_factory=list)
    rows_estimate: int | None = None  # master rows, from introspection (exact for small tables)
    where: sql.Composable = field(default_factory=lambda: sql.SQL("true"))  # master rows to copy (a subset)
    master_storage: str = ""  # oid and relfilenodes of the table's leaves (a baseline's fingerprint)
    replica_storage: str = ""
    heaps: list | None = None  # the master table's heaps (stream.Heap), read by the pre-flight; None: not read
    kept_from: Checkpoint | None = None  # the checkpoint of a stopped run that finished the table: a rerun keeps it (preflight)

    @property
    def filtered(self) -> bool:
        return self.where.as_string(None) != "true"

    def mwhere(self, pred: sql.Composable) -> sql.Composable:
        """``pred`` and the table's row filter, for every read of the master table."""
        return pred if not self.filtered else sql.SQL("({}) AND ({})").format(pred, self.where)

    @property
    def keyed(self) -> bool:
        return bool(self.key_m)

    @property
    def replica_label(self) -> str:
        return f"{self.replica.schema_name}.{self.replica.name}"

    @property
    def mident(self) -> sql.Identifier:
        return sql.Identifier(self.master.schema_name, self.master.name)

    @property
    def rident(self) -> sql.Identifier:
        return sql.Identifier(self.replica.schema_name, self.replica.name)

    @staticmethod
    def _from(t: Table, ident: sql.Identifier) -> sql.Composable:
        # A plain table's rows only: classic inheritance children are tables of their own, copied on
        # their own. A partitioned table is read and written through its root (rows route to partitions).
        return ident if t.kind == "partitioned table" else sql.SQL("ONLY {}").format(ident)

    @property
    def mfrom(self) -> sql.Composable:
        return self._from(self.master, self.mident)

    @property
    def rfrom(self) -> sql.Composable:
        return self._from(self.replica, self.rident)

    @property
    def fmt(self) -> sql.Composable:
        return sql.SQL("(FORMAT binary)") if self.binary else sql.SQL("")

    @property
    def overriding(self) -> sql.Composable:
        return sql.SQL(" OVERRIDING SYSTEM VALUE") if self.identity_always else sql.SQL("")

    def select(self, where: sql.Composable) -> sql.Composable:
        """The master SELECT of this table's copied columns (masked, xml as text) under ``where``."""
        return sql.SQL("SELECT {e} FROM {t} WHERE {w}").format(
            e=sql.SQL(", ").join(self.select_exprs), t=self.mfrom, w=self.mwhere(where))

    def checksums(self) -> tuple[sql.Composable, sql.Composable]:
        """Count and sum of row hashes of the whole table: the master's as copy reads it (masks,
        filter), and the replica's."""
        return (sql.SQL("SELECT {a} FROM ({s}) s").format(a=range_checksum(self.rcols), s=self.select_as_replica(sql.SQL("true"))),
                sql.SQL("SELECT {a} FROM {t}").format(a=range_checksum(self.rcols), t=self.rfrom))

    def select_as_replica(self, where: sql.Composable) -> sql.Composable:
        """Like :meth:`select`, with every output named as the replica column it goes into."""
        return sql.SQL("SELECT {e} FROM {t} WHERE {w}").format(
            e=sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, sql.Identifier(c))
                                 for e, c in zip(self.select_exprs, self.rcols)),
            t=self.mfrom, w=self.mwhere(where))


def _base_type(t: str) -> str:
    return re.sub(r"\(\d+(,\s*\d+)?\)", "", t).strip()


def resolve_table(schema: Schema, name: str, cfg: Config) -> Table | None:
    """Find a table by `name`, `schema.name`, or quoted forms."""
    raw = name.strip()
    if "." in raw and not (raw.startswith('"') and raw.endswith('"') and raw.count('"') == 2):
        sch, _, rel = raw.partition(".")
        candidates = [(sch.strip('"'), rel.strip('"'))]
    else:
        candidates = [(s, raw.strip('"')) for s in cfg.schemas]
    for s, rel in candidates:
        found = schema.find_table(s, rel)
        if found is not None:
            return found
    return None


_PARTITION_COLUMNS = re.compile(r"^\w+\s*\((.*)\)$")


def _partition_columns(t: Table) -> set[str] | None:
    """The columns of a partition key (``RANGE (payment_date)``); None when it has expressions."""
    m = _PARTITION_COLUMNS.match(t.partition_key or "")
    if not m:
        return None
    cols = set()
    for part in m.group(1).split(","):
        part = part.strip()
        if re.fullmatch(r"[a-z_][a-z0-9_$]*", part):
            cols.add(part)
        elif re.fullmatch(r'"([^"]|"")+"', part):
            cols.add(part[1:-1].replace('""', '"'))
        else:
            return None
    return cols


def _unique_keys(t: Table) -> list[set[str]]:
    keys = [set(t.primary_key)] if t.primary_key else []
    for i in t.indexes.values():
        if i.unique and i.valid and i.predicate is None and not i.has_expressions and i.columns:
            keys.append(set(c for c in i.columns if c))
    return keys


def tree_key(schema: Schema, t: Table) -> list[str] | None:
    """A key for a partitioned table that has none of its own: a unique key every leaf partition has,
    on the same columns, that includes the partition key (so no two partitions can hold the same key),
    as pagila's `payment` does. Column order follows the table's."""
    if t.kind != "partitioned table":
        return None
    parts = schema.partitions_of(t.key)
    pcols = _partition_columns(t)
    if not parts or pcols is None:
        return None
    common: list[set[str]] | None = None
    for p in parts:
        keys = [k for k in _unique_keys(p) if all(c in p.columns and not p.columns[c].nullable for c in k)]
        sub = tree_key(schema, p)  # a sub-partitioned partition: its own leaves' common key
        if sub:
            keys.append(set(sub))
        common = keys if common is None else [k for k in common if k in keys]
        if not common:
            return None
    best = min((k for k in common if pcols <= k), key=lambda k: (len(k), sorted(k)), default=None)
    return [c for c in t.columns if c in best] if best else None


def unique_on(schema: Schema, t: Table, columns: list[str]) -> bool:
    """The table (or every leaf of a partitioned one, with the partition key among ``columns``) has a
    unique key on exactly ``columns``."""
    want = set(columns)
    if want in _unique_keys(t):
        return True
    return t.kind == "partitioned table" and tree_key(schema, t) is not None and set(tree_key(schema, t) or []) == want


def table_config(cfg: Config, t: Table) -> TableConfig:
    qualified = f"{t.schema_name}.{t.name}"
    tc = cfg.table(qualified)
    return tc if tc != TableConfig() else cfg.table(t.name)


def effective_policy(cli: Policy | None, table: Policy | None, default: Policy | None) -> Policy | None:
    """Per-table settings win over the `[copy]` default; `--policy` wins over both, except that it never
    turns a table configured `replace` into a keyed policy (that table is reloaded whole on purpose)."""
    if table == Policy.REPLACE:
        return Policy.REPLACE
    return cli or table or default


def plan_table(
    mt: Table,
    rt: Table,
    cfg: Config,
    *,
    mschema: Schema | None = None,
    policy: Policy | None,
    batch_size: int | None,
    binary_unsafe: set[str] = frozenset(),  # type: ignore[assignment]
    key_collations_differ: bool = False,
) -> TablePlan:
    qualified = f"{mt.schema_name}.{mt.name}"
    tcfg = table_config(cfg, mt)
    problems: list[str] = []
    to_replica = {m: r for r, m in tcfg.renames.items()}
    mcols, rcols, types = [], [], []
    for col in mt.columns.values():
        if col.generated:
            continue  # computed on each side
        rname = tcfg.replica_column(col.name, rt.columns)
        rcol = rt.columns.get(rname)
        if rcol is None:
            problems.append(f"master column {qualified}.{col.name} is missing on the replica"
                            + (f" (as {to_replica[col.name]})" if col.name in to_replica else "")
                            + ": run `replicator migrate` first")
            continue
        if rcol.generated:
            problems.append(f"{qualified}.{col.name} is a generated column on the replica only: "
                            "run `replicator migrate` first")
            continue
        if _base_type(rcol.type) != _base_type(col.type):
            problems.append(f"type mismatch for {qualified}.{col.name}: master {col.type}, replica {rcol.type} "
                            "(align the replica with `replicator migrate`)")
            continue
        mcols.append(col.name)
        rcols.append(rname)
        types.append(col.type)
    masks = {**default_masks(mt), **tcfg.mask}  # secrets of managed tables, unless configured otherwise
    for m in tcfg.mask:
        if m not in mcols:
            problems.append(f"[tables.{mt.name}.mask]: no copied column {m} on {qualified}")
    plan = TablePlan(
        master=mt, replica=rt, cfg=tcfg, label=qualified,
        policy=effective_policy(policy, tcfg.policy, cfg.copy_.policy),
        batch_size=batch_size or tcfg.batch_size or cfg.batch_size,
        mcols=mcols, rcols=rcols, types=types, select_exprs=[], uses_mask_key=False,
        mask_key=mask_key(cfg), masked=[], problems=problems,
        identity_always=[rt.columns[r].name for r in rcols if rt.columns[r].identity == "always"],
        rows_estimate=mschema.row_count(mt.key) if mschema is not None else None,
        collate_c=key_collations_differ,
    )
    key = mt.key_columns() or (tree_key(mschema, mt) if mschema is not None else None)
    if key and all(k in mcols for k in key):
        plan.key_m = key
        plan.key_r = [rcols[mcols.index(k)] for k in key]
        plan.key_types = [types[mcols.index(k)] for k in key]
    elif key:
        problems.append(f"key of {qualified} ({', '.join(key)}) includes a column that is not copied")
    for c, t in zip(mcols, types):
        rule = masks.get(c)
        if rule is None:
            plan.select_exprs.append(transfer_expr(sql.Identifier(c), t))
            continue
        if rule in ("hash", "phone", "email") and not plan.mask_key:
            problems.append(f"{qualified}.{c} is masked with {rule!r} but no mask key: set REPLICATOR_MASK_KEY or mask_key")
            plan.select_exprs.append(sql.Identifier(c))
            continue
        try:
            expr, keyed = mask_expr(rule, c, t, qualified)
        except ReplicatorError as e:
            problems.append(str(e))
            continue
        plan.select_exprs.append(expr)
        plan.uses_mask_key |= keyed
        plan.masked.append(c)
        if c in plan.key_m:
            plan.key_masked = True
    # Other unique keys a master row's value may move along (see merge.Stage._displace): only those the
    # master has too, on copied columns none of which is masked, so the master's values are unique there.
    master_unique = _unique_keys(mt)
    for idx in rt.indexes.values():
        cols = [c for c in idx.columns if c is not None]
        if not (idx.unique and idx.valid and idx.predicate is None and not idx.has_expressions and cols
                and set(cols) != set(plan.key_r) and set(cols) <= set(rcols)):
            continue
        mnames = [mcols[rcols.index(c)] for c in cols]
        if set(mnames) in master_unique and not set(mnames) & set(plan.masked):
            plan.unique_r.append(cols)
    if tcfg.cursor:
        if tcfg.cursor not in mt.columns:
            problems.append(f"[tables.{mt.name}] cursor column {tcfg.cursor} does not exist on {qualified}")
        else:
            plan.cursor = tcfg.cursor
            plan.cursor_type = mt.columns[tcfg.cursor].type
    if tcfg.where:
        # user SQL by design (every statement it ends up in passes the guard); % is literal, not a placeholder
        plan.where = sql.SQL(tcfg.where.replace("%", "%%"))
    if set(mcols) & binary_unsafe:
        plan.binary = False
    if plan.key_masked and plan.policy == Policy.MIRROR:
        problems.append(f"{qualified}: mirror cannot be used with a masked key column "
                        "(masked keys cannot be matched to the master's to find deleted rows)")
    return plan
