"""Load the catalog queries kept as ``.sql`` files next to this module."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """Return the text of ``sql/<name>.sql``."""
    return resources.files(__package__).joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def available() -> list[str]:
    """Names of every bundled query."""
    return sorted(
        p.name.removesuffix(".sql")
        for p in resources.files(__package__).joinpath("sql").iterdir()
        if p.name.endswith(".sql")
    )
