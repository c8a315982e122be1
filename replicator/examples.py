"""The sample databases: a production-shaped master and a drifted replica.

The files live in ``schemas/examples/`` at the root of the repository (``master.sql``,
``replica.sql``, ``replicator.toml``, and ``generate.py`` which writes the two ``.sql`` files).
They are not package data: ``example_path`` finds them relative to this module, so the
functions here (and ``replicator demo``) work from a checkout or an editable install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import psycopg

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "schemas" / "examples"

Which = Literal["master", "replica"]


def example_path(name: str) -> Path:
    """Path of a file in ``schemas/examples/`` (``"master.sql"``, ``"replicator.toml"``, ...).

    ``"master"`` and ``"replica"`` are accepted as short names for their ``.sql`` files.
    """
    if name in ("master", "replica"):
        name += ".sql"
    path = EXAMPLES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"example file not found: {path} (the examples ship with a source checkout, "
            "in schemas/examples/)"
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
