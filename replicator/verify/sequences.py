"""Sequences on the replica: the next value handed out must be past the data.

The sequences checked are those `replicator copy` advances (`replicator.sequences`): every sequence
feeding a column of a verified table, as an identity, through OWNED BY, or from a DEFAULT calling
nextval() without owning it. A sequence behind its column's max (typical after a data copy that did
not `setval`) makes the next insert on the replica fail with a duplicate key.
"""

from __future__ import annotations

from psycopg import sql

from ..introspect import Schema
from ..sequences import sequence_state, sequence_uses
from .context import Sides, TablePair
from .model import VerifyReport


def check_sequences(report: VerifyReport, sides: Sides, replica: Schema, pairs: list[TablePair]) -> None:
    by_replica_key = {p.replica.key: p for p in pairs}
    for use in sorted(sequence_uses(sides.replica, list(by_replica_key)), key=lambda u: u.key):
        pair = next((by_replica_key[k] for k, *_ in use.columns if k in by_replica_key), None)
        if pair is None:
            continue
        with sides.replica.transaction():
            state = sequence_state(sides.replica, use)
        extreme = "max" if use.increment > 0 else "min"
        columns = [f"{s}.{t}.{c}" for _k, s, t, c in use.columns]
        evidence = dict(sequence=use.key, columns=columns, next_value=state.next_value, identity=use.identity,
                        owned=any(k == pair.replica.key for k, *_ in use.columns), **{f"column_{extreme}": state.edge})
        if state.edge is None:
            report.add("sequences", "pass", f"{use.key}: no rows, next value {state.next_value}", pair.label, **evidence)
        elif not state.behind:
            report.add("sequences", "pass", f"{use.key}: next value {state.next_value} is past {extreme} "
                       f"{state.edge} of {', '.join(columns)}", pair.label, **evidence)
        else:
            fix = sql.SQL("SELECT setval({}, ({}));").format(
                sql.Literal(use.key), use.edge_query()).as_string(sides.replica)
            report.add("sequences", "fail", f"{use.key}: next value {state.next_value} is not past {extreme} "
                       f"{state.edge} of {', '.join(columns)}", pair.label, fix=fix, **evidence)
