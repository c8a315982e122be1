"""Through a transaction-mode pooler (pgbouncer on port 6543): no prepared statements, no session state."""

from replicator.connect import open_master
from replicator.guard import MasterGuard
from replicator.introspect import introspect


def test_master_through_transaction_pooler(master_url, pooler, sql_on):
    sql_on(master_url, 'CREATE TABLE "end" (id int PRIMARY KEY, "Name" text); INSERT INTO "end" VALUES (1, \'a\')')
    guard = MasterGuard()
    url = pooler.url_for(master_url)
    others = [open_master(url, guard) for _ in range(2)]
    with open_master(url, guard) as conn:
        assert conn.pooled
        assert conn.prepare_threshold is None
        # Interleaved clients repeating one statement: with psycopg's default prepared statements this
        # fails behind pgbouncer 1.18, because a client's transactions land on different backends.
        for i in range(30):
            c = [conn, *others][i % 3]
            assert c.execute('SELECT count(*) FROM "end"').fetchone() == (1,)
            c.commit()
        for c in others:
            c.close()
        # Every transaction through the pooler is still READ ONLY (no startup options needed).
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        conn.rollback()
        schema = introspect(conn)
    assert 'public."end"' in schema.tables
    assert schema.settings_pinned
    assert all(e.allowed for e in guard.audit)


def test_copy_reads_master_through_transaction_pooler(master_url, replica_url, pooler, sql_on):
    """One REPEATABLE READ transaction holds the snapshot, so a transaction pooler is enough for copy."""
    from replicator.config import Config
    from replicator.copy import copy_tables

    ddl = 'CREATE TABLE "Msg" (id uuid PRIMARY KEY, body text, payload jsonb)'
    sql_on(master_url, ddl)
    sql_on(replica_url, ddl)
    sql_on(master_url, """INSERT INTO "Msg" SELECT md5(i::text)::uuid, 'b' || i || E'\\t', jsonb_build_object('i', i)
                          FROM generate_series(1, 3000) i""")
    via_pooler = pooler.url_for(master_url)
    first = copy_tables(via_pooler, replica_url, ["Msg"], config=Config(), batch_size=500)
    assert first.tables[0].inserted == 3000
    sql_on(master_url, """UPDATE "Msg" SET body = 'changed' WHERE id = md5('42')::uuid""")
    second = copy_tables(via_pooler, replica_url, ["Msg"], config=Config(), batch_size=500, policy="master-wins")
    assert (second.tables[0].inserted, second.tables[0].updated) == (0, 1)
    checksum = 'SELECT md5(string_agg(t::text, \'|\' ORDER BY id)) FROM "Msg" t'
    assert sql_on(master_url, checksum) == sql_on(replica_url, checksum)


def test_masked_copy_through_transaction_pooler(master_url, replica_url, pooler, sql_on):
    """The mask key lives in the run's master transaction (set_config(..., true)), which a transaction
    pooler keeps on one server connection: masked columns read it on every batch."""
    from replicator.config import Config, TableConfig
    from replicator.copy import copy_tables

    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE people (id int PRIMARY KEY, email text)")
    sql_on(master_url, "INSERT INTO people SELECT i, 'p' || i || '@x.org' FROM generate_series(1, 2000) i")
    cfg = Config(tables={"people": TableConfig(mask={"email": "hash"})}, mask_key="pooled-key")
    via_pooler = pooler.url_for(master_url)
    assert copy_tables(via_pooler, replica_url, ["people"], config=cfg, batch_size=300).tables[0].inserted == 2000
    sql_on(replica_url, "UPDATE people SET email = 'local' WHERE id % 100 = 0")
    again = copy_tables(via_pooler, replica_url, ["people"], config=cfg, batch_size=300, policy="master-wins",
                        restart=True)
    assert again.tables[0].updated == 20
    expected = ("SELECT md5(string_agg(id || ':' || ('h_' || encode(sha256(convert_to('pooled-key' || email, 'UTF8')), "
                "'hex')), '|' ORDER BY id)) FROM people")
    assert sql_on(master_url, expected) == sql_on(replica_url, "SELECT md5(string_agg(id || ':' || email, '|' ORDER BY id)) FROM people")


def test_a_pooler_that_refuses_startup_options(master_url, replica_url, session_pooler, sql_on):
    """pgbouncer refuses the `options` startup parameter unless configured to ignore it: the replica is
    reached without them (its DateStyle is then the database's), and copy works."""
    from replicator.connect import open_replica
    from replicator.copy import copy_tables

    via = session_pooler.url_for(replica_url)
    with open_replica(via) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE t (id int PRIMARY KEY, at timestamptz DEFAULT now())")
    sql_on(master_url, "INSERT INTO t (id) SELECT generate_series(1, 500)")
    assert copy_tables(master_url, via, ["t"]).tables[0].inserted == 500
    checksum = "SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM t"
    assert sql_on(master_url, checksum) == sql_on(replica_url, checksum)
