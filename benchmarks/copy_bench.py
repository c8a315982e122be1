"""Benchmark `replicator copy` against the raw binary COPY pipe and other tools, on throwaway clusters.

    .venv/bin/python benchmarks/copy_bench.py                      # 500,000 rows (~1.2 KB each, jsonb)
    .venv/bin/python benchmarks/copy_bench.py --rows 1000000 --runs 3
    .venv/bin/python benchmarks/copy_bench.py --indexes --empty-only   # with a developer's usual indexes

Every case runs in the same session as its baseline; figures are medians of --runs runs and ratios
to the raw pipe:
  raw        COPY ... TO STDOUT (FORMAT binary) piped into COPY ... FROM STDIN between two psql
             processes (benchmarks/baseline.py): the limit for a full copy
  empty      the whole `replicator copy` process (start-up included) into an empty replica table
             (goal <= 1.10); `empty -j2` the same with `--jobs 2`: two streams share the table's
             page ranges
  pg_dump    `pg_dump -Fc --data-only | pg_restore --data-only` of the table, for comparison
  pgcopydb   `pgcopydb copy table-data --table-jobs 2`, where pgcopydb is installed
  unchanged  `copy --policy master-wins` into a replica that an earlier `replicator copy` synced and
             nothing changed since (goal <= 0.25), with the replica WAL it wrote: the daily re-sync,
             which examines only what changed since that sync (its baseline)
  1%, 10%    the same with 1% / 10% of the replica's rows changed, spread over every key range
             (goals <= 0.5 and <= 1.0), with the replica WAL written
  1% master  the same with 1% of the master's rows changed
  1% full    1% of the replica's rows changed, with `--restart`: no baseline used, the whole table
             compared by checksums and keys (what the first re-sync of a replica filled some other
             way costs); `-j2`, `-j4` the same with --jobs 2 / 4: the key ranges compared on 2 / 4
             connections at once
  hash       one server hashing every row once with the comparison's row hash (a single query, no
             parallel workers): the floor under a full comparison (`1% full`), which hashes both sides at once
With --indexes both tables also carry two secondary indexes, `(sender_number, created_at)` and a GIN index
on `payload` (jsonb_path_ops): the raw pipe maintains them row by row, `replicator copy` builds them after
the load. --empty-only stops after the copies into an empty table.

Reported too: the peak RSS of the `replicator copy` process in each (goal < 150 MB), and its CPU seconds (user +
system, start-up included): what the tool itself takes from the cores the servers share.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from replicator import ephemeral

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import describe, raw_pipe  # noqa: E402

DDL = """
CREATE TABLE whatsapp_messages (
    id uuid PRIMARY KEY,
    sender_number varchar(20),
    content text,
    wamid text,
    payload jsonb,
    awaits_response boolean NOT NULL DEFAULT false,
    receiver_number varchar(20),
    wa_timestamp bigint,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""

FILL = """
INSERT INTO whatsapp_messages
SELECT md5(i::text)::uuid, '+4477009' || lpad(i::text, 8, '0'), 'message ' || i || ' ' || repeat('lorem ipsum ', 12),
       'wamid.' || md5('w' || i),
       jsonb_build_object('object', 'whatsapp_business_account', 'entry', jsonb_build_array(jsonb_build_object(
           'id', i, 'changes', jsonb_build_array(jsonb_build_object('field', 'messages', 'value', jsonb_build_object(
               'messaging_product', 'whatsapp', 'metadata', jsonb_build_object('phone_number_id', 100000 + i %% 97),
               'contacts', jsonb_build_array(jsonb_build_object('wa_id', '44770090' || i, 'profile',
                   jsonb_build_object('name', 'Contact ' || i))),
               'messages', jsonb_build_array(jsonb_build_object('id', md5(i::text), 'type', 'text',
                   'timestamp', 1700000000 + i, 'text', jsonb_build_object('body', repeat(md5((i * 7)::text), 10)))))))))),
       i %% 3 = 0, '+447700900000', 1700000000 + i, timestamptz '2024-01-01' + i * interval '1 second'
FROM generate_series(%s::bigint + 1, %s::bigint) i
"""


INDEXES = """
CREATE INDEX whatsapp_messages_sender ON whatsapp_messages (sender_number, created_at);
CREATE INDEX whatsapp_messages_payload ON whatsapp_messages USING gin (payload jsonb_path_ops);
"""

# "replica equals master", computed by PostgreSQL from every row's text, none of replicator's code
CHECKSUM = "SELECT count(*), sum(hashtextextended(t::text, 0)) FROM whatsapp_messages t"


def q(url: str, text: str, params=None):
    with psycopg.connect(url, autocommit=True) as c:
        cur = c.execute(text, params)
        return cur.fetchall() if cur.description else None


def empty_replica(replica: str) -> None:
    q(replica, "TRUNCATE whatsapp_messages; DROP SCHEMA IF EXISTS _replicator CASCADE")
    q(replica, "CHECKPOINT")


def cli(args: list[str], out: Path) -> tuple[float, int, int, float]:
    """Wall time, exit status, peak RSS (bytes) and CPU seconds (user + system) of one `replicator`
    process."""
    exe = Path(sys.executable).with_name("replicator")
    # as installed: compiled modules cached (some environments set PYTHONDONTWRITEBYTECODE, which
    # would make every run compile the package again)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    p = subprocess.Popen([str(exe), *args, "--out-dir", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"replicator {' '.join(args[:1])} failed: {p.stderr.read().decode()[-400:]}")
    return elapsed, status, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def copy_cli(master: str, replica: str, out: Path, *extra: str) -> tuple[float, int, float]:
    t, _, rss, cpu = cli(["copy", "--master", master, "--replica", replica, "--table", "whatsapp_messages", *extra], out)
    return t, rss, cpu


def wal_lsn(url: str) -> str:
    return q(url, "SELECT pg_current_wal_lsn()::text")[0][0]


def wal_diff(url: str, a: str) -> int:
    return int(q(url, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (a,))[0][0])


def pg_dump_restore(master: str, replica: str) -> float | None:
    dump, restore = shutil.which("pg_dump"), shutil.which("pg_restore")
    if not (dump and restore):
        return None
    env = {**os.environ, "PGPASSWORD": conninfo_to_dict(master)["password"]}
    renv = {**os.environ, "PGPASSWORD": conninfo_to_dict(replica)["password"]}
    mdsn = make_conninfo(master, password=None)
    rdsn = make_conninfo(replica, password=None)
    t0 = time.perf_counter()
    d = subprocess.Popen([dump, "-Fc", "--data-only", "-t", "whatsapp_messages", "-d", mdsn], stdout=subprocess.PIPE,
                         env=env)
    r = subprocess.run([restore, "--data-only", "-d", rdsn], stdin=d.stdout, env=renv, capture_output=True)
    d.wait()
    if d.returncode or r.returncode:
        return None
    return time.perf_counter() - t0


def pgcopydb(master: str, replica: str, work: Path) -> float | None:
    exe = shutil.which("pgcopydb")
    if not exe:
        return None
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    r = subprocess.run([exe, "copy", "table-data", "--source", master, "--target", replica, "--table-jobs", "2",
                        "--dir", str(work)], capture_output=True, text=True)
    if r.returncode:
        print(f"pgcopydb failed ({r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}): skipped")
        return None
    return time.perf_counter() - t0


def change(url: str, pct: int, run: int = 0) -> None:
    q(url, "UPDATE whatsapp_messages SET content = content || ' (edited)' "
           "WHERE abs(hashtext(id::text || %s)) %% 100 < %s", (str(run), pct))
    q(url, "VACUUM ANALYZE whatsapp_messages")
    q(url, "CHECKPOINT")


def hash_all_rows(url: str) -> float:
    from psycopg import sql

    from replicator.rowhash import range_checksum
    with psycopg.connect(url, autocommit=True) as c:
        cols = [r[0] for r in c.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'whatsapp_messages'::regclass "
                                        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]
        c.execute("SET max_parallel_workers_per_gather = 0")
        t0 = time.perf_counter()
        c.execute(sql.SQL("SELECT {} FROM whatsapp_messages").format(range_checksum(cols))).fetchone()
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--indexes", action="store_true", help="two secondary indexes on both tables (one GIN)")
    ap.add_argument("--empty-only", action="store_true", help="only the copies into an empty table")
    args = ap.parse_args()
    bindir = ephemeral.system_bindir() or ephemeral.embedded_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries (install PostgreSQL or `pip install pgserver`)")
    mc, rc = ephemeral.start_cluster(bindir), ephemeral.start_cluster(bindir)
    master, replica = mc.url(), rc.url()
    out = Path(tempfile.mkdtemp(prefix="copy-bench-"))
    med = statistics.median
    try:
        q(master, DDL)
        q(replica, DDL)
        if args.indexes:
            q(master, INDEXES)
            q(replica, INDEXES)
        t0 = time.perf_counter()
        step = 100_000
        for lo in range(0, args.rows, step):
            q(master, FILL, (lo, min(lo + step, args.rows)))
        q(master, "VACUUM ANALYZE whatsapp_messages")
        size = q(master, "SELECT pg_total_relation_size('whatsapp_messages')")[0][0]
        print(f"master: {args.rows:,} rows, {size / 1e9:.2f} GB on disk, built in {time.perf_counter() - t0:.0f}s "
              f"(PostgreSQL {mc.version}; bench clusters run with fsync/full_page_writes off)")

        empty_replica(replica)
        copy_cli(master, replica, out)  # a first run caches the compiled modules, as an install has them
        cases: dict[str, list[float]] = {k: [] for k in ("raw", "empty", "empty -j2", "pg_dump", "pgcopydb")}
        rss: dict[str, list[int]] = {"empty": [], "empty -j2": []}
        cpu: dict[str, list[float]] = {"empty": [], "empty -j2": []}  # the replicator process's own CPU
        for i in range(args.runs):
            empty_replica(replica)
            cases["raw"].append(raw_pipe(master, replica, "whatsapp_messages", bindir))
            empty_replica(replica)
            t, peak, used = copy_cli(master, replica, out)
            cases["empty"].append(t)
            rss["empty"].append(peak)
            cpu["empty"].append(used)
            empty_replica(replica)
            t, peak, used = copy_cli(master, replica, out, "--jobs", "2")
            cases["empty -j2"].append(t)
            rss["empty -j2"].append(peak)
            cpu["empty -j2"].append(used)
            if i == 0:
                split_ok = q(master, CHECKSUM) == q(replica, CHECKSUM)
            empty_replica(replica)
            if (t := pg_dump_restore(master, replica)) is not None:
                cases["pg_dump"].append(t)
            empty_replica(replica)
            if (t := pgcopydb(master, replica, out / "pgcopydb")) is not None:
                cases["pgcopydb"].append(t)
            print(f"run {i + 1}: raw {cases['raw'][-1]:.2f}s  replicator copy (empty) {cases['empty'][-1]:.2f}s"
                  f"  --jobs 2 {cases['empty -j2'][-1]:.2f}s"
                  + (f"  pg_dump|pg_restore {cases['pg_dump'][-1]:.2f}s" if cases["pg_dump"] else "")
                  + (f"  pgcopydb {cases['pgcopydb'][-1]:.2f}s" if cases["pgcopydb"] else ""), flush=True)
        empty_replica(replica)
        copy_cli(master, replica, out)
        q(replica, "VACUUM ANALYZE whatsapp_messages")
        q(replica, "CHECKPOINT")
        wal: dict[str, list[int]] = {}
        resyncs = () if args.empty_only else (
            ("unchanged", 0, replica, ()), ("1%", 1, replica, ()), ("10%", 10, replica, ()),
            ("1% master", 1, master, ()), ("1% full", 1, replica, ("--restart",)),
            ("1% full -j2", 1, replica, ("--restart", "--jobs", "2")),
            ("1% full -j4", 1, replica, ("--restart", "--jobs", "4")))
        for label, pct, side, extra in resyncs:
            cases[label], rss[label], wal[label], cpu[label] = [], [], [], []
            for i in range(args.runs):
                if pct:
                    change(side, pct, i)
                lsn = wal_lsn(replica)
                t, peak, used = copy_cli(master, replica, out, "--policy", "master-wins", *extra)
                cpu[label].append(used)
                wal[label].append(wal_diff(replica, lsn))
                cases[label].append(t)
                rss[label].append(peak)
                print(f"{label} run {i + 1}: {t:.2f}s, {wal[label][-1] / 1e6:.1f} MB replica WAL, "
                      f"peak RSS {peak / 2**20:.0f} MB", flush=True)
        ok = q(master, CHECKSUM) == q(replica, CHECKSUM)
        # The floor of a full comparison: one server hashing every row once, as the comparison does (no
        # parallel query: each side has one of the cores while the other side hashes too)
        cases["hash"] = [] if args.empty_only else [hash_all_rows(master) for _ in range(args.runs)]

        r = med(cases["raw"])
        goals = {"empty": 1.10, "empty -j2": 1.10, "unchanged": 0.25, "1%": 0.5, "10%": 1.0}
        names = {"raw": f"raw binary COPY pipe ({describe(bindir)})", "empty": "replicator copy, empty replica",
                 "empty -j2": "replicator copy --jobs 2, empty", "pg_dump":
                 "pg_dump -Fc | pg_restore", "pgcopydb": "pgcopydb --table-jobs 2", "unchanged":
                 "master-wins, unchanged", "1%": "master-wins, 1% changed", "10%": "master-wins, 10% changed",
                 "1% master": "master-wins, 1% changed on master", "1% full": "1% changed, --restart (no baseline)",
                 "1% full -j2": "the same, --jobs 2", "1% full -j4": "the same, --jobs 4",
                 "hash": "one side hashing every row once"}
        print()
        print(f"{args.rows:,} rows; medians of {args.runs}; the replica equal to the master (independent "
              f"checksum) after the first --jobs 2 copy: {split_ok}, at the end: {ok}")
        print(f"{'case':<34}{'median s':>10}{'ratio':>8}{'goal':>7}{'peak RSS':>10}{'CPU s':>7}{'WAL MB':>8}")
        for key, name in names.items():
            if not cases.get(key):
                continue
            m = med(cases[key])
            goal = f"{goals[key]:.2f}" if key in goals else "-"
            peak = f"{med(rss[key]) / 2**20:.0f} MB" if key in rss else ""
            w = f"{med(wal[key]) / 1e6:.1f}" if key in wal else ""
            used = f"{med(cpu[key]):.2f}" if key in cpu else ""
            print(f"{name:<34}{m:>10.2f}{m / r:>8.2f}{goal:>7}{peak:>10}{used:>7}{w:>8}")
    finally:
        mc.stop()
        rc.stop()
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
