"""Whether two partitions of one parent could claim the same rows, from their bounds as PostgreSQL
prints them (`pg_get_expr(relpartbound)`): `DEFAULT`, `FOR VALUES IN (...)`, `FOR VALUES FROM (...)
TO (...)`, `FOR VALUES WITH (modulus m, remainder r)`.

Used to decide whether a new partition must wait for the drop of one only the replica has. The
answer is "they may" unless the bounds show otherwise: list values compared as written, hash
partitions by their moduli and remainders, single-column ranges whose bounds are both numbers or both
quoted literals (compared as numbers, or byte by byte: right for ISO dates and timestamps, the usual
range keys). A default partition may hold rows of any bound.
"""

from __future__ import annotations

import re
from typing import Any

_LIST = re.compile(r"^FOR VALUES IN \((?P<values>.*)\)$", re.S)
_RANGE = re.compile(r"^FOR VALUES FROM \((?P<lo>.*)\) TO \((?P<hi>.*)\)$", re.S)
_HASH = re.compile(r"^FOR VALUES WITH \(modulus (?P<m>\d+), remainder (?P<r>\d+)\)$")
_ITEM = re.compile(r"\s*('(?:[^']|'')*'|[^,]+)")


def may_overlap(a: str | None, b: str | None) -> bool:
    if not a or not b or "DEFAULT" in (a.strip(), b.strip()):
        return True
    a, b = a.strip(), b.strip()
    la, lb = _LIST.match(a), _LIST.match(b)
    if la and lb:
        return bool(set(_items(la["values"])) & set(_items(lb["values"])))
    ha, hb = _HASH.match(a), _HASH.match(b)
    if ha and hb:
        (m1, r1), (m2, r2) = sorted(((int(ha["m"]), int(ha["r"])), (int(hb["m"]), int(hb["r"]))))
        return r2 % m1 == r1  # PostgreSQL makes every modulus a factor of the next larger one
    ra, rb = _RANGE.match(a), _RANGE.match(b)
    if ra and rb:
        bounds = [_scalar(ra["lo"]), _scalar(ra["hi"]), _scalar(rb["lo"]), _scalar(rb["hi"])]
        if None in bounds or len({type(x[1]) for x in bounds if x[0] == 0}) > 1:
            return True
        alo, ahi, blo, bhi = bounds
        return alo < bhi and blo < ahi  # type: ignore[operator]
    return True


def _items(text: str) -> list[str]:
    return [m.group(1).strip() for m in _ITEM.finditer(text) if m.group(1).strip()]


def _scalar(text: str) -> tuple[int, Any] | None:
    """A single range bound as a comparable (rank, value): MINVALUE < any value < MAXVALUE; None when
    it has several columns or is neither a number nor a quoted literal."""
    items = _items(text)
    if len(items) != 1:
        return None
    item = items[0]
    if item == "MINVALUE":
        return (-1, 0)
    if item == "MAXVALUE":
        return (1, 0)
    if item.startswith("'"):
        return (0, item[1:item.rindex("'")].replace("''", "'").encode())
    try:
        return (0, float(item))
    except ValueError:
        return None
