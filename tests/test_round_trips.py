"""Round trips to a distant master: what a run costs in waits, whatever the table's size.

The master is reached through `turns.TurnCounter`, a proxy that delays its answers and counts each
time the client speaks again after one arrived. A connection's own turns (startup, authentication,
goodbye) are measured on a bare connection through the same proxy and taken off. The figures are
upper bounds: a message the client writes in two pieces, around an answer's arrival, can count twice.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from replicator.copy import copy_tables
from turns import TurnCounter


@pytest.fixture
def far(master_url):
    """Open a counting proxy to the master: yields (proxy, its URL, a connection's own turns)."""
    p = conninfo_to_dict(master_url)
    # a long delay: a client busy for a moment between two writes of one message must not look like
    # one that waited for an answer
    with TurnCounter(p.get("host") or "127.0.0.1", int(p["port"]), delay=0.05) as proxy:
        url = make_conninfo(master_url, host="127.0.0.1", port=str(proxy.port), sslmode="disable")
        psycopg.connect(url).close()
        yield proxy, url, proxy.turns[0]


def _run_turns(proxy: TurnCounter, connection: int) -> list[int]:
    return [n - connection for n in proxy.turns[1:]]


def test_an_unchanged_table_resyncs_in_three_round_trips(far, master_url, replica_url, sql_on):
    # one to open the snapshot (identity, settings, catalog), one for the pre-flight's questions about
    # the tables, one for the table's baseline comparison; nothing per row, batch or range
    ddl = "CREATE TABLE t (id bigint PRIMARY KEY, v text)"
    sql_on(master_url, ddl + "; INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 20000) i; ANALYZE t")
    sql_on(replica_url, ddl)
    proxy, url, connection = far
    copy_tables(master_url, replica_url, ["t"], policy="master-wins")
    res = copy_tables(url, replica_url, ["t"], policy="master-wins").tables[0]
    assert (res.inserted, res.updated, res.deleted, res.unchanged) == (0, 0, 0, 20000)
    assert _run_turns(proxy, connection)[0] <= 3


def test_a_copy_into_an_empty_table_waits_once_per_batch_at_most(far, master_url, replica_url, sql_on):
    # the snapshot and pre-flight as above; then each batch's COPY is started on the master while the
    # replica still writes the one before, so batches cost no more than one wait each
    ddl = "CREATE TABLE e (id bigint PRIMARY KEY, v text)"
    sql_on(master_url, ddl + "; INSERT INTO e SELECT i, repeat('x', 100) FROM generate_series(1, 6000) i; ANALYZE e")
    sql_on(replica_url, ddl)
    proxy, url, connection = far
    res = copy_tables(url, replica_url, ["e"], batch_size=1000).tables[0]
    assert res.inserted == 6000 and res.batches >= 4
    assert _run_turns(proxy, connection)[0] <= 2 + res.batches


def test_verify_waits_a_few_times_per_run_whatever_the_tables(far, master_url, replica_url, sql_on):
    # identity, snapshot, settings and catalog once; every table's count in one batch, in a savepoint
    # (an error falls back to a count per table); checks that read only the replica (foreign keys,
    # sequences) cost the master nothing
    from replicator.config import Config
    from replicator.verify import run_verify

    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY, a int REFERENCES a);"
                    "CREATE TABLE c (id serial PRIMARY KEY, b int REFERENCES b)")
    proxy, url, connection = far
    for tables in (["a"], ["a", "b", "c"]):
        report = run_verify(Config(master_url=url, replica_url=replica_url), tables=tables, snapshot=None)
        assert report.ok, report
    one, three = _run_turns(proxy, connection)
    assert one <= 13
    assert three <= one + 1  # (one turn of slack: see the module's docstring)


def test_an_unchanged_sync_waits_a_few_times_whatever_the_tables(far, master_url, replica_url, sql_on, tmp_path):
    # the schema from its cache (the catalog digest alone), the checksums in one snapshot opened in one
    # round trip, then verify: no wait per table
    from replicator.config import Config
    from replicator.sync import run_sync

    ddl = "".join(f"CREATE TABLE t{i} (id int PRIMARY KEY, v text);" for i in range(4))
    sql_on(master_url, ddl + "".join(f"INSERT INTO t{i} SELECT g, 'v' || g FROM generate_series(1, 100) g;"
                                     for i in range(4)))
    proxy, url, connection = far
    cfg = Config(master_url=url, replica_url=replica_url)
    assert run_sync(cfg, tmp_path).exit_code == 0
    assert run_sync(cfg, tmp_path).exit_code == 0
    unchanged = _run_turns(proxy, connection)[-1]
    assert unchanged <= 15


def test_analyze_waits_once_per_table_for_its_key_overlap(far, master_url, replica_url, sql_on, tmp_path):
    # the catalog in one batch with its BEGIN and ROLLBACK; each table's key stream a transaction of its
    # own, with no BEGIN and COMMIT to wait for
    from replicator.analyze import AnalyzeOptions, run_analyze
    from replicator.config import Config

    for url in (master_url, replica_url):
        sql_on(url, "".join(f"CREATE TABLE k{i} (id int PRIMARY KEY); INSERT INTO k{i} VALUES (1), (2);"
                            for i in range(4)))
    proxy, url, connection = far
    cfg = Config(master_url=url, replica_url=replica_url)
    run_analyze(cfg, tmp_path / "one", AnalyzeOptions(tables=["k0"]))
    run_analyze(cfg, tmp_path / "four", AnalyzeOptions())
    one, four = _run_turns(proxy, connection)
    assert four - one <= 3 + 1  # one wait for each of the 3 more tables (and one of slack)
