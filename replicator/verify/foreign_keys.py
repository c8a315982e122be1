"""Foreign keys on the replica: for every foreign key of the master's schema, count the replica's
orphan rows with an anti-join (whether or not the replica declares the constraint) and show a few."""

from __future__ import annotations

from psycopg import sql

from ..introspect import Constraint
from .context import Sides, TablePair, fetchall
from .model import VerifyReport


def orphan_query(pair: TablePair, parent: TablePair, fk: Constraint, examples: int) -> tuple[sql.Composed, list[str]]:
    child_cols = [pair.columns[c] for c in fk.columns]
    parent_cols = [parent.columns[c] for c in fk.referenced_columns or []]
    key = pair.key_columns()
    shown = [pair.columns[c] for c in key] if key else []
    shown += [c for c in child_cols if c not in shown]
    c_ref = [sql.SQL("c.{}").format(sql.Identifier(c)) for c in child_cols]
    if (fk.match or "SIMPLE").upper() == "FULL":
        present = sql.SQL("NOT ({})").format(sql.SQL(" AND ").join(sql.SQL("{} IS NULL").format(x) for x in c_ref))
    else:
        present = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(x) for x in c_ref)
    join = sql.SQL(" AND ").join(
        sql.SQL("p.{} = {}").format(sql.Identifier(pc), cc) for pc, cc in zip(parent_cols, c_ref)
    )
    cols = sql.SQL(", ").join(sql.SQL("c.{}::text").format(sql.Identifier(c)) for c in shown)
    order = sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in shown)
    return sql.SQL(
        "SELECT count(*) OVER () AS orphans, {cols} FROM {child} AS c "
        "WHERE {present} AND NOT EXISTS (SELECT 1 FROM {parent} AS p WHERE {join}) "
        "ORDER BY {order} LIMIT {limit}"
    ).format(cols=cols, child=pair.replica_ident, present=present, parent=parent.replica_ident, join=join,
             order=order, limit=sql.Literal(max(examples, 1))), shown


def _clone_for_a_partition(fk: Constraint, pair: TablePair, pairs: dict[str, TablePair]) -> bool:
    """``fk`` references a partition, and the table also has the same key to a table that partition is
    part of (the key PostgreSQL cloned it from)."""
    if not fk.inherited:
        return False
    ancestors, key = set(), fk.referenced_table
    while key in pairs and pairs[key].master.partition_of and key not in ancestors:
        key = pairs[key].master.partition_of
        ancestors.add(key)
    return any(other.columns == fk.columns and other.referenced_table in ancestors
               for other in pair.master.foreign_keys if other is not fk)


def check_foreign_keys(report: VerifyReport, sides: Sides, pair: TablePair, pairs: dict[str, TablePair],
                       examples: int) -> None:
    for fk in sorted(pair.master.foreign_keys, key=lambda c: c.name):
        if _clone_for_a_partition(fk, pair, pairs):
            # PostgreSQL's own copy of a foreign key to a partitioned table, one per partition of it: each
            # sees only its partition's rows, so the rows in the others would read as orphans. The key
            # itself, to the partitioned table, is checked.
            continue
        base = dict(constraint=fk.name, columns=fk.columns, references=fk.referenced_table,
                    referenced_columns=fk.referenced_columns)
        parent = pairs.get(fk.referenced_table or "")
        missing = [c for c in fk.columns if c not in pair.columns]
        if parent is not None:
            missing += [f"{parent.label}.{c}" for c in fk.referenced_columns or [] if c not in parent.columns]
        if parent is None or missing:
            why = f"{fk.referenced_table} is not on the replica" if parent is None else f"missing on the replica: {', '.join(missing)}"
            report.add("foreign_keys", "skip", f"{fk.name}: {why}", pair.label, **base)
            continue
        query, shown = orphan_query(pair, parent, fk, examples)
        with sides.replica.transaction():
            rows = fetchall(sides.replica, query)
        child_cols = [pair.columns[c] for c in fk.columns]
        declared = any(
            r.columns == child_cols and r.referenced_table == parent.replica.key for r in pair.replica.foreign_keys
        )
        orphans = rows[0][0] if rows else 0
        base["declared_on_replica"] = declared
        if orphans == 0:
            report.add("foreign_keys", "pass", f"{fk.name}: no orphans", pair.label, orphans=0, **base)
        else:
            ex = [dict(zip(shown, r[1:])) for r in rows[:examples]]
            report.add("foreign_keys", "fail",
                       f"{fk.name}: {orphans} orphan row(s) ({', '.join(fk.columns)} → {parent.label})",
                       pair.label, orphans=orphans, examples=ex, **base)
