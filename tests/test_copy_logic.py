"""The replica's own logic (triggers, rules) does not fire while copy writes; foreign keys skipped that way
are checked after. Three roles: a superuser (session_replication_role), a table owner (triggers disabled
by name inside each batch) and a role that may do neither (refused before anything is written)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import url_with
from copyhelp import both, same

from replicator.cli import main
from replicator.copy import copy_tables
from replicator.errors import ReplicatorError


SCHEMA = """
CREATE TABLE film (
    id int PRIMARY KEY, title text NOT NULL, description text,
    fulltext tsvector, last_update timestamptz NOT NULL DEFAULT '2000-01-01');
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.last_update := now(); RETURN NEW; END $$;
CREATE FUNCTION fts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.fulltext := to_tsvector('simple', 'rewritten ' || NEW.title); RETURN NEW; END $$;
CREATE TRIGGER film_touch BEFORE UPDATE ON film FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER film_fts BEFORE INSERT OR UPDATE ON film FOR EACH ROW EXECUTE FUNCTION fts();
CREATE TABLE audit (at timestamptz DEFAULT now(), what text);
CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (what) VALUES (TG_OP || ' ' || NEW.id); RETURN NEW; END $$;
CREATE TRIGGER film_log AFTER INSERT ON film FOR EACH ROW EXECUTE FUNCTION log_it();
"""

FILL = """INSERT INTO film SELECT i, 'Film ' || i, 'about ' || i, to_tsvector('simple', 'Film ' || i),
          timestamptz '2006-02-15 09:34:33+00' FROM generate_series(1, 600) i"""


def _master(master_url, sql_on):
    sql_on(master_url, "SET session_replication_role = replica;" + SCHEMA + FILL)


def _film_state(sql_on, url):
    return sql_on(url, "SELECT count(*), count(*) FILTER (WHERE last_update > '2020-01-01'), "
                       "count(*) FILTER (WHERE fulltext::text LIKE '%rewritten%') FROM film")[0]


@pytest.mark.parametrize("policy", [None, "master-wins", "mirror"])
def test_triggers_do_not_rewrite_copied_rows_superuser(master_url, replica_url, sql_on, policy):
    _master(master_url, sql_on)
    sql_on(replica_url, SCHEMA)
    if policy:
        sql_on(replica_url, "SET session_replication_role = replica;" + FILL + "; UPDATE film SET title = 'old' WHERE id % 10 = 0")
    res = copy_tables(master_url, replica_url, ["film"], policy=policy, batch_size=100)
    assert "session_replication_role" in res.replica_logic
    assert _film_state(sql_on, replica_url) == (600, 0, 0)  # no trigger rewrote last_update or fulltext
    assert sql_on(replica_url, "SELECT count(*) FROM audit") == [(0,)]  # nor logged anything
    assert same(sql_on, master_url, replica_url, "film")
    # and a rerun finds nothing to do: the triggers never made the two sides differ
    t = copy_tables(master_url, replica_url, ["film"], policy="master-wins", batch_size=100).tables[0]
    assert (t.updated, t.inserted) == (0, 0)
    # the triggers are still there and enabled for the replica's own writes
    sql_on(replica_url, "UPDATE film SET title = 'mine' WHERE id = 1")
    assert sql_on(replica_url, "SELECT last_update > '2020-01-01' FROM film WHERE id = 1") == [(True,)]


def test_always_enabled_trigger_and_rule_are_switched_off_too(master_url, replica_url, sql_on):
    _master(master_url, sql_on)
    sql_on(replica_url, SCHEMA + """
        ALTER TABLE film ENABLE ALWAYS TRIGGER film_touch;
        ALTER TABLE film ENABLE ALWAYS TRIGGER film_fts;
        CREATE TABLE shadow (id int);
        CREATE RULE film_shadow AS ON INSERT TO film DO ALSO INSERT INTO shadow VALUES (NEW.id);
        ALTER TABLE film ENABLE ALWAYS RULE film_shadow;""")
    copy_tables(master_url, replica_url, ["film"], batch_size=100)
    assert _film_state(sql_on, replica_url) == (600, 0, 0)
    assert sql_on(replica_url, "SELECT count(*) FROM shadow") == [(0,)]
    assert same(sql_on, master_url, replica_url, "film")
    # their states are as they were
    assert sql_on(replica_url, "SELECT tgname, tgenabled::text FROM pg_trigger WHERE tgrelid = 'film'::regclass "
                               "AND NOT tgisinternal ORDER BY 1") == [("film_fts", "A"), ("film_log", "O"), ("film_touch", "A")]
    assert sql_on(replica_url, "SELECT ev_enabled::text FROM pg_rewrite WHERE rulename = 'film_shadow'") == [("A",)]


@pytest.mark.parametrize("policy", [None, "master-wins"])
def test_table_owner_without_replication_role_disables_triggers_by_name(master_url, replica_url, sql_on, role, policy):
    _master(master_url, sql_on)
    sql_on(replica_url, f"GRANT CREATE ON SCHEMA public TO {role}; CREATE SCHEMA _replicator AUTHORIZATION {role}; "
           f"SET ROLE {role};" + SCHEMA)
    if policy:
        sql_on(replica_url, f"SET ROLE {role}; ALTER TABLE film DISABLE TRIGGER USER;" + FILL +
               "; UPDATE film SET title = 'old' WHERE id % 10 = 0; ALTER TABLE film ENABLE TRIGGER USER")
    owner_url = url_with(replica_url, user=role, password="pw")
    res = copy_tables(master_url, owner_url, ["film"], policy=policy, batch_size=100)
    assert "disabled by name" in res.replica_logic
    assert _film_state(sql_on, replica_url) == (600, 0, 0)
    assert sql_on(replica_url, "SELECT count(*) FROM audit") == [(0,)]
    assert same(sql_on, master_url, replica_url, "film")
    assert sql_on(replica_url, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'film'::regclass AND NOT tgisinternal "
                               "AND tgenabled = 'O'") == [(3,)]


def test_role_that_can_neither_set_the_role_nor_alter_the_table_is_refused(master_url, replica_url, sql_on, role,
                                                                              tmp_path):
    _master(master_url, sql_on)
    sql_on(replica_url, SCHEMA + f"""
        CREATE SCHEMA _replicator AUTHORIZATION {role};
        GRANT SELECT, INSERT, UPDATE, DELETE ON film, audit TO {role}""")
    writer = url_with(replica_url, user=role, password="pw")
    with pytest.raises(ReplicatorError, match="film_touch.*session_replication_role.*own the table") as e:
        copy_tables(master_url, writer, ["film"])
    assert "nothing was copied" in str(e.value)
    assert sql_on(replica_url, "SELECT count(*) FROM film") == [(0,)]
    r = CliRunner().invoke(main, ["copy", "--master", master_url, "--replica", writer, "--table", "film",
                                  "--out-dir", str(tmp_path)])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "GRANT SET ON PARAMETER" in r.output


PARENT_CHILD = """
CREATE TABLE projects (id int PRIMARY KEY, name text);
CREATE TABLE leads (id int PRIMARY KEY, project_id int REFERENCES projects (id), name text);
"""


def test_foreign_keys_are_checked_after_the_copy_and_name_the_parent(master_url, replica_url, sql_on, tmp_path):
    both(sql_on, master_url, replica_url, PARENT_CHILD)
    sql_on(master_url, "INSERT INTO projects SELECT i, 'p' FROM generate_series(1, 5) i; "
                       "INSERT INTO leads SELECT i, i % 5 + 1, 'l' FROM generate_series(1, 50) i")
    # the child alone: its rows reference projects the replica does not have yet
    res = copy_tables(master_url, replica_url, ["leads"])
    assert [(o.table, o.constraint, o.rows) for o in res.orphans] == [("public.leads", "leads_project_id_fkey", 50)]
    assert res.orphans[0].hint == "copy public.projects first (replicator copy --table public.projects)"
    # a parent holding rows (some of them): the hint's command needs a policy, which it gives
    sql_on(replica_url, "INSERT INTO projects VALUES (1, 'p')")
    res = copy_tables(master_url, replica_url, ["leads"], policy="master-wins")
    assert res.orphans[0].hint == ("copy public.projects first (replicator copy --table public.projects "
                                   "--policy master-wins)")
    r = CliRunner().invoke(main, ["copy", "--master", master_url, "--replica", replica_url, "--table", "leads",
                                  "--policy", "master-wins", "--out-dir", str(tmp_path)])
    assert r.exit_code == 1 and "copy public.projects first" in r.output
    # both, in any order on the command line: parents first, nothing orphaned
    sql_on(replica_url, "TRUNCATE leads, projects; DROP SCHEMA _replicator CASCADE")
    res = copy_tables(master_url, replica_url, ["leads", "projects"])
    assert [t.table for t in res.tables] == ["public.projects", "public.leads"]
    assert res.orphans == []
    assert same(sql_on, master_url, replica_url, "leads") and same(sql_on, master_url, replica_url, "projects")


def test_owner_mode_enforces_fks_and_orders_parents_first(master_url, replica_url, sql_on, role):
    both(sql_on, master_url, replica_url, "")
    sql_on(master_url, PARENT_CHILD + "ALTER TABLE projects ADD COLUMN lead_id int; "
           "INSERT INTO projects SELECT i, 'p' FROM generate_series(1, 5) i; "
           "INSERT INTO leads SELECT i, i % 5 + 1, 'l' FROM generate_series(1, 50) i; "
           "ALTER TABLE projects ADD FOREIGN KEY (lead_id) REFERENCES leads (id); UPDATE projects SET lead_id = id")
    sql_on(replica_url, f"GRANT CREATE ON SCHEMA public TO {role}; CREATE SCHEMA _replicator AUTHORIZATION {role}; "
           f"SET ROLE {role};" + PARENT_CHILD +
           "ALTER TABLE projects ADD COLUMN lead_id int REFERENCES leads (id)")
    res = copy_tables(master_url, url_with(replica_url, user=role, password="pw"), ["leads", "projects"])
    assert "disabled by name" in res.replica_logic
    # the cycle was broken by dropping one key for the copy, then re-added (validated)
    assert res.deferred_constraints and sql_on(
        replica_url, "SELECT bool_and(convalidated) FROM pg_constraint WHERE contype = 'f'") == [(True,)]
    assert same(sql_on, master_url, replica_url, "leads") and same(sql_on, master_url, replica_url, "projects")


@pytest.mark.parametrize("how", ["non-owner", "owner-forced"])
def test_row_level_security_on_the_replica_is_named_not_hidden(master_url, replica_url, sql_on, role, how, tmp_path):
    """RLS that applies to the replica role: COPY FROM refuses the table and its reads see only some
    rows. Copy says so before writing anything; verify fails on the table instead of counting what RLS
    lets it see."""
    from conftest import run_cli

    ddl = ("CREATE TABLE notes (id int PRIMARY KEY, owner text); ALTER TABLE notes ENABLE ROW LEVEL SECURITY; "
           "CREATE POLICY mine ON notes USING (owner = current_user)")
    sql_on(master_url, ddl + "; INSERT INTO notes SELECT g, 'someone' FROM generate_series(1, 10) g")
    sql_on(replica_url, f"GRANT CREATE ON SCHEMA public TO {role}; CREATE SCHEMA _replicator AUTHORIZATION {role}")
    if how == "owner-forced":
        sql_on(replica_url, f"SET ROLE {role}; {ddl}; ALTER TABLE notes FORCE ROW LEVEL SECURITY")
    else:
        sql_on(replica_url, f"{ddl}; GRANT ALL ON notes TO {role}")
    sql_on(replica_url, "INSERT INTO notes SELECT g, 'someone' FROM generate_series(1, 5) g")  # as the superuser
    as_role = url_with(replica_url, user=role, password="pw")
    common = ["--master", master_url, "--replica", as_role, "--out-dir", str(tmp_path)]
    res = run_cli("copy", "--table", "notes", "--policy", "mirror", *common)
    assert res.code == 2 and "row-level security on the replica applies to its role on public.notes" in res.stderr
    assert sql_on(replica_url, "SELECT count(*) FROM notes") == [(5,)]  # nothing written
    res = run_cli("verify", "--table", "notes", *common)
    assert res.code == 1
    report = json.loads(max((tmp_path / "reports").glob("verify-*.json"), key=lambda p: p.stat().st_mtime).read_text())
    counts = [c for c in report["checks"] if c["name"] == "row_counts"]
    assert [c["status"] for c in counts] == ["fail"] and "row-level security" in counts[0]["summary"]
