"""`replicator copy` into a non-empty replica: ranges whose checksums match are skipped; a range that
differs is compared key by key (keys and row hashes only) and exactly the differing rows are fetched."""

from __future__ import annotations

from copyhelp import both, same, xmins

from replicator.config import Config, TableConfig
from replicator.copy import copy_tables

DDL = "CREATE TABLE big (id bigint PRIMARY KEY, v text, f double precision, j jsonb, at timestamptz, n numeric)"
FILL = ("INSERT INTO big SELECT i, 'v' || i, i / 7.0, jsonb_build_object('i', i, 'a', jsonb_build_array(i, 'x')), "
        "timestamptz '2024-01-01' + i * interval '1 minute', i * 1.5 FROM generate_series(1, {}) i")


def setup_big(sql_on, master_url, replica_url, rows=20000):
    both(sql_on, master_url, replica_url, DDL)
    for url in (master_url, replica_url):
        sql_on(url, FILL.format(rows))


def changed_rows(before: dict, after: dict) -> list:
    return sorted(k for k in after if after[k] != before.get(k))


def test_identical_data_transfers_and_writes_nothing(master_url, replica_url, sql_on):
    setup_big(sql_on, master_url, replica_url)
    before = xmins(sql_on, replica_url, "big")
    t = copy_tables(master_url, replica_url, ["big"], policy="master-wins", batch_size=500).tables[0]
    assert (t.inserted, t.updated, t.deleted, t.unchanged, t.rows_copied) == (0, 0, 0, 20000, 20000)
    # 40 intervals of about 500 rows, compared in ranges that double while they match: 1+2+4+8+16+9
    assert (t.skipped_rows, t.skipped_batches, t.diffed_ranges, t.fetched_by_key) == (20000, 6, 0, 0)
    assert xmins(sql_on, replica_url, "big") == before
    assert t.notes == []
    # without checksums every batch is transferred and compared: still nothing written
    t = copy_tables(master_url, replica_url, ["big"], policy="master-wins", batch_size=500, checksum_skip=False).tables[0]
    assert (t.updated, t.unchanged, t.skipped_batches) == (0, 20000, 0)
    assert xmins(sql_on, replica_url, "big") == before
    for policy in ("keep-replica", "fail", "mirror"):
        t = copy_tables(master_url, replica_url, ["big"], policy=policy, batch_size=500).tables[0]
        assert (t.inserted, t.updated, t.deleted, t.skipped_rows) == (0, 0, 0, 20000)


def test_scattered_changes_fetch_exactly_the_differing_rows(master_url, replica_url, sql_on):
    setup_big(sql_on, master_url, replica_url)
    # 1% of the rows, spread over every range: changed on the master, deleted from and added to the replica
    sql_on(master_url, "UPDATE big SET v = 'new' WHERE id % 200 = 0")
    sql_on(replica_url, "DELETE FROM big WHERE id % 1000 = 7; INSERT INTO big (id, v) VALUES (25000, 'extra')")
    before = xmins(sql_on, replica_url, "big")
    t = copy_tables(master_url, replica_url, ["big"], policy="mirror", batch_size=500).tables[0]
    assert (t.updated, t.inserted, t.deleted) == (100, 20, 1)
    # the first range's checksum differed: the rest went key by key at once, 8 intervals a range
    assert t.fetched_by_key == 120 and (t.skipped_batches, t.diffed_ranges) == (0, 6)
    assert same(sql_on, master_url, replica_url, "big")
    after = xmins(sql_on, replica_url, "big")
    assert changed_rows(before, after) == sorted([i for i in range(200, 20001, 200)] + [i for i in range(7, 20000, 1000)])


def test_keep_replica_keeps_the_difference_and_fills_gaps(master_url, replica_url, sql_on):
    setup_big(sql_on, master_url, replica_url, rows=3000)
    sql_on(replica_url, "UPDATE big SET v = 'mine' WHERE id = 10; DELETE FROM big WHERE id = 2000")
    t = copy_tables(master_url, replica_url, ["big"], policy="keep-replica", batch_size=100).tables[0]
    assert (t.inserted, t.updated, t.fetched_by_key) == (1, 0, 1)
    assert sql_on(replica_url, "SELECT v FROM big WHERE id IN (10, 2000) ORDER BY id") == [("mine",), ("v2000",)]


def test_mirror_deletes_replica_rows_beyond_the_masters_last_key(master_url, replica_url, sql_on):
    setup_big(sql_on, master_url, replica_url, rows=3000)
    sql_on(master_url, "DELETE FROM big WHERE id = 1500")
    sql_on(replica_url, "INSERT INTO big (id, v) VALUES (5000, 'extra'), (-1, 'before the first')")
    t = copy_tables(master_url, replica_url, ["big"], policy="mirror", batch_size=100).tables[0]
    assert (t.inserted, t.updated, t.deleted) == (0, 0, 3)
    assert same(sql_on, master_url, replica_url, "big")
    # a master emptied since: mirror empties the replica table too
    sql_on(master_url, "DELETE FROM big")
    t = copy_tables(master_url, replica_url, ["big"], policy="mirror", batch_size=100).tables[0]
    assert t.deleted == 2999 and sql_on(replica_url, "SELECT count(*) FROM big") == [(0,)]


def test_masked_columns_compare_equal_and_masked_keys_transfer(master_url, replica_url, sql_on, monkeypatch):
    both(sql_on, master_url, replica_url,
         "CREATE TABLE leads (id uuid PRIMARY KEY, name text, phone varchar(20), email varchar(255), n int)")
    sql_on(master_url, "INSERT INTO leads SELECT md5(i::text)::uuid, 'Name ' || i, '+1555' || i, 'p' || i || '@x.com', i "
                       "FROM generate_series(1, 3000) i")
    monkeypatch.setenv("REPLICATOR_MASK_KEY", "s3cret")
    cfg = Config(tables={"leads": TableConfig(mask={"name": "null", "phone": "phone", "email": "email", "n": "hash"})})
    copy_tables(master_url, replica_url, ["leads"], config=cfg, batch_size=100)
    before = xmins(sql_on, replica_url, "leads")
    t = copy_tables(master_url, replica_url, ["leads"], config=cfg, policy="master-wins", batch_size=100).tables[0]
    assert (t.inserted, t.updated, t.unchanged, t.skipped_rows) == (0, 0, 3000, 3000)
    assert xmins(sql_on, replica_url, "leads") == before
    sql_on(master_url, "UPDATE leads SET email = 'changed@x.com' WHERE n = 77")
    t = copy_tables(master_url, replica_url, ["leads"], config=cfg, policy="master-wins", batch_size=100).tables[0]
    assert (t.updated, t.fetched_by_key) == (1, 1)
    # a masked key cannot be ranged on the replica: the batches are transferred and compared instead
    cfg.tables["leads"].mask["id"] = "hash"
    sql_on(replica_url, "TRUNCATE leads")
    copy_tables(master_url, replica_url, ["leads"], config=cfg)
    t = copy_tables(master_url, replica_url, ["leads"], config=cfg, policy="master-wins").tables[0]
    assert (t.updated, t.unchanged, t.skipped_batches) == (0, 3000, 0)
    assert any("masked key" in n for n in t.notes)


def test_renamed_column_and_other_column_order(master_url, replica_url, sql_on):
    sql_on(master_url, "CREATE TABLE p (id int PRIMARY KEY, current_project text, n int)")
    sql_on(replica_url, "CREATE TABLE p (n int, project text, id int PRIMARY KEY)")
    sql_on(master_url, "INSERT INTO p SELECT i, 'p' || i, i FROM generate_series(1, 2000) i")
    sql_on(replica_url, "INSERT INTO p (id, project, n) SELECT i, 'p' || i, i FROM generate_series(1, 2000) i")
    cfg = Config(tables={"p": TableConfig(renames={"project": "current_project"})})
    t = copy_tables(master_url, replica_url, ["p"], config=cfg, policy="master-wins", batch_size=100).tables[0]
    assert (t.updated, t.unchanged, t.skipped_rows) == (0, 2000, 2000)
    sql_on(replica_url, "UPDATE p SET project = 'old' WHERE id = 1234")
    t = copy_tables(master_url, replica_url, ["p"], config=cfg, policy="master-wins", batch_size=100).tables[0]
    assert (t.updated, t.unchanged, t.fetched_by_key) == (1, 1999, 1)
    assert sql_on(master_url, "SELECT id, current_project, n FROM p ORDER BY id") == \
        sql_on(replica_url, "SELECT id, project, n FROM p ORDER BY id")
    assert sql_on(replica_url, "SELECT project FROM p WHERE id = 1234") == [("p1234",)]


def test_most_rows_differing_switches_to_whole_range_transfers(master_url, replica_url, sql_on):
    setup_big(sql_on, master_url, replica_url, rows=12000)
    sql_on(replica_url, "UPDATE big SET v = 'x' WHERE id % 2 = 0")  # half of every range
    t = copy_tables(master_url, replica_url, ["big"], policy="master-wins", batch_size=100).tables[0]
    assert (t.updated, t.unchanged) == (6000, 6000)
    # the first ranges went key by key; once half the rows differed, ranges were transferred whole
    assert t.diffed_ranges < 12 and t.fetched_by_key < 6000
    assert same(sql_on, master_url, replica_url, "big")
    # a dry run reports and writes nothing
    sql_on(replica_url, "UPDATE big SET v = 'x' WHERE id = 42")
    t = copy_tables(master_url, replica_url, ["big"], policy="master-wins", batch_size=100, dry_run=True).tables[0]
    assert (t.updated, t.inserted, t.status) == (1, 0, "dry-run")
    assert sql_on(replica_url, "SELECT v FROM big WHERE id = 42") == [("x",)]


def test_cli_no_checksum_skip(master_url, replica_url, sql_on, tmp_path):
    import json

    from click.testing import CliRunner

    from replicator.cli import main

    both(sql_on, master_url, replica_url, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    sql_on(master_url, "INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 500) i")
    base = ["copy", "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path), "--table", "t",
            "--json"]
    assert CliRunner().invoke(main, base).exit_code == 0
    skipped = {}
    for flag in ([], ["--no-checksum-skip"]):
        r = CliRunner().invoke(main, [*base, "--policy", "master-wins", *flag])
        assert r.exit_code == 0, r.output
        row = json.loads(r.stdout)["tables"][0]
        assert (row["inserted"], row["updated"]) == (0, 0)
        skipped[bool(flag)] = row["skipped_rows"]
    assert skipped == {False: 500, True: 0}


def test_big_tables_are_cut_into_ranges_from_a_block_sample(master_url, replica_url, sql_on, monkeypatch):
    from replicator.copy import keys

    monkeypatch.setattr(keys, "SAMPLE_PAGES", 20)  # so this small table counts as big: sampled boundaries
    setup_big(sql_on, master_url, replica_url, rows=30000)
    for url in (master_url, replica_url):
        sql_on(url, "ANALYZE big")
    sql_on(master_url, "UPDATE big SET v = 'sampled' WHERE id IN (17, 15000, 29999)")
    sql_on(replica_url, "DELETE FROM big WHERE id = 20000")
    res = copy_tables(master_url, replica_url, ["big"], policy="mirror", batch_size=1000)
    t = res.tables[0]
    assert any("TABLESAMPLE SYSTEM" in a["statement"] for a in res.audit)
    assert (t.updated, t.inserted, t.deleted, t.rows_copied) == (3, 1, 0, 30000)
    assert same(sql_on, master_url, replica_url, "big")
