"""`replicator copy` against two real servers: paths, keys, policies, checkpoints, masking."""

from __future__ import annotations

import json

import pytest

from replicator.config import Config, TableConfig
from replicator.copy import CopyConflict, copy_tables
from replicator.errors import ReplicatorError

CHECKSUM = "SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY t::text)) FROM {} t"


def checksum(sql_on, url, table):
    return sql_on(url, CHECKSUM.format(table))[0]


def both(sql_on, master_url, replica_url, ddl):
    sql_on(master_url, ddl)
    sql_on(replica_url, ddl)


WEIRD = """
CREATE TABLE "MixedCase" (
    "end" text NOT NULL, "order" int NOT NULL, payload jsonb, note text,
    PRIMARY KEY ("end", "order"));
"""


def test_empty_table_straight_copy_composite_key_and_odd_values(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, WEIRD)
    sql_on(master_url, """
        INSERT INTO "MixedCase" SELECT 'k' || (i % 7), i, jsonb_build_object('i', i, 's', E'tab\\there "q" ''s'' \\n é ✓'),
               CASE WHEN i % 5 = 0 THEN NULL ELSE E'line1\\nline2\\t"quoted" ''single'' ünïcødé 🐘' END
        FROM generate_series(1, 2500) i""")
    res = copy_tables(master_url, replica_url, ["MixedCase"], batch_size=300)
    t = res.tables[0]
    assert t.inserted == 2500 and t.batches >= 9 and t.direct_batches == t.batches
    assert checksum(sql_on, master_url, '"MixedCase"') == checksum(sql_on, replica_url, '"MixedCase"')
    cp = sql_on(replica_url, "SELECT status, rows_copied, batches, key_columns FROM _replicator.checkpoints")
    assert cp == [("done", 2500, t.batches, ["end", "order"])]
    # a second run with master-wins changes nothing
    res2 = copy_tables(master_url, replica_url, ["MixedCase"], batch_size=300, policy="master-wins")
    t2 = res2.tables[0]
    assert (t2.inserted, t2.updated, t2.deleted, t2.unchanged) == (0, 0, 0, 2500)


@pytest.mark.parametrize("keytype,expr", [
    ("uuid", "md5(i::text)::uuid"),
    ("bigint", "i::bigint * 1000000000"),
    ("text", "'key-' || i"),
    ("timestamptz", "'2024-01-01'::timestamptz + i * interval '1 second'"),
])
def test_key_types_and_master_wins(master_url, replica_url, sql_on, keytype, expr):
    both(sql_on, master_url, replica_url, f"CREATE TABLE t (id {keytype} PRIMARY KEY, v text, j jsonb)")
    sql_on(master_url, f"INSERT INTO t SELECT {expr}, 'v' || i, jsonb_build_object('n', i) FROM generate_series(1, 1000) i")
    # replica: 100 identical rows, 50 differing rows, 30 rows the master lacks
    sql_on(replica_url, f"INSERT INTO t SELECT {expr}, 'v' || i, jsonb_build_object('n', i) FROM generate_series(1, 100) i")
    sql_on(replica_url, f"INSERT INTO t SELECT {expr}, 'local', NULL FROM generate_series(101, 150) i")
    sql_on(replica_url, f"INSERT INTO t SELECT {expr}, 'only-replica', NULL FROM generate_series(5001, 5030) i")
    with pytest.raises(ReplicatorError, match="not empty.*--policy"):
        copy_tables(master_url, replica_url, ["t"])
    res = copy_tables(master_url, replica_url, ["t"], policy="master-wins", batch_size=128)
    t = res.tables[0]
    assert (t.inserted, t.updated, t.deleted, t.unchanged) == (850, 50, 0, 100)
    assert sql_on(replica_url, "SELECT count(*) FROM t")[0][0] == 1030
    res = copy_tables(master_url, replica_url, ["t"], policy="mirror", batch_size=128)
    t = res.tables[0]
    assert (t.inserted, t.updated, t.deleted) == (0, 0, 30)
    assert checksum(sql_on, master_url, "t") == checksum(sql_on, replica_url, "t")
