"""Benchmark: `replicator init` then `replicator sync` twice on the sample databases (goal: the second
sync, with nothing changed on the master, writes no row and takes under 25% of the first's time).

Each run loads the sample master and the drifted sample replica into fresh databases on two
throwaway local servers, writes the config with `replicator init`, then runs `replicator sync` twice,
each in its own process as a cron job would. Reported per sync: the time inside the command (the
"sync: ... in N s" figure, from --json) and the wall clock of the whole process (Python start-up
included); for the second sync, the replica's row counters (pg_stat_user_tables: inserted, updated,
deleted rows of every table) and its WAL insert position before and after. Medians over the runs.

    .venv/bin/python benchmarks/sync_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from replicator import ephemeral
from replicator.examples import load_example

CLI = os.path.join(os.path.dirname(sys.executable), "replicator")
COUNTERS = ("SELECT coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_del), 0) "
            "FROM pg_stat_user_tables")
GOAL_RATIO = 0.25


def settled_counters(url: str) -> tuple:
    """The replica's row counters once a finished session's statistics have been flushed."""
    last, since = None, time.monotonic()
    while True:
        with psycopg.connect(url, autocommit=True) as c:
            now = tuple(int(v) for v in c.execute(COUNTERS).fetchone())
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 1.0:
            return now
        time.sleep(0.2)


def wal(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as c:
        return int(c.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()[0])


def fresh(cluster: ephemeral.Cluster, name: str) -> str:
    with psycopg.connect(cluster.url(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return cluster.url(name)


def sync(args: list[str], cwd: Path) -> tuple[float, float, dict]:
    t = time.perf_counter()
    p = subprocess.run([CLI, "sync", *args, "--json"], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"sync exited {p.returncode}: {p.stderr[-2000:]}")
    out = json.loads(p.stdout)
    return out["seconds"], wall, out


def main_(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    bindir = ephemeral.system_bindir() or ephemeral.embedded_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries (install PostgreSQL or pip install pgserver)")
    clusters = [ephemeral.start_cluster(bindir) for _ in range(2)]
    first, second, first_wall, second_wall, rows, wals = [], [], [], [], [], []
    try:
        for i in range(args.runs):
            murl, rurl = fresh(clusters[0], "master"), fresh(clusters[1], "replica")
            load_example(murl, "master")
            load_example(rurl, "replica")
            with tempfile.TemporaryDirectory() as d:
                work = Path(d)
                common = ["--master", murl, "--replica", rurl, "--config", str(work / "replicator.toml"),
                          "--out-dir", str(work)]
                p = subprocess.run([CLI, "init", *common[:6]], cwd=work, capture_output=True, text=True)
                if p.returncode != 0:
                    raise SystemExit(p.stderr)
                s1, w1, _ = sync(common, work)
                before, lsn = settled_counters(rurl), wal(rurl)
                s2, w2, out = sync(common, work)
                after, lsn2 = settled_counters(rurl), wal(rurl)
                actions = {t["action"] for t in out["tables"]}
            written = tuple(b - a for a, b in zip(before, after))
            first.append(s1), second.append(s2), first_wall.append(w1), second_wall.append(w2)
            rows.append(sum(written)), wals.append(lsn2 - lsn)
            print(f"run {i + 1}: first {s1:.3f} s, second {s2:.3f} s ({s2 / s1:.0%}); wall {w1:.2f} / {w2:.2f} s; "
                  f"second sync: tables {sorted(actions)}, rows inserted/updated/deleted {written}, "
                  f"WAL {lsn2 - lsn} bytes")
    finally:
        for c in clusters:
            c.stop()
    m1, m2 = statistics.median(first), statistics.median(second)
    print(f"median over {args.runs} runs: first sync {m1:.3f} s, second {m2:.3f} s: ratio {m2 / m1:.2f} "
          f"(goal < {GOAL_RATIO}); wall clock with Python start-up {statistics.median(first_wall):.2f} s / "
          f"{statistics.median(second_wall):.2f} s; rows written by the second sync: {max(rows)} (max over runs); "
          f"replica WAL during the second sync: median {statistics.median(wals):.0f} bytes")


if __name__ == "__main__":
    main_()
