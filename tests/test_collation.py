"""Two databases that sort text differently: an ICU master and a libc replica, as a Supabase project
(ICU) and a developer's local server often are. Both report the same `datcollate`; only the locale
provider says that one sorts 'a' before 'B' and the other after. Judged by the independent checksum."""

from __future__ import annotations

import psycopg
import pytest
from copyhelp import same
from psycopg import sql

from conftest import run_cli
from replicator.collation import default_ordering
from replicator.copy import copy_tables

WORDS = ("INSERT INTO words SELECT (ARRAY['-', '_', 'B', 'b', 'a', 'A', '.', ' '])[1 + i % 8] "
         "|| chr(97 + (i * 7) % 26) || i, i FROM generate_series(1, 4000) i")


@pytest.fixture
def icu_master_url(pg_servers):
    """A fresh database on the master server whose default collation is ICU's en-US."""
    server = pg_servers[0]
    name = "icu_master"
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                                 "LOCALE 'C'").format(sql.Identifier(name)))
        except psycopg.Error as e:  # a server built without ICU, or older than 15
            pytest.skip(f"no ICU database on this server: {e}")
    try:
        yield server.url_for(name)
    finally:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_icu_master_libc_replica_sort_differently(icu_master_url, replica_url, sql_on):
    with psycopg.connect(icu_master_url) as m, psycopg.connect(replica_url) as r:
        assert default_ordering(m) != default_ordering(r)
        # datcollate alone would say they are the same
        assert m.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()").fetchone() == \
            r.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()").fetchone()
    assert sql_on(icu_master_url, "SELECT 'B' < 'a'") != sql_on(replica_url, "SELECT 'B' < 'a'")


@pytest.mark.parametrize("jobs,key_type", [(1, "text"), (2, "text"), (1, "citext")])
def test_key_ranges_compare_byte_wise_across_collations(icu_master_url, replica_url, sql_on, jobs, key_type, tmp_path):
    for url in (icu_master_url, replica_url):
        if key_type == "citext":  # an extension type: introspection names it schema-qualified
            sql_on(url, "CREATE EXTENSION citext")
        sql_on(url, f"CREATE TABLE words (w {key_type} PRIMARY KEY, n int)")
    sql_on(icu_master_url, WORDS)
    copy_tables(icu_master_url, replica_url, ["words"])
    assert same(sql_on, icu_master_url, replica_url, "words")
    # drift spread over the keys, compared range by range in small batches: with each side's own order a
    # range held different keys on each side, and mirror deleted rows the master has
    sql_on(replica_url, "UPDATE words SET n = -n WHERE n % 90 = 0")
    sql_on(replica_url, "DELETE FROM words WHERE n % 97 = 0")
    t = copy_tables(icu_master_url, replica_url, ["words"], policy="mirror", restart=True, batch_size=100,
                    jobs=jobs).tables[0]
    assert (t.updated, t.deleted) == (sql_on(icu_master_url, "SELECT count(*) FROM words WHERE n % 90 = 0 AND n % 97 <> 0")[0][0], 0)
    assert same(sql_on, icu_master_url, replica_url, "words")
    again = copy_tables(icu_master_url, replica_url, ["words"], policy="master-wins", restart=True,
                        batch_size=1000, jobs=jobs).tables[0]
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    res = run_cli("verify", "--deep", "--table", "words", "--master", icu_master_url, "--replica", replica_url,
                  "--out-dir", str(tmp_path))
    assert res.code == 0, res.stdout


def test_what_counts_as_a_different_ordering():
    from replicator.collation import COLLATABLE, orderings_differ

    assert orderings_differ(("i", "en-US", None, "153.120"), ("c", "C", None, None))
    assert orderings_differ(("c", "en_US.UTF-8", None, "2.31"), ("c", "en_US.UTF-8", None, "2.36"))
    # a version only one side reports (PostgreSQL 14) is no difference: byte order would cost the index
    assert not orderings_differ(("c", "en_US.UTF-8", None, None), ("c", "en_US.UTF-8", None, "2.36"))
    assert all(COLLATABLE.match(t) for t in ("text", "pg_catalog.text", "character varying(10)", "public.citext",
                                             'extensions.citext', '"My Schema".citext'))
    assert not any(COLLATABLE.match(t) for t in ("integer", "public.mytext", "textual", "uuid"))
