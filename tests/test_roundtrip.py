"""Round-trip property: load A into the replica and B into the master, analyze + migrate, and the
replica then matches the master (analyze finds no difference). One catalogue entry per case."""

from __future__ import annotations

import pytest

from replicator.analyze import AnalyzeOptions, compute
from replicator.config import Config, TableConfig
from replicator.examples import example_sql
from replicator.migrate import MigrateOptions, run_migrate

# (name, replica SQL, master SQL, renames)
CATALOGUE: list[tuple[str, str, str, dict]] = [
    ("new-table", "", """
        CREATE TABLE clients (id bigint PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
    """, {}),
    ("reserved-words", "CREATE TABLE \"end\" (id int PRIMARY KEY);", """
        CREATE TABLE "end" (id int PRIMARY KEY, "order" int NOT NULL DEFAULT 0, "select" text, "user" text);
        CREATE TABLE "table" ("end" timestamptz, "from" int REFERENCES "end"(id));
        CREATE INDEX "index" ON "end" ("order");
    """, {}),
    ("mixed-case-quotes-unicode", "", """
        CREATE SCHEMA "MySchema";
        CREATE TABLE "MySchema"."Tbl" ("Id" int PRIMARY KEY, "we""ird" text, "é ü" text, "with space" int);
        CREATE TABLE "MySchema"."Child Table" (id int PRIMARY KEY, "Tbl Id" int REFERENCES "MySchema"."Tbl"("Id"));
        COMMENT ON COLUMN "MySchema"."Tbl"."we""ird" IS 'it''s weird';
    """, {}),
    ("no-pk-table", "CREATE TABLE log (msg text);", """
        CREATE TABLE log (msg text, at timestamptz DEFAULT now(), level int);
        CREATE TABLE events (payload jsonb);
    """, {}),
    ("enum-add-values", """
        CREATE TYPE mood AS ENUM ('sad', 'happy');
        CREATE TABLE t (id int PRIMARY KEY, m mood DEFAULT 'sad');
        INSERT INTO t VALUES (1, 'happy');
    """, """
        CREATE TYPE mood AS ENUM ('awful', 'sad', 'ok', 'happy', 'ecstatic');
        CREATE TABLE t (id int PRIMARY KEY, m mood DEFAULT 'ok', CHECK (m <> 'awful'));
    """, {}),
    ("enum-remove-reorder", """
        CREATE TYPE status AS ENUM ('new', 'old', 'gone');
        CREATE TABLE t (id int PRIMARY KEY, s status NOT NULL DEFAULT 'new', hist status[]);
        INSERT INTO t VALUES (1, 'old', '{new,old}');
    """, """
        CREATE TYPE status AS ENUM ('old', 'new');
        CREATE TABLE t (id int PRIMARY KEY, s status NOT NULL DEFAULT 'new', hist status[]);
    """, {}),
    ("type-changes", """
        CREATE TABLE t (id int PRIMARY KEY, a int, b varchar(10), c text, d numeric(6,2), e varchar(40));
        INSERT INTO t VALUES (1, 5, 'abc', '42', 1.5, 'short');
    """, """
        CREATE TABLE t (id bigint PRIMARY KEY, a bigint, b varchar(50), c integer, d numeric(10,2), e varchar(10));
    """, {}),
    ("renamed-column", """
        CREATE TABLE projects (id int PRIMARY KEY);
        CREATE TABLE leads (id int PRIMARY KEY, project_id int REFERENCES projects(id), name text);
        INSERT INTO projects VALUES (1); INSERT INTO leads VALUES (1, 1, 'x');
    """, """
        CREATE TABLE projects (id int PRIMARY KEY);
        CREATE TABLE leads (id int PRIMARY KEY, current_project_id int REFERENCES projects(id), name text);
    """, {"leads": {"project_id": "current_project_id"}}),
    ("partitioned-table", "", """
        CREATE TABLE events (id bigint NOT NULL, at timestamptz NOT NULL, kind text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2025-01-01 00:00+00');
        CREATE TABLE events_default PARTITION OF events DEFAULT;
        CREATE INDEX events_kind_idx ON events (kind);
    """, {}),
    ("views-on-views", "CREATE TABLE t (id int PRIMARY KEY, v int);", """
        CREATE TABLE t (id int PRIMARY KEY, v int, w text);
        CREATE VIEW v1 AS SELECT id, v FROM t WHERE v > 0;
        CREATE VIEW v2 AS SELECT id, v * 2 AS dbl FROM v1;
        CREATE VIEW v3 AS SELECT count(*) AS n FROM v2;
        COMMENT ON VIEW v3 IS 'counts';
    """, {}),
    ("view-over-changed-column", """
        CREATE TABLE t (id int PRIMARY KEY, v int);
        CREATE VIEW v1 AS SELECT id, v FROM t;
        CREATE VIEW v2 AS SELECT id FROM v1;
    """, """
        CREATE TABLE t (id int PRIMARY KEY, v bigint);
        CREATE VIEW v1 AS SELECT id, v FROM t;
        CREATE VIEW v2 AS SELECT id FROM v1;
    """, {}),
    ("functions-triggers", """
        CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz);
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER t_touch BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION touch();
        CREATE FUNCTION old_fn(a int) RETURNS int LANGUAGE sql AS 'SELECT a';
    """, """
        CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz);
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
        CREATE TRIGGER t_touch BEFORE INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch();
        CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
        CREATE FUNCTION n_rows() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM t';
        CREATE PROCEDURE noop() LANGUAGE sql AS 'SELECT 1';
        CREATE TRIGGER t_off AFTER DELETE ON t FOR EACH ROW EXECUTE FUNCTION touch();
        ALTER TABLE t DISABLE TRIGGER t_off;
        COMMENT ON FUNCTION add(int, int) IS 'adds';
    """, {}),
    ("rls-policies", """
        CREATE TABLE docs (id int PRIMARY KEY, owner text);
        CREATE POLICY old_p ON docs USING (true);
        ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
    """, """
        CREATE TABLE docs (id int PRIMARY KEY, owner text);
        ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
        ALTER TABLE docs FORCE ROW LEVEL SECURITY;
        CREATE POLICY owner_read ON docs FOR SELECT USING (owner = current_user);
        CREATE POLICY owner_write ON docs AS RESTRICTIVE FOR INSERT TO PUBLIC WITH CHECK (owner = current_user);
        CREATE TABLE notes (id int PRIMARY KEY, body text);
        ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
        CREATE POLICY all_notes ON notes USING (id > 0) WITH CHECK (id > 0);
    """, {}),
    ("sequences-identity", """
        CREATE SEQUENCE counter INCREMENT BY 1;
        CREATE TABLE a (id serial PRIMARY KEY);
    """, """
        CREATE SEQUENCE counter INCREMENT BY 5 START WITH 100 MINVALUE 1 CACHE 10;
        CREATE SEQUENCE standalone AS integer;
        CREATE TABLE a (id serial PRIMARY KEY, n int DEFAULT nextval('standalone'));
        CREATE TABLE b (id bigint GENERATED ALWAYS AS IDENTITY (START WITH 7 INCREMENT BY 3) PRIMARY KEY, x int);
        CREATE TABLE c (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY);
    """, {}),
    ("domains", "CREATE DOMAIN posint AS integer CHECK (VALUE > 0);", """
        CREATE DOMAIN posint AS integer NOT NULL DEFAULT 1 CONSTRAINT posint_check CHECK (VALUE > 0);
        CREATE DOMAIN email AS text CONSTRAINT email_at CHECK (VALUE LIKE '%@%');
        CREATE TABLE people (id posint PRIMARY KEY, mail email);
        COMMENT ON DOMAIN email IS 'an address';
    """, {}),
    ("comments", """
        CREATE TABLE t (id int PRIMARY KEY, a text);
        COMMENT ON TABLE t IS 'old';
        COMMENT ON COLUMN t.a IS 'gone';
    """, """
        CREATE TABLE t (id int CONSTRAINT t_pk PRIMARY KEY, a text);
        COMMENT ON TABLE t IS 'new comment with ''quotes''';
        COMMENT ON COLUMN t.id IS 'the id';
        COMMENT ON CONSTRAINT t_pk ON t IS 'key';
        CREATE INDEX t_a ON t (a);
        COMMENT ON INDEX t_a IS 'by a';
        COMMENT ON SCHEMA public IS 'standard public schema';
    """, {}),
    ("defaults-nullability", """
        CREATE TABLE t (id int PRIMARY KEY, a int DEFAULT 1, b text NOT NULL, c text, d timestamptz);
        INSERT INTO t VALUES (1, 1, 'x', 'y', now());
    """, """
        CREATE TABLE t (id int PRIMARY KEY, a int DEFAULT 2, b text, c text NOT NULL DEFAULT '', d timestamptz DEFAULT now(),
                        e int NOT NULL DEFAULT 0, f text);
    """, {}),
    ("check-exclusion", """
        CREATE TABLE booking (id int PRIMARY KEY, room int, during tstzrange, price numeric CHECK (price > -1));
    """, """
        CREATE TABLE booking (id int PRIMARY KEY, room int, during tstzrange,
            price numeric CONSTRAINT booking_price_check CHECK (price >= 0),
            CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&),
            CONSTRAINT room_positive CHECK (room > 0) NOT VALID);
    """, {}),
    ("foreign-keys", """
        CREATE TABLE parent (id int PRIMARY KEY);
        CREATE TABLE child (id int PRIMARY KEY, parent_id int);
        INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (1, 1), (2, NULL);
    """, """
        CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE);
        CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent(id) ON DELETE CASCADE,
                            parent_code text REFERENCES parent(code) DEFERRABLE INITIALLY DEFERRED);
        CREATE TABLE grandchild (id int PRIMARY KEY, child_id int NOT NULL REFERENCES child(id));
        CREATE TABLE selfref (id int PRIMARY KEY, up int REFERENCES selfref(id));
    """, {}),
    ("drop-extras", """
        CREATE TABLE keep (id int PRIMARY KEY, legacy text, other int);
        CREATE TABLE obsolete (id int PRIMARY KEY, keep_id int REFERENCES keep(id));
        CREATE INDEX keep_other ON keep (other);
        CREATE VIEW old_view AS SELECT id FROM keep;
        CREATE TYPE old_enum AS ENUM ('a');
        CREATE SEQUENCE old_seq;
        CREATE FUNCTION old_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
        INSERT INTO keep VALUES (1, 'x', 2); INSERT INTO obsolete VALUES (1, 1);
    """, """
        CREATE TABLE keep (id int PRIMARY KEY, other int);
    """, {}),
    ("indexes", """
        CREATE TABLE t (id int PRIMARY KEY, a text, b int);
        CREATE INDEX t_a ON t (a);
    """, """
        CREATE TABLE t (id int PRIMARY KEY, a text, b int);
        CREATE INDEX t_a ON t (a DESC NULLS LAST);
        CREATE UNIQUE INDEX t_b_uniq ON t (b) WHERE b IS NOT NULL;
        CREATE INDEX t_lower_a ON t (lower(a)) INCLUDE (b);
        CREATE INDEX t_hash ON t USING hash (a);
    """, {}),
    ("materialized-view", "CREATE TABLE t (id int PRIMARY KEY, v int);", """
        CREATE TABLE t (id int PRIMARY KEY, v int);
        CREATE MATERIALIZED VIEW mv AS SELECT v, count(*) AS n FROM t GROUP BY v;
        CREATE UNIQUE INDEX mv_v ON mv (v);
        CREATE VIEW sec WITH (security_barrier) AS SELECT id FROM t;
    """, {}),
    ("new-schema-extension", "", """
        CREATE EXTENSION IF NOT EXISTS citext;
        CREATE SCHEMA app;
        COMMENT ON SCHEMA app IS 'application';
        CREATE TABLE app.users (id int PRIMARY KEY, email citext UNIQUE);
    """, {}),
    ("unique-pk-changes", """
        CREATE TABLE t (id int, code text, CONSTRAINT t_code_key UNIQUE (code));
        INSERT INTO t VALUES (1, 'a'), (2, 'b');
    """, """
        CREATE TABLE t (id int PRIMARY KEY, code text, CONSTRAINT t_code_id_key UNIQUE (code, id));
    """, {}),
    ("generated-collation-unlogged", "CREATE TABLE t (id int PRIMARY KEY, price numeric, qty int, label text);", """
        CREATE TABLE t (id int PRIMARY KEY, price numeric, qty int, label text COLLATE "C",
                        total numeric GENERATED ALWAYS AS (price * qty) STORED);
        CREATE UNLOGGED TABLE scratch (k text PRIMARY KEY) WITH (fillfactor = 70);
    """, {}),
    ("inheritance", "", """
        CREATE TABLE base (id int, created_at timestamptz DEFAULT now());
        CREATE TABLE derived (extra text) INHERITS (base);
    """, {}),
    ("range-and-list-partitions", "CREATE TABLE m (id int, region text NOT NULL) PARTITION BY LIST (region);", """
        CREATE TABLE m (id int, region text NOT NULL) PARTITION BY LIST (region);
        CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu', 'uk');
        CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');
        CREATE TABLE m_other PARTITION OF m DEFAULT PARTITION BY HASH (id);
        CREATE TABLE m_other_0 PARTITION OF m_other FOR VALUES WITH (MODULUS 2, REMAINDER 0);
        CREATE TABLE m_other_1 PARTITION OF m_other FOR VALUES WITH (MODULUS 2, REMAINDER 1);
    """, {}),
    ("golden-pair", "@replica", "@master", {"leads": {"project_id": "current_project_id"}}),
]


def _load(sql_on, url: str, text: str) -> None:
    if text.startswith("@"):
        text = example_sql(text[1:])  # type: ignore[arg-type]
    if text.strip():
        sql_on(url, text)


def _config(master_url: str, replica_url: str, renames: dict) -> Config:
    return Config(master_url=master_url, replica_url=replica_url,
                  tables={t: TableConfig(renames=r) for t, r in renames.items()})


@pytest.mark.parametrize("name,replica_sql,master_sql,renames", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_roundtrip(name, replica_sql, master_sql, renames, master_url, replica_url, sql_on, tmp_path):
    _load(sql_on, replica_url, replica_sql)
    _load(sql_on, master_url, master_sql)
    cfg = _config(master_url, replica_url, renames)
    res = run_migrate(cfg, tmp_path, MigrateOptions(allow_destructive=True, force=True, all_schemas=True))
    assert res.applied, "the pair differs, so something must run"
    _, _, plan, s = compute(cfg, AnalyzeOptions(all_schemas=True))
    s.close()
    assert [str(c) for c in plan.changes] == []
    assert plan.steps == []


def test_catalogue_size():
    assert len(CATALOGUE) >= 25
