"""Sequences and identity columns on the replica: the next value handed out must be past the data.

A sequence behind its column's max (typical after a data copy that did not `setval`) makes the next
insert on the replica fail with a duplicate key.
"""

from __future__ import annotations

from psycopg import sql

from ..introspect import Schema
from .context import Sides, TablePair, fetchone
from .model import VerifyReport


def check_sequences(report: VerifyReport, sides: Sides, replica: Schema, pairs: list[TablePair]) -> None:
    by_replica_key = {p.replica.key: p for p in pairs}
    for seq in sorted(replica.sequences.values(), key=lambda s: s.key):
        pair = by_replica_key.get(seq.owned_by_table or "")
        if pair is None or not seq.owned_by_column:
            continue
        col = seq.owned_by_column
        with sides.replica.transaction():
            last_value, is_called = fetchone(
                sides.replica,
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(seq.schema_name, seq.name)),
            )  # type: ignore[misc]
            extreme = "max" if seq.increment > 0 else "min"
            (edge,) = fetchone(
                sides.replica,
                sql.SQL("SELECT {}({}) FROM {}").format(sql.SQL(extreme), sql.Identifier(col), pair.replica_ident),
            )  # type: ignore[misc]
        next_value = last_value + seq.increment if is_called else last_value
        evidence = dict(sequence=seq.key, column=col, identity=seq.identity, last_value=last_value,
                        is_called=is_called, next_value=next_value, **{f"column_{extreme}": edge})
        if edge is None:
            report.add("sequences", "pass", f"{seq.key}: table empty, next value {next_value}", pair.label, **evidence)
            continue
        try:
            edge_int = int(edge)
        except (TypeError, ValueError):
            report.add("sequences", "skip", f"{seq.key}: {col} is not an integer column", pair.label, **evidence)
            continue
        ahead = next_value > edge_int if seq.increment > 0 else next_value < edge_int
        if ahead:
            report.add("sequences", "pass", f"{seq.key}: next value {next_value} > {extreme}({col}) {edge_int}",
                       pair.label, **evidence)
        else:
            fix = sql.SQL("SELECT setval({}, (SELECT {}({}) FROM {}));").format(
                sql.Literal(sql.Identifier(seq.schema_name, seq.name).as_string(sides.replica)), sql.SQL(extreme),
                sql.Identifier(col), pair.replica_ident).as_string(sides.replica)
            report.add("sequences", "fail",
                       f"{seq.key}: next value {next_value} is not past {extreme}({col}) = {edge_int}",
                       pair.label, fix=fix, **evidence)
