"""`replicator copy` into a non-empty replica: key ranges whose checksums match are skipped."""

from __future__ import annotations

from replicator.config import Config, TableConfig
from replicator.copy import copy_tables

CHECKSUM = "SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY t::text)) FROM {} t"

DDL = "CREATE TABLE big (id bigint PRIMARY KEY, v text, f double precision, j jsonb, at timestamptz, n numeric)"
FILL = ("INSERT INTO big SELECT i, 'v' || i, i / 7.0, jsonb_build_object('i', i, 'a', jsonb_build_array(i, 'x')), "
        "timestamptz '2024-01-01' + i * interval '1 minute', i * 1.5 FROM generate_series(1, {}) i")


def same(sql_on, master_url, replica_url, table):
    return sql_on(master_url, CHECKSUM.format(table)) == sql_on(replica_url, CHECKSUM.format(table))


def setup_big(sql_on, master_url, replica_url, rows=20000):
    for url in (master_url, replica_url):
        sql_on(url, DDL)
        sql_on(url, FILL.format(rows))


def xmins(sql_on, url, table="big"):
    return sql_on(url, f"SELECT id, xmin::text FROM {table} ORDER BY id")


def test_identical_data_writes_nothing(master_url, replica_url, sql_on):
    setup_big(sql_on, master_url, replica_url)
    before = xmins(sql_on, replica_url)
    res = copy_tables(master_url, replica_url, ["big"], policy="master-wins", batch_size=500)
    t = res.tables[0]
    assert (t.inserted, t.updated, t.deleted, t.unchanged, t.rows_copied) == (0, 0, 0, 20000, 20000)
    assert t.skipped_rows == 20000 and t.skipped_batches == 4  # ranges of 10 batches
    assert xmins(sql_on, replica_url) == before
    assert sql_on(replica_url, "SELECT status, rows_copied FROM _replicator.checkpoints") == [("done", 20000)]
    # the same without checksums: every batch transferred and compared, still nothing written
    res = copy_tables(master_url, replica_url, ["big"], policy="master-wins", batch_size=500, checksum_skip=False)
    t = res.tables[0]
    assert (t.updated, t.unchanged, t.skipped_batches) == (0, 20000, 0)
    assert xmins(sql_on, replica_url) == before
    # keep-replica and fail skip as well
    for policy in ("keep-replica", "fail"):
        t = copy_tables(master_url, replica_url, ["big"], policy=policy, batch_size=500).tables[0]
        assert (t.inserted, t.updated, t.unchanged, t.skipped_rows) == (0, 0, 20000, 20000)


def test_one_changed_row_transfers_one_batch(master_url, replica_url, sql_on):
    setup_big(sql_on, master_url, replica_url)
    sql_on(replica_url, "UPDATE big SET j = jsonb_set(j, '{i}', '0') WHERE id = 12345")
    before = dict(xmins(sql_on, replica_url))
    res = copy_tables(master_url, replica_url, ["big"], policy="master-wins", batch_size=500)
    t = res.tables[0]
    assert (t.inserted, t.updated, t.deleted, t.unchanged) == (0, 1, 0, 19999)
    # 3 of 4 checksum ranges skipped, then 9 of the 10 batches of the differing one
    assert t.skipped_batches == 3 + 9 and t.skipped_rows == 19500
    assert same(sql_on, master_url, replica_url, "big")
    after = dict(xmins(sql_on, replica_url))
    assert [k for k in after if after[k] != before[k]] == [12345]


def test_keep_replica_keeps_the_difference_and_fills_gaps(master_url, replica_url, sql_on):
    setup_big(sql_on, master_url, replica_url, rows=3000)
    sql_on(replica_url, "UPDATE big SET v = 'mine' WHERE id = 10; DELETE FROM big WHERE id = 2000")
    t = copy_tables(master_url, replica_url, ["big"], policy="keep-replica", batch_size=100).tables[0]
    assert (t.inserted, t.updated) == (1, 0)
    assert t.skipped_rows >= 2800
    assert sql_on(replica_url, "SELECT v FROM big WHERE id IN (10, 2000) ORDER BY id") == [("mine",), ("v2000",)]


def test_mirror_deletes_an_extra_replica_row(master_url, replica_url, sql_on):
    setup_big(sql_on, master_url, replica_url, rows=3000)
    sql_on(master_url, "DELETE FROM big WHERE id = 1500")
    sql_on(replica_url, "INSERT INTO big (id, v) VALUES (5000, 'extra')")  # beyond the master's last key
    t = copy_tables(master_url, replica_url, ["big"], policy="mirror", batch_size=100).tables[0]
    assert (t.inserted, t.updated, t.deleted) == (0, 0, 2)
    assert t.skipped_rows == 1000 + 900 + 900  # only the two batches holding a difference are transferred
    assert same(sql_on, master_url, replica_url, "big")
    t = copy_tables(master_url, replica_url, ["big"], policy="mirror", batch_size=100).tables[0]
    assert (t.deleted, t.skipped_rows, t.unchanged) == (0, 2999, 2999)


def test_masked_column_identical_data_is_skipped(master_url, replica_url, sql_on, monkeypatch):
    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE leads (id uuid PRIMARY KEY, name text, phone varchar(20), email varchar(255), n int)")
    sql_on(master_url, "INSERT INTO leads SELECT md5(i::text)::uuid, 'Name ' || i, '+1555' || i, 'p' || i || '@x.com', i "
                       "FROM generate_series(1, 3000) i")
    monkeypatch.setenv("REPLICATOR_MASK_KEY", "s3cret")
    cfg = Config(tables={"leads": TableConfig(mask={"name": "null", "phone": "phone", "email": "email", "n": "hash"})})
    copy_tables(master_url, replica_url, ["leads"], config=cfg, batch_size=100)
    before = xmins(sql_on, replica_url, "leads")
    t = copy_tables(master_url, replica_url, ["leads"], config=cfg, policy="master-wins", batch_size=100).tables[0]
    assert (t.inserted, t.updated, t.unchanged, t.skipped_rows) == (0, 0, 3000, 3000)
    assert xmins(sql_on, replica_url, "leads") == before
    # a masked key cannot be ranged on the replica: the batches are transferred and compared instead
    cfg.tables["leads"].mask["id"] = "hash"
    sql_on(replica_url, "TRUNCATE leads")
    copy_tables(master_url, replica_url, ["leads"], config=cfg)
    t = copy_tables(master_url, replica_url, ["leads"], config=cfg, policy="master-wins").tables[0]
    assert (t.updated, t.unchanged, t.skipped_batches) == (0, 3000, 0)
    assert any("masked key" in n for n in t.notes)


def test_renamed_column_skipped_when_equal_updated_when_different(master_url, replica_url, sql_on):
    sql_on(master_url, "CREATE TABLE p (id int PRIMARY KEY, current_project text, n int)")
    sql_on(replica_url, "CREATE TABLE p (n int, project text, id int PRIMARY KEY)")  # other column order too
    sql_on(master_url, "INSERT INTO p SELECT i, 'p' || i, i FROM generate_series(1, 2000) i")
    sql_on(replica_url, "INSERT INTO p (id, project, n) SELECT i, 'p' || i, i FROM generate_series(1, 2000) i")
    cfg = Config(tables={"p": TableConfig(renames={"project": "current_project"})})
    t = copy_tables(master_url, replica_url, ["p"], config=cfg, policy="master-wins", batch_size=100).tables[0]
    assert (t.updated, t.unchanged, t.skipped_rows, t.skipped_batches) == (0, 2000, 2000, 2)
    sql_on(replica_url, "UPDATE p SET project = 'old' WHERE id = 1234")
    t = copy_tables(master_url, replica_url, ["p"], config=cfg, policy="master-wins", batch_size=100).tables[0]
    assert (t.updated, t.unchanged, t.skipped_rows) == (1, 1999, 1900)
    assert sql_on(replica_url, "SELECT project FROM p WHERE id = 1234") == [("p1234",)]


def test_changes_everywhere_back_off_and_converge(master_url, replica_url, sql_on):
    setup_big(sql_on, master_url, replica_url, rows=6000)
    sql_on(replica_url, "UPDATE big SET v = 'x' WHERE id % 50 = 0")  # every batch differs
    t = copy_tables(master_url, replica_url, ["big"], policy="master-wins", batch_size=100).tables[0]
    assert (t.updated, t.skipped_batches, t.unchanged) == (120, 0, 5880)
    assert same(sql_on, master_url, replica_url, "big")
    # dry run: skipped ranges are reported as unchanged, nothing is written
    sql_on(replica_url, "UPDATE big SET v = 'x' WHERE id = 42")
    t = copy_tables(master_url, replica_url, ["big"], policy="master-wins", batch_size=100, dry_run=True).tables[0]
    assert (t.updated, t.inserted) == (1, 0) and t.skipped_rows == 5900
    assert sql_on(replica_url, "SELECT v FROM big WHERE id = 42") == [("x",)]


def test_cli_no_checksum_skip(master_url, replica_url, sql_on, tmp_path):
    import json

    from click.testing import CliRunner

    from replicator.cli import main

    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE t (id int PRIMARY KEY, v text)")
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
