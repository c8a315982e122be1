"""The `replicator` command line: thin click commands over the library.

Each command lives in its own module and registers itself on `main`. Errors a user can act on
(`ReplicatorError`, database errors, files that cannot be read or written) are printed as one line
on stderr with exit code 2.
"""

from __future__ import annotations

import sys

import click
import psycopg

from ..connect import describe
from ..errors import ReplicatorError


class ReplicatorGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ReplicatorError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except psycopg.Error as e:
            click.echo(f"error: {describe(e)}", err=True)
            sys.exit(2)
        except OSError as e:
            # Reports, plans and backups are written under --out-dir: a path that cannot be created or
            # written is a usage error, named with its path.
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"error: {where}{e.strerror or e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=ReplicatorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="replicator")
def main() -> None:
    """Keep a development PostgreSQL (the replica) faithful to a production master, read-only on the master."""


# Importing the command modules registers them on `main`.
from . import commands  # noqa: E402,F401
