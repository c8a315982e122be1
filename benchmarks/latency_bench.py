"""Benchmark `replicator copy` against a distant master: a proxy on 127.0.0.1 adds a delay each way.

    .venv/bin/python benchmarks/latency_bench.py                 # 20 ms each way, medians of 3
    .venv/bin/python benchmarks/latency_bench.py --delay-ms 50 --runs 5
    .venv/bin/python benchmarks/latency_bench.py --only jobs     # one case (repeatable)

Cases, each run with and without the proxy in the same session:
  unchanged   master-wins over a 50,000-row table the replica already holds: the added time, in round
              trips' worth (added seconds / (2 x delay)), connecting included (goal <= 10)
  compared    a table of 8 x --rows rows, 1% of it drifted on the replica, compared in full (`--restart`:
              no baseline) with --jobs 1 and --jobs 2 (its key ranges shared by two connections), with
              and without the proxy
  sample      `copy --all` of the sample databases (12 tables: the mission's shape) into a replica with
              their schema, then the re-sync of the same (goal: each adds <= 2 s)
  jobs        8 tables of 50,000 rows into an empty replica through the proxy, --jobs 1 vs --jobs 4
              (goal >= 2.5x), the replica checked equal to the master by an independent checksum; the
              same without the proxy, the CPU floor under --jobs 4; and the raw pipes (psql | psql,
              benchmarks/baseline.py) on the same tables, one and four at a time, with and without
              the proxy: what the machine allows any client
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import describe, raw_pipe  # noqa: E402
from latency import LatencyProxy  # noqa: E402

from replicator import ephemeral  # noqa: E402
from replicator.config import Config  # noqa: E402
from replicator.copy import copy_tables  # noqa: E402
from replicator.examples import example_sql  # noqa: E402

CASES = ("unchanged", "compared", "sample", "jobs")
DDL = "CREATE TABLE t (id bigint PRIMARY KEY, v text, j jsonb, at timestamptz)"  # the unchanged and compared cases
CHECKSUM = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM {} t"


def q(url: str, text: str, params=None):
    with psycopg.connect(url, autocommit=True) as c:
        cur = c.execute(text, params)
        return cur.fetchall() if cur.description else None


def fresh(cluster, name: str) -> str:
    q(cluster.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    q(cluster.url(), f'CREATE DATABASE "{name}"')
    return cluster.url(name)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def through(proxy: LatencyProxy, url: str) -> str:
    return make_conninfo(url, host="127.0.0.1", port=str(proxy.port))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delay-ms", type=float, default=20.0, help="added each way (default 20)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rows", type=int, default=50_000, help="rows per table (default 50,000)")
    ap.add_argument("--only", choices=CASES, action="append", help="run only this case (repeatable)")
    args = ap.parse_args()
    delay = args.delay_ms / 1000
    cases = set(args.only or CASES)
    med = statistics.median
    bindir = ephemeral.system_bindir() or ephemeral.embedded_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries (install PostgreSQL or `pip install pgserver`)")
    mc, rc = ephemeral.start_cluster(bindir), ephemeral.start_cluster(bindir)
    try:
        port = int(conninfo_to_dict(mc.url())["port"])
        with LatencyProxy("127.0.0.1", port, delay) as proxy:
            print(f"PostgreSQL {mc.version}; proxy adds {args.delay_ms:g} ms each way on the master link")
            # -- unchanged table
            if "unchanged" in cases:
                m, r = fresh(mc, "unchanged"), fresh(rc, "unchanged")
                fill = (f"INSERT INTO t SELECT i, 'v' || i, jsonb_build_object('i', i), now() "
                        f"FROM generate_series(1, {args.rows}) i")
                for u in (m, r):
                    q(u, DDL)
                q(m, fill)
                q(m, "VACUUM ANALYZE t")
                copy = lambda url: copy_tables(url, r, ["t"], config=Config(), policy="master-wins")  # noqa: E731
                copy(m)  # the replica now holds exactly the master's rows
                q(r, "VACUUM ANALYZE t")
                near = med([timed(lambda: copy(m)) for _ in range(args.runs)])
                far = med([timed(lambda: copy(through(proxy, m))) for _ in range(args.runs)])
                trips = (far - near) / (2 * delay)
                print(f"unchanged {args.rows:,}-row table: {near:.2f} s, through the proxy {far:.2f} s: "
                      f"+{far - near:.2f} s = {trips:.1f} round trips (goal <= 10)")

            # -- a bigger table compared without a baseline: its key ranges shared by --jobs
            if "compared" in cases:
                m, r = fresh(mc, "compare"), fresh(rc, "compare")
                big = 8 * args.rows
                for u in (m, r):
                    q(u, DDL)
                q(m, f"INSERT INTO t SELECT i, 'v' || i, jsonb_build_object('i', i), now() FROM generate_series(1, {big}) i")
                q(m, "VACUUM ANALYZE t")
                copy_tables(m, r, ["t"], config=Config())
                compared = {}
                for label, url in (("no latency", m), ("through the proxy", through(proxy, m))):
                    for jobs in (1, 2):
                        runs = []
                        for k in range(args.runs):
                            q(r, f"UPDATE t SET v = v || '+' WHERE id % 100 = {k}")  # 1% of the replica drifts
                            runs.append(timed(lambda: copy_tables(url, r, ["t"], config=Config(), policy="master-wins",
                                                                  restart=True, jobs=jobs)))
                        compared[label, jobs] = med(runs)
                        equal = q(m, CHECKSUM.format("t")) == q(r, CHECKSUM.format("t"))
                        print(f"{big:,}-row table, 1% drifted, compared without a baseline ({label}), --jobs {jobs}: "
                              f"{compared[label, jobs]:.2f} s (replica equal to the master: {equal})")
                print(f"  --jobs 2 over --jobs 1: {compared['no latency', 1] / compared['no latency', 2]:.2f}x without latency, "
                      f"{compared['through the proxy', 1] / compared['through the proxy', 2]:.2f}x through the proxy")

            # -- the sample databases
            if "sample" in cases:
                m, r = fresh(mc, "sample_m"), fresh(rc, "sample_r")
                q(m, example_sql("master"))
                q(r, example_sql("master").split("-- Data")[0])  # the master's schema, no rows
                for label, url in (("no latency", m), ("through the proxy", through(proxy, m))):
                    firsts, again = [], []
                    for _ in range(args.runs):
                        q(r, "DO $$ DECLARE t text; BEGIN FOR t IN SELECT quote_ident(tablename) FROM pg_tables "
                             "WHERE schemaname = 'public' LOOP EXECUTE 'TRUNCATE ' || t || ' CASCADE'; END LOOP; END $$; "
                             "DROP SCHEMA IF EXISTS _replicator CASCADE")
                        firsts.append(timed(lambda: copy_tables(url, r, all_tables=True, config=Config())))
                        again.append(timed(lambda: copy_tables(url, r, all_tables=True, config=Config(),
                                                               policy="master-wins")))
                    print(f"sample databases ({label}): copy --all {med(firsts):.2f} s, re-sync {med(again):.2f} s")
                    if label == "no latency":
                        base = (med(firsts), med(again))
                print(f"  added by the latency: copy --all +{med(firsts) - base[0]:.2f} s, re-sync "
                      f"+{med(again) - base[1]:.2f} s (goal <= 2 s)")

            # -- --jobs
            if "jobs" in cases:
                m, r = fresh(mc, "jobs_m"), fresh(rc, "jobs_r")
                names = [f"t{i}" for i in range(8)]
                for n in names:
                    for u in (m, r):
                        q(u, f"CREATE TABLE {n} (id bigint PRIMARY KEY, v text, j jsonb)")
                    q(m, f"INSERT INTO {n} SELECT i, repeat('v', 50) || i, jsonb_build_object('i', i, 'n', '{n}') "
                         f"FROM generate_series(1, {args.rows}) i")
                    q(m, f"VACUUM ANALYZE {n}")
                times, raw = {}, {}

                def empty_replica() -> None:
                    for n in names:
                        q(r, f"TRUNCATE {n}")
                    q(r, "DROP SCHEMA IF EXISTS _replicator CASCADE")

                def pipes(url: str, at_once: int) -> None:
                    with ThreadPoolExecutor(at_once) as pool:
                        list(pool.map(lambda n: raw_pipe(url, r, n, bindir), names))

                for label, url in (("no latency", m), ("through the proxy", through(proxy, m))):
                    for at_once in (1, 4):
                        runs = []
                        for _ in range(args.runs):
                            empty_replica()
                            runs.append(timed(lambda: pipes(url, at_once)))
                        raw[label, at_once] = med(runs)
                        print(f"8 tables x {args.rows:,} rows, {label}, raw pipes ({describe(bindir)}) {at_once} at a "
                              f"time: {raw[label, at_once]:.2f} s")
                    for jobs in (1, 4):
                        runs = []
                        for _ in range(args.runs):
                            empty_replica()
                            runs.append(timed(lambda: copy_tables(url, r, names, config=Config(), jobs=jobs)))
                        times[label, jobs] = med(runs)
                        equal = all(q(m, CHECKSUM.format(n)) == q(r, CHECKSUM.format(n)) for n in names)
                        print(f"8 tables x {args.rows:,} rows, {label}, --jobs {jobs}: {times[label, jobs]:.2f} s "
                              f"(replica equal to the master: {equal})")
                far1, far4 = times["through the proxy", 1], times["through the proxy", 4]
                print(f"  through the proxy --jobs 4 is {far1 / far4:.2f}x faster than --jobs 1 (goal >= 2.5); "
                      f"the CPU floor without latency: --jobs 4 {times['no latency', 4]:.2f} s")
                print(f"  raw pipes through the proxy: 4 at a time {raw['through the proxy', 1] / raw['through the proxy', 4]:.2f}x "
                      f"faster than 1 at a time; the most --jobs 4 could gain over this --jobs 1, were it as fast as 4 "
                      f"raw pipes with no latency at all: {far1 / raw['no latency', 4]:.2f}x")
    finally:
        mc.stop()
        rc.stop()


if __name__ == "__main__":
    main()
