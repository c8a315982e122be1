"""The copy loop: one master snapshot, keyset batches streamed as raw COPY bytes, checkpoints."""

from __future__ import annotations

import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace as _dc_replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import psycopg
from deepdiff import DeepDiff
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from .. import identity
from ..config import Config, Policy
from ..connect import describe, is_transaction_pooler, open_master, open_replica, parse_conninfo
from ..errors import ReplicatorError
from ..guard import MasterGuard
from ..introspect import Schema, introspect
from ..verify.content import row_hash
from . import checkpoint
from .models import ColumnDiff, Conflict, CopyResult, SequenceFix, TableResult
from .plan import POLICIES, CopyError, TablePlan, plan_table

Progress = Callable[..., None]
MAX_CONFLICT_DETAILS = 20
CHECK_SPAN = 10  # a checksum range covers up to this many batches; split into batches only when it differs
# Session settings that change the text form of values; checksums are compared only when both sides agree.
RENDER_SETTINGS = ("TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits", "bytea_output", "lc_monetary")
_FLOATS = {"real", "double precision", "float4", "float8"}


class CopyConflict(ReplicatorError):
    """The `fail` policy met keys whose rows differ; the batch was rolled back."""

    def __init__(self, message: str, table: str, conflicts: list[Conflict]):
        super().__init__(message)
        self.table = table
        self.conflicts = conflicts


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _cols(names: Iterable[str], alias: str | None = None) -> sql.Composable:
    if alias:
        return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _row(names: list[str], alias: str | None = None) -> sql.Composable:
    return sql.SQL("({})").format(_cols(names, alias))


def _key_params(types: list[str]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.SQL("%s::" + t) for t in types))


_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_TRAILER = b"\xff\xff"


class _BinaryFrames:
    """Checks the framing of a binary `COPY … TO STDOUT` stream read message by message.

    PostgreSQL sends one CopyData message per row; the file header (signature, flags, header extension)
    arrives first, on its own or in front of the first row, and the trailer (int16 -1) last. `feed`
    returns the row bytes of a message (None for a bare header or the trailer); anything else raises,
    so a change of framing fails the copy instead of corrupting a batch. The first rows are walked field
    by field; after that the field count is checked on every row."""

    WALK = 64

    def __init__(self, ncols: int):
        self.ncols = ncols
        self.header: bytes | None = None
        self.ended = False
        self.seen = 0
        self.prefix = struct.pack("!h", ncols)

    def _fail(self, why: str):
        raise CopyError(f"unexpected binary COPY framing from the master ({why}); nothing of this batch was committed")

    def feed(self, chunk) -> memoryview | None:
        if self.seen >= self.WALK and chunk[:2] == self.prefix:  # the common case, kept cheap
            return chunk
        mv = memoryview(chunk)
        if self.ended:
            self._fail("data after the trailer")
        if self.header is None:
            if len(mv) < 19 or bytes(mv[:11]) != _SIGNATURE:
                self._fail("no PGCOPY signature")
            (ext,) = struct.unpack_from("!i", mv, 15)
            end = 19 + ext
            if ext < 0 or len(mv) < end:
                self._fail("truncated header")
            self.header = bytes(mv[:end])
            mv = mv[end:]
            if not len(mv):
                return None
        if len(mv) == 2 and mv[0] == 0xFF and mv[1] == 0xFF:
            self.ended = True
            self.seen = 0  # anything after the trailer takes the checked path (and fails)
            return None
        if len(mv) < 2:
            self._fail("short message")
        (nf,) = struct.unpack_from("!h", mv, 0)
        if nf != self.ncols:
            self._fail(f"a row with {nf} fields, expected {self.ncols}")
        if self.seen < self.WALK:
            pos = 2
            for _ in range(nf):
                if pos + 4 > len(mv):
                    self._fail("truncated row")
                (ln,) = struct.unpack_from("!i", mv, pos)
                pos += 4 + max(ln, 0)
            if pos != len(mv):
                self._fail("a message that is not exactly one row")
        self.seen += 1
        return mv

    def close(self) -> None:
        if self.header is None or not self.ended:
            self._fail("the stream ended without a trailer")


class _Run:
    def __init__(self, master: psycopg.Connection, replica: psycopg.Connection, cfg: Config, *,
                 restart: bool, incremental: bool, dry_run: bool, progress: Progress | None,
                 result: CopyResult, rschema: Schema):
        self.m = master
        self.r = replica
        self.cfg = cfg
        self.restart = restart
        self.incremental = incremental
        self.dry_run = dry_run
        self.progress = progress or (lambda *a, **k: None)
        self.result = result
        self.rschema = rschema
        self.pooled_replica = bool(getattr(replica, "_replicator_pooled", False))
        self._stage_n = 0
        self.checksum_skip = True
        self._render: tuple[tuple, tuple] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ---------------------------------------------------------------- predicates
    def _range(self, tp: TablePlan, alias: str | None, cols: list[str], lo, hi) -> tuple[sql.Composable, list]:
        parts, params = [], []
        if lo is not None:
            parts.append(sql.SQL("{} > {}").format(_row(cols, alias), _key_params(tp.key_types)))
            params += lo
        if hi is not None:
            parts.append(sql.SQL("{} <= {}").format(_row(cols, alias), _key_params(tp.key_types)))
            params += hi
        return (sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")), params

    def _cursor_pred(self, tp: TablePlan, since: str | None) -> tuple[sql.Composable, list]:
        if not since or not tp.cursor:
            return sql.SQL("true"), []
        col = sql.Identifier(tp.cursor)
        typ = tp.cursor_type or "text"
        if "timestamp" in typ or typ == "date":
            return (
                sql.SQL("{} >= %s::{} - make_interval(secs => %s)").format(col, sql.SQL(typ)),
                [since, tp.cfg.lag_seconds],
            )
        return sql.SQL("{} >= %s::{}").format(col, sql.SQL(typ)), [since]

    # ---------------------------------------------------------------- master reads
    def _boundary(self, tp: TablePlan, lo, n: int, cur_pred, cur_params, cap=None) -> tuple[list[str] | None, bool]:
        """The key closing a batch of n rows after `lo` (and at most `cap`), and whether more rows follow
        (before `cap`: when fewer than n rows lie in (lo, cap], the last of them and False)."""
        rng, params = self._range(tp, None, tp.key_m, lo, cap)
        # aliased so that ORDER BY names the table's columns, not these text outputs
        keytext = sql.SQL(", ").join(
            sql.SQL("{}::text AS {}").format(sql.Identifier(k), sql.Identifier(f"_k{i}")) for i, k in enumerate(tp.key_m))
        order = _cols(tp.key_m)
        q = sql.SQL("SELECT {k} FROM {t} WHERE {r} AND {c} ORDER BY {o} OFFSET %s LIMIT 1").format(
            k=keytext, t=tp.mident, r=rng, c=cur_pred, o=order)
        row = self.m.execute(q, params + cur_params + [n - 1]).fetchone()
        if row is not None:
            return list(row), True
        desc = sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(k)) for k in tp.key_m)
        q = sql.SQL("SELECT {k} FROM {t} WHERE {r} AND {c} ORDER BY {o} LIMIT 1").format(
            k=keytext, t=tp.mident, r=rng, c=cur_pred, o=desc)
        row = self.m.execute(q, params + cur_params).fetchone()
        return (list(row) if row else None), False

    def _select(self, tp: TablePlan, where: sql.Composable) -> sql.Composable:
        return sql.SQL("SELECT {e} FROM {t} WHERE {w}").format(
            e=sql.SQL(", ").join(tp.select_exprs), t=tp.mident, w=where)

    def _pipe(self, tp: TablePlan, select: sql.Composable, params: list, target: sql.Composable,
              cols: list[str]) -> int:
        """Stream `COPY (select) TO STDOUT` from the master into `COPY target FROM STDIN`, chunk by chunk."""
        out = sql.SQL("COPY ({s}) TO STDOUT {f}").format(s=select, f=tp.fmt)
        into = sql.SQL("COPY {t} ({c}) FROM STDIN {f}").format(t=target, c=_cols(cols), f=tp.fmt)
        with self.m.cursor() as mc, self.r.cursor() as rc:
            with mc.copy(out, params) as src:
                with rc.copy(into, writer=QueuedLibpqWriter(rc)) as dst:
                    for chunk in src:
                        dst.write(chunk)
            return max(rc.rowcount, 0)

    def _estimate_rows(self, tp: TablePlan) -> int | None:
        row = self.m.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            (tp.mident.as_string(self.m),)).fetchone()
        return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None

    def _rows_per_batch(self, tp: TablePlan) -> int:
        """Batch size in rows, also bounded by `batch_bytes` using the text width of a small sample."""
        q = sql.SQL("SELECT avg(octet_length(x::text))::bigint FROM (SELECT {e} FROM {t} LIMIT 200) x").format(
            e=sql.SQL(", ").join(tp.select_exprs), t=tp.mident)
        width = self.m.execute(q, tp.mask_args()).fetchone()[0]
        n = tp.batch_size
        if width:
            n = min(n, max(1, self.cfg.batch_bytes // int(width)))
        return n

    # ---------------------------------------------------------------- replica side
    def _replica_has(self, tp: TablePlan, lo, hi) -> bool:
        rng, params = self._range(tp, None, tp.key_r, lo, hi)
        q = sql.SQL("SELECT EXISTS (SELECT 1 FROM {t} WHERE {r})").format(t=tp.rident, r=rng)
        return bool(self.r.execute(q, params).fetchone()[0])

    # ---------------------------------------------------------------- checksums
    def _can_checksum(self, tp: TablePlan, since) -> str | None:
        """Why the key ranges of this table cannot be compared by checksum (None: they can)."""
        if not self.checksum_skip:
            return "disabled"
        if since or not tp.key_r:
            return "incremental"
        if tp.key_masked:
            return "masked key"
        if self._render is None:
            q = sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                sql.SQL("current_setting({})").format(sql.Literal(n)) for n in RENDER_SETTINGS))
            self._render = (tuple(self.m.execute(q).fetchone()), tuple(self.r.execute(q).fetchone()))
            self.r.commit()
        mset, rset = self._render
        if mset != rset:
            return "the two sessions render values differently (" + ", ".join(
                n for n, a, b in zip(RENDER_SETTINGS, mset, rset) if a != b) + ")"
        if any(t.replace("[]", "").strip() in _FLOATS for t in tp.types):
            efd = int(mset[RENDER_SETTINGS.index("extra_float_digits")])
            for conn in (self.m, self.r):
                if efd < (1 if conn.info.server_version >= 120000 else 3):
                    return "float text output is not exact (extra_float_digits)"
        return None

    def _hash_queries(self, tp: TablePlan, lo, hi) -> tuple[sql.Composable, list, sql.Composable, list]:
        """count(*) and the sum of row hashes (verify's hash, over the replica column names in copy order)
        of a key range: on the master over the batch's select list (masked values), on the replica over
        the stored rows."""
        same_major = self.m.info.server_version // 10000 == self.r.info.server_version // 10000
        binary_json = {r for r, m, t in zip(tp.rcols, tp.mcols, tp.types)
                       if same_major and t == "jsonb" and m not in tp.masked}
        h = row_hash(tp.rcols, binary_json)
        mrng, mparams = self._range(tp, None, tp.key_m, lo, hi)
        exprs = sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, sql.Identifier(c))
                                   for e, c in zip(tp.select_exprs, tp.rcols))
        mq = sql.SQL("SELECT count(*), coalesce(sum({h}), 0) FROM (SELECT {e} FROM {t} WHERE {r}) s").format(
            h=h, e=exprs, t=tp.mident, r=mrng)
        rrng, rparams = self._range(tp, None, tp.key_r, lo, hi)
        rq = sql.SQL("SELECT count(*), coalesce(sum({h}), 0) FROM {t} WHERE {r}").format(h=h, t=tp.rident, r=rrng)
        return mq, tp.mask_args() + mparams, rq, rparams

    def _same(self, tp: TablePlan, lo, hi) -> int | None:
        """The number of rows in the key range when master and replica hold the same rows there, else None."""
        mq, mparams, rq, rparams = self._hash_queries(tp, lo, hi)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replica-checksum")
        fut = self._pool.submit(lambda: tuple(self.r.execute(rq, rparams).fetchone()))
        try:
            m = tuple(self.m.execute(mq, mparams).fetchone())
        finally:
            r = fut.result()
        return int(m[0]) if (int(m[0]), int(m[1])) == (int(r[0]), int(r[1])) else None

    def _stage(self, tp: TablePlan) -> sql.Identifier:
        self._stage_n += 1
        name = sql.Identifier(f"_replicator_stage_{self._stage_n}")
        on_commit = "DROP" if self.pooled_replica else "DELETE ROWS"
        self.r.execute(sql.SQL("CREATE TEMP TABLE {s} ON COMMIT {oc} AS SELECT {c} FROM {t} WITH NO DATA").format(
            s=name, oc=sql.SQL(on_commit), c=_cols(tp.rcols), t=tp.rident))
        return name

    def _diff_pred(self, tp: TablePlan) -> sql.Composable:
        others = [(c, t) for c, t in zip(tp.rcols, tp.types) if c not in tp.key_r]
        if not others:
            return sql.SQL("false")
        left = sql.SQL(", ").join(tp.compare_expr("t", c, t) for c, t in others)
        right = sql.SQL(", ").join(tp.compare_expr("s", c, t) for c, t in others)
        return sql.SQL("({}) IS DISTINCT FROM ({})").format(left, right)

    def _join(self, tp: TablePlan) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier("t", k), sql.Identifier("s", k)) for k in tp.key_r)

    def _conflicts(self, tp: TablePlan, stage, rng_t, rng_params) -> tuple[int, list[Conflict]]:
        q = sql.SQL(
            "SELECT to_jsonb(s), to_jsonb(t) FROM {s} s JOIN {t} t ON {j} WHERE {d} AND {r} ORDER BY {o} LIMIT %s"
        ).format(s=stage, t=tp.rident, j=self._join(tp), d=self._diff_pred(tp), r=rng_t,
                 o=_cols(tp.key_r, "s"))
        rows = self.r.execute(q, rng_params + [MAX_CONFLICT_DETAILS]).fetchall()
        if not rows:
            return 0, []
        n = self.r.execute(
            sql.SQL("SELECT count(*) FROM {s} s JOIN {t} t ON {j} WHERE {d} AND {r}").format(
                s=stage, t=tp.rident, j=self._join(tp), d=self._diff_pred(tp), r=rng_t), rng_params).fetchone()[0]
        details = []
        for srow, trow in rows:
            trow = {c: trow.get(c) for c in tp.rcols}
            srow = {c: srow.get(c) for c in tp.rcols}
            changed = sorted(str(k) for k in DeepDiff(trow, srow).affected_root_keys)
            details.append(Conflict(
                key={k: srow[k] for k in tp.key_r},
                columns=[ColumnDiff(column=c, master=srow.get(c), replica=trow.get(c)) for c in changed]))
        return int(n), details

    def _merge(self, tp: TablePlan, res: TableResult, stage, lo, hi, *, deletes: bool) -> None:
        if tp.key_masked:
            # Masked key values do not follow the master's key order, so the batch's rows may sit
            # anywhere in the replica's key space: match them on the key alone (mirror is refused).
            rng_t, rng_params = sql.SQL("true"), []
        else:
            rng_t, rng_params = self._range(tp, "t", tp.key_r, lo, hi)
        policy = tp.policy
        if policy == Policy.FAIL or (self.dry_run and policy in (Policy.KEEP_REPLICA, None)):
            n, details = self._conflicts(tp, stage, rng_t, rng_params)
            if n:
                res.conflicts += n
                room = MAX_CONFLICT_DETAILS - len(res.conflict_details)
                res.conflict_details += details[:max(room, 0)]
                if policy == Policy.FAIL and not self.dry_run:
                    self.r.rollback()
                    keys = "; ".join(
                        ", ".join(f"{k}={v}" for k, v in c.key.items())
                        + " (" + ", ".join(d.column for d in c.columns) + ")" for c in details[:3])
                    raise CopyConflict(
                        f"{n} conflicting row(s) in {res.table} under policy fail; batch rolled back; e.g. {keys}",
                        res.table, details)
        if self.dry_run:
            upd = 0
            if policy in (Policy.MASTER_WINS, Policy.MIRROR):
                upd = self.r.execute(sql.SQL(
                    "SELECT count(*) FROM {s} s JOIN {t} t ON {j} WHERE {d} AND {r}").format(
                    s=stage, t=tp.rident, j=self._join(tp), d=self._diff_pred(tp), r=rng_t),
                    rng_params).fetchone()[0]
            ins = self.r.execute(sql.SQL(
                "SELECT count(*) FROM {s} s WHERE NOT EXISTS (SELECT 1 FROM {t} t WHERE {j} AND {r})").format(
                s=stage, t=tp.rident, j=self._join(tp), r=rng_t), rng_params).fetchone()[0]
            dele = 0
            if deletes:
                dele = self.r.execute(sql.SQL(
                    "SELECT count(*) FROM {t} t WHERE {r} AND NOT EXISTS (SELECT 1 FROM {s} s WHERE {j})").format(
                    s=stage, t=tp.rident, j=self._join(tp), r=rng_t), rng_params).fetchone()[0]
            res.updated += upd
            res.inserted += ins
            res.deleted += dele
            return
        if policy in (Policy.MASTER_WINS, Policy.MIRROR):
            others = [c for c in tp.rcols if c not in tp.key_r]
            if others:
                sets = sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(c), sql.Identifier("s", c)) for c in others)
                cur = self.r.execute(sql.SQL("UPDATE {t} t SET {sets} FROM {s} s WHERE {j} AND {r} AND {d}").format(
                    t=tp.rident, sets=sets, s=stage, j=self._join(tp), r=rng_t, d=self._diff_pred(tp)), rng_params)
                res.updated += max(cur.rowcount, 0)
        cur = self.r.execute(sql.SQL(
            "INSERT INTO {t} ({c}) SELECT {sc} FROM {s} s WHERE NOT EXISTS (SELECT 1 FROM {t} t WHERE {j} AND {r})"
        ).format(t=tp.rident, c=_cols(tp.rcols), sc=_cols(tp.rcols, "s"), s=stage, j=self._join(tp), r=rng_t),
            rng_params)
        res.inserted += max(cur.rowcount, 0)
        if deletes:
            cur = self.r.execute(sql.SQL(
                "DELETE FROM {t} t WHERE {r} AND NOT EXISTS (SELECT 1 FROM {s} s WHERE {j})").format(
                t=tp.rident, r=rng_t, s=stage, j=self._join(tp)), rng_params)
            res.deleted += max(cur.rowcount, 0)

    # ---------------------------------------------------------------- one table
    def copy_table(self, tp: TablePlan) -> TableResult:
        qualified = f"{tp.master.schema_name}.{tp.master.name}"
        res = TableResult(
            table=qualified, replica_table=f"{tp.replica.schema_name}.{tp.replica.name}",
            policy=tp.policy.value if tp.policy else None, key=tp.key_r,
            mode="incremental" if self.incremental else "full", masked_columns=tp.masked)
        t0 = time.monotonic()
        try:
            if tp.policy == Policy.REPLACE:
                self._replace(tp, res)
            else:
                self._batches(tp, res)
        except BaseException:
            res.status = "failed"
            res.seconds = round(time.monotonic() - t0, 3)
            self.result.tables.append(res)
            raise
        res.seconds = round(time.monotonic() - t0, 3)
        if self.dry_run:
            res.status = "dry-run"
        self.result.tables.append(res)
        self.progress("end", qualified, result=res)
        return res

    def _batches(self, tp: TablePlan, res: TableResult) -> None:
        ckey = res.replica_table
        cp = None if self.dry_run else checkpoint.load(self.r, ckey)
        self.r.commit()
        mode = res.mode
        interrupted = cp is not None and cp["status"] == "running" and not self.restart
        if interrupted and mode == "full" and cp["mode"] in ("direct", "reconcile"):
            # An interrupted sequential copy committed some batches of an older snapshot, in heap order:
            # walk the whole key range comparing, master winning, until the replica matches this snapshot.
            tp = _dc_replace(tp, policy=Policy.MIRROR if tp.policy == Policy.MIRROR else Policy.MASTER_WINS)
            cp_mode = "reconcile"
            if cp["mode"] == "reconcile":
                resume = True
            else:
                resume = False
                res.notes.append(f"resumed an interrupted sequential copy (run {cp['run_id']}) by reconciliation: "
                                 "every key compared, rows differing from this snapshot updated (master wins)")
        else:
            cp_mode = mode
            resume = interrupted and cp["mode"] == mode
        lo: list[str] | None = None
        since = None
        run_watermark = None
        if resume and cp_mode == "reconcile":
            lo = cp["last_key"]
            was_empty = False
            res.resumed_after = lo
            run_watermark = cp["run_watermark"]
            res.notes.append(f"resumed the reconciliation of an interrupted sequential copy after key {lo} "
                             f"(run {cp['run_id']})" if lo else
                             f"resumed the reconciliation of an interrupted sequential copy (run {cp['run_id']})")
        elif resume:
            if (cp["policy"] or None) != res.policy:
                raise CopyError(
                    f"an interrupted copy of {res.table} used policy {cp['policy'] or '(none)'}: "
                    f"rerun with that policy, or pass --restart")
            lo = cp["last_key"]
            was_empty = cp["was_empty"]
            res.resumed_after = lo
            run_watermark = cp["run_watermark"]
            since = cp["watermark"] if mode == "incremental" else None
            res.notes.append(f"resumed after key {lo} (run {cp['run_id']})" if lo else "resumed from the start")
        elif cp_mode == "reconcile":
            was_empty = False
        else:
            was_empty = not self._replica_has(tp, None, None)
            self.r.commit()
            if mode == "incremental":
                if not tp.cursor:
                    raise CopyError(f"--incremental needs a cursor column: set [tables.{tp.master.name}] cursor = \"...\"")
                since = cp["watermark"] if cp else None
                if since is None:
                    res.notes.append("no watermark yet: full copy")
        if not was_empty and tp.policy is None:
            raise CopyError(
                f"replica table {res.replica_table} is not empty: choose a policy with --policy ({POLICIES})")
        deletes = tp.policy == Policy.MIRROR
        if deletes and mode == "incremental":
            deletes = False
            res.notes.append("mirror under --incremental does not delete (deletions are not visible by cursor)")
        if deletes and tp.key_masked:
            raise CopyError(f"{res.table}: mirror cannot be used with a masked key column")
        if tp.cursor and run_watermark is None:
            run_watermark = self.m.execute(sql.SQL("SELECT max({c})::text FROM {t}").format(
                c=sql.Identifier(tp.cursor), t=tp.mident)).fetchone()[0]
        res.watermark = run_watermark
        cur_pred, cur_params = self._cursor_pred(tp, since)
        n = self._rows_per_batch(tp)
        self.progress("start", res.table, total=self._estimate_rows(tp) if mode == "full" else None)
        base = {
            "table_name": ckey, "master_table": res.table, "run_id": self.result.run_id, "mode": cp_mode,
            "policy": res.policy, "key_columns": tp.key_r, "was_empty": was_empty,
            "snapshot_at": self.result.snapshot_at, "run_watermark": run_watermark,
            "watermark": cp["watermark"] if cp else None,
            "started_at": cp["started_at"] if (resume or cp_mode == "reconcile") else None,
        }
        totals = {k: (cp[k] if resume else 0) for k in ("rows_copied", "inserted", "updated", "deleted", "batches")}
        if cp_mode == "reconcile" and not resume:
            # rows_copied restarts (this pass reads every master row once); the rest keep counting
            totals.update({k: cp[k] for k in ("inserted", "updated", "deleted", "batches")})
        if was_empty and mode == "full" and not self.dry_run and tp.binary:
            self._direct(tp, res, n, {**base, "mode": "direct", "watermark": None})
            return
        stage = None
        if not self.pooled_replica:
            stage = self._stage(tp)
            self.r.commit()
        why = None if was_empty else self._can_checksum(tp, since)
        check = not was_empty and why is None
        if not was_empty and why not in (None, "disabled", "incremental"):
            res.notes.append(f"key ranges not compared by checksum: {why}")
        # While the batches of a checksum range that differed are walked: [its closing key, whether it is
        # followed by more rows (else it is the open-ended tail), whether the next batch is its first].
        span: list | None = None
        # Batch checksums that differed in a row, and batches still to transfer without one: where most
        # batches differ (changes spread over the table), checksums back off exponentially.
        misses = hold = 0
        while True:
            skipped: int | None = None
            whole = False  # this batch is exactly a checksum range already found to differ
            if check and span is None and misses < 2:
                bhi, bmore = self._boundary(tp, lo, n * CHECK_SPAN, cur_pred, cur_params)
                bupper = bhi if bmore else None
                if (bhi is not None or deletes) and self._replica_has(tp, lo, bupper):
                    skipped = self._same(tp, lo, bupper)
                if skipped is not None:
                    hi, more = bhi, bmore
                    misses = 0
                else:
                    span = [bhi, bmore, True]
            if skipped is None:
                capped = span is not None and span[1]
                hi, more = self._boundary(tp, lo, n, cur_pred, cur_params, cap=span[0] if capped else None)
                if span is not None:
                    first, span[2] = span[2], False
                    if capped and (not more or hi == span[0]):
                        hi, more = span[0], True  # the checksum range ends here; more rows follow it
                        whole, span = first, None
                    elif not capped:
                        whole = first and not more
            upper = hi if more else None  # the last batch is open-ended so mirror sees every replica key
            rng, rparams = self._range(tp, None, tp.key_m, lo, upper)
            where = sql.SQL("{} AND {}").format(rng, cur_pred)
            params = tp.mask_args() + rparams + cur_params
            before = (res.inserted, res.updated, res.deleted)
            if skipped is not None:
                rows = skipped
            elif hi is None and not deletes:
                rows = 0
            elif was_empty or (not tp.key_masked and not self._replica_has(tp, lo, upper)):
                # nothing on the replica in this key range: straight COPY
                if self.dry_run:
                    rows = self.m.execute(
                        sql.SQL("SELECT count(*) FROM {t} WHERE {w}").format(t=tp.mident, w=where),
                        rparams + cur_params).fetchone()[0]
                else:
                    rows = self._pipe(tp, self._select(tp, where), params, tp.rident, tp.rcols)
                res.inserted += rows
                res.direct_batches += 1
            else:
                if tp.policy is None:
                    raise CopyError(
                        f"replica table {res.replica_table} has rows in the copied key range: choose a policy with --policy ({POLICIES})")
                if check and not whole and hold:
                    hold -= 1
                elif check and not whole:
                    skipped = self._same(tp, lo, upper)
                    misses = 0 if skipped is not None else misses + 1
                    if misses >= 2:
                        hold = min(2 ** (misses - 1), 64)
                if skipped is not None:
                    rows = skipped
                else:
                    st = stage if stage is not None else self._stage(tp)
                    rows = self._pipe(tp, self._select(tp, where), params, st, tp.rcols)
                    self._merge(tp, res, st, lo, upper, deletes=deletes)
            if skipped is not None:
                res.skipped_batches += 1
                res.skipped_rows += skipped
            res.rows_copied += rows
            res.batches += 1
            if hi is not None:
                lo = hi
            res.last_key = lo
            if self.dry_run:
                self.r.rollback()
            else:
                totals["rows_copied"] += rows
                totals["inserted"] += res.inserted - before[0]
                totals["updated"] += res.updated - before[1]
                totals["deleted"] += res.deleted - before[2]
                totals["batches"] += 1
                row = {**base, **totals, "last_key": lo, "status": "running" if more else "done"}
                if not more:
                    row["watermark"] = run_watermark
                checkpoint.save(self.r, row)
                self.r.commit()  # the batch and its checkpoint, atomically
            self.progress("batch", res.table, rows=rows, done=res.rows_copied)
            if not more:
                break
        res.unchanged = max(res.rows_copied - res.inserted - res.updated, 0)
        if stage is not None:
            self.r.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stage))
            self.r.commit()

    def _direct(self, tp: TablePlan, res: TableResult, n: int, base: dict[str, Any]) -> None:
        """Copy into a table that was empty when the copy began: one sequential `COPY (SELECT …) TO STDOUT`
        on the master (no ORDER BY, no boundary queries), its row messages cut into replica transactions
        of `n` rows, each committed together with its checkpoint (mode ``direct``, no last key)."""
        out = sql.SQL("COPY ({s}) TO STDOUT (FORMAT binary)").format(s=self._select(tp, sql.SQL("true")))
        into = sql.SQL("COPY {t} ({c}) FROM STDIN (FORMAT binary)").format(t=tp.rident, c=_cols(tp.rcols))
        res.notes.append("sequential read: the table was empty, so rows are copied in heap order, not key order")
        frames = _BinaryFrames(len(tp.rcols))
        totals = {"rows_copied": 0, "inserted": 0, "updated": 0, "deleted": 0, "batches": 0}
        cm = dst = None
        rows = 0

        def finish(done: bool) -> None:
            nonlocal cm, dst, rows
            if cm is not None:
                dst.write(_TRAILER)
                c, cm, dst = cm, None, None
                c.__exit__(None, None, None)
                if rc.rowcount >= 0 and rc.rowcount != rows:
                    raise CopyError(f"{res.table}: the replica took {rc.rowcount} rows of a batch of {rows}")
            totals["rows_copied"] += rows
            totals["inserted"] += rows
            totals["batches"] += 1
            res.rows_copied += rows
            res.inserted += rows
            res.batches += 1
            res.direct_batches += 1
            row = {**base, **totals, "last_key": None, "status": "done" if done else "running"}
            if done:
                row["watermark"] = base["run_watermark"]
            checkpoint.save(self.r, row)
            self.r.commit()  # the batch and its checkpoint, atomically
            self.progress("batch", res.table, rows=rows, done=res.rows_copied)
            rows = 0

        with self.m.cursor() as mc, self.r.cursor() as rc:
            try:
                with mc.copy(out, tp.mask_args()) as src:
                    for chunk in src:
                        row_msg = frames.feed(chunk)
                        if row_msg is None:
                            continue
                        if cm is not None and rows >= n:
                            finish(False)
                        if cm is None:
                            cm = rc.copy(into, writer=QueuedLibpqWriter(rc))
                            dst = cm.__enter__()
                            dst.write(frames.header)
                        dst.write(row_msg)
                        rows += 1
                    frames.close()
                finish(True)
            except BaseException as e:
                if cm is not None:
                    try:
                        cm.__exit__(type(e), e, e.__traceback__)
                    except BaseException:
                        pass
                raise
        res.last_key = None

    def _replace(self, tp: TablePlan, res: TableResult) -> None:
        res.mode = "replace"
        refs = [
            (t.key, c) for t in self.rschema.tables.values() for c in t.foreign_keys
            if c.referenced_table == tp.replica.key and t.key != tp.replica.key
        ]
        cascading = [(k, c) for k, c in refs if (c.on_delete or "NO ACTION").upper() not in ("NO ACTION", "RESTRICT")]
        if cascading:
            names = ", ".join(f"{k}.{c.name} (ON DELETE {c.on_delete})" for k, c in cascading)
            raise CopyError(f"replace would empty {res.replica_table}, which {names} reference(s) with a cascading action; "
                            "empty the referencing tables first or use --policy mirror")
        self.progress("start", res.table, total=self._estimate_rows(tp))
        if self.dry_run:
            res.deleted = self.r.execute(sql.SQL("SELECT count(*) FROM {}").format(tp.rident)).fetchone()[0]
            res.inserted = res.rows_copied = self.m.execute(
                sql.SQL("SELECT count(*) FROM {}").format(tp.mident)).fetchone()[0]
            self.r.rollback()
            return
        try:
            if refs:
                cur = self.r.execute(sql.SQL("DELETE FROM {}").format(tp.rident))
                res.deleted = max(cur.rowcount, 0)
                res.notes.append("emptied with DELETE (referenced by " + ", ".join(f"{k}.{c.name}" for k, c in refs) + ")")
            else:
                res.deleted = self.r.execute(sql.SQL("SELECT count(*) FROM {}").format(tp.rident)).fetchone()[0]
                self.r.execute(sql.SQL("TRUNCATE {}").format(tp.rident))
        except psycopg.errors.ForeignKeyViolation:
            self.r.rollback()
            names = ", ".join(f"{k}.{c.name}" for k, c in refs)
            raise CopyError(f"cannot replace {res.replica_table}: replica rows reference it through {names} "
                            "(no CASCADE is used; copy or empty those tables first)") from None
        rows = self._pipe(tp, self._select(tp, sql.SQL("true")), tp.mask_args(), tp.rident, tp.rcols)
        res.rows_copied = res.inserted = rows
        res.batches = res.direct_batches = 1
        checkpoint.save(self.r, {
            "table_name": res.replica_table, "master_table": res.table, "run_id": self.result.run_id,
            "mode": "replace", "policy": res.policy, "key_columns": tp.key_r, "was_empty": False,
            "snapshot_at": self.result.snapshot_at, "last_key": None, "status": "done", "rows_copied": rows,
            "inserted": rows, "updated": 0, "deleted": res.deleted, "batches": 1,
            "run_watermark": None, "watermark": None, "started_at": None,
        })
        self.r.commit()
        self.progress("batch", res.table, rows=rows, done=rows)

    # ---------------------------------------------------------------- sequences
    def fix_sequences(self, tp: TablePlan) -> None:
        q = """
            SELECT a.attname, pg_get_serial_sequence(%(t)s, a.attname)
            FROM pg_attribute a
            WHERE a.attrelid = %(t)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND pg_get_serial_sequence(%(t)s, a.attname) IS NOT NULL
        """
        tname = tp.rident.as_string(self.r)
        for col, seq in self.r.execute(q, {"t": tname}).fetchall():
            mx = self.r.execute(sql.SQL("SELECT max({})::bigint FROM {}").format(
                sql.Identifier(col), tp.rident)).fetchone()[0]
            if mx is None:
                continue
            last, called = self.r.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
                sql.SQL(seq))).fetchone()
            current = last if called else last - 1
            if current < mx:
                self.r.execute("SELECT setval(%s, %s, true)", (seq, mx))
                self.result.sequences.append(
                    SequenceFix(table=f"{tp.replica.schema_name}.{tp.replica.name}", column=col, sequence=seq, value=mx))
        self.r.commit()


# -------------------------------------------------------------------- ordering and deferral
def fk_order(plans: list[TablePlan]) -> tuple[list[TablePlan], list[tuple[str, str, str]]]:
    """Plans with referenced tables first; FKs (replica side) that close a cycle or reference their own table.

    Returns the ordered plans and the (table key, constraint name, definition) of the FKs to defer.
    """
    by_key = {p.replica.key: p for p in plans}
    deps: dict[str, set[str]] = {k: set() for k in by_key}
    deferred: list[tuple[str, str, str]] = []
    for k, p in by_key.items():
        for fk in p.replica.foreign_keys:
            ref = fk.referenced_table
            if ref == k:
                deferred.append((k, fk.name, fk.definition))
            elif ref in by_key:
                deps[k].add(ref)
    order: list[str] = []
    remaining = dict(deps)
    while remaining:
        ready = sorted(k for k, d in remaining.items() if not (d & remaining.keys()))
        if not ready:
            # a cycle: break it at the table with fewest unresolved references, deferring those FKs
            k = min(remaining, key=lambda x: (len(remaining[x] & remaining.keys()), x))
            for fk in by_key[k].replica.foreign_keys:
                if fk.referenced_table in remaining and fk.referenced_table != k:
                    deferred.append((k, fk.name, fk.definition))
            ready = [k]
        for k in ready:
            order.append(k)
            remaining.pop(k)
    return [by_key[k] for k in order], deferred


DEFERRED_DDL = """
CREATE SCHEMA IF NOT EXISTS _replicator;
CREATE TABLE IF NOT EXISTS _replicator.dropped_constraints (
    table_name text NOT NULL, constraint_name text NOT NULL, definition text NOT NULL,
    dropped_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, constraint_name))
"""


def _restore_constraints(replica: psycopg.Connection) -> list[str]:
    """Re-add (and so validate) FKs an earlier run dropped for a cycle, including after a crash."""
    if not replica.execute("SELECT to_regclass('_replicator.dropped_constraints') IS NOT NULL").fetchone()[0]:
        replica.commit()
        return []
    done = []
    for table, name, definition in replica.execute(
            "SELECT table_name, constraint_name, definition FROM _replicator.dropped_constraints").fetchall():
        replica.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.SQL(table), sql.Identifier(name), sql.SQL(definition)))
        replica.execute("DELETE FROM _replicator.dropped_constraints WHERE table_name = %s AND constraint_name = %s",
                        (table, name))
        replica.commit()
        done.append(f"{table}.{name}")
    return done


def _drop_constraints(replica: psycopg.Connection, deferred: list[tuple[str, str, str]]) -> None:
    replica.execute(DEFERRED_DDL)
    for table, name, definition in deferred:
        replica.execute("INSERT INTO _replicator.dropped_constraints (table_name, constraint_name, definition) "
                        "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (table, name, definition))
        replica.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.SQL(table), sql.Identifier(name)))
    replica.commit()  # the record and the drop commit together: a crash leaves them restorable


# -------------------------------------------------------------------- entry point
def _binary_unsafe(master: psycopg.Connection, tables: list[str]) -> dict[str, set[str]]:
    """Columns whose binary COPY form embeds type OIDs (user composite/range types, arrays of user types)."""
    rows = master.execute(
        """
        SELECT c.oid::regclass::text, a.attname
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
        WHERE c.oid::regclass::text = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
          AND ((b.oid >= 16384 AND b.typtype IN ('c', 'r', 'm'))
               OR (b.typelem <> 0 AND b.typelem >= 16384)
               OR b.typsend::oid = 0 OR b.typreceive::oid = 0)
        """, (tables,)).fetchall()
    out: dict[str, set[str]] = {}
    for rel, col in rows:
        out.setdefault(rel, set()).add(col)
    return out


def copy_tables(
    master_url: str | None = None,
    replica_url: str | None = None,
    tables: list[str] | None = None,
    *,
    all_tables: bool = False,
    config: Config | None = None,
    policy: Policy | str | None = None,
    batch_size: int | None = None,
    restart: bool = False,
    incremental: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    guard: MasterGuard | None = None,
    checksum_skip: bool = True,
) -> CopyResult:
    """Copy `tables` (or every table with `all_tables=True`) from the master into the replica.

    All master reads share one REPEATABLE READ READ ONLY transaction. `checksum_skip=False` transfers and
    compares every batch of a non-empty replica table instead of first comparing key-range checksums. Raises `ReplicatorError` (with the
    partial `CopyResult` as `.result`) on bad input, conflicts under `fail`, or database errors.
    """
    cfg = config or Config()
    master_url = master_url or cfg.master_url
    replica_url = replica_url or cfg.replica_url
    if not master_url or not replica_url:
        raise ReplicatorError("copy needs both a master and a replica URL")
    if not tables and not all_tables:
        raise ReplicatorError("name tables with --table, or pass --all")
    if policy is not None and not isinstance(policy, Policy):
        try:
            policy = Policy(policy)
        except ValueError:
            raise ReplicatorError(f"unknown policy {policy!r}: choose one of {POLICIES}") from None
    guard = guard or MasterGuard()
    started = time.monotonic()
    result = CopyResult(run_id=str(uuid.uuid4()), started_at=_now(), dry_run=dry_run, incremental=incremental)
    master = open_master(master_url, guard)
    replica = open_replica(replica_url)
    replica._replicator_pooled = is_transaction_pooler(parse_conninfo(replica_url, "replica"))
    run: _Run | None = None
    try:
        identity.check_pair(master, replica, allow_new_master=cfg.replica_of_new_master, mark=not dry_run)
        master.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        # One transaction holds the snapshot for the whole run; with only this connection reading the
        # master no pg_export_snapshot is needed, which also works through a transaction pooler.
        result.snapshot_at = master.execute("SELECT now()").fetchone()[0]
        result.snapshot_mode = ("single REPEATABLE READ READ ONLY transaction"
                                + (" (transaction pooler)" if master.pooled else ""))
        mschema = introspect(master, schemas=cfg.schemas)
        rschema = introspect(replica, schemas=cfg.schemas)
        replica.commit()
        if all_tables:
            names = [f"{t.schema_name}.{t.name}" for t in mschema.tables.values() if not t.partition_of]
        else:
            names = list(dict.fromkeys(tables or []))
        plans = []
        for n in names:
            plans.append(plan_table(n, mschema, rschema, cfg, policy=policy, batch_size=batch_size))
        if plans:
            unsafe_all = _binary_unsafe(master, [p.mident.as_string(master) for p in plans])
            for p in plans:
                cols = unsafe_all.get(p.mident.as_string(master)) or unsafe_all.get(p.master.name) or set()
                cols |= unsafe_all.get(f"{p.master.schema_name}.{p.master.name}", set())
                if set(p.mcols) & cols:
                    p.binary = False
        plans, deferred = fk_order(plans)
        if not dry_run:
            checkpoint.ensure(replica)
            _restore_constraints(replica)
            if deferred:
                _drop_constraints(replica, deferred)
                result.deferred_constraints = [
                    f"{t}.{n}: dropped during the copy (FK cycle or self-reference), re-added and validated after"
                    for t, n, _ in deferred]
        run = _Run(master, replica, cfg, restart=restart, incremental=incremental, dry_run=dry_run,
                   progress=progress, result=result, rschema=rschema)
        run.checksum_skip = checksum_skip
        for p in plans:
            run.copy_table(p)
            if not dry_run:
                run.fix_sequences(p)
        if deferred and not dry_run:
            _restore_constraints(replica)
    except BaseException as e:
        result.ok = False
        result.error = str(e).splitlines()[0] if str(e) else type(e).__name__
        _finish(result, guard, started)
        try:
            replica.rollback()
        except psycopg.Error:
            pass
        if isinstance(e, ReplicatorError):
            e.result = result  # type: ignore[attr-defined]
        elif isinstance(e, psycopg.Error):
            err = ReplicatorError(describe(e))
            err.result = result  # type: ignore[attr-defined]
            raise err from e
        raise
    finally:
        if run is not None:
            run.close()
        try:
            master.rollback()
        except psycopg.Error:
            pass
        master.close()
        replica.close()
    _finish(result, guard, started)
    return result


def _finish(result: CopyResult, guard: MasterGuard, started: float) -> None:
    result.finished_at = _now()
    result.seconds = round(time.monotonic() - started, 3)
    result.audit = guard.summary()
