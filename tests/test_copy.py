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


def test_narrow_rows_are_gathered_into_large_writes_without_losing_a_row(master_url, replica_url, sql_on, monkeypatch):
    # the master sends one message per row; they are gathered into blocks before the replica write:
    # a block boundary falls inside batches and across them, and every row still arrives once
    from replicator.copy import stream

    monkeypatch.setattr(stream, "WRITE_BYTES", 1000)  # many blocks per batch, a partial one at each end
    both(sql_on, master_url, replica_url, "CREATE TABLE narrow (id int PRIMARY KEY, v text)")
    sql_on(master_url, "INSERT INTO narrow SELECT i, repeat('n', i % 13) FROM generate_series(1, 20000) i")
    sql_on(master_url, "VACUUM ANALYZE narrow")
    writes = []
    real_write = stream.BoundedWriter.write

    def counting_write(self, data):
        writes.append(len(data))
        real_write(self, data)

    monkeypatch.setattr(stream.BoundedWriter, "write", counting_write)
    t = copy_tables(master_url, replica_url, ["narrow"], batch_size=3000).tables[0]
    assert t.inserted == 20000 and t.batches >= 5
    assert len([w for w in writes if w]) > t.batches * 5  # blocks, not one write per row, not one per batch
    assert max(writes) < 1000 + 64  # a block ends at the first row past the threshold
    assert checksum(sql_on, master_url, "narrow") == checksum(sql_on, replica_url, "narrow")


@pytest.mark.parametrize("fmt", ["binary", "text"])
def test_an_error_in_the_middle_of_the_master_copy_is_raised_and_nothing_is_written(master_url, replica_url,
                                                                                  sql_on, fmt):
    # rows are read many at a time, straight from libpq: the end of the COPY is where its error (sent
    # after thousands of rows) must surface, with both connections left usable
    import psycopg
    from psycopg import sql

    from replicator.copy import stream

    sql_on(replica_url, "CREATE TABLE sink (n int)")
    f = sql.SQL(fmt)
    good = stream.copy_out(sql.SQL("SELECT i FROM generate_series(1, 30000) i"), sql.SQL("(FORMAT {})").format(f))
    bad = stream.copy_out(sql.SQL("SELECT 100 / (20000 - i) FROM generate_series(1, 30000) i"),
                          sql.SQL("(FORMAT {})").format(f))
    into = stream.copy_in(sql.Identifier("sink"), ["n"], sql.SQL("(FORMAT {})").format(f))
    with psycopg.connect(master_url) as m, psycopg.connect(replica_url) as r:
        assert stream.pipe(m, r, good, [], into) == 30000
        r.rollback()
        with pytest.raises(psycopg.errors.DivisionByZero):
            stream.pipe(m, r, bad, [], into)
        m.rollback()
        r.rollback()
        assert m.execute("SELECT 1").fetchone() == (1,)
        assert r.execute("SELECT count(*) FROM sink").fetchone() == (0,)



def test_rows_already_received_fill_a_block_without_a_wait_per_socket_read(master_url):
    # libpq reads the socket 16 KiB at a time: rows that have already arrived are read straight from
    # the socket until the block is full, not with a round through Connection.wait (and its poll) per
    # 16 KiB, which cost the copy's client CPU
    import time

    import psycopg
    from psycopg import sql

    from replicator.copy import stream

    out = stream.copy_out(sql.SQL("SELECT i, repeat('x', 200) FROM generate_series(1, 20000) i"),
                          sql.SQL("(FORMAT binary)"))
    with psycopg.connect(master_url) as m:
        started = stream.Started(m, out, [])
        time.sleep(0.5)  # the server sends what the socket buffers hold, a few blocks' worth
        waits = 0
        real_wait = m.wait

        def counting_wait(gen, *args, **kwargs):
            nonlocal waits
            waits += 1
            return real_wait(gen, *args, **kwargs)

        m.wait = counting_wait
        try:
            blocks = stream.blocks(m)
            first = [next(blocks), next(blocks)]
            first_waits = waits
            rest = sum(len(b) for b in blocks)
        finally:
            started.close()
        assert all(len(b) >= stream.WRITE_BYTES for b in first)
        assert first_waits <= 3  # one per block (a read may have to wait once); 16 or more a socket read each
        assert sum(len(b) for b in first) + rest > 20000 * 200
def test_a_slow_replica_holds_back_the_stream_instead_of_growing_memory(master_url, replica_url, sql_on, monkeypatch):
    # psycopg's writer thread queues up to 1,024 writes (128 MiB of blocks) per stream; ours fewer, so
    # a replica slower than the master makes the reader wait. Checked on a replica made slow on purpose.
    import time

    from replicator.copy import stream

    monkeypatch.setattr(stream, "WRITE_BYTES", 4096)
    both(sql_on, master_url, replica_url, "CREATE TABLE slow (id int PRIMARY KEY, v text)")
    sql_on(master_url, "INSERT INTO slow SELECT i, repeat('s', 200) FROM generate_series(1, 20000) i; ANALYZE slow")
    queued = []
    real_write = stream.BoundedWriter.write

    def watched_write(self, data):
        queued.append(self._queue.qsize())
        real_write(self, data)

    monkeypatch.setattr(stream.BoundedWriter, "write", watched_write)
    real_worker = stream.QueuedLibpqWriter.worker

    def slow_worker(self):  # the writer thread takes its time with every block
        real_get = self._queue.get
        self._queue.get = lambda *a, **k: (time.sleep(0.002), real_get(*a, **k))[1]
        real_worker(self)

    monkeypatch.setattr(stream.QueuedLibpqWriter, "worker", slow_worker)
    t = copy_tables(master_url, replica_url, ["slow"]).tables[0]
    assert t.inserted == 20000 and checksum(sql_on, master_url, "slow") == checksum(sql_on, replica_url, "slow")
    assert len(queued) > 4 * stream.WRITER_BLOCKS  # far more blocks than the queue holds went through it
    assert max(queued) <= stream.WRITER_BLOCKS  # and it never held more than its bound


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


def test_no_key_table_non_empty_needs_a_policy_replace_reloads(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, "CREATE TABLE logs (at timestamptz, msg text)")
    sql_on(master_url, "INSERT INTO logs SELECT now(), 'm' || i FROM generate_series(1, 300) i")
    sql_on(replica_url, "INSERT INTO logs VALUES (now(), 'local')")
    with pytest.raises(ReplicatorError, match="logs is not empty: choose a policy"):
        copy_tables(master_url, replica_url, ["logs"])
    dry = copy_tables(master_url, replica_url, ["logs"], policy="replace", dry_run=True).tables[0]
    assert (dry.inserted, dry.deleted) == (300, 1)
    assert sql_on(replica_url, "SELECT count(*) FROM logs")[0][0] == 1
    t = copy_tables(master_url, replica_url, ["logs"], policy="replace").tables[0]
    assert (t.inserted, t.deleted) == (300, 1)
    assert checksum(sql_on, master_url, "logs") == checksum(sql_on, replica_url, "logs")


def test_not_null_unique_index_is_used_as_key(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, "CREATE TABLE u (code text NOT NULL, v int); CREATE UNIQUE INDEX ON u (code)")
    sql_on(master_url, "INSERT INTO u SELECT 'c' || i, i FROM generate_series(1, 500) i")
    t = copy_tables(master_url, replica_url, ["u"], batch_size=64).tables[0]
    assert t.key == ["code"] and t.inserted == 500


def _sample_pair(master_url, replica_url, sql_on):
    from replicator.examples import load_example

    load_example(master_url, "master")
    load_example(replica_url, "replica")


@pytest.mark.parametrize("policy", ["master-wins", "keep-replica", "mirror"])
def test_sample_clients_projects_policies(master_url, replica_url, sql_on, policy):
    _sample_pair(master_url, replica_url, sql_on)
    m_clients = {r[0]: r for r in sql_on(master_url, "SELECT id, name FROM clients")}
    r_before = {r[0]: r for r in sql_on(replica_url, "SELECT id, name FROM clients")}
    clash = [k for k in r_before if k in m_clients and r_before[k] != m_clients[k]]
    assert clash, "the sample replica has a clashing client"
    if policy == "mirror":
        # replica-only projects reference replica-only clients: mirror deletes children first
        res = copy_tables(master_url, replica_url, ["projects", "clients"], policy="mirror", dry_run=True)
        assert [t.table for t in res.tables] == ["public.clients", "public.projects"]
        return
    res = copy_tables(master_url, replica_url, ["clients", "projects"], policy=policy)
    after = {r[0]: r for r in sql_on(replica_url, "SELECT id, name FROM clients")}
    for k in clash:
        assert after[k] == (m_clients[k] if policy == "master-wins" else r_before[k])
    assert set(m_clients) <= set(after)
    assert set(r_before) <= set(after)  # nothing deleted
    t = res.table("clients")
    assert t.deleted == 0 and t.updated == (len(clash) if policy == "master-wins" else 0)


def test_fail_policy_reports_differing_columns_and_rolls_back(master_url, replica_url, sql_on):
    _sample_pair(master_url, replica_url, sql_on)
    before = checksum(sql_on, replica_url, "clients")
    with pytest.raises(CopyConflict) as ei:
        copy_tables(master_url, replica_url, ["clients"], policy="fail")
    conflicts = ei.value.conflicts
    assert conflicts and all(c.columns for c in conflicts)
    assert "name" in {d.column for c in conflicts for d in c.columns}
    assert checksum(sql_on, replica_url, "clients") == before
    dry = copy_tables(master_url, replica_url, ["clients"], policy="keep-replica", dry_run=True).tables[0]
    assert dry.conflicts == len(conflicts) and dry.inserted > 0


def test_all_in_fk_order_consistent_with_sequences(master_url, replica_url, sql_on):
    from replicator.examples import example_sql

    _sample_pair(master_url, replica_url, sql_on)
    schema_only = example_sql("master").split("-- Data")[0]
    sql_on(replica_url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;" + schema_only)
    res = copy_tables(master_url, replica_url, all_tables=True, batch_size=200)
    order = [t.table for t in res.tables]
    assert order.index("public.clients") < order.index("public.projects") < order.index("public.leads")
    assert order.index("public.leads") < order.index("public.conversations") < order.index("public.agent_interaction_logs")
    for t in ("clients", "projects", "leads", "conversations", "whatsapp_messages", "agent_interaction_logs",
              "conversation_audit_log", "lead_status_history"):
        assert checksum(sql_on, master_url, t) == checksum(sql_on, replica_url, t), t
    assert sql_on(replica_url, "SELECT count(*) FROM whatsapp_messages")[0][0] == 1296
    assert sql_on(replica_url, "SELECT count(*) FROM conversations")[0][0] == 499
    seqs = {s.table: s.value for s in res.sequences}
    assert "public.agent_interaction_logs" in seqs
    nxt = sql_on(replica_url, "INSERT INTO agent_interaction_logs (lead_id, agent_name, action) "
                 "SELECT id, 'a', 'b' FROM leads LIMIT 1 RETURNING id")[0][0]
    assert nxt > sql_on(master_url, "SELECT max(id) FROM agent_interaction_logs")[0][0]


def test_self_reference_copies_and_holds(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, "CREATE TABLE n (id int PRIMARY KEY, parent int REFERENCES n (id))")
    sql_on(master_url, "INSERT INTO n SELECT i, NULL FROM generate_series(1, 400) i; UPDATE n SET parent = 401 - id")
    res = copy_tables(master_url, replica_url, ["n"], batch_size=50)
    # foreign keys are not enforced while rows arrive (session_replication_role), then checked: they hold
    assert res.orphans == [] and res.deferred_constraints == []
    assert sql_on(replica_url, "SELECT convalidated FROM pg_constraint WHERE conname = 'n_parent_fkey'") == [(True,)]
    assert checksum(sql_on, master_url, "n") == checksum(sql_on, replica_url, "n")


def test_renames_generated_and_bad_input(master_url, replica_url, sql_on):
    sql_on(master_url, "CREATE TABLE p (id int PRIMARY KEY, current_project text, total int GENERATED ALWAYS AS (id * 2) STORED)")
    sql_on(replica_url, "CREATE TABLE p (id int PRIMARY KEY, project text, total int GENERATED ALWAYS AS (id * 2) STORED)")
    sql_on(master_url, "INSERT INTO p (id, current_project) SELECT i, 'p' || i FROM generate_series(1, 50) i")
    with pytest.raises(ReplicatorError, match="current_project is missing on the replica.*migrate"):
        copy_tables(master_url, replica_url, ["p"])
    cfg = Config(tables={"p": TableConfig(renames={"project": "current_project"})})
    copy_tables(master_url, replica_url, ["p"], config=cfg)
    assert sql_on(replica_url, "SELECT project, total FROM p WHERE id = 7") == [("p7", 14)]
    # After `replicator migrate` has applied the rename, the same config still copies (to the new name).
    sql_on(replica_url, "ALTER TABLE p RENAME COLUMN project TO current_project")
    sql_on(master_url, "UPDATE p SET current_project = 'moved' WHERE id = 7")
    copy_tables(master_url, replica_url, ["p"], config=cfg, policy="master-wins")
    assert sql_on(replica_url, "SELECT current_project FROM p WHERE id = 7") == [("moved",)]
    with pytest.raises(ReplicatorError, match="not found on the master"):
        copy_tables(master_url, replica_url, ["nope"])
    with pytest.raises(ReplicatorError, match="unknown policy"):
        copy_tables(master_url, replica_url, ["p"], policy="sideways")
    sql_on(master_url, "CREATE TABLE q (id int PRIMARY KEY, v int)")
    sql_on(replica_url, "CREATE TABLE q (id int PRIMARY KEY, v text)")
    with pytest.raises(ReplicatorError, match="type mismatch"):
        copy_tables(master_url, replica_url, ["q"])


def test_masking_is_deterministic_and_keeps_joins(master_url, replica_url, sql_on, monkeypatch):
    ddl = """CREATE TABLE leads (id uuid PRIMARY KEY, name text, phone varchar(20), email varchar(255), n int);
             CREATE TABLE conv (id bigint PRIMARY KEY, lead_id uuid REFERENCES leads (id), body text);"""
    both(sql_on, master_url, replica_url, ddl)
    sql_on(master_url, """INSERT INTO leads SELECT md5(i::text)::uuid, 'Name ' || i, '+1555' || i, 'p' || i || '@x.com', i
                          FROM generate_series(1, 200) i;
                          INSERT INTO conv SELECT i, md5((i % 200 + 1)::text)::uuid, 'b' FROM generate_series(1, 600) i""")
    monkeypatch.setenv("REPLICATOR_MASK_KEY", "s3cret")
    cfg = Config(tables={
        "leads": TableConfig(mask={"id": "hash", "name": "null", "phone": "phone", "email": "email", "n": "hash"}),
        "conv": TableConfig(mask={"lead_id": "hash", "body": {"value": "x"}}),
    })
    res = copy_tables(master_url, replica_url, all_tables=True, config=cfg, batch_size=64)
    assert res.table("leads").masked_columns
    assert "s3cret" not in res.model_dump_json()
    rows = sql_on(replica_url, "SELECT id::text, name, phone, email FROM leads")
    master_ids = {r[0] for r in sql_on(master_url, "SELECT id::text FROM leads")}
    assert not ({r[0] for r in rows} & master_ids)
    assert all(r[1] is None and r[2].startswith("+44 7700 9") and len(r[2]) == 15 for r in rows)
    assert all(r[3].startswith("user_") and r[3].endswith("@example.invalid") for r in rows)
    join = "SELECT count(*) FROM conv c JOIN leads l ON l.id = c.lead_id"
    assert sql_on(replica_url, join) == sql_on(master_url, join) == [(600,)]
    assert sql_on(replica_url, "SELECT DISTINCT body FROM conv") == [("x",)]
    # masked vs masked: a second master-wins run, in many batches, finds nothing to change...
    again = copy_tables(master_url, replica_url, ["leads", "conv"], config=cfg, policy="master-wins", batch_size=16)
    assert all(t.updated == 0 and t.inserted == 0 for t in again.tables)
    # ...and one changed master row is one update, though masked keys scatter across the replica's key order
    sql_on(master_url, "UPDATE conv SET lead_id = md5('7')::uuid WHERE id = 5; "
                       "INSERT INTO leads VALUES (md5('new')::uuid, 'New', '+1555999', 'n@x.com', 999)")
    third = copy_tables(master_url, replica_url, ["leads", "conv"], config=cfg, policy="master-wins", batch_size=16)
    assert (third.table("leads").inserted, third.table("leads").updated) == (1, 0)
    assert (third.table("conv").inserted, third.table("conv").updated) == (0, 1)
    assert sql_on(replica_url, "SELECT count(*) FROM leads") == [(201,)]
    assert sql_on(replica_url, join) == [(600,)]


def test_incremental_uses_watermark_and_lag(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, "CREATE TABLE ev (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL)")
    sql_on(master_url, "INSERT INTO ev SELECT i, 'v', now() - interval '1 day' - i * interval '1 minute' "
                       "FROM generate_series(1, 1000) i")
    cfg = Config(tables={"ev": TableConfig(cursor="updated_at", lag_seconds=90, policy="master-wins")})
    copy_tables(master_url, replica_url, ["ev"], config=cfg, incremental=True)
    sql_on(master_url, "UPDATE ev SET v = 'new', updated_at = now() WHERE id > 990; "
                       "INSERT INTO ev SELECT i, 'n', now() FROM generate_series(1001, 1005) i")
    t = copy_tables(master_url, replica_url, ["ev"], config=cfg, incremental=True).tables[0]
    # 10 changed + 5 new + ids 1 and 2, inside the 90 s lag window below the watermark
    assert t.mode == "incremental" and t.rows_copied == 17 and (t.inserted, t.updated) == (5, 10)
    assert checksum(sql_on, master_url, "ev") == checksum(sql_on, replica_url, "ev")


def test_cli_copy_status_and_errors(master_url, replica_url, sql_on, tmp_path):
    from click.testing import CliRunner

    from replicator.cli import main

    both(sql_on, master_url, replica_url, "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE nokey (v text)")
    sql_on(replica_url, "INSERT INTO nokey VALUES ('local')")
    sql_on(master_url, "INSERT INTO a SELECT i, 'x' FROM generate_series(1, 100) i")
    base = ["--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path)]
    r = CliRunner().invoke(main, ["copy", *base, "--table", "a", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["tables"][0]["inserted"] == 100
    report = json.loads((tmp_path / out["report"].split(str(tmp_path) + "/")[1]).read_text())
    assert report["audit"] and all(a["allowed"] for a in report["audit"])
    r = CliRunner().invoke(main, ["status", "--replica", replica_url, "--json"])
    assert json.loads(r.stdout)["checkpoints"][0]["rows_copied"] == 100
    for args, msg in [
        (["--table", "missing"], "not found"),
        (["--table", "a", "--table", "nokey"], "nothing was copied"),
        (["--table", "a"], "not empty"),
        (["--table", "a", "--policy", "sideways"], "sideways"),
    ]:
        r = CliRunner().invoke(main, ["copy", *base, *args])
        assert r.exit_code == 2 and msg in r.output, r.output


# ------------------------------------------------------------------ the sequential path into empty tables
ODD = "E'tab\\there \"q\" ''s'' \\n é ✓ 🐘 back\\\\slash'"
DIRECT_TABLES = {
    "uuid": ("id uuid PRIMARY KEY", "md5(i::text)::uuid"),
    "bigint": ("id bigint PRIMARY KEY", "i::bigint * 1000000007"),
    "text": ("id text PRIMARY KEY", "'key-' || i || E'\\tü'"),
    "composite": ("a text NOT NULL, b int NOT NULL, PRIMARY KEY (a, b)", "'k' || (i % 7), i"),
}


@pytest.mark.parametrize("kind", list(DIRECT_TABLES))
def test_direct_sequential_copy_into_empty_table(master_url, replica_url, sql_on, kind):
    keydef, keyexpr = DIRECT_TABLES[kind]
    both(sql_on, master_url, replica_url, f"CREATE TABLE d ({keydef}, note text, j jsonb, n numeric, at timestamptz)")
    sql_on(master_url, f"""
        INSERT INTO d SELECT {keyexpr},
               CASE WHEN i % 5 = 0 THEN NULL WHEN i % 5 = 1 THEN '' ELSE {ODD} || i END,
               CASE WHEN i % 7 = 0 THEN NULL ELSE jsonb_build_object('i', i, 's', {ODD}, 'a', jsonb_build_array(1, NULL)) END,
               CASE WHEN i % 3 = 0 THEN NULL ELSE i / 7.0 END, now() - i * interval '1 minute'
        FROM generate_series(1, 2345) i""")
    res = copy_tables(master_url, replica_url, ["d"], batch_size=300)
    t = res.tables[0]
    # batches of whole pages, sized from the rows per page: about 300 rows each
    assert (t.rows_copied, t.inserted) == (2345, 2345) and 5 <= t.batches <= 12 and t.direct_batches == t.batches
    assert any("sequential" in n for n in t.notes)
    assert checksum(sql_on, master_url, "d") == checksum(sql_on, replica_url, "d")
    cp = sql_on(replica_url, "SELECT mode, status, rows_copied, inserted, batches, last_key, was_empty "
                             "FROM _replicator.checkpoints")
    assert cp == [("direct", "done", 2345, 2345, t.batches, None, True)]
    sent = [a for a in res.audit if '"public"."d"' in a["statement"] and a["statement"].startswith("COPY")]
    assert sum(a["count"] for a in sent) == t.batches and all("ctid >= " in a["statement"] for a in sent)  # TID ranges
    assert not [a for a in res.audit if '"public"."d"' in a["statement"] and ("OFFSET" in a["statement"]
                                                                             or "ORDER BY" in a["statement"])]
    again = copy_tables(master_url, replica_url, ["d"], policy="master-wins", batch_size=300).tables[0]
    assert (again.inserted, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 2345)


def test_the_heaps_of_every_table_are_read_once_per_run(master_url, replica_url, sql_on):
    # how to cut each empty table into page ranges is asked with the pre-flight's other questions (one
    # round trip to a distant master for the whole run), not once per table; a table the planner never
    # analyzed and a partitioned one still get all their rows
    both(sql_on, master_url, replica_url, """
        CREATE TABLE p1 (id int PRIMARY KEY, v text);
        CREATE TABLE p2 (id int PRIMARY KEY, v text);
        CREATE TABLE pp (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE pp_a PARTITION OF pp FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE pp_b PARTITION OF pp FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')""")
    sql_on(master_url, """
        INSERT INTO p1 SELECT i, repeat('a', 100) FROM generate_series(1, 3000) i;
        INSERT INTO p2 SELECT i, repeat('b', 100) FROM generate_series(1, 3000) i;
        ANALYZE p1;
        INSERT INTO pp SELECT i, date '2024-01-01' + (i % 700), 'p' || i FROM generate_series(1, 4000) i;
        ANALYZE pp""")
    res = copy_tables(master_url, replica_url, ["p1", "p2", "pp"], batch_size=500)
    heap_reads = [a for a in res.audit if "the heaps its rows are in" in a["statement"]]
    assert [a["count"] for a in heap_reads] == [1]
    assert all(t.mode == "direct" and t.batches > 3 for t in res.tables)
    for t in ("p1", "p2", "pp"):
        assert checksum(sql_on, master_url, t) == checksum(sql_on, replica_url, t)


def test_the_next_batch_is_started_on_the_master_while_the_replica_commits(master_url, replica_url, sql_on, monkeypatch):
    # a distant master's round trip per batch hides behind the replica's work: batch i+1's COPY is
    # begun before batch i's commit returns (a slow commit makes the order certain); the replica still
    # commits batch after batch, and every row arrives once
    import threading
    import time

    from replicator.copy import stream, table

    both(sql_on, master_url, replica_url, "CREATE TABLE ahead (id int PRIMARY KEY, v text)")
    sql_on(master_url, "INSERT INTO ahead SELECT i, repeat('a', 200) FROM generate_series(1, 4000) i; ANALYZE ahead")
    events, lock = [], threading.Lock()
    real_start, real_commit = stream.Started.__init__, table.TableCopy._commit

    def start(self, *a, **k):
        real_start(self, *a, **k)
        with lock:
            events.append("start")

    def commit(self):
        time.sleep(0.2)
        real_commit(self)
        with lock:
            events.append("commit")

    monkeypatch.setattr(stream.Started, "__init__", start)
    monkeypatch.setattr(table.TableCopy, "_commit", commit)
    t = copy_tables(master_url, replica_url, ["ahead"], batch_size=500).tables[0]
    n = t.batches
    assert n >= 4 and t.inserted == 4000
    assert events == ["start", "start"] + ["commit", "start"] * (n - 2) + ["commit", "commit"]
    assert checksum(sql_on, master_url, "ahead") == checksum(sql_on, replica_url, "ahead")


def test_a_replica_error_with_the_next_batch_started_rolls_back_that_batch_only(master_url, replica_url, sql_on):
    # the replica refuses a row of the third batch while the fourth is already begun on the master:
    # that COPY is cancelled, the error names the replica, the committed batches stay, and the rerun
    # (the row allowed) resumes to the exact table
    import time

    both(sql_on, master_url, replica_url, "CREATE TABLE refused (id int PRIMARY KEY, v text)")
    sql_on(replica_url, "ALTER TABLE refused ADD CONSTRAINT not_1234 CHECK (id <> 1234)")
    sql_on(master_url, "INSERT INTO refused SELECT i, repeat('r', 200) FROM generate_series(1, 4000) i; ANALYZE refused")
    with pytest.raises(ReplicatorError, match=r"^replica: .*not_1234.*fix that first: a rerun resumes"):
        copy_tables(master_url, replica_url, ["refused"], batch_size=500)
    kept = sql_on(replica_url, "SELECT count(*), max(id) < 1234 FROM refused")[0]
    assert kept[0] > 0 and kept[1]  # the batches before the refused one are committed
    for _ in range(50):  # the run's master sessions end (a backend leaves pg_stat_activity a moment after)
        if sql_on(master_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'replicator' "
                              "AND datname = current_database()") == [(0,)]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("a master session of the failed run is still open")
    sql_on(replica_url, "ALTER TABLE refused DROP CONSTRAINT not_1234")
    t = copy_tables(master_url, replica_url, ["refused"], batch_size=500).tables[0]
    assert t.status == "done"
    assert checksum(sql_on, master_url, "refused") == checksum(sql_on, replica_url, "refused")


def test_direct_empty_master_table_and_no_key_replace(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, "CREATE TABLE e (id int PRIMARY KEY, v text); CREATE TABLE nk (v text, j jsonb)")
    t = copy_tables(master_url, replica_url, ["e"]).tables[0]
    assert (t.rows_copied, t.batches) == (0, 1)
    assert sql_on(replica_url, "SELECT mode, status, rows_copied FROM _replicator.checkpoints") == [("direct", "done", 0)]
    sql_on(master_url, f"INSERT INTO nk SELECT CASE WHEN i % 4 = 0 THEN NULL ELSE {ODD} || i END, "
                       f"jsonb_build_object('s', {ODD}) FROM generate_series(1, 999) i")
    t = copy_tables(master_url, replica_url, ["nk"], policy="replace").tables[0]
    assert (t.inserted, t.mode) == (999, "replace")
    assert checksum(sql_on, master_url, "nk") == checksum(sql_on, replica_url, "nk")


def test_binary_framing_check():
    import struct

    from replicator.copy.stream import BinaryFrames as _BinaryFrames
    from replicator.copy.stream import CopyError as EngineCopyError

    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
    row = struct.pack("!h", 2) + struct.pack("!i", 3) + b"abc" + struct.pack("!i", -1)
    f = _BinaryFrames(2)
    assert bytes(f.feed(header + row)) == row and f.header == header  # header in front of the first row
    assert bytes(f.feed(row)) == row
    assert f.feed(b"\xff\xff") is None
    f.close()
    f = _BinaryFrames(2)
    assert f.feed(header) is None  # header on its own
    for bad in (row + row, row[:-2], struct.pack("!h", 3) + row[2:], b"\x00"):
        with pytest.raises(EngineCopyError, match="framing"):
            _BinaryFrames.feed(f, bad)
    with pytest.raises(EngineCopyError, match="signature"):
        _BinaryFrames(2).feed(row)
    with pytest.raises(EngineCopyError, match="trailer"):
        g = _BinaryFrames(2)
        g.feed(header + row)
        g.close()


def test_direct_corrupted_stream_fails_loudly_then_reconciles(master_url, replica_url, sql_on, monkeypatch):
    """The framed path of masters before PostgreSQL 14 (no TID range scans), forced here."""
    from replicator.copy import stream as engine
    from replicator.copy import table

    monkeypatch.setattr(table, "TID_RANGE_MIN_VERSION", 10**9)
    both(sql_on, master_url, replica_url, "CREATE TABLE c (id uuid PRIMARY KEY, v text)")
    sql_on(master_url, "INSERT INTO c SELECT md5(i::text)::uuid, 'v' || i FROM generate_series(1, 3000) i")
    real = engine.BinaryFrames.feed
    seen = {"n": 0}

    def corrupt(self, chunk):
        seen["n"] += 1
        if seen["n"] == 1100:  # a message that does not start a row of this table
            chunk = b"\x00\x03" + bytes(chunk)[2:]
        return real(self, chunk)

    monkeypatch.setattr(engine.BinaryFrames, "feed", corrupt)
    with pytest.raises(ReplicatorError, match="framing"):
        copy_tables(master_url, replica_url, ["c"], batch_size=250)
    cp = sql_on(replica_url, "SELECT mode, status, rows_copied, batches FROM _replicator.checkpoints")
    assert cp == [("direct", "running", 1000, 4)]
    assert sql_on(replica_url, "SELECT count(*) FROM c")[0][0] == 1000  # only the committed batches
    monkeypatch.setattr(engine.BinaryFrames, "feed", real)
    t = copy_tables(master_url, replica_url, ["c"], batch_size=250).tables[0]
    assert any("resumed an interrupted copy" in n for n in t.notes)
    assert (t.rows_copied, t.inserted, t.updated, t.deleted, t.unchanged, t.reconciled) == (3000, 2000, 0, 0, 1000, 0)
    assert checksum(sql_on, master_url, "c") == checksum(sql_on, replica_url, "c")
    assert sql_on(replica_url, "SELECT mode, status, rows_copied, inserted FROM _replicator.checkpoints") == [
        ("full", "done", 3000, 2000)]
