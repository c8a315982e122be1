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
