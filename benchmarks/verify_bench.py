"""Benchmark `verify --deep` against a raw binary COPY of the same table, in the same run.

Two throwaway clusters (master, replica). The master gets N rows of the whatsapp_messages shape
(~1 KB of jsonb per row); the replica gets an identical copy by a raw binary COPY pipe
(`COPY … TO STDOUT (FORMAT binary)` → `COPY … FROM STDIN (FORMAT binary)`), which is also the
yardstick: the pipe is timed into a freshly truncated table with the same primary key, and
`verify --deep` of the table (no differences) is timed the same number of times, interleaved.
Then 10 rows are changed on the replica and verify must name exactly those 10 keys.

    .venv/bin/python benchmarks/verify_bench.py            # 1,000,000 rows, 3 runs
    .venv/bin/python benchmarks/verify_bench.py --rows 100000 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg

from replicator import ephemeral
from replicator.config import Config
from replicator.verify import run_verify

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import describe, raw_pipe  # noqa: E402

DDL = """
CREATE TABLE public.whatsapp_messages (
    id uuid PRIMARY KEY,
    sender_number varchar(20),
    content text,
    wamid varchar(255),
    payload jsonb,
    awaits_response boolean DEFAULT false,
    receiver_id varchar(255),
    receiver_number varchar(20),
    wa_timestamp timestamptz,
    test_mode boolean DEFAULT false,
    test_session_id varchar(255),
    test_scenario_name varchar(255),
    created_at timestamptz DEFAULT now()
);
"""

LOAD = """
INSERT INTO public.whatsapp_messages
SELECT md5('m' || g)::uuid,
       '+49' || (1500000000 + g % 99999999),
       'message body ' || g || ' ' || repeat(md5(g::text), 3),
       'wamid.' || md5('w' || g),
       jsonb_build_object(
           'object', 'whatsapp_business_account',
           'entry', jsonb_build_array(jsonb_build_object(
               'id', g, 'time', 1700000000 + g,
               'text', repeat(md5((g * 7)::text), 20),
               'meta', jsonb_build_object('seq', g, 'kind', g % 5, 'flag', g % 2 = 0)))),
       g % 10 = 0,
       'recv-' || g % 1000,
       '+4930' || g % 100000,
       timestamptz '2024-01-01' + g * interval '1 second',
       false, NULL, NULL,
       timestamptz '2024-01-01' + g * interval '1 second'
FROM generate_series(1, {rows}) g
"""


def raw_copy(master_url: str, replica_url: str, bindir) -> float:
    """Truncate the replica table, then time the binary COPY pipe master → replica."""
    with psycopg.connect(replica_url, autocommit=True) as r:
        r.execute("TRUNCATE public.whatsapp_messages")
    return raw_pipe(master_url, replica_url, "public.whatsapp_messages", bindir)


def timed_verify(cfg: Config) -> tuple[float, object]:
    t0 = time.perf_counter()
    report = run_verify(cfg, tables=["whatsapp_messages"], deep=True, snapshot=None, max_keys=1000)
    return time.perf_counter() - t0, report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    bindir = ephemeral.system_bindir() or ephemeral.embedded_bindir()
    if bindir is None:
        print("no PostgreSQL binaries (install PostgreSQL or pip install pgserver)", file=sys.stderr)
        return 2
    clusters = [ephemeral.start_cluster(bindir) for _ in range(2)]
    try:
        master_url, replica_url = clusters[0].url(), clusters[1].url()
        print(f"PostgreSQL {clusters[0].version} from {bindir}; {args.rows:,} rows; baseline: {describe(bindir)}")
        t0 = time.perf_counter()
        with psycopg.connect(master_url, autocommit=True) as m:
            m.execute(DDL)
            m.execute(LOAD.format(rows=int(args.rows)))
            m.execute("VACUUM ANALYZE public.whatsapp_messages")
            size = m.execute("SELECT pg_size_pretty(pg_total_relation_size('public.whatsapp_messages')), "
                             "avg(pg_column_size(w.*))::int FROM public.whatsapp_messages w").fetchone()
        with psycopg.connect(replica_url, autocommit=True) as r:
            r.execute(DDL)
        print(f"loaded master in {time.perf_counter() - t0:.1f}s: {size[0]} total, {size[1]} bytes/row")
        cfg = Config(master_url=master_url, replica_url=replica_url)

        copies, verifies = [], []
        for i in range(args.runs):
            copies.append(raw_copy(master_url, replica_url, bindir))
            if i == 0:
                with psycopg.connect(replica_url, autocommit=True) as r:
                    r.execute("VACUUM ANALYZE public.whatsapp_messages")
            secs, report = timed_verify(cfg)
            verifies.append(secs)
            content = [c for c in report.checks if c.name == "content"]
            assert content and content[0].status == "pass", [c.summary for c in report.checks if c.status == "fail"]
            print(f"run {i + 1}: raw binary COPY {copies[-1]:.2f}s, verify --deep {secs:.2f}s "
                  f"(content scan {content[0].evidence['seconds']:.2f}s)")
        mc, mv = statistics.median(copies), statistics.median(verifies)
        print(f"median raw binary COPY {mc:.2f}s, median verify --deep {mv:.2f}s, ratio {mv / mc:.2f} "
              f"(target <= 0.80)")

        with psycopg.connect(replica_url, autocommit=True) as r:
            changed = [row[0] for row in r.execute(
                "SELECT id::text FROM public.whatsapp_messages TABLESAMPLE BERNOULLI (1) REPEATABLE (7) LIMIT 10")]
            for n, key in enumerate(changed):
                col = ("content", "payload", "awaits_response", "wa_timestamp", "receiver_id")[n % 5]
                expr = {"content": "content || '!'", "payload": "jsonb_set(payload, '{entry,0,meta,kind}', '42')",
                        "awaits_response": "NOT awaits_response", "wa_timestamp": "wa_timestamp + interval '1 ms'",
                        "receiver_id": "'someone else'"}[col]
                r.execute(f"UPDATE public.whatsapp_messages SET {col} = {expr} WHERE id = %s", (key,))
        secs, report = timed_verify(cfg)
        content = [c for c in report.checks if c.name == "content"][0]
        named = sorted(d["key"]["id"] for d in content.evidence.get("differences", []))
        exact = named == sorted(changed)
        print(f"10 changed rows: verify --deep {secs:.2f}s, {content.evidence['queries']} queries, "
              f"named {len(named)} key(s), exactly the changed ones: {exact}")
        return 0 if exact and mv / mc <= 0.8 else 1
    finally:
        for c in clusters:
            c.stop()


if __name__ == "__main__":
    sys.exit(main())
