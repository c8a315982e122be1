"""Options every command shares, and the run context they produce."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import click

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Config


@dataclass
class RunContext:
    config: "Config"
    out_dir: Path

    @property
    def reports_dir(self) -> Path:
        return self.out_dir / "reports"

    @property
    def schemas_dir(self) -> Path:
        return self.out_dir / "schemas"

    def ensure_out_dir(self) -> None:
        """Create --out-dir before any work, so an unusable path fails in a second, not after a long run."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--out-dir {self.out_dir}: {e.strerror}") from None
        if not os.access(self.out_dir, os.W_OK | os.X_OK):
            raise ConfigError(f"--out-dir {self.out_dir}: not writable")


def common_options(fn):
    """--master, --replica, --config, --out-dir, --replica-of-new-master; passes `run: RunContext` to the command."""

    @click.option("--master", "master", metavar="URL", help="master URL (or REPLICATOR_MASTER_URL).")
    @click.option("--replica", "replica", metavar="URL", help="replica URL (or REPLICATOR_REPLICA_URL).")
    @click.option("--config", "config_path", type=click.Path(dir_okay=False), metavar="FILE",
                  help="config file (default: ./replicator.toml if present).")
    @click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                  show_default=True, help="where reports/ and schemas/ are written.")
    @click.option("--replica-of-new-master", is_flag=True,
                  help="accept a replica whose marker names another master (and re-point the marker when writing).")
    @functools.wraps(fn)
    def wrapper(*args, master, replica, config_path, out_dir, replica_of_new_master, **kwargs):
        from ..config import load_config  # pydantic: only once a command runs

        cfg = load_config(config_path, master=master, replica=replica, replica_of_new_master=replica_of_new_master)
        return fn(*args, run=RunContext(config=cfg, out_dir=out_dir), **kwargs)

    return wrapper


def schema_options(fn):
    """--schema / --all-schemas / --with-privileges: which part of both databases a command looks at."""
    fn = click.option("--with-privileges", is_flag=True, help="compare (and align) grants too.")(fn)
    fn = click.option("--all-schemas", is_flag=True,
                      help="every schema except PostgreSQL's, Supabase's managed ones and _replicator.")(fn)
    fn = click.option("--schema", "schemas", multiple=True, metavar="NAME",
                      help="schema to compare (repeatable; default from config).")(fn)
    return fn


def selection_options(fn):
    """--table / --exclude: which tables the command works on (globs; see replicator/selection.py)."""
    fn = click.option("--exclude", "exclude", multiple=True, metavar="PATTERN",
                      help="leave out the tables matching this glob (repeatable; added to the config's exclude).")(fn)
    fn = click.option("--table", "tables", multiple=True, metavar="PATTERN",
                      help="only the tables matching this name or glob (repeatable; replaces the config's include).")(fn)
    return fn


def subset_options(fn):
    """--subset / --with-referencing: a referentially complete part of the master (replicator/subset.py)."""
    fn = click.option("--with-referencing", "with_referencing", is_flag=True, default=None,
                      help="--subset: also the rows that reference the chosen ones, transitively.")(fn)
    fn = click.option("--subset", "subset", multiple=True, metavar='"TABLE: CONDITION"',
                      help="only these rows and every row they reference through foreign keys (repeatable; "
                           "replaces the config's [subset] start).")(fn)
    return fn
