"""The `replicator` command line: thin click commands over the library.

Each command lives in its own module and registers itself on `main`. Whatever goes wrong in a way a
user can act on is printed as ONE line on stderr, scrubbed of secrets (`errors.scrub`), with exit
code 2: `ReplicatorError`, database errors (naming the side they came from), a connection lost while
in use, files that cannot be read or written, and click's usage errors (naming the option). Ctrl-C
exits 130 with one line, at any moment (see also `replicator.__main__`, which covers start-up).
"""

from __future__ import annotations

import logging
import sys

import click

from ..errors import ConnectError, ReplicatorError, one_line

# psycopg reports some errors it ignores while cleaning up (a COPY cut by a lost connection) through
# logging; the exception that follows says it in one line, so these never reach the terminal raw.
logging.getLogger("psycopg").addHandler(logging.NullHandler())
# psycopg, pydantic, sqlglot and rich are imported by the commands that need them, not here: a
# `--help` (or a command that never connects) does not wait for them.

USAGE_EXIT = 2
INTERRUPTED_EXIT = 130

#: Added to the interruption line per command: what happens when it is run again.
RERUN_HINTS = {
    "copy": "rerun the same copy to resume from its last committed batch",
    "sync": "rerun the same sync to resume (replicator status shows the command)",
}


def fail(message: str, code: int = USAGE_EXIT) -> None:
    click.echo(one_line(message), err=True)
    sys.exit(code)


def reader_gone() -> None:
    """stdout's reader left (`replicator analyze | head`): stop quietly, as a tool killed by SIGPIPE
    would, with its exit status (128 + 13); the rest of the output has nowhere to go."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the final flush must not fail again
    except OSError:
        pass
    sys.exit(141)


def interrupted(command: str | None = None) -> None:
    hint = RERUN_HINTS.get(command or "")
    fail("interrupted" + (f": {hint}" if hint else ""), INTERRUPTED_EXIT)


def error_line(e: BaseException, command: str | None = None) -> str:
    """The one line for an error raised by a command."""
    import psycopg

    from ..connect import describe, error_side, lost_connections, timeout_hint

    lost = lost_connections()
    if isinstance(e, ConnectError):  # already says which connection, and where
        hint = timeout_hint(e)  # (a limit the URL's options set, met by the first statements)
        return f"error: {e}" + (f"; {hint}" if hint else "")
    if lost and _is_connection_error(e):
        hint = timeout_hint(lost[0].reason) or RERUN_HINTS.get(command or "")
        return f"error: {lost[0].message()}" + (f"; {hint}" if hint else "")
    if isinstance(e, ReplicatorError):
        hint = timeout_hint(e)
        return f"error: {e}" + (f"; {hint}" if hint else "")
    if isinstance(e, psycopg.Error):
        side = error_side(e)
        hint = timeout_hint(e)
        return f"error: {side + ': ' if side else ''}{describe(e)}" + (f"; {hint}" if hint else "")
    if isinstance(e, OSError):
        # Reports, plans and backups are written under --out-dir: a path that cannot be created or
        # written is a usage error, named with its path.
        where = f"{e.filename}: " if e.filename else ""
        return f"error: {where}{e.strerror or e}"
    return f"error: {e}"


def _is_connection_error(e: BaseException | None) -> bool:
    import psycopg

    from ..connect import lost_connections

    for _ in range(10):
        if e is None:
            return False
        if isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
        if isinstance(e, ReplicatorError) and lost_connections():
            # The library wrapped the database error (copy reports it in its result).
            cause = e.__cause__ or e.__context__
            if cause is None or _is_connection_error(cause):
                return True
        e = e.__cause__ or e.__context__
    return False


def usage_line(e: click.ClickException) -> str:
    ctx = getattr(e, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see '{ctx.command_path} --help')" if isinstance(e, click.UsageError) and ctx is not None else ""
    return f"error: {where}{e.format_message()}{hint}"


class ReplicatorGroup(click.Group):
    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        if "replicator.connect" in sys.modules:  # a previous command in this process (tests) connected
            sys.modules["replicator.connect"].forget_lost_connections()
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort as e:
            if isinstance(e.__cause__, KeyboardInterrupt) or isinstance(e.__context__, KeyboardInterrupt):
                interrupted()
            fail("aborted", 1)
        except click.ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `replicator`: the help itself
                e.show()
                sys.exit(e.exit_code)
            fail(usage_line(e), USAGE_EXIT)
        except KeyboardInterrupt:
            interrupted()
        except BrokenPipeError:
            reader_gone()
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            reader_gone()
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            interrupted(ctx.invoked_subcommand)
        except BrokenPipeError:
            reader_gone()
        except Exception as e:
            if not _expected(e):
                raise
            code = e.exit_code if isinstance(e, ReplicatorError) else USAGE_EXIT
            fail(error_line(e, ctx.invoked_subcommand), code)


def _expected(e: BaseException) -> bool:
    """An error a user can act on: ours, the database's (psycopg is loaded if a command connected), a file."""
    if isinstance(e, (ReplicatorError, OSError)):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(e, psycopg.Error)


@click.group(cls=ReplicatorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="replicator")
def main() -> None:
    """Keep a development PostgreSQL (the replica) faithful to a production master, read-only on the master."""


# Importing the command modules registers them on `main`.
from . import commands  # noqa: E402,F401
