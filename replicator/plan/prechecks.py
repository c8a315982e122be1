"""Read-only pre-checks: queries on the replica that count the rows a data-dependent step would
trip over (NULLs, duplicate keys, rows violating a check, orphans), written against the replica's
current column names, and run all together in one READ ONLY transaction that is rolled back."""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from ..diff import quote
from ..introspect.models import Constraint, Schema
from .model import Plan, PreCheck
from .sqltext import strip_not_valid


class PreChecks:
    """Pre-check builders for one plan: ``replica`` as it is, ``renames`` (table key -> {replica
    column: master column}), ``new_tables`` (created by the plan, so empty)."""

    def __init__(self, replica: Schema, renames: dict[str, dict[str, str]], new_tables: set[str]):
        self.replica, self.renames, self.new_tables = replica, renames, new_tables

    def replica_col(self, table: str, master_col: str) -> str | None:
        """The replica's name of a master column (after renames), None when absent on the replica."""
        t = self.replica.tables.get(table)
        if t is None:
            return None
        if master_col in t.columns:
            return master_col
        for rname, target in self.renames.get(table, {}).items():
            if target == master_col and rname in t.columns:
                return rname
        return None

    def nulls(self, table: str, master_col: str) -> PreCheck:
        rn = self.replica_col(table, master_col) or master_col
        q = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(sql.SQL(table), sql.Identifier(rn))
        return PreCheck(description=f"NULLs in {table}.{quote(master_col)}", sql=q.as_string(None),
                        table=table, column=master_col)

    def rows(self, table: str, why: str, column: str | None = None) -> PreCheck:
        return PreCheck(description=f"rows in {table} ({why})", sql=f"SELECT count(*) FROM {table}",
                        table=table, column=column)

    def duplicates(self, table: str, con: Constraint) -> PreCheck:
        if table in self.new_tables or not con.columns:
            return PreCheck(description="new table: empty", sql=None, ok=True, result=0)
        cols = [self.replica_col(table, x) for x in con.columns]
        present = [c for c in cols if c is not None]
        if len(present) < len(cols):
            # a new column is NULL everywhere: no duplicates for UNIQUE, every row a NULL for a PK
            if con.kind == "primary key":
                return self.rows(table, "a new key column is NULL in every existing row")
            return PreCheck(description="a new column is NULL everywhere: no duplicates", sql=None, ok=True, result=0)
        idents = sql.SQL(", ").join(sql.Identifier(c) for c in present)
        notnull = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in present)
        q = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {nn} GROUP BY {c} HAVING count(*) > 1) d").format(
            t=sql.SQL(table), nn=notnull, c=idents)
        desc = f"duplicate ({', '.join(present)}) groups in {table}"
        if con.kind == "primary key":
            anynull = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in present)
            q = sql.SQL("SELECT ({}) + (SELECT count(*) FROM {} WHERE {})").format(q, sql.SQL(table), anynull)
            desc += " plus rows with a NULL key"
        return PreCheck(description=desc, sql=q.as_string(None), table=table, column=",".join(present))

    def check(self, table: str, con: Constraint) -> PreCheck:
        m = re.match(r"^CHECK\s*\((.*)\)\s*$", strip_not_valid(con.definition), re.S)
        if not m:
            return PreCheck(description=f"rows violating {con.name} (not pre-checked)", sql=None, table=table)
        cols = [self.replica_col(table, x) for x in con.columns]
        if any(c is None for c in cols) or any(self.replica_col(table, x) != x for x in con.columns):
            return PreCheck(description=f"rows violating {con.name} (refers to new or renamed columns: checked when applied)",
                            sql=None, table=table)
        return PreCheck(description=f"rows of {table} violating {con.name}",
                        sql=f"SELECT count(*) FROM {table} WHERE NOT coalesce(({m.group(1)}), true)", table=table)

    def orphans(self, table: str, con: Constraint) -> PreCheck:
        if table in self.new_tables:
            return PreCheck(description="new table: empty", sql=None, ok=True, result=0)
        cols = [self.replica_col(table, x) for x in con.columns]
        if any(c is None for c in cols):
            return PreCheck(description="a new column is NULL everywhere: no orphans", sql=None, ok=True, result=0)
        ref = con.referenced_table or ""
        child = [sql.Identifier(c) for c in cols if c]
        notnull = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(c) for c in child)
        desc = f"rows of {table} whose ({', '.join(c for c in cols if c)}) has no match in {ref}"
        rcols = [self.replica_col(ref, x) for x in (con.referenced_columns or [])]
        def anti_join(parent_cols: list) -> str:
            match = sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(sql.Identifier(pc), cc)
                                          for pc, cc in zip(parent_cols, child))
            return sql.SQL("SELECT count(*) FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(
                sql.SQL(table), notnull, sql.SQL(ref), match).as_string(None)

        if ref in self.new_tables or ref not in self.replica.tables or any(x is None for x in rcols):
            q = sql.SQL("SELECT count(*) FROM {} c WHERE {}").format(sql.SQL(table), notnull)
            # once created and filled (by the copy), it has the master's column names
            return PreCheck(description=desc + " (new, empty on the replica)", sql=q.as_string(None), table=table,
                            column=",".join(c for c in cols if c),
                            after_copy_sql=anti_join([x if x is not None else y for x, y in
                                                      zip(rcols, con.referenced_columns or [])]))
        return PreCheck(description=desc, sql=anti_join(rcols), table=table, column=",".join(c for c in cols if c))


def run_prechecks(plan: Plan, replica_conn: psycopg.Connection) -> Plan:
    """Run every pre-check against the replica in one READ ONLY transaction that is rolled back."""
    checks = [s.precheck for s in plan.steps if s.precheck is not None and s.precheck.sql and s.precheck.ok is None]
    if not checks:
        return plan
    was_autocommit = replica_conn.autocommit
    if replica_conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        replica_conn.rollback()
    replica_conn.autocommit = False
    try:
        with replica_conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            for p in checks:
                try:
                    cur.execute("SAVEPOINT precheck")
                    cur.execute(p.sql)  # type: ignore[arg-type]
                    row = cur.fetchone()
                    p.result = int(row[0]) if row and row[0] is not None else 0
                    p.ok = p.result == 0
                    cur.execute("RELEASE SAVEPOINT precheck")
                except psycopg.Error as e:
                    cur.execute("ROLLBACK TO SAVEPOINT precheck")
                    p.error = " ".join(str(e).split())[:200]
        replica_conn.rollback()
    finally:
        replica_conn.autocommit = was_autocommit
    return plan
