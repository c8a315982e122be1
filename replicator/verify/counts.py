"""Row counts: exact `count(*)` of each table on both sides, in the run's snapshot."""

from __future__ import annotations

from psycopg import sql

from ..connect import batch
from .context import Sides, TablePair, fetchone
from .model import VerifyReport


_COUNT = "SELECT count(*) FROM {} WHERE {}"


def _master_count(pair: TablePair) -> sql.Composable:
    return sql.SQL(_COUNT).format(pair.master_ident, pair.master_filter)


def _replica_count(pair: TablePair) -> sql.Composable:
    return sql.SQL(_COUNT).format(pair.replica_ident, sql.SQL("true"))


def count_rows(sides: Sides, pair: TablePair) -> tuple[int, int]:
    """count(*) on both sides; the master's through the table's filter (`where`, subset)."""
    m, r = sides.both(
        lambda c: fetchone(c, _master_count(pair))[0],  # type: ignore[index]
        lambda c: fetchone(c, _replica_count(pair))[0],  # type: ignore[index]
    )
    return m, r


def count_all(sides: Sides, pairs: list[TablePair]) -> dict[str, tuple[int, int]]:
    """count(*) of every table on both sides, each side's counts in one round trip (`batch`): a
    distant master waits once for all of them, not three times a table. Keyed by master table key."""
    m, r = sides.both(
        lambda c: batch(c, [(_master_count(p), None) for p in pairs]),
        lambda c: batch(c, [(_replica_count(p), None) for p in pairs]),
    )
    return {p.key: (mc[0][0], rc[0][0]) for p, mc, rc in zip(pairs, m, r)}


def record_counts(report: VerifyReport, pair: TablePair, master_rows: int, replica_rows: int, source: str) -> None:
    diff = replica_rows - master_rows
    filtered = pair.filter_evidence()
    of = " (the master's rows filtered: " + ("the subset" if pair.subset else f"where {pair.where}") + ")" if pair.where else ""
    if diff == 0:
        report.add("row_counts", "pass", f"{master_rows} rows on both sides{of}", pair.label,
                   master=master_rows, replica=replica_rows, counted_by=source, **filtered)
    elif diff > 0 and "extra on replica" in pair.tolerated():
        report.add("row_counts", "warn",
                   f"master {master_rows}, replica {replica_rows} ({diff} extra on the replica, kept by policy "
                   f"{pair.policy.value}; counts alone cannot show missing rows: use --deep){of}", pair.label,
                   master=master_rows, replica=replica_rows, difference=diff, counted_by=source,
                   policy=pair.policy.value, **filtered)
    else:
        what = f"{-diff} missing on the replica" if diff < 0 else f"{diff} extra on the replica"
        report.add("row_counts", "fail", f"master {master_rows}, replica {replica_rows} ({what}){of}", pair.label,
                   master=master_rows, replica=replica_rows, difference=diff, counted_by=source, **filtered)


def check_row_counts(report: VerifyReport, sides: Sides, pair: TablePair) -> None:
    m, r = count_rows(sides, pair)
    record_counts(report, pair, m, r, "count(*)")
