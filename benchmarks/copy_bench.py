"""Benchmark `replicator copy` against the raw binary COPY pipe, on throwaway clusters.

    .venv/bin/python benchmarks/copy_bench.py            # 1,000,000 rows (~1 KB each, jsonb payload)
    .venv/bin/python benchmarks/copy_bench.py --rows 100000 --runs 3

Measures, as medians of --runs runs:
  raw     COPY ... TO STDOUT (FORMAT binary) piped into COPY ... FROM STDIN, one statement
  empty   replicator copy into an empty replica table: the sequential path, one COPY in heap order cut
          into checkpointed batches (goal <= 1.15 x raw)
  same    replicator copy --policy master-wins into a replica holding the same rows (goal <= 1.5 x raw),
          with the WAL the replica wrote (pg_current_wal_lsn() difference); key ranges whose checksums
          match on both sides are skipped
  1%      master-wins with 1% of the replica's rows changed
and the peak RSS of the `replicator copy` process at the full and a quarter row count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg.copy import QueuedLibpqWriter

from replicator import ephemeral
from replicator.config import Config
from replicator.copy import copy_tables

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


def q(url: str, text: str, params=None):
    with psycopg.connect(url, autocommit=True) as c:
        cur = c.execute(text, params)
        return cur.fetchall() if cur.description else None


def raw_pipe(master: str, replica: str) -> float:
    t0 = time.perf_counter()
    with psycopg.connect(master) as m, psycopg.connect(replica) as r:
        with m.cursor() as mc, r.cursor() as rc:
            with mc.copy("COPY whatsapp_messages TO STDOUT (FORMAT binary)") as src:
                with rc.copy("COPY whatsapp_messages FROM STDIN (FORMAT binary)", writer=QueuedLibpqWriter(rc)) as dst:
                    for chunk in src:
                        dst.write(chunk)
        r.commit()
    return time.perf_counter() - t0


def empty_replica(replica: str) -> None:
    q(replica, "TRUNCATE whatsapp_messages; DROP SCHEMA IF EXISTS _replicator CASCADE")
    q(replica, "CHECKPOINT")


def run_copy(master: str, replica: str, policy: str | None) -> tuple[float, object]:
    t0 = time.perf_counter()
    res = copy_tables(master, replica, ["whatsapp_messages"], config=Config(), policy=policy, restart=True)
    return time.perf_counter() - t0, res


def wal_lsn(url: str) -> str:
    return q(url, "SELECT pg_current_wal_lsn()::text")[0][0]


def wal_diff(url: str, a: str) -> int:
    return int(q(url, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (a,))[0][0])


def cli_peak_rss(master: str, replica: str, out: Path) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one `replicator copy` process into the empty replica."""
    cli = Path(sys.executable).with_name("replicator")
    t0 = time.perf_counter()
    p = subprocess.Popen([str(cli), "copy", "--master", master, "--replica", replica, "--table", "whatsapp_messages",
                          "--out-dir", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"replicator copy failed with status {status}")
    return time.perf_counter() - t0, usage.ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    bindir = ephemeral.system_bindir() or ephemeral.embedded_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries (install PostgreSQL or `pip install pgserver`)")
    mc, rc = ephemeral.start_cluster(bindir), ephemeral.start_cluster(bindir)
    master, replica = mc.url(), rc.url()
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "copy_bench_reports"
    try:
        q(master, DDL)
        q(replica, DDL)
        t0 = time.perf_counter()
        step = 100_000
        for lo in range(0, args.rows, step):
            q(master, FILL, (lo, min(lo + step, args.rows)))
        q(master, "VACUUM ANALYZE whatsapp_messages")
        size = q(master, "SELECT pg_total_relation_size('whatsapp_messages')")[0][0]
        print(f"master: {args.rows:,} rows, {size / 1e9:.2f} GB on disk, built in {time.perf_counter() - t0:.0f}s "
              f"(PostgreSQL {mc.version}; bench clusters run with fsync/full_page_writes off)")

        raw, empty, same, changed, wal_same, wal_changed = [], [], [], [], [], []
        for i in range(args.runs):
            empty_replica(replica)
            raw.append(raw_pipe(master, replica))
            empty_replica(replica)
            t, res = run_copy(master, replica, None)
            empty.append(t)
            assert res.tables[0].inserted == args.rows
            print(f"run {i + 1}: raw {raw[-1]:.2f}s  copy-empty {t:.2f}s", flush=True)
        q(replica, "VACUUM ANALYZE whatsapp_messages")
        q(replica, "CHECKPOINT")
        for i in range(args.runs):
            lsn = wal_lsn(replica)
            t, res = run_copy(master, replica, "master-wins")
            wal_same.append(wal_diff(replica, lsn))
            same.append(t)
            assert res.tables[0].updated == 0 and res.tables[0].inserted == 0
            skipped = res.tables[0].skipped_rows
            q(replica, "UPDATE whatsapp_messages SET content = content || ' (edited)' "
                       "WHERE abs(hashtext(id::text)) %% 100 = 0", ())
            q(replica, "CHECKPOINT")
            lsn = wal_lsn(replica)
            t, res = run_copy(master, replica, "master-wins")
            wal_changed.append(wal_diff(replica, lsn))
            changed.append(t)
            print(f"run {i + 1}: master-wins same {same[-1]:.2f}s ({wal_same[-1] / 1e6:.2f} MB WAL, "
                  f"{skipped:,} rows skipped by checksum)  "
                  f"1% changed {t:.2f}s ({res.tables[0].updated} updated, {wal_changed[-1] / 1e6:.1f} MB WAL)",
                  flush=True)

        rss = []
        for n in (args.rows, args.rows // 4):
            if n != args.rows:
                q(master, "DELETE FROM whatsapp_messages WHERE id IN "
                          "(SELECT id FROM whatsapp_messages ORDER BY id OFFSET %s)", (n,))
            empty_replica(replica)
            t, peak = cli_peak_rss(master, replica, out)
            rss.append((n, peak, t))

        med = statistics.median
        r = med(raw)
        print()
        print(f"{'case':<28}{'median s':>10}{'ratio':>8}{'goal':>7}")
        print(f"{'raw binary COPY pipe':<28}{r:>10.2f}{1:>8.2f}")
        for name, xs, goal in (("copy, empty replica", empty, 1.15), ("master-wins, same rows", same, 1.5),
                               ("master-wins, 1% changed", changed, None)):
            print(f"{name:<28}{med(xs):>10.2f}{med(xs) / r:>8.2f}{(f'{goal:.2f}' if goal else '-'):>7}")
        print(f"replica WAL, master-wins over unchanged rows: {med(wal_same) / 1e6:.2f} MB (median)")
        print(f"replica WAL, master-wins with 1% changed:     {med(wal_changed) / 1e6:.1f} MB (median)")
        for n, peak, t in rss:
            print(f"peak RSS of `replicator copy` at {n:,} rows: {peak / 2**20:.0f} MB ({t:.1f}s wall, CLI)")
    finally:
        mc.stop()
        rc.stop()


if __name__ == "__main__":
    main()
