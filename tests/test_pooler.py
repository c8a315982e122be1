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
