"""`replicator.toml` + environment, validated with pydantic.

Precedence for the two URLs: command-line flag > environment (`REPLICATOR_MASTER_URL`,
`REPLICATOR_REPLICA_URL`) > `master_url`/`replica_url` in the config file. A URL may be any libpq
connection string (URL or `key=value`), so `PG*` variables, `~/.pgpass` and `sslmode` work as usual;
passwords belong there rather than in the config file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Container, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from .errors import ConfigError

DEFAULT_CONFIG_FILE = "replicator.toml"
MASTER_ENV = "REPLICATOR_MASTER_URL"
REPLICA_ENV = "REPLICATOR_REPLICA_URL"

# The policies and the bounds of the numeric settings live where the command line can read them cheaply.
from .constants import MAX_BATCH_BYTES, MAX_BATCH_ROWS, MAX_JOBS, MAX_LAG_SECONDS, Policy  # noqa: E402,F401


class FixedValue(BaseModel):
    """Mask rule that replaces every value of a column with one literal."""

    model_config = ConfigDict(extra="forbid")
    value: str | int | float | bool


MaskRule = Annotated[
    Union[Literal["null", "hash", "phone", "email"], FixedValue],
    Field(description='"null", "hash", "phone", "email", or { value = "..." }'),
]


def check_condition(v: str) -> str:
    """One SQL boolean expression: no statement, no second statement behind a semicolon. (Every
    statement it ends up in still passes the master guard.)"""
    import sqlglot
    from sqlglot import exp

    try:
        parsed = sqlglot.parse(f"SELECT 1 WHERE ({v})", read="postgres")
    except sqlglot.errors.SqlglotError as e:
        raise ValueError(f"not a SQL condition: {str(e).splitlines()[0]}") from None
    if len(parsed) != 1 or not isinstance(parsed[0], exp.Select):
        raise ValueError("must be one SQL condition, such as `store_id = 1`")
    return v


class TableConfig(BaseModel):
    """Per-table settings under `[tables.<name>]` (name as on the master, optionally schema-qualified)."""

    model_config = ConfigDict(extra="forbid")

    policy: Policy | None = Field(None, description="conflict policy for `copy` into a non-empty table")
    renames: dict[str, str] = Field(
        default_factory=dict,
        description="replica column name = master column name; emitted as RENAME COLUMN, honoured by copy",
    )
    cursor: str | None = Field(None, description="column for `copy --incremental` (e.g. updated_at)")
    lag_seconds: int = Field(0, ge=0, le=MAX_LAG_SECONDS,
                             description="incremental: re-read rows this many seconds behind the watermark")
    mask: dict[str, MaskRule] = Field(default_factory=dict, description="column = masking rule")
    where: str | None = Field(
        None, description="copy only the master rows matching this SQL condition (applied in the master's SELECT)")
    batch_size: int | None = Field(None, gt=0, le=MAX_BATCH_ROWS, description="rows per batch for this table")

    @field_validator("where")
    @classmethod
    def _one_condition(cls, v: str | None) -> str | None:
        return v if v is None else check_condition(v)

    def replica_column(self, master_column: str, replica_columns: Container[str]) -> str:
        """The replica's name for a master column.

        A rename applies while the replica still has the old name; once `replicator migrate` has
        renamed the column, it carries the master's name."""
        for old, new in self.renames.items():
            if new == master_column and old in replica_columns:
                return old
        return master_column


class CopySettings(BaseModel):
    """`[copy]`: defaults for `replicator copy` (per-table settings win over them)."""

    model_config = ConfigDict(extra="forbid")

    policy: Policy | None = Field(
        None, description="conflict policy for every table without one of its own (a table set to replace keeps it)")
    jobs: int = Field(1, ge=1, le=MAX_JOBS, description="connection pairs: tables copied at once, and the page ranges of a "
                     "table copied into an empty replica, or the key ranges of one compared without a baseline, shared")


def parse_subset_start(text: str) -> tuple[str, str]:
    """``"clients: id = 2"`` -> ``("clients", "id = 2")``: a table (``name``, ``schema.name``, quoted as in
    SQL) and one SQL condition, separated by the first colon outside double quotes that is not part
    of a ``::`` cast."""
    i, quoted = 0, False
    while i < len(text):
        c = text[i]
        if c == '"':
            quoted = not quoted
        elif c == ":" and not quoted:
            if text[i + 1:i + 2] == ":":
                i += 2
                continue
            table, condition = text[:i].strip(), text[i + 1:].strip()
            if not table or not condition:
                break
            try:
                return table, check_condition(condition)
            except ValueError as e:
                raise ValueError(f"{text!r}: {e}") from None
        i += 1
    raise ValueError(f"{text!r}: write \"table: condition\", e.g. \"clients: id = 2\"")


class SubsetConfig(BaseModel):
    """`[subset]`: copy (and verify) a referentially complete part of the master: the rows chosen by
    ``start`` plus every row they reference through foreign keys, transitively; with ``referencing``
    also the rows that reference them."""

    model_config = ConfigDict(extra="forbid")

    start: list[str] = Field(default_factory=list, description='rows to start from, "table: SQL condition"')
    referencing: bool = Field(False, description="also the rows that reference the chosen ones, transitively")

    @field_validator("start")
    @classmethod
    def _starts(cls, v: list[str]) -> list[str]:
        for s in v:
            parse_subset_start(s)
        return v


class ManagedConfig(BaseModel):
    """`[managed]`: what `migrate` may create outside the compared schemas so that the replica can
    hold them (a Supabase master's platform roles, its `extensions` schema, `auth.users`...)."""

    model_config = ConfigDict(extra="forbid")

    create_roles: bool = Field(True, description="create roles named by policies/grants, NOLOGIN (cluster-wide)")
    create_extensions: bool = Field(
        True, description="create extensions kept outside the compared schemas, and their schema (`extensions`)")
    create_referenced: bool = Field(
        True, description="create tables, functions and triggers the compared schemas use elsewhere (`auth.users`)")


class Config(BaseModel):
    """The whole `replicator.toml`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    master_url: str | None = Field(None, description="libpq URL of the master (prefer the environment)")
    replica_url: str | None = Field(None, description="libpq URL of the replica (prefer the environment)")
    schemas: list[str] = Field(default_factory=lambda: ["public"], description="schemas to compare and copy")
    batch_size: int = Field(50_000, gt=0, le=MAX_BATCH_ROWS, description="default rows per copy batch (and checkpoint)")
    batch_bytes: int = Field(64 * 1024 * 1024, gt=0, le=MAX_BATCH_BYTES,
                             description="upper bound of one copy batch, in bytes")
    mask_key: str | None = Field(
        None, description="key for `hash` masking; default from REPLICATOR_MASK_KEY (keep it out of git)"
    )
    copy_: CopySettings = Field(default_factory=CopySettings, alias="copy")
    # Which tables every command works on (globs; see replicator/selection.py). `tables` itself is
    # the per-table settings below, so the list is called `include`.
    include: list[str] = Field(default_factory=list, description="table globs every command works on (default: all)")
    exclude: list[str] = Field(default_factory=list, description="table globs every command leaves out")
    subset: SubsetConfig = Field(default_factory=SubsetConfig)
    tables: dict[str, TableConfig] = Field(default_factory=dict)
    managed: ManagedConfig = Field(default_factory=ManagedConfig)

    # --replica-of-new-master, for one run only: never a file setting, re-pointing a replica that is
    # marked for another master must be asked for each time.
    _replica_of_new_master: bool = PrivateAttr(default=False)

    @property
    def replica_of_new_master(self) -> bool:
        return self._replica_of_new_master

    @field_validator("schemas")
    @classmethod
    def _schemas_not_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must name at least one schema")
        return v

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        from .selection import Pattern

        for p in v:
            try:
                Pattern.parse(p)
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return v

    def table(self, name: str) -> TableConfig:
        """Settings for a table, looked up by bare or `schema.name` key; defaults when absent."""
        if name in self.tables:
            return self.tables[name]
        bare = name.split(".", 1)[1] if name.startswith("public.") else None
        if bare and bare in self.tables:
            return self.tables[bare]
        return TableConfig()


def load_config(
    path: str | Path | None = None,
    *,
    master: str | None = None,
    replica: str | None = None,
    replica_of_new_master: bool = False,
) -> Config:
    """Read the config file (explicit path, or ./replicator.toml if present) and apply env and flags."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
    else:
        p = Path(DEFAULT_CONFIG_FILE)
        p = p if p.is_file() else None
    if p is not None:
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML: {e}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}): TOML files must be UTF-8") from None
        except OSError as e:
            raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise ConfigError(f"{p}: {where}: {err['msg']}") from None
    cfg.master_url = master or os.environ.get(MASTER_ENV) or cfg.master_url
    cfg.replica_url = replica or os.environ.get(REPLICA_ENV) or cfg.replica_url
    cfg._replica_of_new_master = replica_of_new_master
    return cfg


def require_url(cfg: Config, side: Literal["master", "replica"]) -> str:
    url = cfg.master_url if side == "master" else cfg.replica_url
    if not url:
        env = MASTER_ENV if side == "master" else REPLICA_ENV
        raise ConfigError(f"no {side} URL: pass --{side}, set {env}, or {side}_url in {DEFAULT_CONFIG_FILE}")
    return url
