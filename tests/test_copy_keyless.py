"""Tables without a primary key or NOT NULL unique index: copied whole and atomically; on a non-empty
replica table compared as multisets of rows (duplicates count)."""

from __future__ import annotations

import pytest
from copyhelp import both, rows, same

from replicator.config import Config, TableConfig
from replicator.copy import copy_tables
from replicator.errors import ReplicatorError

LINKS = """
CREATE TABLE tag (id int PRIMARY KEY, name text);
CREATE TABLE film_tag (film int, tag int REFERENCES tag (id), note text);
"""


def _fill_master(sql_on, url):
    sql_on(url, "INSERT INTO tag SELECT i, 't' || i FROM generate_series(1, 20) i; "
                "INSERT INTO film_tag SELECT i % 50, i % 20 + 1, CASE WHEN i % 9 = 0 THEN NULL ELSE 'n' END "
                "FROM generate_series(1, 1000) i; "
                "INSERT INTO film_tag SELECT 1, 1, 'dup' FROM generate_series(1, 3)")  # a row three times


def test_all_copies_keyless_tables_into_an_empty_replica(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, LINKS)
    _fill_master(sql_on, master_url)
    res = copy_tables(master_url, replica_url, all_tables=True)
    t = res.table("film_tag")
    assert (t.mode, t.inserted, t.batches) == ("keyless", 1003, 1)
    assert same(sql_on, master_url, replica_url, "film_tag") and same(sql_on, master_url, replica_url, "tag")


@pytest.mark.parametrize("policy", ["mirror", "replace"])
def test_non_empty_keyless_table_ends_equal_with_duplicates(master_url, replica_url, sql_on, policy):
    both(sql_on, master_url, replica_url, LINKS)
    _fill_master(sql_on, master_url)
    copy_tables(master_url, replica_url, ["tag", "film_tag"])
    # the replica drifts: a duplicate too many, a row lost, a local row, a changed row
    sql_on(replica_url, "INSERT INTO film_tag VALUES (1, 1, 'dup'), (99, 2, 'local'); "
                        "DELETE FROM film_tag WHERE ctid = (SELECT min(ctid) FROM film_tag WHERE film = 7); "
                        "UPDATE film_tag SET note = 'changed' WHERE ctid = (SELECT min(ctid) FROM film_tag WHERE film = 8)")
    assert not same(sql_on, master_url, replica_url, "film_tag")
    t = copy_tables(master_url, replica_url, ["film_tag"], policy=policy).tables[0]
    assert same(sql_on, master_url, replica_url, "film_tag")
    assert rows(sql_on, master_url, "film_tag") == rows(sql_on, replica_url, "film_tag")
    if policy == "mirror":  # only the difference was written: 2 rows in, 3 out
        assert (t.inserted, t.deleted) == (2, 3)
    again = copy_tables(master_url, replica_url, ["film_tag"], policy="mirror").tables[0]
    assert (again.inserted, again.deleted, again.skipped_rows) == (0, 0, 1003)


@pytest.mark.parametrize("policy", ["mirror", "master-wins"])
def test_keyless_columns_named_like_the_comparisons_own(master_url, replica_url, sql_on, policy):
    both(sql_on, master_url, replica_url, 'CREATE TABLE logs (msg text, n int, h bigint, "_replicator_h" int, ctid_ text)')
    sql_on(master_url, "INSERT INTO logs SELECT 'm' || i, i, i * 2, i, 'c' FROM generate_series(1, 50) i")
    sql_on(replica_url, "INSERT INTO logs SELECT 'm' || i, i, i * 2, i, 'c' FROM generate_series(1, 20) i")
    if policy == "mirror":
        sql_on(replica_url, "INSERT INTO logs VALUES ('local', 0, 0, 0, 'x')")
    t = copy_tables(master_url, replica_url, ["logs"], policy=policy).tables[0]
    assert t.inserted == 30 and t.deleted == (1 if policy == "mirror" else 0)
    assert same(sql_on, master_url, replica_url, "logs")


def test_keyless_master_wins_adds_what_is_missing_and_fail_refuses(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, LINKS)
    _fill_master(sql_on, master_url)
    copy_tables(master_url, replica_url, ["tag", "film_tag"])
    sql_on(replica_url, "INSERT INTO film_tag VALUES (99, 2, 'local'); DELETE FROM film_tag WHERE note = 'dup'")
    with pytest.raises(ReplicatorError, match="no key and its rows differ.*3 missing on the replica, 1 only on the replica"):
        copy_tables(master_url, replica_url, ["film_tag"], policy="fail")
    t = copy_tables(master_url, replica_url, ["film_tag"], policy="master-wins").tables[0]
    assert (t.inserted, t.deleted) == (3, 0)
    assert sql_on(replica_url, "SELECT count(*) FROM film_tag WHERE note = 'dup'") == [(3,)]
    assert sql_on(replica_url, "SELECT count(*) FROM film_tag WHERE note = 'local'") == [(1,)]


def test_keyless_non_empty_without_policy_names_the_choices(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, LINKS)
    _fill_master(sql_on, master_url)
    sql_on(replica_url, "INSERT INTO film_tag VALUES (1, NULL, 'x')")
    with pytest.raises(ReplicatorError, match="film_tag is not empty: choose a policy"):
        copy_tables(master_url, replica_url, ["film_tag"])


def test_config_default_policy_and_replace_stays_replace(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, LINKS + "CREATE TABLE other (id int PRIMARY KEY, v text);")
    _fill_master(sql_on, master_url)
    sql_on(master_url, "INSERT INTO other SELECT i, 'm' FROM generate_series(1, 10) i")
    sql_on(replica_url, "INSERT INTO tag VALUES (1, 'mine'), (500, 'only here'); "
                        "INSERT INTO film_tag VALUES (1, 1, 'x'); INSERT INTO other VALUES (1, 'r'), (99, 'r')")
    cfg = Config.model_validate({"copy": {"policy": "keep-replica"},
                                 "tables": {"film_tag": {"policy": "replace"}, "other": {"policy": "mirror"}}})
    res = copy_tables(master_url, replica_url, ["tag", "film_tag", "other"], config=cfg)
    assert {t.table: t.policy for t in res.tables} == {
        "public.tag": "keep-replica", "public.film_tag": "replace", "public.other": "mirror"}
    assert sql_on(replica_url, "SELECT name FROM tag WHERE id = 1") == [("mine",)]
    # --policy on the command line overrides the default and per-table policies, but not replace
    res = copy_tables(master_url, replica_url, ["tag", "film_tag", "other"], config=cfg, policy="master-wins")
    assert {t.table: t.policy for t in res.tables} == {
        "public.tag": "master-wins", "public.film_tag": "replace", "public.other": "master-wins"}
    assert sql_on(replica_url, "SELECT name FROM tag WHERE id = 1") == [("t1",)]
    assert same(sql_on, master_url, replica_url, "film_tag")
    assert TableConfig().policy is None
