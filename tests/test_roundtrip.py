"""Round-trip property: load A into the replica and B into the master, analyze + migrate, and the
replica then matches the master (analyze finds no difference). One catalogue entry per case."""

from __future__ import annotations

import re

import pytest

from replicator.analyze import AnalyzeOptions, compute
from replicator.config import Config, TableConfig
from replicator.examples import example_sql
from replicator.guard import MasterGuard
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
    # --- dependency order: row types, aggregates, swaps -------------------------------------------
    ("setof-row-type-function", "", """
        CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL);
        CREATE FUNCTION customers_named(p text) RETURNS SETOF customer LANGUAGE sql STABLE
            AS $$ SELECT * FROM customer WHERE name = p $$;
        CREATE FUNCTION customer_label(c customer) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT c.name || '#' || c.id $$;
        CREATE VIEW labels AS SELECT customer_label(c) AS label FROM customer c;
    """, {}),
    ("aggregate-and-views", "CREATE TABLE film (id int PRIMARY KEY, title text);", """
        CREATE TABLE film (id int PRIMARY KEY, title text, category text);
        CREATE FUNCTION _group_concat(text, text) RETURNS text LANGUAGE sql IMMUTABLE
            AS $$ SELECT CASE WHEN $2 IS NULL THEN $1 WHEN $1 IS NULL THEN $2 ELSE $1 || ', ' || $2 END $$;
        CREATE AGGREGATE group_concat(text) (SFUNC = _group_concat, STYPE = text);
        CREATE AGGREGATE sum_len(text) (SFUNC = textcat, STYPE = text, INITCOND = '', FINALFUNC = length);
        CREATE VIEW film_list AS SELECT category, group_concat(title) AS titles FROM film GROUP BY category;
        CREATE VIEW film_stats AS SELECT category, titles, length(titles) AS n FROM film_list;
    """, {}),
    ("aggregate-changed", """
        CREATE FUNCTION add_len(int, text) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT $1 + length($2) $$;
        CREATE AGGREGATE total_len(text) (SFUNC = add_len, STYPE = int, INITCOND = '0');
        CREATE TABLE t (id int PRIMARY KEY, s text);
        CREATE VIEW v AS SELECT total_len(s) AS n FROM t;
    """, """
        CREATE FUNCTION add_len(int, text) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT $1 + length($2) $$;
        CREATE AGGREGATE total_len(text) (SFUNC = add_len, STYPE = int, INITCOND = '100');
        CREATE TABLE t (id int PRIMARY KEY, s text);
        CREATE VIEW v AS SELECT total_len(s) AS n FROM t;
    """, {}),
    ("table-becomes-view", """
        CREATE TABLE base (id int PRIMARY KEY, v int);
        CREATE TABLE summary (v int);
        INSERT INTO summary VALUES (1);
    """, """
        CREATE TABLE base (id int PRIMARY KEY, v int);
        CREATE VIEW summary AS SELECT v FROM base;
    """, {}),
    ("view-becomes-table", """
        CREATE TABLE base (id int PRIMARY KEY, v int);
        CREATE VIEW report AS SELECT id, v FROM base;
        CREATE VIEW report2 AS SELECT id FROM report;
    """, """
        CREATE TABLE base (id int PRIMARY KEY, v int);
        CREATE TABLE report (id int PRIMARY KEY, v int, note text);
        CREATE VIEW report2 AS SELECT id FROM report;
    """, {}),
    ("function-signature-with-dependents", """
        CREATE TABLE t (id int PRIMARY KEY, n int);
        CREATE FUNCTION score(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER t_touch BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION touch();
        CREATE VIEW scored AS SELECT id, score(n) AS s FROM t;
    """, """
        CREATE TABLE t (id int PRIMARY KEY, n int);
        CREATE FUNCTION score(x int) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT x::bigint * 3';
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.n := coalesce(NEW.n, 0); RETURN NEW; END $$;
        CREATE TRIGGER t_touch BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION touch();
        CREATE VIEW scored AS SELECT id, score(n) AS s FROM t;
    """, {}),
    ("key-change-with-referencing-fk", """
        CREATE TABLE parent (id int, code text, CONSTRAINT parent_pkey PRIMARY KEY (id));
        CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent(id));
        INSERT INTO parent VALUES (1, 'a'); INSERT INTO child VALUES (1, 1);
    """, """
        CREATE TABLE parent (id int, code text, CONSTRAINT parent_pkey PRIMARY KEY (id) INCLUDE (code));
        CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent(id));
    """, {}),
    ("type-change-under-policy-and-view", """
        CREATE TABLE doc (id int PRIMARY KEY, owner_id int);
        ALTER TABLE doc ENABLE ROW LEVEL SECURITY;
        CREATE POLICY own ON doc USING (owner_id > 0);
        CREATE VIEW mine AS SELECT id FROM doc WHERE owner_id = 1;
        INSERT INTO doc VALUES (1, 1);
    """, """
        CREATE TABLE doc (id int PRIMARY KEY, owner_id bigint);
        ALTER TABLE doc ENABLE ROW LEVEL SECURITY;
        CREATE POLICY own ON doc USING (owner_id > 0);
        CREATE VIEW mine AS SELECT id FROM doc WHERE owner_id = 1;
    """, {}),
    ("fk-cycle-between-new-tables", "", """
        CREATE TABLE a (id int PRIMARY KEY, b_id int);
        CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a(id));
        ALTER TABLE a ADD CONSTRAINT a_b_fkey FOREIGN KEY (b_id) REFERENCES b(id);
    """, {}),
    # --- partitions and inheritance: changed once, on the parent ----------------------------------
    ("partitioned-add-column", """
        CREATE TABLE ev (id bigint NOT NULL, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        INSERT INTO ev VALUES (1, '2024-05-01'), (2, '2025-05-01');
    """, """
        CREATE TABLE ev (id bigint NOT NULL, at date NOT NULL, kind text NOT NULL DEFAULT 'x', note varchar(20),
                         PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE INDEX ev_kind ON ev (kind);
        ALTER TABLE ev ADD CONSTRAINT ev_note CHECK (note <> '');
    """, {}),
    ("partitioned-type-change", """
        CREATE TABLE ev (id int NOT NULL, at date NOT NULL, n int) PARTITION BY RANGE (at);
        CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        INSERT INTO ev VALUES (1, '2024-05-01', 3);
    """, """
        CREATE TABLE ev (id bigint NOT NULL, at date NOT NULL, n bigint NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    """, {}),
    ("partitioned-new-partition", """
        CREATE TABLE ev (id int, at date NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    """, """
        CREATE TABLE ev (id int, at date NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE TABLE ev_old PARTITION OF ev FOR VALUES FROM (MINVALUE) TO ('2024-01-01');
    """, {}),
    ("partition-detach", """
        CREATE TABLE ev (id int, at date NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE ev_2023 PARTITION OF ev FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
        CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        INSERT INTO ev VALUES (1, '2023-03-01'), (2, '2024-03-01');
    """, """
        CREATE TABLE ev (id int, at date NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE ev_2023 (id int, at date NOT NULL);
        CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    """, {}),
    ("partition-attach-and-rebound", """
        CREATE TABLE ev (id int, at date NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
        CREATE TABLE ev_archive (id int, at date NOT NULL);
        INSERT INTO ev_archive VALUES (1, '2020-01-01');
    """, """
        CREATE TABLE ev (id int, at date NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE ev_archive PARTITION OF ev FOR VALUES FROM (MINVALUE) TO ('2024-01-01');
    """, {}),
    ("partition-key-change", """
        CREATE TABLE ev (id int, at date NOT NULL, region text NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE ev_all PARTITION OF ev DEFAULT;
        CREATE VIEW ev_count AS SELECT count(*) AS n FROM ev;
        INSERT INTO ev VALUES (1, '2024-01-01', 'eu');
    """, """
        CREATE TABLE ev (id int, at date NOT NULL, region text NOT NULL) PARTITION BY LIST (region);
        CREATE TABLE ev_eu PARTITION OF ev FOR VALUES IN ('eu');
        CREATE TABLE ev_rest PARTITION OF ev DEFAULT;
        CREATE VIEW ev_count AS SELECT count(*) AS n FROM ev;
    """, {}),
    ("inheritance-add-column-and-reparent", """
        CREATE TABLE base (id int, created_at timestamptz DEFAULT now());
        CREATE TABLE other_base (id int, created_at timestamptz DEFAULT now());
        CREATE TABLE derived (extra text) INHERITS (other_base);
    """, """
        CREATE TABLE base (id int, created_at timestamptz DEFAULT now(), tag text);
        CREATE TABLE other_base (id int, created_at timestamptz DEFAULT now());
        CREATE TABLE derived (extra text) INHERITS (base);
        CREATE TABLE derived2 (more int) INHERITS (base);
    """, {}),
    # --- columns ----------------------------------------------------------------------------------
    ("identity-add", """
        CREATE TABLE t (id int, name text);
        INSERT INTO t VALUES (1, 'a'), (2, 'b');
    """, """
        CREATE TABLE t (id int GENERATED BY DEFAULT AS IDENTITY (START WITH 100) PRIMARY KEY, name text);
    """, {}),
    ("identity-options", """
        CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n int);
    """, """
        CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 1000 INCREMENT BY 5 CACHE 20) PRIMARY KEY, n int);
    """, {}),
    ("identity-drop-and-switch", """
        CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int GENERATED BY DEFAULT AS IDENTITY);
        CREATE SEQUENCE t_n_seq2;
    """, """
        CREATE TABLE t (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n int DEFAULT 0);
        CREATE SEQUENCE t_n_seq2;
    """, {}),
    ("serial-to-identity", """
        CREATE TABLE todos (id bigserial PRIMARY KEY, task text);
        INSERT INTO todos (task) VALUES ('a'), ('b');
    """, """
        CREATE TABLE todos (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, task text);
    """, {}),
    ("replica-only-column-with-its-index-and-check", """
        CREATE TABLE users (id int PRIMARY KEY, name text, openid_url text, age int CONSTRAINT users_age_chk CHECK (age > 0));
        CREATE UNIQUE INDEX user_openid_url_idx ON users (openid_url);
        CREATE INDEX users_name_age ON users (name, age);
    """, """
        CREATE TABLE users (id int PRIMARY KEY, name text);
    """, {}),
    ("recreated-view-with-a-new-comment", """
        CREATE TABLE t (id int PRIMARY KEY, name text);
        CREATE VIEW v AS SELECT id, name FROM t;
    """, """
        CREATE TABLE t (id int PRIMARY KEY, name text COLLATE "C");
        CREATE VIEW v AS SELECT id, name FROM t;
        COMMENT ON VIEW v IS 'the view';
    """, {}),
    ("constraint-trigger", """
        CREATE TABLE acct (id int PRIMARY KEY, balance int);
    """, """
        CREATE TABLE acct (id int PRIMARY KEY, balance int);
        CREATE FUNCTION check_balance() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.balance < 0 THEN RAISE EXCEPTION 'negative'; END IF; RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER acct_balance AFTER INSERT OR UPDATE ON acct
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_balance();
        COMMENT ON TRIGGER acct_balance ON acct IS 'checked at commit';
    """, {}),
    ("recreated-table-whose-serial-became-an-identity", """
        CREATE TABLE customer (customer_id serial PRIMARY KEY, name text) PARTITION BY HASH (customer_id);
        CREATE TABLE customer_0 PARTITION OF customer FOR VALUES WITH (MODULUS 1, REMAINDER 0);
    """, """
        CREATE TABLE customer (customer_id int GENERATED BY DEFAULT AS IDENTITY, name text);
        ALTER TABLE customer ADD PRIMARY KEY (customer_id);
    """, {}),
    ("inherit-again-after-no-inherit", """
        CREATE TABLE vehicle (id int PRIMARY KEY, wheels int CHECK (wheels >= 0));
        CREATE TABLE truck (payload int) INHERITS (vehicle);
        ALTER TABLE truck NO INHERIT vehicle;
    """, """
        CREATE TABLE vehicle (id int PRIMARY KEY, wheels int CHECK (wheels >= 0));
        CREATE TABLE truck (payload int) INHERITS (vehicle);
    """, {}),
    ("inherit-a-child-that-lacks-the-parents-check", """
        CREATE TABLE vehicle (id int PRIMARY KEY, wheels int CHECK (wheels >= 0));
        CREATE TABLE truck (id int, wheels int, payload int);
    """, """
        CREATE TABLE vehicle (id int PRIMARY KEY, wheels int CHECK (wheels >= 0));
        CREATE TABLE truck (payload int) INHERITS (vehicle);
    """, {}),
    ("retyped-column-whose-check-calls-a-new-overload", """
        CREATE FUNCTION pos(i int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT i > 0';
        CREATE TABLE t (id int PRIMARY KEY, qty int CHECK (pos(qty)));
        INSERT INTO t VALUES (1, 5);
    """, """
        CREATE FUNCTION pos(i bigint) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT i > 0';
        CREATE TABLE t (id int PRIMARY KEY, qty bigint CHECK (pos(qty)));
    """, {}),
    ("rules", """
        CREATE TABLE t (id int PRIMARY KEY, v text);
        CREATE TABLE audit (id int, v text);
        CREATE RULE local_rule AS ON UPDATE TO t DO INSTEAD NOTHING;
        CREATE VIEW tv AS SELECT id, v FROM t;
    """, """
        CREATE TABLE t (id int PRIMARY KEY, v text);
        CREATE TABLE audit (id int, v text);
        CREATE RULE no_delete AS ON DELETE TO t DO INSTEAD NOTHING;
        CREATE RULE log_insert AS ON INSERT TO t DO ALSO INSERT INTO audit VALUES (NEW.id, NEW.v);
        ALTER TABLE t DISABLE RULE log_insert;
        COMMENT ON RULE no_delete ON t IS 'rows stay';
        CREATE VIEW tv AS SELECT id, v FROM t;
        CREATE RULE tv_ins AS ON INSERT TO tv DO INSTEAD INSERT INTO t VALUES (NEW.id, NEW.v);
        CREATE TABLE archive (id int PRIMARY KEY);
        CREATE RULE archive_keep AS ON DELETE TO archive DO INSTEAD NOTHING;
    """, {}),
    ("enum-to-enum", """
        CREATE TYPE old_status AS ENUM ('new', 'done');
        CREATE TYPE status AS ENUM ('new', 'done', 'archived');
        CREATE TABLE task (id int PRIMARY KEY, s old_status NOT NULL DEFAULT 'new', hist old_status[]);
        INSERT INTO task VALUES (1, 'done', '{new,done}');
    """, """
        CREATE TYPE old_status AS ENUM ('new', 'done');
        CREATE TYPE status AS ENUM ('new', 'done', 'archived');
        CREATE TABLE task (id int PRIMARY KEY, s status NOT NULL DEFAULT 'new', hist status[]);
    """, {}),
    ("text-to-domain-and-enum", """
        CREATE TABLE person (id int PRIMARY KEY, email text, level text);
        INSERT INTO person VALUES (1, 'a@example.com', 'high');
    """, """
        CREATE DOMAIN email AS text CONSTRAINT email_at CHECK (VALUE LIKE '%@%');
        CREATE TYPE level AS ENUM ('low', 'high');
        CREATE TABLE person (id int PRIMARY KEY, email email, level level);
    """, {}),
    ("generated-expression-change", """
        CREATE TABLE line (id int PRIMARY KEY, price numeric, qty int, total numeric GENERATED ALWAYS AS (price * qty) STORED,
                           plain numeric, was_generated numeric GENERATED ALWAYS AS (price + 1) STORED);
        INSERT INTO line (id, price, qty, plain) VALUES (1, 2.5, 4, 1);
    """, """
        CREATE TABLE line (id int PRIMARY KEY, price numeric, qty int, total numeric GENERATED ALWAYS AS (price * qty * 1.2) STORED,
                           plain numeric GENERATED ALWAYS AS (price * 2) STORED, was_generated numeric);
    """, {}),
    ("logged-unlogged-options", """
        CREATE TABLE cache (k text PRIMARY KEY, v text);
        CREATE UNLOGGED TABLE durable (id int PRIMARY KEY) WITH (fillfactor = 50);
    """, """
        CREATE UNLOGGED TABLE cache (k text PRIMARY KEY, v text) WITH (fillfactor = 70, autovacuum_enabled = false);
        CREATE TABLE durable (id int PRIMARY KEY);
    """, {}),
    ("rename-plus-collation", """
        CREATE TABLE t (id int PRIMARY KEY, old_label text);
        INSERT INTO t VALUES (1, 'x');
    """, """
        CREATE TABLE t (id int PRIMARY KEY, label text COLLATE "C" NOT NULL);
    """, {"t": {"old_label": "label"}}),
    # --- types and extensions ---------------------------------------------------------------------
    ("composite-types", "", """
        CREATE TYPE address AS (street text, city text COLLATE "C", zip varchar(10));
        COMMENT ON TYPE address IS 'postal';
        CREATE TABLE shop (id int PRIMARY KEY, addr address, history address[]);
        CREATE FUNCTION city_of(a address) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT a.city $$;
        CREATE VIEW shop_cities AS SELECT id, city_of(addr) AS city FROM shop;
    """, {}),
    ("composite-type-changes", """
        CREATE TYPE address AS (street text, city text, legacy int);
        CREATE TABLE shop (id int PRIMARY KEY, addr address);
        CREATE TYPE pair AS (a int, b int);
        INSERT INTO shop VALUES (1, ROW('main st', 'x', 1));
    """, """
        CREATE TYPE address AS (street text, city text, zip text);
        CREATE TABLE shop (id int PRIMARY KEY, addr address);
        CREATE TYPE pair AS (b bigint, a int);
    """, {}),
    ("range-types", "CREATE TYPE oldrange AS RANGE (subtype = int4);", """
        CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
        CREATE TYPE oldrange AS RANGE (subtype = int8);
        CREATE TABLE reading (id int PRIMARY KEY, span floatrange, spans floatmultirange,
                              EXCLUDE USING gist (span WITH &&));
    """, {}),
    ("extension-version-update", "CREATE EXTENSION hstore VERSION '1.4'; CREATE TABLE kv (id int PRIMARY KEY, h hstore);", """
        CREATE EXTENSION hstore VERSION '1.8';
        CREATE TABLE kv (id int PRIMARY KEY, h hstore);
    """, {}),
    ("extension-in-own-schema", "", """
        CREATE SCHEMA ext;
        CREATE EXTENSION pg_trgm WITH SCHEMA ext;
        CREATE TABLE doc (id int PRIMARY KEY, body text);
        CREATE INDEX doc_trgm ON doc USING gin (body ext.gin_trgm_ops);
    """, {}),
    ("golden-pair", "@replica", "@master", {"leads": {"project_id": "current_project_id"}}),
]
#: pairs added for schemas seen in real projects (dependency order, partitions, every object kind)
REAL_WORLD_PAIRS = 29


# An oracle independent of replicator's introspection and diff: what the catalog itself says about
# every user object, through PostgreSQL's own deparsers. Column order is not compared (a column
# added by ALTER TABLE comes last); everything else must be identical on both sides.
FINGERPRINT = r"""
WITH ns AS (SELECT oid, nspname FROM pg_namespace
            WHERE nspname !~ '^pg_' AND nspname NOT IN ('information_schema', '_replicator'))
SELECT 'rel', c.oid::regclass::text || ' ' || c.relkind::text || c.relpersistence::text || ' ' || coalesce(c.reloptions::text, '')
       || ' ' || coalesce(pg_get_expr(c.relpartbound, c.oid), '') || ' ' || coalesce(pg_get_partkeydef(c.oid), '')
       || ' rls=' || c.relrowsecurity || c.relforcerowsecurity
       || ' inherits=' || coalesce((SELECT string_agg(i.inhparent::regclass::text, ',' ORDER BY i.inhseqno)
                                    FROM pg_inherits i WHERE i.inhrelid = c.oid), '')
       || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'c', 'f')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
UNION ALL
SELECT 'col', a.attrelid::regclass::text || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' notnull=' || a.attnotnull || ' ' || a.attidentity::text || a.attgenerated::text || ' coll=' || a.attcollation::regcollation::text
       || ' ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '') || ' ' || coalesce(col_description(a.attrelid, a.attnum), '')
       || ' local=' || a.attislocal || a.attinhcount
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
UNION ALL
SELECT 'view', c.oid::regclass::text || ' ' || pg_get_viewdef(c.oid)
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
UNION ALL
-- what each view reads, column by column (the same whichever release deparses the view)
SELECT DISTINCT 'viewdep', v.oid::regclass::text || ' reads ' || d.refobjid::regclass::text || '.'
       || coalesce(a.attname::text, '*')
FROM pg_rewrite rw JOIN pg_class v ON v.oid = rw.ev_class JOIN ns ON ns.oid = v.relnamespace
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
     AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid
LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE v.relkind IN ('v', 'm')
UNION ALL
SELECT 'con', conrelid::regclass::text || ' ' || CASE WHEN conparentid = 0 THEN conname ELSE '(clone)' END
       || ' ' || pg_get_constraintdef(con.oid) || ' ' || confrelid::regclass::text
       || ' ' || coalesce(obj_description(con.oid, 'pg_constraint'), '')
FROM pg_constraint con JOIN ns ON ns.oid = con.connamespace
UNION ALL
SELECT 'idx', pg_get_indexdef(i.indexrelid) || ' ' || coalesce(obj_description(i.indexrelid, 'pg_class'), '')
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT 'fn', CASE WHEN p.prokind = 'a' THEN p.oid::regprocedure::text || ' ' || a.aggtransfn::text || ' '
                   || a.aggfinalfn::text || ' ' || coalesce(a.agginitval, '') || ' ' || format_type(a.aggtranstype, NULL)
              ELSE pg_get_functiondef(p.oid) END || ' ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype IN ('e', 'i'))
UNION ALL
SELECT 'type', t.oid::regtype::text || ' ' || t.typtype::text || ' '
       || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
       || coalesce(format_type(t.typbasetype, t.typtypmod), '') || ' ' || t.typnotnull || ' ' || coalesce(t.typdefault, '')
       || coalesce((SELECT format_type(r.rngsubtype, NULL) || ' ' || r.rngsubdiff::text || ' ' || r.rngmultitypid::regtype::text
                    FROM pg_range r WHERE r.rngtypid = t.oid), '')
       || ' ' || coalesce(obj_description(t.oid, 'pg_type'), '')
FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd', 'r', 'c') AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
UNION ALL
SELECT 'trg', pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text || ' ' || coalesce(obj_description(t.oid, 'pg_trigger'), '')
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON ns.oid = c.relnamespace WHERE NOT t.tgisinternal
UNION ALL
SELECT 'pol', schemaname || '.' || tablename || ' ' || policyname || ' ' || permissive || ' ' || roles::text || ' ' || cmd
       || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '')
FROM pg_policies WHERE schemaname NOT IN ('_replicator')
UNION ALL
SELECT 'seq', seqrelid::regclass::text || ' ' || format_type(seqtypid, NULL) || seqstart || ' ' || seqincrement || ' '
       || seqmax || ' ' || seqmin || ' ' || seqcache || ' ' || seqcycle
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT 'ext', extname || ' ' || extversion || ' ' || extnamespace::regnamespace::text FROM pg_extension
UNION ALL
SELECT 'schema', nspname || ' ' || coalesce(obj_description(oid, 'pg_namespace'), '') FROM ns
UNION ALL
SELECT 'rule', pg_get_ruledef(r.oid) || ' ' || r.ev_enabled::text || ' ' || coalesce(obj_description(r.oid, 'pg_rewrite'), '')
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN ns ON ns.oid = c.relnamespace WHERE r.rulename <> '_RETURN'
UNION ALL
SELECT 'coll', co.oid::regcollation::text || ' ' || co.collprovider::text || ' ' || co.collisdeterministic
       || ' ' || coalesce(co.collcollate, '') || ' ' || coalesce(co.collctype, '')
       || ' ' || coalesce(obj_description(co.oid, 'pg_collation'), '')
FROM pg_collation co JOIN ns ON ns.oid = co.collnamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = co.oid AND d.deptype = 'e')
"""


def fingerprints(sql_on, master_url: str, replica_url: str) -> tuple[set[str], set[str]]:
    """Both servers' `fingerprint`. Two major releases apart, a view's text is left out (PostgreSQL 16
    prints `SELECT id FROM t` for what 15 printed `SELECT t.id FROM t`): the view is then known by
    its columns and what it reads, column by column (`viewdep`)."""
    m, r = fingerprint(sql_on, master_url), fingerprint(sql_on, replica_url)
    version = "SELECT current_setting('server_version_num')::int / 10000"
    if sql_on(master_url, version) != sql_on(replica_url, version):
        m, r = ({f for f in x if not f.startswith("view ")} for x in (m, r))
    return m, r


def fingerprint(sql_on, url: str) -> set[str]:
    """The catalog's own account of every user object. Two allowances, both documented PostgreSQL
    behaviour and nothing replicator chooses: a CHECK over ``varchar IN (...)`` deparses as
    ``(ARRAY['a'::varchar])::text[]`` but is parsed back as ``ARRAY[('a'::varchar)::text]`` (the
    parser pushes the cast into the elements), so constraint texts are compared without their
    ``::text`` casts and parentheses; and ``ALTER TABLE ... INHERIT`` leaves a child's columns
    marked as locally defined (attislocal), which only recreating the child could change. The
    constraints PostgreSQL clones onto partitions are compared without their names, which it
    numbers in the order it meets the partitions."""
    out = set()
    for kind, text in sql_on(url, FINGERPRINT):
        if kind == "con":
            text = re.sub(r"::text(\[\])?|[()]", "", text)
        if kind == "col":
            text = re.sub(r" local=\w+?(\d+)$", r" inherited=\1", text)
        out.add(f"{kind} {text}")
    return out


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
    for ext in re.findall(r"CREATE EXTENSION (?:IF NOT EXISTS )?(\w+)", master_sql):
        if not sql_on(replica_url, "SELECT 1 FROM pg_available_extensions WHERE name = %s", (ext,)):
            pytest.skip(f"the replica's server does not ship the extension {ext} the master has")
    _load(sql_on, replica_url, replica_sql)
    _load(sql_on, master_url, master_sql)
    cfg = _config(master_url, replica_url, renames)
    res = run_migrate(cfg, tmp_path, MigrateOptions(allow_destructive=True, force=True, all_schemas=True))
    assert res.applied, "the pair differs, so something must run"
    assert res.master_audit and all(r["allowed"] for r in res.master_audit), "only reads may reach the master"
    guard = MasterGuard()
    _, _, plan, s = compute(cfg, AnalyzeOptions(all_schemas=True), guard)
    s.close()
    assert [str(c) for c in plan.changes] == []
    assert plan.steps == []
    assert guard.audit and all(e.allowed for e in guard.audit)
    # and by the catalog's own account
    m, r = fingerprints(sql_on, master_url, replica_url)
    assert sorted(m - r) == [] and sorted(r - m) == []


def test_catalogue_size():
    assert len(CATALOGUE) >= 28 + 25
    assert len(CATALOGUE[-REAL_WORLD_PAIRS - 1:-1]) == REAL_WORLD_PAIRS
