"""Rows of managed tables (Supabase's `auth`, `storage`, ...) that the copied tables reference.

A project's `public.profiles.id` references `auth.users (id)`: a replica that gets the profiles but not
the users has foreign keys that cannot hold. `copy --all` therefore also copies the managed tables
that copied tables reference (and only those), with their secrets masked unless the config says
otherwise for a column: password hashes and tokens are replaced by '' (NULL stays NULL: Supabase's
auth server reads these columns as strings), so a replica never holds credentials that work on
production. Other personal data (emails, phones, metadata) is the user's call, with `[tables.X.mask]`.
"""

from __future__ import annotations

import re

from ..config import FixedValue
from ..introspect import MANAGED_SCHEMAS, Schema, Table

_SECRET = re.compile(r"^encrypted_password$|token", re.IGNORECASE)
_TEXTLIKE = re.compile(r"^(text|character varying|varchar|character|char|bpchar)\b")


def referenced_managed_tables(schema: Schema, tables: list[Table]) -> list[str]:
    """Quoted keys of tables in managed schemas that ``tables`` reference through foreign keys."""
    out = []
    for t in tables:
        for fk in t.foreign_keys:
            ref = fk.referenced_table or ""
            if ref.split(".", 1)[0].strip('"') in MANAGED_SCHEMAS and ref not in out:
                out.append(ref)
    return out


def default_masks(t: Table) -> dict[str, FixedValue]:
    """Secret columns of a managed table, masked to '' unless configured otherwise."""
    if t.schema_name not in MANAGED_SCHEMAS:
        return {}
    return {c.name: FixedValue(value="") for c in t.columns.values()
            if _SECRET.search(c.name) and _TEXTLIKE.match(c.type) and not c.generated}
