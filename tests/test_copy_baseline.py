"""Re-syncs that examine only the rows changed since the last sync (`replicator.copy.baseline`).

Every result is judged by PostgreSQL's own text of each row (copyhelp), and the delta path by a twin
replica compared in full (`restart=True`): the two must end identical.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from conftest import _fresh_database, url_with
from copyhelp import both, rows, same, xmins

from replicator.config import Config, TableConfig
from replicator.copy import copy_tables

DDL = "CREATE TABLE t (id int PRIMARY KEY, v text, n numeric)"
FILL = "INSERT INTO t SELECT i, 'v' || i, i / 7.0 FROM generate_series(1, 3000) i"


@pytest.fixture
def twin_url(pg_servers):
    """A second replica database on the replica server."""
    yield from _fresh_database(pg_servers[1], "twin")


def table(result):
    return result.tables[0]


def synced(sql_on, master_url: str, replica_url: str) -> None:
    """Table t on both sides, filled on the master and copied: the replica has a baseline."""
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, FILL)
    copy_tables(master_url, replica_url, ["t"])


def test_an_unchanged_table_is_vouched_for_without_hashing_or_writing(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, FILL)
    assert table(copy_tables(master_url, replica_url, ["t"])).mode == "direct"
    before = xmins(sql_on, replica_url, "t")
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins", batch_size=100))
    assert (t.mode, t.candidates, t.inserted, t.updated, t.deleted, t.skipped_rows) == ("delta", 0, 0, 0, 0, 3000)
    assert xmins(sql_on, replica_url, "t") == before
    assert same(sql_on, master_url, replica_url, "t")


def test_changes_on_either_side_are_the_candidates(master_url, replica_url, sql_on):
    synced(sql_on, master_url, replica_url)
    sql_on(master_url, "UPDATE t SET v = v || ' master' WHERE id IN (5, 500, 2999)")
    sql_on(replica_url, "UPDATE t SET v = v || ' local' WHERE id IN (6, 600)")
    sql_on(replica_url, "UPDATE t SET v = v WHERE id = 7")  # rewritten, same content: compared, not written
    before = xmins(sql_on, replica_url, "t")
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
    assert (t.mode, t.candidates, t.updated, t.inserted, t.fetched_by_key) == ("delta", 6, 5, 0, 5)
    after = xmins(sql_on, replica_url, "t")
    assert sorted(k for k in after if after[k] != before[k]) == [5, 6, 500, 600, 2999]
    assert same(sql_on, master_url, replica_url, "t")


def test_deletions_on_either_side_are_found_from_the_key_hash_buckets(master_url, replica_url, sql_on):
    synced(sql_on, master_url, replica_url)
    sql_on(master_url, "DELETE FROM t WHERE id IN (10, 20)")
    sql_on(replica_url, "DELETE FROM t WHERE id IN (30, 40, 50)")
    t = table(copy_tables(master_url, replica_url, ["t"], policy="mirror"))
    assert (t.mode, t.candidates, t.inserted, t.deleted, t.updated) == ("delta", 0, 3, 2, 0)
    assert same(sql_on, master_url, replica_url, "t")
    # master-wins keeps a row only the replica has: found again on every run, and kept
    sql_on(replica_url, "INSERT INTO t VALUES (9000, 'local', 0)")
    sql_on(master_url, "DELETE FROM t WHERE id = 60")
    for _ in range(2):
        t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
        assert (t.mode, t.deleted, t.inserted) == ("delta", 0, 0)
    assert sql_on(replica_url, "SELECT id FROM t WHERE id IN (60, 9000) ORDER BY id") == [(60,), (9000,)]


KEY_SHAPES = {  # key DDL, a key value from i, the key hash the master's scan must use
    "smallint": ("id smallint", "i::smallint", "hashint2extended"),
    "bigint": ("id bigint", "i::bigint * 1000000007", "hashint8extended"),
    "uuid": ("id uuid", "md5(i::text)::uuid", "uuid_hash_extended"),
    # an enum hashes through its text: its own hash is of OIDs, which differ between the two servers
    "enum, integer": ("id mood, n int", "(enum_range(NULL::mood))[i % 3 + 1], i", "hashtextextended"),
    "uuid, text": ("id uuid, k text", "md5(i::text)::uuid, 'k' || i", "uuid_hash_extended"),
}


@pytest.mark.parametrize("shape", list(KEY_SHAPES))
def test_deletions_are_found_whatever_the_key_type(logged_server, logged_master_url, replica_url, sql_on, shape):
    """The key-hash buckets hash integer and uuid keys natively, every other type through its text:
    either way both sides must sum alike, or every unchanged bucket would look like a deletion."""
    cols, values, hashed = KEY_SHAPES[shape]
    key = ", ".join(c.split()[0] for c in cols.split(", "))
    sql_on(replica_url, "CREATE TYPE unused AS ENUM ('x')")  # the replica's enum OIDs differ from the master's
    for url in (logged_master_url, replica_url):
        sql_on(url, f"CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); CREATE TABLE t ({cols}, v text, PRIMARY KEY ({key}))")
    sql_on(logged_master_url, f"INSERT INTO t SELECT {values}, 'v' || i FROM generate_series(1, 3000) i")
    copy_tables(logged_master_url, replica_url, ["t"])
    doomed = f"SELECT {key} FROM t ORDER BY ({key})::text LIMIT %s"
    sql_on(logged_master_url, f"DELETE FROM t WHERE ({key}) IN ({doomed})", (1,))
    sql_on(replica_url, f"DELETE FROM t WHERE ({key}) IN (SELECT {key} FROM t ORDER BY ({key})::text DESC LIMIT 1)")
    since = logged_server.log_offset()
    t = table(copy_tables(logged_master_url, replica_url, ["t"], policy="mirror"))
    assert (t.mode, t.candidates, t.inserted, t.deleted, t.updated) == ("delta", 0, 1, 1, 0)
    assert same(sql_on, logged_master_url, replica_url, "t")
    scans = [s for s in logged_server.statements(conninfo_to_dict(logged_master_url)["dbname"], since=since)
             if "_replicator_key_hash" in s]
    assert scans and all(f"{hashed}(" in s for s in scans)
    again = table(copy_tables(logged_master_url, replica_url, ["t"], policy="mirror"))
    assert (again.mode, again.inserted, again.deleted) == ("delta", 0, 0)


CHANGES_MASTER = [
    "INSERT INTO t SELECT i, 'new' || i, 0 FROM generate_series(3001, 3040) i",
    "UPDATE t SET v = upper(v) WHERE id % 97 = 0",
    "DELETE FROM t WHERE id % 211 = 0",
    "UPDATE t SET id = id + 10000 WHERE id IN (1, 2)",  # a key changed: a delete and an insert
    "UPDATE t SET n = n WHERE id % 89 = 0",  # rewritten with the same values
]
CHANGES_REPLICA = [
    "INSERT INTO t VALUES (-1, 'local only', 1), (3001, 'clashes with a new master row', 2)",
    "UPDATE t SET v = 'local edit' WHERE id % 101 = 0",
    "DELETE FROM t WHERE id % 307 = 0",
    "UPDATE t SET v = 'edited, then deleted on the master' WHERE id = 211",
]


def twins_drifted(sql_on, master_url: str, replica_url: str, twin_url: str) -> None:
    """Two replicas synced from the master, then the same changes on the master and on each replica."""
    for url in (master_url, replica_url, twin_url):
        sql_on(url, DDL)
    sql_on(master_url, FILL)
    for url in (replica_url, twin_url):
        copy_tables(master_url, url, ["t"])
    for stmt in CHANGES_MASTER:
        sql_on(master_url, stmt)
    for url in (replica_url, twin_url):
        for stmt in CHANGES_REPLICA:
            sql_on(url, stmt)


@pytest.mark.parametrize("policy", ["master-wins", "mirror", "keep-replica"])
def test_a_delta_sync_ends_where_a_full_comparison_ends(master_url, replica_url, twin_url, sql_on, policy):
    twins_drifted(sql_on, master_url, replica_url, twin_url)
    delta = table(copy_tables(master_url, replica_url, ["t"], policy=policy, batch_size=200))
    full = table(copy_tables(master_url, twin_url, ["t"], policy=policy, batch_size=200, restart=True))
    assert (delta.mode, full.mode) == ("delta", "full")
    assert rows(sql_on, replica_url, "t") == rows(sql_on, twin_url, "t")
    assert (delta.inserted, delta.updated, delta.deleted) == (full.inserted, full.updated, full.deleted)
    if policy == "mirror":
        assert same(sql_on, master_url, replica_url, "t")
    # and the next sync, from the new baselines, finds nothing to do on either
    for url in (replica_url, twin_url):
        again = table(copy_tables(master_url, url, ["t"], policy=policy))
        assert (again.mode, again.inserted, again.updated, again.deleted) == ("delta", 0, 0, 0)


def test_a_change_committed_after_the_snapshot_by_a_transaction_open_during_the_sync_is_found(
        master_url, replica_url, sql_on):
    """Its row's xmin is a subtransaction's id, which a snapshot does not list as running: only a
    comparison with the snapshot's xmin is safe for it."""
    synced(sql_on, master_url, replica_url)
    with psycopg.connect(master_url) as late, psycopg.connect(replica_url) as local:
        late.execute("SAVEPOINT s")
        late.execute("UPDATE t SET v = 'late' WHERE id = 10")
        local.execute("SAVEPOINT s")
        local.execute("UPDATE t SET v = 'local, late' WHERE id = 20")
        t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
        assert (t.mode, t.updated) == ("delta", 0)
        late.commit()
        local.commit()
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
    assert (t.mode, t.updated) == ("delta", 2)
    assert same(sql_on, master_url, replica_url, "t")


def test_frozen_rows_still_show_when_they_changed(master_url, replica_url, sql_on):
    synced(sql_on, master_url, replica_url)
    sql_on(master_url, "UPDATE t SET v = 'changed, then frozen' WHERE id = 42")
    sql_on(master_url, "VACUUM (FREEZE) t")
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
    assert (t.mode, t.updated) == ("delta", 1)
    assert same(sql_on, master_url, replica_url, "t")


@pytest.mark.parametrize("change", [
    "TRUNCATE t; INSERT INTO t SELECT i, 'refilled' || i, 0 FROM generate_series(1, 3000) i",
    "VACUUM FULL t",
])
def test_new_storage_on_the_master_means_a_full_comparison(master_url, replica_url, sql_on, change):
    synced(sql_on, master_url, replica_url)
    sql_on(master_url, change)
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
    assert t.mode == "full"
    assert any("storage" in n for n in t.notes), t.notes
    assert same(sql_on, master_url, replica_url, "t")


@pytest.mark.parametrize("side", ["master", "replica"])
def test_a_column_dropped_and_added_again_means_a_full_comparison(master_url, replica_url, sql_on, side):
    # every row's value of the column changes, yet no row gets a new xmin nor the table new storage (the
    # last column: the table's column order stays as it was)
    synced(sql_on, master_url, replica_url)
    url = master_url if side == "master" else replica_url
    sql_on(url, "ALTER TABLE t DROP COLUMN n; ALTER TABLE t ADD COLUMN n numeric DEFAULT 1")
    if side == "master":
        sql_on(replica_url, "ALTER TABLE t DROP COLUMN n; ALTER TABLE t ADD COLUMN n numeric")  # as sync's migration would
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
    assert t.mode == "full" and t.updated == 3000
    assert same(sql_on, master_url, replica_url, "t")


def test_a_replica_truncated_since_the_last_sync_is_refilled(master_url, replica_url, sql_on):
    synced(sql_on, master_url, replica_url)
    sql_on(replica_url, "TRUNCATE t")
    assert table(copy_tables(master_url, replica_url, ["t"], policy="master-wins")).mode == "direct"
    assert same(sql_on, master_url, replica_url, "t")


def test_rows_kept_under_keep_replica_are_compared_again_under_master_wins(master_url, replica_url, sql_on):
    synced(sql_on, master_url, replica_url)
    sql_on(replica_url, "UPDATE t SET v = 'mine' WHERE id = 3")
    t = table(copy_tables(master_url, replica_url, ["t"], policy="keep-replica"))
    assert (t.mode, t.updated) == ("delta", 0)
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
    assert (t.mode, t.updated) == ("full", 1)
    assert any("keep-replica" in n for n in t.notes)
    assert same(sql_on, master_url, replica_url, "t")


def test_a_changed_mask_means_a_full_comparison(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, FILL)
    masked = Config(tables={"t": TableConfig(mask={"v": "null"})})
    copy_tables(master_url, replica_url, ["t"], config=masked)
    assert sql_on(replica_url, "SELECT count(v) FROM t") == [(0,)]
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))  # the mask dropped
    assert (t.mode, t.updated) == ("full", 3000)
    assert same(sql_on, master_url, replica_url, "t")


def test_restart_compares_in_full(master_url, replica_url, sql_on):
    synced(sql_on, master_url, replica_url)
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins", restart=True))
    assert (t.mode, t.skipped_rows) == ("full", 3000)


PARTITIONED = """
CREATE TABLE ev (tenant text, at date, seq int, body text, PRIMARY KEY (tenant, at, seq)) PARTITION BY RANGE (at);
CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
"""


def test_partitioned_table_with_a_composite_text_key_under_jobs(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, PARTITIONED)
    sql_on(master_url, "INSERT INTO ev SELECT 'Tenant ''' || (i % 5) || ' ü', date '2024-06-01' + (i % 400), i, 'b' || i "
                       "FROM generate_series(1, 4000) i")
    copy_tables(master_url, replica_url, ["ev"])
    sql_on(master_url, "UPDATE ev SET body = 'moved' WHERE seq % 300 = 0")
    sql_on(master_url, "DELETE FROM ev WHERE seq % 700 = 0")
    sql_on(master_url, "UPDATE ev SET at = at + 200 WHERE seq = 17")  # to the other partition
    sql_on(replica_url, "DELETE FROM ev_2025 WHERE seq % 500 = 0")
    t = table(copy_tables(master_url, replica_url, ["ev"], policy="mirror", jobs=2))
    assert t.mode == "delta"
    assert same(sql_on, master_url, replica_url, "ev")


def test_several_tables_under_jobs_each_use_their_baseline(master_url, replica_url, sql_on):
    names = ["a", "b", "c"]
    for n in names:
        both(sql_on, master_url, replica_url, f"CREATE TABLE {n} (id int PRIMARY KEY, v text)")
        sql_on(master_url, f"INSERT INTO {n} SELECT i, '{n}' || i FROM generate_series(1, 2000) i")
    copy_tables(master_url, replica_url, names, jobs=2)
    sql_on(master_url, "UPDATE b SET v = 'x' WHERE id < 10")
    sql_on(replica_url, "DELETE FROM c WHERE id > 1990")
    result = copy_tables(master_url, replica_url, names, policy="master-wins", jobs=2)
    assert {t.table: (t.mode, t.updated, t.inserted) for t in result.tables} == {
        "public.a": ("delta", 0, 0), "public.b": ("delta", 9, 0), "public.c": ("delta", 0, 10)}
    for n in names:
        assert same(sql_on, master_url, replica_url, n)


def test_a_conflict_under_fail_writes_nothing_and_keeps_the_baseline(master_url, replica_url, sql_on):
    from replicator.copy.table import CopyConflict

    synced(sql_on, master_url, replica_url)
    recorded = sql_on(replica_url, "SELECT run_id FROM _replicator.baselines")
    sql_on(master_url, "INSERT INTO t VALUES (5000, 'new', 0)")
    sql_on(replica_url, "UPDATE t SET v = 'local' WHERE id = 9")
    with pytest.raises(CopyConflict, match="1 conflicting row"):
        copy_tables(master_url, replica_url, ["t"], policy="fail")
    assert sql_on(replica_url, "SELECT count(*) FROM t WHERE id = 5000") == [(0,)]
    assert sql_on(replica_url, "SELECT run_id FROM _replicator.baselines") == recorded
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
    assert (t.mode, t.inserted, t.updated) == ("delta", 1, 1)
    assert same(sql_on, master_url, replica_url, "t")


def test_a_baseline_too_many_transactions_old_is_not_used(master_url, replica_url, sql_on):
    synced(sql_on, master_url, replica_url)
    # as if 2^31 transactions had run on the master since: 32-bit ids would no longer compare
    sql_on(replica_url, "UPDATE _replicator.baselines SET master_xmin = master_xmin - 2147483648")
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
    assert t.mode == "full"
    assert any("too many transactions" in n for n in t.notes), t.notes


def test_the_cli_says_what_a_delta_sync_compared(master_url, replica_url, sql_on, tmp_path):
    import json

    from click.testing import CliRunner

    from replicator.cli import main

    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, FILL)
    base = ["copy", "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path), "--table", "t"]
    assert CliRunner().invoke(main, base).exit_code == 0
    sql_on(master_url, "UPDATE t SET v = 'x' WHERE id IN (1, 2)")
    r = CliRunner().invoke(main, [*base, "--policy", "master-wins"])
    assert r.exit_code == 0, r.output
    assert "note: compared only the 2 key(s) changed on either side since the last sync" in r.output
    r = CliRunner().invoke(main, [*base, "--policy", "master-wins", "--json"])
    row = json.loads(r.stdout)["tables"][0]
    assert (row["mode"], row["candidates"], row["updated"]) == ("delta", 0, 0)


def test_status_shows_which_tables_have_a_baseline(master_url, replica_url, sql_on, tmp_path):
    import json

    from click.testing import CliRunner

    from replicator.cli import main

    both(sql_on, master_url, replica_url, DDL + "; CREATE TABLE nokey (v text)")
    sql_on(master_url, FILL + "; INSERT INTO nokey VALUES ('a'), ('b')")
    copy_tables(master_url, replica_url, ["t", "nokey"])
    status = ["status", "--replica", replica_url, "--out-dir", str(tmp_path)]

    def baselines() -> dict:
        r = CliRunner().invoke(main, [*status, "--json"])
        assert r.exit_code == 0, r.output
        return {row["table_name"]: row["baseline"] for row in json.loads(r.stdout)["checkpoints"]}

    first = baselines()
    assert first["public.nokey"] is None  # without a key there is nothing to vouch for by key
    assert first["public.t"]["policy"] == "exact" and first["public.t"]["recorded_at"]
    sql_on(master_url, "UPDATE t SET v = 'x' WHERE id = 1")
    copy_tables(master_url, replica_url, ["t"], policy="master-wins", restart=True)
    again = baselines()["public.t"]
    assert again["policy"] == "master-wins" and again["run_id"] != first["public.t"]["run_id"]
    r = CliRunner().invoke(main, status, env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "(master-wins)" in r.output and "compares only the rows changed" in r.output, r.output


def test_candidates_are_compared_and_applied_a_chunk_at_a_time(master_url, replica_url, twin_url, sql_on, monkeypatch):
    from replicator.copy import delta

    monkeypatch.setattr(delta, "CHUNK", 7)
    twins_drifted(sql_on, master_url, replica_url, twin_url)
    chunked = table(copy_tables(master_url, replica_url, ["t"], policy="mirror"))
    full = table(copy_tables(master_url, twin_url, ["t"], policy="mirror", restart=True))
    assert chunked.mode == "delta" and chunked.candidates > 7 * 5
    assert (chunked.inserted, chunked.updated, chunked.deleted) == (full.inserted, full.updated, full.deleted)
    assert same(sql_on, master_url, replica_url, "t")


def test_more_candidates_than_the_client_holds_are_not_read_past_the_limit(master_url, replica_url, sql_on,
                                                                            monkeypatch):
    """Past MAX_CANDIDATES the scan stops (a LIMIT on each side): the table is compared in full, and the
    client never held the whole list of changed keys."""
    from replicator.copy import delta

    monkeypatch.setattr(delta, "MAX_CANDIDATES", 50)
    monkeypatch.setattr(delta, "MOST_CANDIDATES", 1.0)  # the share of the table is not what stops it
    scans = []
    real = delta._scan
    monkeypatch.setattr(delta, "_scan", lambda rows, width: scans.append(len(rows)) or real(rows, width))
    synced(sql_on, master_url, replica_url)
    sql_on(master_url, "UPDATE t SET v = v || ' new' WHERE id <= 200")
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
    assert t.mode == "full" and t.updated == 200
    assert any("more than 50 rows changed since the last sync" in n for n in t.notes), t.notes
    assert max(scans) == delta.BUCKETS + 51, scans  # the master's 200 candidates were cut at the limit
    assert same(sql_on, master_url, replica_url, "t")
    # at the limit exactly, it is still compared by key
    sql_on(master_url, "UPDATE t SET v = v || ' again' WHERE id <= 50")
    t = table(copy_tables(master_url, replica_url, ["t"], policy="master-wins"))
    assert (t.mode, t.candidates, t.updated) == ("delta", 50, 50)
    assert same(sql_on, master_url, replica_url, "t")


def test_deletions_all_over_the_table_roll_back_the_chunks_and_compare_in_full(master_url, replica_url, sql_on,
                                                                              monkeypatch):
    from replicator.copy import delta

    monkeypatch.setattr(delta, "CHUNK", 7)
    synced(sql_on, master_url, replica_url)
    sql_on(master_url, "UPDATE t SET v = 'x' WHERE id <= 30")  # applied in chunks, then rolled back
    sql_on(master_url, "DELETE FROM t WHERE id % 3 = 0")  # in nearly every bucket
    t = table(copy_tables(master_url, replica_url, ["t"], policy="mirror"))
    assert t.mode == "full"
    assert any("all over the table" in n for n in t.notes), t.notes
    assert (t.updated, t.deleted) == (20, 1000)  # counted once, by the full comparison
    assert same(sql_on, master_url, replica_url, "t")


def test_a_supabase_shaped_resync_with_masked_secrets_and_a_replica_trigger(master_url, replica_url, sql_on):
    from test_copy_managed import SUPABASE_SHAPED, USERS

    for url in (master_url, replica_url):
        sql_on(url, SUPABASE_SHAPED)
    sql_on(master_url, USERS)
    copy_tables(master_url, replica_url, all_tables=True)
    # a sign-up (the master's trigger adds its profile), a new e-mail, a new password (masked: no change)
    sql_on(master_url, "INSERT INTO auth.users (id, email, encrypted_password, raw_user_meta_data) "
                       "VALUES ('00000000-0000-0000-0000-000000000001', 'new@example.com', 'secret', '{\"username\": \"new\"}')")
    sql_on(master_url, "UPDATE auth.users SET email = 'moved@example.com' WHERE email = 'user3@example.com'")
    sql_on(master_url, "UPDATE auth.users SET encrypted_password = 'rotated' WHERE email = 'user4@example.com'")
    res = copy_tables(master_url, replica_url, all_tables=True, policy="master-wins")
    users, profiles = res.table("auth.users"), res.table("public.profiles")
    assert (users.mode, users.candidates, users.inserted, users.updated) == ("delta", 3, 1, 1)
    assert (profiles.mode, profiles.inserted, profiles.updated) == ("delta", 1, 0)
    cols = "id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at"
    assert same(sql_on, master_url, replica_url, "auth.users", cols)
    assert same(sql_on, master_url, replica_url, "profiles")  # the replica's own trigger added nothing
    assert sql_on(replica_url, "SELECT count(*) FROM auth.users WHERE encrypted_password <> ''") == [(0,)]


def test_a_replica_kept_by_an_older_version_whose_role_cannot_add_the_baselines_is_refused_up_front(
        master_url, replica_url, sql_on, role, tmp_path):
    from click.testing import CliRunner

    from replicator.cli import main
    from replicator.copy.checkpoint import DDL as CHECKPOINTS_DDL

    both(sql_on, master_url, replica_url, DDL)
    sql_on(master_url, FILL)
    sql_on(replica_url, f"CREATE SCHEMA _replicator; {CHECKPOINTS_DDL}; GRANT USAGE ON SCHEMA _replicator TO {role}; "
                        f"GRANT ALL ON _replicator.checkpoints TO {role}; ALTER TABLE t OWNER TO {role}")
    writer = url_with(replica_url, user=role, password="pw")
    r = CliRunner().invoke(main, ["copy", "--master", master_url, "--replica", writer, "--table", "t",
                                  "--out-dir", str(tmp_path)])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "cannot create the schema _replicator, where checkpoints and baselines are kept" in r.output
    assert "pw" not in r.output
    assert sql_on(replica_url, "SELECT count(*) FROM t") == [(0,)]
