"""A Supabase-shaped master (tests/fixtures: platform roles, `extensions`, `auth`, `storage`, and a
project schema with profiles, RLS for the platform roles, the trigger on auth.users) migrated with
default options into (1) an empty plain PostgreSQL with none of the platform roles and (2) a replica
that already has the managed schemas and roles (another Supabase project).

Roles are cluster-wide and the session's test servers are shared, so every cluster here is a
throwaway one of its own: no other test's roles leak in, and these tests' roles leak nowhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from replicator import ephemeral
from replicator.cli import main
from replicator.connect import open_master
from replicator.guard import MasterGuard
from replicator.introspect import introspect

from conftest import run_sql

FIXTURES = Path(__file__).parent / "fixtures"
PLATFORM = (FIXTURES / "supabase_platform.sql").read_text()
PROJECT = (FIXTURES / "supabase_project.sql").read_text()
PLATFORM_ROLES = ("anon", "authenticated", "service_role", "authenticator", "supabase_admin")


def _bindir():
    bindir = ephemeral.system_bindir() or ephemeral.embedded_bindir()
    if bindir is None:
        pytest.skip("needs PostgreSQL binaries for throwaway clusters")
    return bindir


@pytest.fixture(scope="module")
def supabase_master():
    cluster = ephemeral.start_cluster(_bindir())
    try:
        url = cluster.url()
        run_sql(url, PLATFORM)
        run_sql(url, PROJECT)
        yield url
    finally:
        cluster.stop()


@pytest.fixture
def fresh_cluster():
    cluster = ephemeral.start_cluster(_bindir())
    try:
        yield cluster.url()
    finally:
        cluster.stop()


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


def _roles(url: str) -> dict[str, bool]:
    return dict(run_sql(url, "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY (%s)", (list(PLATFORM_ROLES),)))


def _analyze_migrate_analyze(master: str, replica: str, out: Path) -> tuple[dict, dict, str, str]:
    """analyze, migrate, analyze --exit-code, all with default options; returns the first analyze's
    summary, migrate's result, and the first analyze's plan file and comparison report."""
    common = ["--master", master, "--replica", replica, "--out-dir", str(out)]
    first = _cli("analyze", *common, "--json")
    assert first.exit_code == 0, first.output
    before = json.loads(first.output)
    plan = (out / "schemas" / "master-schema-replication.sql").read_text()
    report = (out / "reports" / "schema-comparison-report.md").read_text()
    migrated = _cli("migrate", *common, "--json")
    assert migrated.exit_code == 0, migrated.output
    result = json.loads(migrated.output)
    assert result["skipped"] == [] and result["applied"]
    assert result["master_audit"] and all(r["allowed"] for r in result["master_audit"])
    again = _cli("analyze", *common, "--exit-code")
    assert again.exit_code == 0, again.output
    assert "no differences" in again.output
    return before, result, plan, report


def test_into_plain_postgresql_without_platform_roles(supabase_master, fresh_cluster, tmp_path):
    replica = fresh_cluster
    assert _roles(replica) == {}, "a plain server has none of the platform roles"
    before, result, plan, report = _analyze_migrate_analyze(supabase_master, replica, tmp_path)

    # analyze found and reported what public uses outside itself, and that the replica lacks it
    assert before["master_statements_refused"] == 0
    assert before["by_kind"]["role_missing"] == 3 and before["by_kind"]["external_missing"] == 3
    outside = {(o["kind"], o["object"]): o for o in before["outside"]}
    assert outside[("table", "auth.users")]["used_by"] == ["constraint public.profiles/profiles_id_fkey",
                                                            "constraint public.todos/todos_user_id_fkey"]
    assert "column public.todos.user_id" in outside[("function", "auth.uid()")]["used_by"]
    assert any(u.startswith("policy public.profiles/") for u in outside[("function", "auth.uid()")]["used_by"])
    assert outside[("trigger", "on_auth_user_created on auth.users")]["used_by"] == ["public.handle_new_user()"]
    assert {k[1] for k in outside if k[0] == "role"} == {"anon", "authenticated", "service_role"}
    assert {k[1].split()[0] for k in outside if k[0] == "extension"} == {"pgcrypto", "uuid-ossp"}
    assert not any(o["on_replica"] for o in before["outside"])
    assert "## Used outside the compared schemas" in report and "auth.users" in report
    assert "roles are cluster-wide" in plan
    assert plan.index("CREATE SCHEMA IF NOT EXISTS extensions") < plan.index('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')

    # the replica now holds the schema, checked in its catalog directly
    assert _roles(replica) == {"anon": False, "authenticated": False, "service_role": False}
    assert dict(run_sql(replica, "SELECT extname, extnamespace::regnamespace::text FROM pg_extension "
                                 "WHERE extname IN ('pgcrypto', 'uuid-ossp')")) == {"pgcrypto": "extensions",
                                                                                  "uuid-ossp": "extensions"}
    assert run_sql(replica, "SELECT confrelid::regclass::text FROM pg_constraint WHERE conname = 'profiles_id_fkey'") \
        == [("auth.users",)]
    assert run_sql(replica, "SELECT tgfoid::regprocedure::text FROM pg_trigger WHERE tgname = 'on_auth_user_created'") \
        == [("handle_new_user()",)]
    assert sorted(r for (r,) in run_sql(replica, "SELECT unnest(roles)::text FROM pg_policies WHERE tablename = 'todos'")) \
        == ["authenticated", "authenticated", "service_role"]
    # and behaves like the master: signing a user up creates the profile, defaults come from `extensions`
    run_sql(replica, "INSERT INTO auth.users (id, email, raw_user_meta_data) VALUES "
                     "('00000000-0000-4000-8000-0000000000aa', 'cy@example.com', '{\"full_name\": \"Cy\"}')")
    assert run_sql(replica, "SELECT full_name FROM public.profiles") == [("Cy",)]
    run_sql(replica, "INSERT INTO public.todos (user_id, task) VALUES ('00000000-0000-4000-8000-0000000000aa', 'a task')")
    assert run_sql(replica, "SELECT count(*), count(DISTINCT id), min(length(token)) FROM public.todos") == [(1, 1, 16)]


def test_into_a_replica_that_has_the_platform(supabase_master, fresh_cluster, tmp_path):
    replica = fresh_cluster
    run_sql(replica, PLATFORM)
    # the replica's platform is another version: auth.users has a column the master's lacks
    run_sql(replica, "ALTER TABLE auth.users ADD COLUMN platform_only text; "
                     "INSERT INTO auth.users (id, email) VALUES ('00000000-0000-4000-8000-0000000000bb', 'local@example.com')")
    before, result, _, _ = _analyze_migrate_analyze(supabase_master, replica, tmp_path)
    assert "role_missing" not in before["by_kind"] and "extension_missing" not in before["by_kind"]
    assert before["by_kind"]["external_missing"] == 1  # only the project's trigger on auth.users
    applied = "\n".join(a["sql"] for a in result["applied_statements"])
    assert "auth.users (" not in applied and "FUNCTION auth.uid()" not in applied and "CREATE ROLE" not in applied
    assert "CREATE TRIGGER on_auth_user_created" in applied
    # left alone: its own column and rows
    assert run_sql(replica, "SELECT count(*) FROM information_schema.columns "
                            "WHERE table_schema = 'auth' AND table_name = 'users' AND column_name = 'platform_only'") == [(1,)]
    assert run_sql(replica, "SELECT email FROM auth.users") == [("local@example.com",)]


def test_managed_settings_turn_creation_off(supabase_master, fresh_cluster, tmp_path):
    cfg = tmp_path / "replicator.toml"
    cfg.write_text("[managed]\ncreate_roles = false\ncreate_referenced = false\n")
    res = _cli("analyze", "--master", supabase_master, "--replica", fresh_cluster, "--config", str(cfg),
               "--out-dir", str(tmp_path), "--exit-code")
    assert res.exit_code == 2, res.output
    assert "not handled: role authenticated missing on the replica's server" in res.output
    assert "create_referenced = true" in res.output
    plan = (tmp_path / "schemas" / "master-schema-replication.sql").read_text()
    assert "CREATE ROLE" not in plan and "CREATE TABLE auth.users" not in plan
    assert 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp"' in plan  # still on: create_extensions


def test_referenced_managed_tables_are_exposed(supabase_master):
    """Schema.external.tables holds the managed tables the compared schemas reference (what copy
    reads for auth.users rows behind profiles.id), introspected through the guarded session."""
    guard = MasterGuard()
    with open_master(supabase_master, guard) as conn:
        schema = introspect(conn)
    assert all(e.allowed for e in guard.audit)
    assert set(schema.external.tables) == {"auth.users"}
    users = schema.external.tables["auth.users"]
    assert users.key_columns() == ["id"] and "encrypted_password" in users.columns
    assert users.columns["confirmed_at"].generated is not None
    assert "auth.identities" not in schema.tables and "auth.users" not in schema.tables
    assert set(schema.external.functions) == {"auth.uid()"}
    assert [(t.table, t.trigger.name) for t in schema.external.triggers] == [("auth.users", "on_auth_user_created")]
    assert {"schema extensions", "schema auth", "table auth.users", "function auth.uid()"} <= set(schema.external.present)


def test_extensions_schema_created_before_the_extensions(supabase_master, fresh_cluster, tmp_path):
    """The failure of the issue: migrating into a plain replica used to stop at
    `schema "extensions" does not exist`; the plan now creates it first, and says so."""
    with psycopg.connect(fresh_cluster) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'extensions'").fetchone() == (0,)
    res = _cli("migrate", "--master", supabase_master, "--replica", fresh_cluster, "--out-dir", str(tmp_path), "--dry-run")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    first_ext = next(i for i, ln in enumerate(lines) if ln.startswith("CREATE EXTENSION"))
    assert any(ln == "CREATE SCHEMA IF NOT EXISTS extensions;" for ln in lines[:first_ext])


def test_managed_settings_are_documented():
    from replicator.config import ManagedConfig

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("`[managed]`: what the compared schemas use"):]
    for key in ManagedConfig.model_fields:
        assert f"| `{key}` |" in section, key
