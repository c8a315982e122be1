"""`replicator init`: write a commented starter replicator.toml from what the master holds."""

from __future__ import annotations

import os
from pathlib import Path

import click

from . import main


@main.command("init")
@click.option("--master", "master", metavar="URL", help="master URL (or REPLICATOR_MASTER_URL).")
@click.option("--replica", "replica", metavar="URL",
              help="replica URL (or REPLICATOR_REPLICA_URL): optional, for rename suggestions.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("replicator.toml"), show_default=True, metavar="FILE", help="the file to write.")
@click.option("--schema", "schemas", multiple=True, metavar="NAME", help="schema to compare (repeatable; default public).")
@click.option("--all-schemas", is_flag=True,
              help="every schema except PostgreSQL's, Supabase's managed ones and _replicator.")
@click.option("--replica-of-new-master", is_flag=True,
              help="accept a replica whose marker names another master (nothing is written to it).")
def init_cmd(master, replica, config_path: Path, schemas, all_schemas, replica_of_new_master) -> None:
    """Read the master (read-only) and write a commented starter replicator.toml.

    Refuses to overwrite an existing file."""
    from .. import identity
    from ..config import MASTER_ENV, REPLICA_ENV, Config, require_url
    from ..connect import open_master, open_replica, redact
    from ..errors import ConfigError
    from ..guard import MasterGuard
    from ..introspect import introspect
    from ..introspect.core import MANAGED_SCHEMAS
    from ..starter import starter_config

    if config_path.exists():
        raise ConfigError(f"{config_path} already exists: not overwriting it (remove it, or write another file with "
                          "--config FILE)")
    if schemas and all_schemas:
        raise click.UsageError("use either --schema or --all-schemas")
    cfg = Config(master_url=master or os.environ.get(MASTER_ENV), replica_url=replica or os.environ.get(REPLICA_ENV))
    master_url = require_url(cfg, "master")
    wanted = list(schemas) or ["public"]
    m = open_master(master_url, MasterGuard())
    r = None
    try:
        if cfg.replica_url:
            r = open_replica(cfg.replica_url)
            identity.check_pair(m, r, allow_new_master=replica_of_new_master)
        ms = introspect(m, schemas=wanted, all_schemas=all_schemas)
        if absent := ms.absent_schemas():
            raise ConfigError(f"schema {', '.join(absent)} does not exist on the master")
        with m.transaction():
            managed = [n for (n,) in m.execute(
                "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname = ANY(%s) ORDER BY 1",
                (sorted(MANAGED_SCHEMAS),)).fetchall()]
        rs = introspect(r, schemas=ms.schemas) if r is not None else None
    finally:
        m.close()
        if r is not None:
            r.close()
    starter = starter_config(ms, rs, master_address=redact(master_url),
                             replica_address=redact(cfg.replica_url) if cfg.replica_url else None,
                             managed=managed, schemas=ms.schemas)
    try:
        with open(config_path, "x", encoding="utf-8") as f:  # "x": never over a file that appeared meanwhile
            f.write(starter.text)
    except FileExistsError:
        raise ConfigError(f"{config_path} already exists: not overwriting it") from None
    click.echo(f"wrote {config_path}: {starter.tables} table(s), default policy master-wins"
               + (f"; {len(starter.keyless)} without a key set to mirror" if starter.keyless else "")
               + (f"; {starter.masks} column(s) that look like personal data proposed for masking (commented)"
                  if starter.masks else "")
               + (f"; {starter.renames} rename(s) suggested (commented)" if starter.renames else "")
               + (f"; managed schemas noted: {', '.join(starter.managed)}" if starter.managed else ""))
    if not cfg.replica_url:
        click.echo("no replica given: no rename suggestions (pass --replica to get them)")
    click.echo(f"next: review {config_path}, then run `replicator sync`")
