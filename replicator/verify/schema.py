"""Schema checks: the replica's structure against the master's (`diff_schemas`), and the master's
structure against the snapshot stored by `replicator analyze` (`schemas/master-schema.json`).

Master vs replica: differences that break or falsify a copy fail (a missing table or column, a
different type, nullability, identity/generated column, a missing or different constraint, a missing
enum label...); everything else the replica may legitimately have on its own (extra tables, columns,
indexes, triggers, defaults) is a warning; comments, grants and configured renames are listed but do
not count.

Master vs snapshot: any structural change is a **warning**, never a failure. The replica did nothing
wrong; the point is that the team hears about a new table, column or type change on the master before
the next copy breaks on it. Refresh the snapshot with `replicator analyze` once the change is handled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..diff import Change, diff_schemas, diff_snapshot
from ..introspect import Schema
from .model import Status, VerifyReport

FAIL_KINDS = frozenset({
    "schema_missing", "extension_missing", "enum_missing", "enum_labels", "domain_missing", "domain_changed",
    "composite_missing", "composite_changed", "range_missing", "range_changed",
    "table_missing", "table_changed", "column_missing", "column_type", "column_nullable", "column_identity",
    "column_generated", "column_collation", "constraint_missing", "constraint_changed", "view_missing",
})
# Everything else is a warning, including what the compared schemas use outside themselves
# (external_missing: auth.users on a plain replica; role_missing): the foreign keys check fails on
# its own when rows really point nowhere.
IGNORED_KINDS = frozenset({"column_renamed", "grant_missing", "grant_extra"})


def _severity(c: Change) -> Status:
    kind = c.kind
    if kind in IGNORED_KINDS or kind.endswith("_comment"):
        return "pass"
    if kind == "column_identity" and "options" in c.diff:
        return "warn"  # same identity, other sequence options (START WITH, CACHE...): rows copy fine
    return "fail" if kind in FAIL_KINDS else "warn"


def _brief(c: Change) -> dict[str, Any]:
    return {"kind": c.kind, "object": c.object, "detail": c.detail}


def _label(schema: Schema, key: str | None) -> str | None:
    if key is None:
        return None
    t = schema.tables.get(key)
    return f"{t.schema_name}.{t.name}" if t else key


def check_schema(report: VerifyReport, master: Schema, replica: Schema, renames: dict[str, dict[str, str]],
                 tables: set[str] | None) -> list[Change]:
    """One check per table with differences (plus one for objects outside tables)."""
    changes = diff_schemas(master, replica, renames)
    groups: dict[str | None, list[Change]] = {}
    for c in changes:
        if tables is not None and c.table not in tables:
            continue
        groups.setdefault(c.table, []).append(c)
    if not any(_severity(c) != "pass" for cs in groups.values() for c in cs):
        report.add("schema", "pass", f"replica structure matches the master ({len(changes)} ignorable difference(s): "
                   "comments, grants, configured renames)" if changes else "replica structure matches the master",
                   None, changes=[_brief(c) for cs in groups.values() for c in cs])
        return changes
    for key, cs in sorted(groups.items(), key=lambda kv: (kv[0] is not None, kv[0] or "")):
        sev = [_severity(c) for c in cs]
        status: Status = "fail" if "fail" in sev else "warn" if "warn" in sev else "pass"
        counted = [c for c, s in zip(cs, sev) if s != "pass"]
        summary = "; ".join(c.detail if key else f"{c.object}: {c.detail}" for c in counted[:5])
        if len(counted) > 5:
            summary += f"; … {len(counted) - 5} more"
        report.add("schema", status, summary or "only ignorable differences", _label(master, key) or _label(replica, key),
                   changes=[dict(_brief(c), severity=s) for c, s in zip(cs, sev)])
    return changes


def load_snapshot(path: Path) -> Schema | str:
    """The stored master snapshot, or a one-line reason it cannot be used."""
    if not path.is_file():
        return f"no snapshot at {path} (run `replicator analyze` to store one)"
    try:
        return Schema.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError, OSError) as e:
        return f"snapshot {path} is unreadable: {str(e).splitlines()[0]}"


def check_snapshot(report: VerifyReport, master: Schema, path: Path, tables: set[str] | None) -> None:
    snap = load_snapshot(path)
    if isinstance(snap, str):
        report.add("schema_snapshot", "warn", snap, None, snapshot=str(path))
        return
    changes = diff_snapshot(snap, master)
    if tables is not None:
        changes = [c for c in changes if c.table is None or c.table in tables]

    def reword(c: Change) -> str:
        d = c.detail.replace("missing on replica", "added on the master").replace("only on replica", "removed from the master")
        return d.replace("on replica", "in the snapshot")

    if not changes:
        report.add("schema_snapshot", "pass", "master structure unchanged since the snapshot", None,
                   snapshot=str(path), snapshot_server_version=snap.server_version)
        return
    groups: dict[str | None, list[Change]] = {}
    for c in changes:
        groups.setdefault(c.table, []).append(c)
    for key, cs in sorted(groups.items(), key=lambda kv: (kv[0] is not None, kv[0] or "")):
        summary = "; ".join(reword(c) if key else f"{c.object}: {reword(c)}" for c in cs[:5])
        if len(cs) > 5:
            summary += f"; … {len(cs) - 5} more"
        report.add("schema_snapshot", "warn", "master changed since the snapshot: " + summary,
                   _label(master, key) or _label(snap, key), snapshot=str(path),
                   changes=[dict(_brief(c), detail=reword(c)) for c in cs])
