"""Tables copied whole, in one transaction: `replace`, and tables without a usable key.

A table with neither a primary key nor a NOT NULL unique index cannot be walked in key ranges, and its
rows cannot be matched one to one. It is copied atomically, in one replica transaction (a crash leaves
it as it was, and the rerun starts over):

* into an empty replica table: one COPY;
* into a non-empty one, as a multiset: rows are identified by their row hash (`replicator.rowhash`),
  with multiplicity. Both sides' checksums are compared first (equal: nothing moves). Otherwise the
  master's rows land in a temp stage and only the difference is written: rows the replica lacks (or
  has fewer copies of) are inserted under every policy; rows the master lacks are deleted under
  `mirror`; `fail` refuses when the two multisets differ at all; `master-wins` and `keep-replica`
  insert only (a keyless row cannot be "the same row, changed").

`replace` empties the replica table (TRUNCATE, or DELETE when other tables reference it; never
CASCADE) and reloads it, in one transaction, whatever its key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from ..config import Policy
from ..rowhash import row_hash
from . import indexes
from .logic import cascading_references
from .models import Checkpoint
from .plan import CopyError
from .stream import copy_in, copy_out, pipe

if TYPE_CHECKING:
    from .table import TableCopy


def _save(tc: "TableCopy", mode: str, *, was_empty: bool = False) -> None:
    if tc.ctx.dry_run:
        return
    res = tc.res
    from . import checkpoint

    checkpoint.save(tc.r, Checkpoint(
        table_name=res.replica_table, master_table=res.table, run_id=tc.ctx.result.run_id, mode=mode,
        policy=res.policy, status="done", key_columns=tc.tp.key_r, last_key=None, rows_copied=res.rows_copied,
        inserted=res.inserted, updated=res.updated, deleted=res.deleted, batches=res.batches, was_empty=was_empty,
        snapshot_at=tc.ctx.result.snapshot_at))
    tc.advance_sequences(tc.r)


def _worth(tc: "TableCopy") -> bool:
    """Whether the load is big enough to build the table's indexes after it rather than during it."""
    return (tc.estimate_rows() or 0) > tc.tp.batch_size


def _note_built(res, built: list[str]) -> None:
    if built:
        res.notes.append(indexes.built_note(built))


def replace(tc: "TableCopy") -> None:
    tp, res, r, m = tc.tp, tc.res, tc.r, tc.m
    res.mode = "replace"
    refs = [(t.key, c) for t in tc.ctx.replica_schema.tables.values() for c in t.foreign_keys
            if c.referenced_table == tp.replica.key and t.key != tp.replica.key]
    cascading = [(k, c) for k, c in cascading_references(tc.ctx.replica_schema, tp.replica.key) if k != tp.replica.key]
    if cascading and not tc.ctx.logic.replication_role:
        names = ", ".join(f"{k}.{c.name} (ON DELETE {c.on_delete})" for k, c in cascading)
        raise CopyError(f"replace would empty {res.replica_table}, which {names} reference(s) with a cascading action; "
                        "empty the referencing tables first or use --policy mirror")
    tc.ctx.progress("start", res.table, total=tc.estimate_rows())
    if tc.ctx.dry_run:
        res.deleted = r.execute(sql.SQL("SELECT count(*) FROM {}").format(tp.rfrom)).fetchone()[0]
        res.inserted = res.rows_copied = m.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
            tp.mfrom, tp.mwhere(sql.SQL("true"))), []).fetchone()[0]
        r.rollback()
        return
    with tc._write():
        try:
            if refs:
                # TRUNCATE refuses a referenced table whatever session_replication_role says.
                cur = r.execute(sql.SQL("DELETE FROM {}").format(tp.rfrom))
                res.deleted = max(cur.rowcount, 0)
                res.notes.append("emptied with DELETE (referenced by " + ", ".join(f"{k}.{c.name}" for k, c in refs) + ")")
            else:
                res.deleted = r.execute(sql.SQL("SELECT count(*) FROM {}").format(tp.rfrom)).fetchone()[0]
                r.execute(sql.SQL("TRUNCATE {}").format(tp.rfrom))
        except psycopg.errors.ForeignKeyViolation:
            r.rollback()
            names = ", ".join(f"{k}.{c.name}" for k, c in refs)
            raise CopyError(f"cannot replace {res.replica_table}: replica rows reference it through {names} "
                            "(no CASCADE is used; copy or empty those tables first)") from None
        with indexes.rebuilt_after(r, res.replica_table, tp.rident, _worth(tc)) as built:
            rows = pipe(m, r, copy_out(tp.select(sql.SQL("true")), tp.fmt), [], copy_in(tp.rident, tp.rcols, tp.fmt))
        _note_built(res, built)
        res.rows_copied = res.inserted = rows
        res.batches = res.direct_batches = 1
        _save(tc, "replace")
    tc._commit()
    tc.ctx.progress("batch", res.table, rows=rows, done=rows)


def copy_keyless(tc: "TableCopy") -> None:
    tp, res, r, m = tc.tp, tc.res, tc.r, tc.m
    res.mode = "keyless"
    res.notes.append("no primary key or NOT NULL unique index: copied whole, in one transaction")
    tc.ctx.progress("start", res.table, total=tc.estimate_rows())
    empty = not tc.replica_has_rows()
    if empty:
        with tc._write():
            if tc.ctx.dry_run:
                rows = m.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                    tp.mfrom, tp.mwhere(sql.SQL("true"))), []).fetchone()[0]
            else:
                with indexes.rebuilt_after(r, res.replica_table, tp.rident, _worth(tc)) as built:
                    rows = pipe(m, r, copy_out(tp.select(sql.SQL("true")), tp.fmt), [],
                                copy_in(tp.rident, tp.rcols, tp.fmt))
                _note_built(res, built)
            res.rows_copied = res.inserted = rows
            res.batches = res.direct_batches = 1
            _save(tc, "keyless", was_empty=True)
        tc._commit()
        tc.ctx.progress("batch", res.table, rows=rows, done=rows)
        return
    policy = tp.policy
    if policy is None:
        raise CopyError(f"replica table {res.replica_table} is not empty and has no key: choose a policy "
                        "(mirror and replace make it equal to the master; master-wins and keep-replica add what it lacks)")
    mq, rq = tp.checksums()
    mn, ms = m.execute(mq, []).fetchone()
    rn, rs = r.execute(rq).fetchone()
    res.rows_copied = mn
    res.batches = 1
    if (mn, int(ms)) == (rn, int(rs)):
        res.skipped_batches, res.skipped_rows = 1, mn
        with tc._write():
            _save(tc, "keyless")
        tc._commit()
        tc.ctx.progress("batch", res.table, rows=mn, done=mn)
        return
    with tc._write():
        stage = tc.stage.current()
        pipe(m, r, copy_out(tp.select(sql.SQL("true")), tp.fmt), [], copy_in(stage, tp.rcols, tp.fmt))
        h_t, h_s = row_hash(tp.rcols, "t"), row_hash(tp.rcols, "s")
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in tp.rcols)
        # Replica rows beyond the master's multiplicity of the same row, and master rows beyond the replica's.
        extra = sql.SQL(
            "SELECT x.tableoid, x.ctid FROM (SELECT t.tableoid, t.ctid, {ht} AS h, row_number() OVER (PARTITION BY {ht}) AS n FROM {t} t) x "
            "LEFT JOIN (SELECT {hs} AS h, count(*) AS n FROM {s} s GROUP BY 1) y ON y.h = x.h "
            "WHERE x.n > coalesce(y.n, 0)").format(ht=h_t, hs=h_s, t=tp.rfrom, s=stage)
        # the stage's rows by ctid, like the replica's above: its columns (the user's names) never meet
        # the comparison's own in one select list
        lacking = sql.SQL(
            "SELECT {c} FROM {s} WHERE ctid IN (SELECT x.ctid FROM (SELECT s.ctid, {hs} AS h, "
            "row_number() OVER (PARTITION BY {hs}) AS n FROM {s} s) x "
            "LEFT JOIN (SELECT {ht} AS h, count(*) AS n FROM {t} t GROUP BY 1) y ON y.h = x.h "
            "WHERE x.n > coalesce(y.n, 0))").format(c=cols, hs=h_s, s=stage, ht=h_t, t=tp.rfrom)
        n_extra = r.execute(sql.SQL("SELECT count(*) FROM ({}) e").format(extra)).fetchone()[0]
        n_lacking = r.execute(sql.SQL("SELECT count(*) FROM ({}) l").format(lacking)).fetchone()[0]
        if policy == Policy.FAIL and (n_extra or n_lacking):
            r.rollback()
            raise CopyError(f"{res.table} has no key and its rows differ from the master's ({n_lacking} missing on the "
                            f"replica, {n_extra} only on the replica) under policy fail; nothing was written")
        if policy == Policy.MIRROR:
            if not tc.ctx.dry_run and n_extra:
                r.execute(sql.SQL("DELETE FROM {t} WHERE (tableoid, ctid) IN ({e})").format(t=tp.rfrom, e=extra))
            res.deleted = n_extra
        if not tc.ctx.dry_run and n_lacking:
            r.execute(sql.SQL("INSERT INTO {t} ({c}){o} {l}").format(t=tp.rident, c=cols, o=tp.overriding, l=lacking))
        res.inserted = n_lacking
        _save(tc, "keyless")
    tc._commit()
    tc.ctx.progress("batch", res.table, rows=mn, done=mn)
