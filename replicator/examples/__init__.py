"""The sample databases: a production-shaped master and a drifted replica.

The files are package data of ``replicator.examples`` (``master.sql``, ``replica.sql``,
``replicator.toml``, and ``generate.py``, which writes the two ``.sql`` files), read with
``importlib.resources``: they come with every installation (wheel, ``pipx``, editable), so
``replicator demo`` works from any directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import psycopg

#: The directory holding the sample files (a real directory: wheels install unpacked).
EXAMPLES_DIR = Path(str(resources.files(__name__)))

Which = Literal["master", "replica"]


def example_path(name: str) -> Path:
    """Path of a sample file (``"master.sql"``, ``"replicator.toml"``, ...).

    ``"master"`` and ``"replica"`` are accepted as short names for their ``.sql`` files.
    """
    if name in ("master", "replica"):
        name += ".sql"
    path = EXAMPLES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"example file not found: {path} (the package replicator.examples ships master.sql, "
            "replica.sql and replicator.toml: reinstall replicator)"
        )
    return path


def example_sql(which: Which) -> str:
    """The SQL text of the master or replica sample database."""
    if which not in ("master", "replica"):
        raise ValueError(f"which must be 'master' or 'replica', not {which!r}")
    # newline="" keeps the file's bytes as they are (no newline translation).
    with open(example_path(which), encoding="utf-8", newline="") as f:
        return f.read()


def load_example(url_or_conn: str | psycopg.Connection, which: Which) -> None:
    """Create and fill the sample ``master`` or ``replica`` schema in an empty database.

    ``url_or_conn`` is a libpq connection string or an open psycopg connection. The file is
    sent as one multi-statement query, so it is applied atomically. A connection that is not
    in autocommit mode is committed afterwards.
    """
    text = example_sql(which)
    if isinstance(url_or_conn, psycopg.Connection):
        conn = url_or_conn
        conn.execute(text)
        if not conn.autocommit:
            conn.commit()
        return
    with psycopg.connect(url_or_conn, autocommit=True) as conn:
        conn.execute(text)
