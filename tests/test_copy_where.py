"""`[tables.X] where`: copy only the master rows matching a condition, on every path."""

from __future__ import annotations

import pytest
from copyhelp import both, checksum

from replicator.config import Config, TableConfig
from replicator.copy import copy_tables

DDL = "CREATE TABLE msgs (id int PRIMARY KEY, client_id int NOT NULL, body text)"
SUBSET = "(SELECT * FROM msgs WHERE client_id = 2 AND body LIKE 'm%')"


def equal_to_subset(sql_on, master_url, replica_url) -> bool:
    """The replica's whole table equals the master's subset (independent checksum)."""
    return checksum(sql_on, master_url, SUBSET) == checksum(sql_on, replica_url, "msgs")


def _cfg(**extra) -> Config:
    return Config(tables={"msgs": TableConfig(where="client_id = 2 AND body LIKE 'm%'", **extra)})


@pytest.mark.parametrize("batch_size", [50_000, 40])
def test_where_selects_rows_on_every_path(master_url, replica_url, sql_on, batch_size):
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, "INSERT INTO msgs SELECT i, i % 3, CASE WHEN i % 7 = 0 THEN 'x' ELSE 'm' || i END "
                       "FROM generate_series(1, 900) i")
    res = copy_tables(master_url, replica_url, ["msgs"], config=_cfg(), batch_size=batch_size)  # empty: direct
    assert res.tables[0].inserted == sql_on(master_url, f"SELECT count(*) FROM {SUBSET} s")[0][0]
    assert equal_to_subset(sql_on, master_url, replica_url)
    # compare path: a master change inside the subset arrives; outside it, nothing moves
    sql_on(master_url, "UPDATE msgs SET body = 'm changed' WHERE id IN (2, 3)")  # 2 in the subset, 3 not
    t = copy_tables(master_url, replica_url, ["msgs"], config=_cfg(), policy="master-wins", batch_size=batch_size).tables[0]
    assert (t.updated, t.inserted) == (1, 0)
    # mirror: replica rows outside the subset go, so the replica holds exactly the subset
    sql_on(replica_url, "INSERT INTO msgs VALUES (10000, 1, 'local')")
    t = copy_tables(master_url, replica_url, ["msgs"], config=_cfg(), policy="mirror", batch_size=batch_size).tables[0]
    assert t.deleted == 1
    assert equal_to_subset(sql_on, master_url, replica_url)


def test_where_must_be_one_condition():
    with pytest.raises(ValueError, match="one SQL condition|not a SQL condition"):
        TableConfig(where="1 = 1) UNION SELECT 1 --")
    with pytest.raises(ValueError):
        TableConfig(where="true; DELETE FROM msgs")


def test_where_that_writes_is_refused_by_the_guard(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, DDL)
    cfg = Config(tables={"msgs": TableConfig(where="id IN (SELECT nextval('s'))")})
    with pytest.raises(Exception, match="refused to send to the master"):
        copy_tables(master_url, replica_url, ["msgs"], config=cfg)


@pytest.mark.parametrize("keyed", [True, False])
def test_where_with_a_percent_sign_on_a_keyless_or_keyed_table(master_url, replica_url, sql_on, keyed):
    """A `%` in the filter (modulo, LIKE) reaches the master as written on every path, also where the
    statement has no other parameter (a keyless table's whole-table COPY)."""
    key = " PRIMARY KEY" if keyed else ""
    both(sql_on, master_url, replica_url, f"CREATE TABLE m (id int{key}, v int, body text)")
    sql_on(master_url, "INSERT INTO m SELECT i, i, 'b' || i FROM generate_series(1, 400) i")
    subset = "(SELECT * FROM m WHERE v % 3 = 0 AND body LIKE 'b%')"
    cfg = Config(tables={"m": TableConfig(where="v % 3 = 0 AND body LIKE 'b%'")})
    res = copy_tables(master_url, replica_url, ["m"], config=cfg, batch_size=50)
    assert res.tables[0].inserted == 133
    assert checksum(sql_on, master_url, subset) == checksum(sql_on, replica_url, "m")
    sql_on(master_url, "UPDATE m SET body = 'b changed' WHERE id IN (3, 6, 7)")
    # (a keyless table under master-wins only adds the rows it lacks: mirror and replace make it equal)
    for policy in ("master-wins", "mirror") if keyed else ("mirror", "replace"):
        copy_tables(master_url, replica_url, ["m"], config=cfg, policy=policy, batch_size=50)
        assert checksum(sql_on, master_url, subset) == checksum(sql_on, replica_url, "m")


def test_percent_filter_with_a_cursor_and_in_dry_runs(master_url, replica_url, sql_on):
    # the cursor's watermark query and the dry-run counts carry the filter too
    both(sql_on, master_url, replica_url, "CREATE TABLE c (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
    sql_on(master_url, "INSERT INTO c (id) SELECT generate_series(1, 90)")
    cfg = Config(tables={"c": TableConfig(where="id % 3 = 0", cursor="at")})
    dry = copy_tables(master_url, replica_url, ["c"], config=cfg, dry_run=True).tables[0]
    assert dry.inserted == 30
    res = copy_tables(master_url, replica_url, ["c"], config=cfg).tables[0]
    assert res.inserted == 30
    sql_on(master_url, "INSERT INTO c (id) SELECT generate_series(91, 99)")
    again = copy_tables(master_url, replica_url, ["c"], config=cfg, incremental=True, policy="master-wins").tables[0]
    assert again.inserted == 3 and again.watermark is not None  # the watermark query ran, filter and all
    assert sql_on(replica_url, "SELECT count(*), min(id % 3), max(id % 3) FROM c") == [(33, 0, 0)]
