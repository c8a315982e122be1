"""The sample databases in replicator/examples/ load on a real server and have the stated shape."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tomllib

import psycopg
import pytest

from replicator.examples import EXAMPLES_DIR, example_path, example_sql, load_example

MASTER_TABLE_COUNTS = {
    "clients": 2,
    "projects": 2,
    "leads": 11,
    "conversations": 499,
    "whatsapp_messages": 1296,
    "agent_interaction_logs": 191,
    "conversation_audit_log": 14,
    "lead_status_history": 138,
}
MASTER_VIEW_COUNTS = {
    "dashboard_bant_distribution": 3,
    "dashboard_business_kpis": 1,
    "dashboard_lead_funnel": 3,
    "dashboard_system_metrics": 1,
}
REPLICA_TABLE_COUNTS = {"clients": 6, "projects": 7, "leads": 26}
IDENTITY_TABLES = ["agent_interaction_logs", "conversation_audit_log", "lead_status_history"]

MASTER_LEADS_COLUMNS = [
    "id", "name", "phone_number", "email", "current_project_id", "created_at", "state",
    "bant_status", "state_status_metadata", "lead_metadata", "last_message_from",
    "first_interaction", "last_interaction", "interaction_count", "next_follow_up",
    "follow_up_count", "requires_human_review", "last_agent_processed_at", "updated_at",
    "source", "notes",
]
REPLICA_LEADS_COLUMNS = ["id", "name", "phone_number", "email", "project_id", "created_at"]

# (column, formatted type, default)
WHATSAPP_COLUMNS = [
    ("id", "uuid", "gen_random_uuid()"),
    ("sender_number", "character varying(20)", None),
    ("content", "text", None),
    ("wamid", "character varying(255)", None),
    ("payload", "jsonb", None),
    ("awaits_response", "boolean", "false"),
    ("receiver_id", "character varying(255)", None),
    ("receiver_number", "character varying(20)", None),
    ("wa_timestamp", "timestamp with time zone", None),
    ("test_mode", "boolean", "false"),
    ("test_session_id", "character varying(255)", None),
    ("test_scenario_name", "character varying(255)", None),
    ("created_at", "timestamp with time zone", "now()"),
]
CONVERSATIONS_COLUMNS = [
    ("id", "uuid", "gen_random_uuid()"),
    ("lead_id", "uuid", None),
    ("message_content", "text", None),
    ("timestamp", "timestamp with time zone", None),
    ("metadata", "jsonb", None),
    ("message_id", "character varying(255)", None),
    ("message_type", "character varying(50)", None),
    ("status", "character varying(50)", None),
    ("created_at", "timestamp with time zone", "now()"),
    ("updated_at", "timestamp with time zone", "now()"),
    ("validation_context", "jsonb", None),
    ("conversation_context", "jsonb", None),
]


def rows(url: str, query: str, params=None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def count(url: str, relation: str) -> int:
    return rows(url, f"SELECT count(*) FROM public.{relation}")[0][0]


def columns(url: str, table: str) -> list[tuple]:
    return rows(
        url,
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid)
          FROM pg_attribute a
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum
        """,
        (f"public.{table}",),
    )


def relations(url: str) -> dict[str, str]:
    return dict(
        rows(
            url,
            """
            SELECT c.relname, c.relkind FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p')
            """,
        )
    )


def table_digest(url: str, table: str) -> str:
    """md5 of a table's rows in key order (text form of each row)."""
    return rows(url, f"SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.id)) FROM public.{table} t")[0][0]


@pytest.fixture
def master(master_url: str) -> str:
    load_example(master_url, "master")
    return master_url


@pytest.fixture
def replica(replica_url: str) -> str:
    load_example(replica_url, "replica")
    return replica_url


# --------------------------------------------------------------------------- row counts and shape


def test_master_row_counts(master):
    assert relations(master) == {
        **{t: "r" for t in MASTER_TABLE_COUNTS},
        **{v: "v" for v in MASTER_VIEW_COUNTS},
    }
    for relation, expected in {**MASTER_TABLE_COUNTS, **MASTER_VIEW_COUNTS}.items():
        assert count(master, relation) == expected, relation


def test_replica_row_counts_and_missing_tables(replica):
    assert relations(replica) == {t: "r" for t in REPLICA_TABLE_COUNTS}
    for table, expected in REPLICA_TABLE_COUNTS.items():
        assert count(replica, table) == expected, table


def test_leads_has_21_columns_on_master_and_6_on_replica(master, replica):
    assert [c[0] for c in columns(master, "leads")] == MASTER_LEADS_COLUMNS
    assert [c[0] for c in columns(replica, "leads")] == REPLICA_LEADS_COLUMNS
    # The shared columns have the same types, apart from the renamed project column.
    master_types = {name: typ for name, typ, _ in columns(master, "leads")}
    for name, typ, _ in columns(replica, "leads"):
        assert master_types["current_project_id" if name == "project_id" else name] == typ


def test_clients_and_projects_have_the_same_columns(master, replica):
    for table in ("clients", "projects"):
        assert columns(master, table) == columns(replica, table)


def test_whatsapp_messages_columns(master):
    assert columns(master, "whatsapp_messages") == WHATSAPP_COLUMNS
    pk = rows(
        master,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'public.whatsapp_messages'::regclass AND contype = 'p'",
    )
    assert pk == [("PRIMARY KEY (id)",)]


def test_conversations_columns(master):
    assert columns(master, "conversations") == CONVERSATIONS_COLUMNS


def test_master_has_indexes_checks_and_comments(master):
    indexes = dict(rows(master, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"))
    assert "whatsapp_messages_sender_number_idx" in indexes
    assert "conversations_lead_id_idx" in indexes
    assert any(" WHERE " in d for d in indexes.values()), "expected a partial index"
    checks = rows(
        master,
        "SELECT conname FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace",
    )
    assert len(checks) >= 2
    comments = rows(
        master,
        "SELECT count(*) FROM pg_description d JOIN pg_class c ON c.oid = d.objoid"
        " WHERE c.relnamespace = 'public'::regnamespace",
    )[0][0]
    assert comments >= 3


def test_views_do_not_depend_on_the_clock(master):
    for view in MASTER_VIEW_COUNTS:
        definition = rows(master, "SELECT pg_get_viewdef(%s::regclass)", (f"public.{view}",))[0][0]
        assert "now()" not in definition and "CURRENT_" not in definition.upper(), view


# --------------------------------------------------------------------------- integrity


FOREIGN_KEYS_MASTER = {
    ("projects", "client_id", "clients"),
    ("leads", "current_project_id", "projects"),
    ("conversations", "lead_id", "leads"),
    ("agent_interaction_logs", "lead_id", "leads"),
    ("agent_interaction_logs", "conversation_id", "conversations"),
    ("conversation_audit_log", "conversation_id", "conversations"),
    ("lead_status_history", "lead_id", "leads"),
}
FOREIGN_KEYS_REPLICA = {("projects", "client_id", "clients"), ("leads", "project_id", "projects")}


def foreign_keys(url: str) -> set[tuple[str, str, str]]:
    return set(
        rows(
            url,
            """
            SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text
              FROM pg_constraint c
              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
             WHERE c.contype = 'f' AND c.convalidated
            """,
        )
    )


@pytest.mark.parametrize("side", ["master", "replica"])
def test_foreign_keys_hold(side, request):
    url = request.getfixturevalue(side)
    fks = foreign_keys(url)
    assert fks == (FOREIGN_KEYS_MASTER if side == "master" else FOREIGN_KEYS_REPLICA)
    for child, column, parent in fks:
        orphans = rows(
            url,
            f"SELECT count(*) FROM public.{child} c WHERE c.{column} IS NOT NULL"
            f" AND NOT EXISTS (SELECT 1 FROM public.{parent} p WHERE p.id = c.{column})",
        )[0][0]
        assert orphans == 0, (child, column)


def test_every_conversation_and_lead_is_linked(master):
    assert rows(master, "SELECT count(*) FROM conversations WHERE lead_id IS NULL")[0][0] == 0
    # each lead's interaction_count matches its conversations
    mismatched = rows(
        master,
        "SELECT l.id FROM leads l WHERE l.interaction_count <>"
        " (SELECT count(*) FROM conversations c WHERE c.lead_id = l.id)",
    )
    assert mismatched == []


def test_identity_sequences_are_past_max_id(master):
    for table in IDENTITY_TABLES:
        (max_id,) = rows(master, f"SELECT max(id) FROM public.{table}")[0]
        (seq,) = rows(master, "SELECT pg_get_serial_sequence(%s, 'id')", (f"public.{table}",))[0]
        assert seq is not None, table
        last_value, is_called = rows(master, f"SELECT last_value, is_called FROM {seq}")[0]
        next_value = last_value + 1 if is_called else last_value
        assert next_value > max_id, table
    # agent_interaction_logs has gaps in its ids (deleted rows), the others are dense
    assert rows(master, "SELECT max(id) > count(*) FROM agent_interaction_logs")[0][0]


# --------------------------------------------------------------------------- drift between the sides


def keyed(url: str, table: str, cols: list[str]) -> dict[str, tuple]:
    return {str(r[0]): r[1:] for r in rows(url, f"SELECT id, {', '.join(cols)} FROM public.{table}")}


@pytest.mark.parametrize(
    ("table", "cols", "expected_collisions"),
    [
        ("clients", ["name", "contact_email", "plan", "is_active", "created_at"], 1),
        ("projects", ["client_id", "name", "description", "status", "settings", "created_at"], 1),
        ("leads", ["name", "phone_number", "email", "created_at"], 4),
    ],
)
def test_colliding_keys_hold_different_values(master, replica, table, cols, expected_collisions):
    m = keyed(master, table, cols)
    r = keyed(replica, table, cols)
    shared = m.keys() & r.keys()
    assert len(shared) == expected_collisions
    for key in shared:
        assert m[key] != r[key], key
        assert m[key][cols.index("name")] != r[key][cols.index("name")], key
    assert r.keys() - m.keys(), "replica should have local-only rows"
    assert m.keys() - r.keys(), "master should have rows the replica lacks"


def test_replica_phone_numbers_do_not_clash_with_master(master, replica):
    """After a master-wins copy the master's UNIQUE (phone_number) must still hold on the replica."""
    m = set(rows(master, "SELECT phone_number FROM leads"))
    r = set(rows(replica, "SELECT phone_number FROM leads"))
    assert not (m & r)
    assert count(replica, "leads") == len(r)


def test_colliding_leads_point_at_other_projects(master, replica):
    m = dict(rows(master, "SELECT id, current_project_id FROM leads"))
    r = dict(rows(replica, "SELECT id, project_id FROM leads"))
    for key in m.keys() & r.keys():
        assert m[key] != r[key]


# --------------------------------------------------------------------------- content


UK_MOBILE = re.compile(r"^\+447700900\d{3}$")


def test_whatsapp_content_is_realistic_and_awkward(master):
    numbers = rows(master, "SELECT DISTINCT sender_number FROM whatsapp_messages")
    assert numbers and all(UK_MOBILE.match(n) for (n,) in numbers)
    contents = [c for (c,) in rows(master, "SELECT content FROM whatsapp_messages WHERE content IS NOT NULL")]
    for needle in ["'", '"', "\n", "\t", "\\", "\r", "🏠", "%", "; --", "$$"]:
        assert any(needle in c for c in contents), repr(needle)
    assert rows(master, "SELECT count(*) FROM whatsapp_messages WHERE content IS NULL")[0][0] > 0
    assert rows(master, "SELECT count(*) FROM whatsapp_messages WHERE payload IS NULL")[0][0] > 0
    # ties on the incremental cursor column
    assert rows(master, "SELECT count(*) - count(DISTINCT created_at) FROM whatsapp_messages")[0][0] > 0


def test_whatsapp_payloads_are_nested_and_match_content(master):
    mismatched = rows(
        master,
        """
        SELECT id FROM whatsapp_messages
         WHERE payload ? 'entry' AND content IS NOT NULL
           AND payload #>> '{entry,0,changes,0,value,messages,0,text,body}' IS DISTINCT FROM content
        """,
    )
    assert mismatched == []
    nested = rows(
        master,
        "SELECT count(*) FROM whatsapp_messages"
        " WHERE payload @> '{\"entry\": [{\"changes\": [{\"field\": \"messages\"}]}]}'",
    )[0][0]
    assert nested > 100


# --------------------------------------------------------------------------- loading


def test_load_example_with_an_open_transactional_connection(master_url):
    with psycopg.connect(master_url) as conn:
        load_example(conn, "master")
    assert count(master_url, "whatsapp_messages") == 1296


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql not on PATH")
def test_psql_and_psycopg_load_the_same_content(master_url, replica_url):
    """master.sql loads with `psql -v ON_ERROR_STOP=1 -f` too, with byte-identical rows."""
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", master_url, "-f", str(example_path("master"))],
        check=True,
        capture_output=True,
    )
    load_example(replica_url, "master")  # the same file, through psycopg, on the other server
    for table in MASTER_TABLE_COUNTS:
        assert count(master_url, table) == MASTER_TABLE_COUNTS[table]
        assert table_digest(master_url, table) == table_digest(replica_url, table), table


def test_replica_loads_with_psql(replica_url):
    if shutil.which("psql") is None:
        pytest.skip("psql not on PATH")
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", replica_url, "-f", str(example_path("replica"))],
        check=True,
        capture_output=True,
    )
    for table, expected in REPLICA_TABLE_COUNTS.items():
        assert count(replica_url, table) == expected


# --------------------------------------------------------------------------- files


def _generator():
    spec = importlib.util.spec_from_file_location("examples_generate", EXAMPLES_DIR / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_output_matches_committed_files():
    gen = _generator()
    first = gen.render()
    assert first == gen.render(), "generator is not deterministic"
    for name, text in first.items():
        stale = f"{name} is stale: run replicator/examples/generate.py"
        assert example_sql(name.removesuffix(".sql")) == text, stale


def test_generator_counts_agree_with_tests():
    gen = _generator()
    assert gen.MASTER_COUNTS == MASTER_TABLE_COUNTS
    assert gen.MASTER_VIEW_COUNTS == MASTER_VIEW_COUNTS
    assert gen.REPLICA_COUNTS == REPLICA_TABLE_COUNTS


def test_sql_files_have_no_copy_blocks_or_clock():
    for which in ("master", "replica"):
        text = example_sql(which)
        assert "FROM stdin" not in text
        assert "\r" not in text
        assert "now()" not in text.split("-- Data", 1)[1].split("-- Analytics views", 1)[0]


def test_example_config():
    data = tomllib.loads(example_path("replicator.toml").read_text(encoding="utf-8"))
    assert data["schemas"] == ["public"]
    leads = {"policy": "master-wins", "renames": {"project_id": "current_project_id"}}
    assert data["tables"]["leads"] == leads
    assert data["tables"]["clients"]["policy"] == data["tables"]["projects"]["policy"] == "keep-replica"
    assert data["tables"]["whatsapp_messages"]["cursor"] == "created_at"
    assert data["tables"]["whatsapp_messages"]["mask"] == {"sender_number": "phone"}
    assert "master_url" not in data and "replica_url" not in data


def test_example_config_validates_with_the_loader(monkeypatch):
    config = pytest.importorskip("replicator.config")
    monkeypatch.delenv("REPLICATOR_MASTER_URL", raising=False)
    monkeypatch.delenv("REPLICATOR_REPLICA_URL", raising=False)
    cfg = config.load_config(example_path("replicator.toml"))
    assert cfg.table("leads").renames == {"project_id": "current_project_id"}
    assert cfg.table("public.whatsapp_messages").cursor == "created_at"


def test_example_path_errors_clearly():
    with pytest.raises(FileNotFoundError, match="replicator.examples"):
        example_path("nope.sql")
    with pytest.raises(ValueError):
        example_sql("both")  # type: ignore[arg-type]
