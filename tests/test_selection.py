"""Table selection: `include` / `exclude` globs in the config, `--table` / `--exclude` on every command
that works on tables (analyze, migrate, copy, verify, sync), and `[tables.X] where` wherever tables
are selected. Judged against real PostgreSQL; "equal" by an independent checksum."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from copyhelp import checksum

from replicator.cli import main
from replicator.config import Config
from replicator.errors import ConfigError
from replicator.examples import load_example
from replicator.selection import Pattern, Selection

# ------------------------------------------------------------------------------------------ patterns


@pytest.mark.parametrize("pattern,schema,name,hit", [
    ("leads", "public", "leads", True),
    ("leads", "sales", "leads", True),  # no schema: any compared schema
    ("lead*", "public", "lead_status_history", True),
    ("lead?", "public", "leads", True),
    ("lead?", "public", "lead", False),
    ("public.*", "public", "anything", True),
    ("public.*", "analytics", "anything", False),
    ("analytics.*", "analytics", "daily", True),
    ("*_log", "public", "conversation_audit_log", True),
    ("Leads", "public", "leads", False),  # case-sensitive, like quoted identifiers
    ('"Odd Table"', "public", "Odd Table", True),
    ('"weird*name"', "public", "weird*name", True),  # quoted: literal, glob characters included
    ('"weird*name"', "public", "weirdXname", False),
    ('app."v1.2 data"', "app", "v1.2 data", True),
    ("[cp]*s", "public", "clients", True),
    ("[cp]*s", "public", "leads", False),
])
def test_patterns(pattern, schema, name, hit):
    assert Pattern.parse(pattern).matches(schema, name) is hit


@pytest.mark.parametrize("bad", ["", "a.b.c", 'x."unclosed', ".leads"])
def test_bad_patterns(bad):
    with pytest.raises(ConfigError):
        Pattern.parse(bad)


def test_options_replace_include_and_excludes_add_up():
    cfg = Config(include=["public.*"], exclude=["*_log"])
    sel = Selection.from_config(cfg)
    assert sel.selects_name("public", "leads") and not sel.selects_name("public", "conversation_audit_log")
    assert not sel.selects_name("analytics", "daily")
    sel = Selection.from_config(cfg, tables=["analytics.*"], exclude=["analytics.tmp*"])
    assert sel.source == "--table"
    assert sel.selects_name("analytics", "daily") and not sel.selects_name("public", "leads")
    assert not sel.selects_name("analytics", "tmp_1") and not sel.selects_name("analytics", "x_log")
    assert Selection.from_config(Config()).everything


def test_config_rejects_bad_patterns(tmp_path):
    from replicator.config import load_config

    p = tmp_path / "replicator.toml"
    p.write_text('include = ["a.b.c"]\n')
    with pytest.raises(ConfigError, match="include"):
        load_config(p)


# ----------------------------------------------------------------------------------- on the samples


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def samples(master_url, replica_url, tmp_path):
    load_example(master_url, "master")
    load_example(replica_url, "replica")
    cfg = tmp_path / "replicator.toml"
    cfg.write_text('[copy]\npolicy = "master-wins"\n[tables.leads.renames]\nproject_id = "current_project_id"\n')
    return master_url, replica_url, cfg


def _common(samples, tmp_path):
    m, r, cfg = samples
    return ["--master", m, "--replica", r, "--config", cfg, "--out-dir", tmp_path]


def test_analyze_compares_the_selected_tables_and_what_they_need(samples, tmp_path):
    res = _run("analyze", *_common(samples, tmp_path), "--table", "conversation*", "--json")
    assert res.exit_code == 0, res.output
    plan = (tmp_path / "schemas" / "master-schema-replication.sql").read_text()
    # the selected tables, and leads, which their foreign keys reference (with its new columns)
    assert "CREATE TABLE public.conversations" in plan and "CREATE TABLE public.conversation_audit_log" in plan
    assert "ADD COLUMN state" in plan
    # nothing else: no unrelated table, no view over unselected tables
    for other in ("whatsapp_messages", "agent_interaction_logs", "lead_status_history", "dashboard_"):
        assert other not in plan, other
    data = json.loads(res.stdout)
    assert any("selection (--table conversation*)" in n for n in data["notes"])
    # the snapshot is the whole master, whatever was selected
    snap = json.loads((tmp_path / "schemas" / "master-schema.json").read_text())
    assert "public.whatsapp_messages" in snap["tables"]


def test_exclude_leaves_tables_out_of_analyze_and_migrate(samples, tmp_path, sql_on):
    m, r, _ = samples
    res = _run("migrate", *_common(samples, tmp_path), "--exclude", "whatsapp_*", "--exclude", "*_log*")
    assert res.exit_code == 0, res.output
    tables = {t for (t,) in sql_on(r, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"conversations", "lead_status_history", "leads"} <= tables
    assert not tables & {"whatsapp_messages", "conversation_audit_log", "agent_interaction_logs"}
    # a view reading an excluded table is not created; one reading only selected tables is
    views = {v for (v,) in sql_on(r, "SELECT viewname FROM pg_views WHERE schemaname = 'public'")}
    assert "dashboard_lead_funnel" in views
    res = _run("analyze", *_common(samples, tmp_path), "--exclude", "whatsapp_*", "--exclude", "*_log*", "--json")
    data = json.loads(res.stdout)
    assert data["plan"]["safe"] == 0, data  # what remains are the two destructive drops of old leads objects


def test_a_pattern_matching_nothing_is_an_error(samples, tmp_path):
    for cmd in (["analyze"], ["migrate"], ["copy"], ["verify"]):
        res = _run(*cmd, *_common(samples, tmp_path), "--table", "nosuch*")
        assert res.exit_code == 2, (cmd, res.output)
        assert "--table nosuch*: matches no table on the master" in res.output, res.output


def test_copy_and_verify_take_globs_and_excludes(samples, tmp_path, sql_on):
    m, r, _ = samples
    assert _run("migrate", *_common(samples, tmp_path)).exit_code == 0
    res = _run("copy", *_common(samples, tmp_path), "--table", "conversation*", "--table", "lead*",
               "--table", "projects", "--table", "clients", "--exclude", "*_audit_log", "--json")
    assert res.exit_code == 0, res.output
    copied = {t["table"] for t in json.loads(res.stdout)["tables"]}
    assert copied == {"public.conversations", "public.leads", "public.lead_status_history", "public.projects",
                      "public.clients"}
    assert checksum(sql_on, m, "conversations") == checksum(sql_on, r, "conversations")
    assert sql_on(r, "SELECT count(*) FROM conversation_audit_log")[0][0] == 0
    # verify: the same selection passes; the excluded table would fail
    res = _run("verify", *_common(samples, tmp_path), "--table", "conversation*", "--exclude", "*_audit_log")
    assert res.exit_code == 0, res.output
    res = _run("verify", *_common(samples, tmp_path), "--table", "conversation*")
    assert res.exit_code == 1, res.output


def test_config_include_and_exclude_apply_to_copy_all(samples, tmp_path, sql_on):
    m, r, cfg = samples
    cfg.write_text(cfg.read_text().replace("[copy]", 'exclude = ["whatsapp_messages", "agent_*"]\n[copy]'))
    assert _run("migrate", *_common(samples, tmp_path)).exit_code == 0
    res = _run("copy", *_common(samples, tmp_path), "--all", "--json")
    assert res.exit_code == 0, res.output
    copied = {t["table"] for t in json.loads(res.stdout)["tables"]}
    assert "public.whatsapp_messages" not in copied and "public.agent_interaction_logs" not in copied
    assert "public.conversations" in copied
    assert sql_on(r, "SELECT to_regclass('whatsapp_messages') IS NULL")[0][0]  # not migrated either
    # naming an excluded table explicitly is refused, not silently skipped
    res = _run("copy", *_common(samples, tmp_path), "--table", "whatsapp_messages")
    assert res.exit_code == 2 and "excluded" in res.output, res.output


# ------------------------------------------------------------------------------- where, everywhere

MSGS = "CREATE TABLE msgs (id int PRIMARY KEY, client_id int NOT NULL, body text)"
WHERE_TOML = '[tables.msgs]\nwhere = "client_id = 2"\npolicy = "mirror"\n'


@pytest.fixture
def filtered(master_url, replica_url, sql_on, tmp_path):
    for url in (master_url, replica_url):
        sql_on(url, MSGS)
    sql_on(master_url, "INSERT INTO msgs SELECT i, i % 3, 'm' || i FROM generate_series(1, 300) i")
    cfg = tmp_path / "replicator.toml"
    cfg.write_text(WHERE_TOML)
    return ["--master", master_url, "--replica", replica_url, "--config", cfg, "--out-dir", tmp_path]


def test_where_on_copy_verify_and_analyze(filtered, master_url, replica_url, sql_on, tmp_path):
    subset = "(SELECT * FROM msgs WHERE client_id = 2)"
    assert _run("copy", *filtered, "--table", "msgs").exit_code == 0
    assert checksum(sql_on, master_url, subset) == checksum(sql_on, replica_url, "msgs")
    # verify reads the master through the filter, the replica whole: counts and content pass
    for extra in ([], ["--deep"]):
        res = _run("verify", *filtered, *extra, "--json")
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout)
        counts = [c for c in report["checks"] if c["name"] == "row_counts" and c["table"] == "public.msgs"]
        assert counts and counts[0]["evidence"]["master"] == 100 and counts[0]["evidence"]["master_filter"] == "client_id = 2"
    # rows outside the filter change on the master: still in line
    sql_on(master_url, "UPDATE msgs SET body = 'changed' WHERE client_id = 1")
    assert _run("verify", *filtered, "--deep").exit_code == 0
    # inside it: the deep check names the row
    sql_on(master_url, "UPDATE msgs SET body = 'changed' WHERE id = 2")
    res = _run("verify", *filtered, "--deep", "--json")
    assert res.exit_code == 1
    content = [c for c in json.loads(res.stdout)["checks"] if c["name"] == "content"][0]
    assert content["evidence"]["differences"][0]["key"] == {"id": "2"}
    # a replica row outside the filter is an extra row (the table is mirrored)
    assert _run("copy", *filtered, "--table", "msgs").exit_code == 0
    sql_on(replica_url, "INSERT INTO msgs VALUES (1000, 1, 'local')")
    res = _run("verify", *filtered, "--json")
    assert res.exit_code == 1 and "1 extra on the replica" in res.stdout
    # analyze counts the rows copy will read
    res = _run("analyze", *filtered, "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads((tmp_path / "reports" / "data-migration-plan.json").read_text())["tables"]
    msgs = next(t for t in plan if t["table"] == "public.msgs")
    assert msgs["master_rows"] == 100 and any("client_id = 2" in r for r in msgs["risks"])
    assert msgs["overlap"]["both"] == 100 and msgs["overlap"]["master_only"] == 0
