"""The `replicator` console entry point (also `python -m replicator`).

Importing the command line pulls in click, psycopg, pydantic, sqlglot and rich, which takes a
noticeable moment: a Ctrl-C during those imports must exit 130 with one line like any other
interruption, not with a traceback, so the imports happen here, inside the handler.
"""

from __future__ import annotations

import signal
import sys

INTERRUPTED_EXIT = 130


def _interrupted() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while we leave changes nothing
    sys.stderr.write("interrupted\n")
    sys.exit(INTERRUPTED_EXIT)


def main() -> None:
    try:
        from replicator.cli import main as cli
    except KeyboardInterrupt:
        _interrupted()
    try:
        cli()
    except KeyboardInterrupt:
        _interrupted()
    finally:
        # The command has decided the exit code: a Ctrl-C during interpreter shutdown (closing
        # connections, joining threads) must not print a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    main()
