"""Resolving what to copy for one table: columns, key, masking, COPY format."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from psycopg import sql

from ..config import Config, Policy, TableConfig
from ..errors import ReplicatorError
from ..introspect import Schema, Table
from .masking import mask_expr, mask_key

POLICIES = ", ".join(p.value for p in Policy)

# Types without an equality operator: compared through their text form.
_NO_EQUALITY = {"json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle"}


class CopyError(ReplicatorError):
    """A table cannot be copied as asked."""


@dataclass
class TablePlan:
    master: Table
    replica: Table
    cfg: TableConfig
    policy: Policy | None
    batch_size: int
    mcols: list[str]  # master column names, in copy order
    rcols: list[str]  # matching replica column names
    types: list[str]  # column types (master)
    select_exprs: list[sql.Composable]
    mask_params: int  # number of mask-key placeholders in the select list
    mask_key: str | None
    masked: list[str]
    key_m: list[str] = field(default_factory=list)  # key columns (master names)
    key_r: list[str] = field(default_factory=list)
    key_types: list[str] = field(default_factory=list)
    key_masked: bool = False
    binary: bool = True
    cursor: str | None = None
    cursor_type: str | None = None

    @property
    def mident(self) -> sql.Composable:
        return sql.Identifier(self.master.schema_name, self.master.name)

    @property
    def rident(self) -> sql.Composable:
        return sql.Identifier(self.replica.schema_name, self.replica.name)

    @property
    def fmt(self) -> sql.Composable:
        return sql.SQL("(FORMAT binary)") if self.binary else sql.SQL("")

    def compare_expr(self, alias: str, col: str, typ: str) -> sql.Composable:
        base = re.sub(r"\(.*\)", "", typ).replace("[]", "").strip().split(".")[-1]
        ident = sql.Identifier(alias, col)
        return sql.SQL("{}::text").format(ident) if base in _NO_EQUALITY else ident

    def mask_args(self) -> list[str]:
        return [self.mask_key] * self.mask_params  # type: ignore[list-item]


def _base_type(t: str) -> str:
    return re.sub(r"\(\d+(,\s*\d+)?\)", "", t).strip()


def resolve_table(schema: Schema, name: str, cfg: Config) -> Table:
    """Find a table by `name`, `schema.name`, or quoted forms; one-line error when absent."""
    raw = name.strip()
    if "." in raw and not (raw.startswith('"') and raw.endswith('"') and raw.count('"') == 2):
        sch, _, rel = raw.partition(".")
        candidates = [(sch.strip('"'), rel.strip('"'))]
    else:
        candidates = [(s, raw.strip('"')) for s in cfg.schemas]
    for s, rel in candidates:
        for t in schema.tables.values():
            if t.schema_name == s and t.name == rel:
                return t
    return None  # type: ignore[return-value]


def plan_table(
    name: str,
    mschema: Schema,
    rschema: Schema,
    cfg: Config,
    *,
    policy: Policy | None,
    batch_size: int | None,
    binary_unsafe: set[str] | None = None,
) -> TablePlan:
    mt = resolve_table(mschema, name, cfg)
    if mt is None:
        raise CopyError(f"table {name} not found on the master (schemas: {', '.join(cfg.schemas)})")
    rt = None
    for t in rschema.tables.values():
        if t.schema_name == mt.schema_name and t.name == mt.name:
            rt = t
    qualified = f"{mt.schema_name}.{mt.name}"
    if rt is None:
        raise CopyError(f"table {qualified} does not exist on the replica: run `replicator migrate` first")
    tcfg = cfg.table(qualified) if cfg.table(qualified) != TableConfig() else cfg.table(mt.name)
    pol = policy or tcfg.policy
    # configured renames, master column -> replica column, for error messages
    to_replica = {m: r for r, m in tcfg.renames.items()}
    mcols, rcols, types = [], [], []
    for col in mt.columns.values():
        if col.generated:
            continue  # computed on each side
        rname = tcfg.replica_column(col.name, rt.columns)
        rcol = rt.columns.get(rname)
        if rcol is None:
            raise CopyError(
                f"master column {qualified}.{col.name} is missing on the replica"
                + (f" (as {to_replica[col.name]})" if col.name in to_replica else "")
                + ": run `replicator analyze` / `replicator migrate` first"
            )
        if rcol.generated:
            continue
        if _base_type(rcol.type) != _base_type(col.type):
            raise CopyError(
                f"type mismatch for {qualified}.{col.name}: master {col.type}, replica {rcol.type} "
                "(align the replica with `replicator migrate`)"
            )
        mcols.append(col.name)
        rcols.append(rname)
        types.append(col.type)
    for m in tcfg.mask:
        if m not in mcols:
            raise CopyError(f"[tables.{mt.name}.mask]: no copied column {m} on {qualified}")
    key = mt.key_columns()
    plan = TablePlan(
        master=mt, replica=rt, cfg=tcfg, policy=pol,
        batch_size=batch_size or tcfg.batch_size or cfg.batch_size,
        mcols=mcols, rcols=rcols, types=types, select_exprs=[], mask_params=0,
        mask_key=mask_key(cfg), masked=[],
    )
    if key:
        if any(k not in mcols for k in key):
            raise CopyError(f"key of {qualified} ({', '.join(key)}) includes a column that is not copied")
        plan.key_m = key
        plan.key_r = [rcols[mcols.index(k)] for k in key]
        plan.key_types = [types[mcols.index(k)] for k in key]
    elif pol != Policy.REPLACE:
        raise CopyError(
            f"table {qualified} has no primary key or NOT NULL unique index to batch on: copy it with --policy replace"
        )
    for c, t in zip(mcols, types):
        rule = tcfg.mask.get(c)
        if rule is None:
            plan.select_exprs.append(sql.Identifier(c))
            continue
        if rule in ("hash", "phone", "email") and not plan.mask_key:
            raise CopyError(f"{qualified}.{c} is masked with {rule!r} but no mask key: set REPLICATOR_MASK_KEY or mask_key")
        expr, n = mask_expr(rule, c, t, qualified)
        plan.select_exprs.append(expr)
        plan.mask_params += n
        plan.masked.append(c)
        if c in plan.key_m:
            plan.key_masked = True
    if tcfg.cursor:
        if tcfg.cursor not in mt.columns:
            raise CopyError(f"[tables.{mt.name}] cursor column {tcfg.cursor} does not exist on {qualified}")
        plan.cursor = tcfg.cursor
        plan.cursor_type = mt.columns[tcfg.cursor].type
    if binary_unsafe and set(mcols) & binary_unsafe:
        plan.binary = False
    return plan
