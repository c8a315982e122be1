"""`replicator init`: a commented starter replicator.toml read from a real master (read-only)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from replicator.cli import main
from replicator.config import load_config
from replicator.examples import load_example
from replicator.starter import mask_proposal
from replicator.introspect.models import Column, Index, Table


def _run(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def uncomment_proposals(text: str) -> str:
    """The file with every proposed block (masks, renames) uncommented."""
    out = []
    in_block = False
    for line in text.splitlines():
        if re.match(r"^# \[tables\..*\.(mask|renames)\]$", line):
            in_block = True
            out.append(line[2:])
        elif in_block and re.match(r'^# ("[^"]*"|[\w-]+) = ', line):
            out.append(line[2:])
        else:
            in_block = False
            out.append(line)
    return "\n".join(out) + "\n"


def test_init_on_the_samples(master_url, replica_url, tmp_path, monkeypatch):
    monkeypatch.delenv("REPLICATOR_MASTER_URL", raising=False)
    monkeypatch.delenv("REPLICATOR_REPLICA_URL", raising=False)
    load_example(master_url, "master")
    load_example(replica_url, "replica")
    cfg = tmp_path / "replicator.toml"
    res = _run("init", "--master", master_url, "--replica", replica_url, "--config", cfg)
    assert res.exit_code == 0, res.output
    text = cfg.read_text()
    assert "password" not in text.lower().replace("passwords in", "")  # the URLs are written without secrets
    loaded = load_config(cfg)
    assert loaded.copy_.policy.value == "master-wins"
    assert loaded.tables == {}  # everything else is a proposal, commented out
    for table, rows in [("public.whatsapp_messages", "1,296"), ("public.conversations", "499"), ("public.clients", "2")]:
        assert re.search(rf"#   {re.escape(table)}\s+{rows} rows  key \(id\)", text), table
    assert "-> public.projects" in text  # what leads references
    # personal data, proposed commented
    assert "# [tables.leads.mask]" in text
    assert re.search(r'^# email = "email"', text, re.M)
    assert re.search(r'^# phone_number = "hash" .*unique', text, re.M)  # unique: a hash keeps it unique
    assert re.search(r'^# sender_number = "phone"', text, re.M)
    assert re.search(r'^# contact_email = "email"', text, re.M)
    # the rename analyze would otherwise plan as a drop and an add
    assert re.search(r'^# project_id = "current_project_id" .*both uuid', text, re.M)
    # with every proposal taken, the config is valid, and sync uses it (masks need a key)
    cfg.write_text(uncomment_proposals(text))
    taken = load_config(cfg)
    assert taken.table("leads").renames == {"project_id": "current_project_id"}
    assert taken.table("leads").mask["email"] == "email"
    monkeypatch.setenv("REPLICATOR_MASK_KEY", "test-key")
    res = _run("sync", "--master", master_url, "--replica", replica_url, "--config", cfg, "--out-dir", tmp_path)
    assert res.exit_code == 0, res.output
    from conftest import run_sql

    emails = [e for (e,) in run_sql(replica_url, "SELECT email FROM leads WHERE email IS NOT NULL")]
    master_emails = {e for (e,) in run_sql(master_url, "SELECT email FROM leads WHERE email IS NOT NULL")}
    assert emails and not master_emails & set(emails)  # no real address reached the replica
    # the renamed column kept the replica's values
    assert run_sql(replica_url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'leads' "
                                "AND column_name = 'project_id'")[0][0] == 0


def test_init_refuses_to_overwrite(master_url, tmp_path):
    cfg = tmp_path / "replicator.toml"
    cfg.write_text("# mine\n")
    res = _run("init", "--master", master_url, "--config", cfg)
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"error: {cfg} already exists: not overwriting it (remove it, or "
                                               "write another file with --config FILE)"]
    assert cfg.read_text() == "# mine\n"


def test_init_default_file_and_bad_input(master_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REPLICATOR_MASTER_URL", raising=False)
    from conftest import run_sql

    run_sql(master_url, "CREATE TABLE t (id int PRIMARY KEY)")
    res = _run("init")
    assert res.exit_code == 2 and "no master URL" in res.output
    res = _run("init", "--master", master_url, "--schema", "nowhere")
    assert res.exit_code == 2 and "schema nowhere does not exist on the master" in res.output
    assert not (tmp_path / "replicator.toml").exists()
    res = _run("init", "--master", master_url)
    assert res.exit_code == 0, res.output
    assert "no replica given: no rename suggestions" in res.output
    assert load_config(tmp_path / "replicator.toml").schemas == ["public"]


KEYLESS = """
CREATE SCHEMA auth;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text, encrypted_password text NOT NULL DEFAULT '');
CREATE SCHEMA "Sales Data";
CREATE TABLE "Sales Data"."Odd Table" ("e-mail" text, "Mobile Phone" varchar(20), amount numeric);
CREATE TABLE public.profiles (id uuid PRIMARY KEY REFERENCES auth.users, full_name text NOT NULL,
                              api_token text, last_ip inet, birth_date date NOT NULL);
INSERT INTO "Sales Data"."Odd Table" VALUES ('a@x.example', '+44', 1), ('a@x.example', '+44', 1);
"""


def test_init_keyless_tables_odd_names_personal_data_and_managed_schemas(master_url, replica_url, tmp_path, sql_on):
    sql_on(master_url, KEYLESS)
    cfg = tmp_path / "replicator.toml"
    res = _run("init", "--master", master_url, "--config", cfg, "--schema", "public", "--schema", "Sales Data")
    assert res.exit_code == 0, res.output
    assert "1 without a key set to mirror" in res.output and "managed schemas noted: auth" in res.output
    text = cfg.read_text()
    loaded = load_config(cfg)
    assert loaded.schemas == ["public", "Sales Data"]
    assert loaded.table("Sales Data.Odd Table").policy.value == "mirror"  # a keyless table: what works for it
    assert "# Managed schemas on the master: auth" in text and "Used by the compared tables: auth.users" in text
    assert re.search(r'^# full_name = "hash"', text, re.M)
    assert re.search(r'^# api_token = "null"', text, re.M)
    assert re.search(r'^# last_ip = "null"', text, re.M)
    assert "birth_date" not in text.split("[tables.profiles.mask]")[1]  # NOT NULL and not text: nothing proposed
    taken = load_config_text(tmp_path, uncomment_proposals(text))
    assert taken.table("Sales Data.Odd Table").mask == {"e-mail": "email", "Mobile Phone": "phone"}
    # and the taken proposals copy (a keyless table under mirror, masked)
    sql_on(replica_url, 'CREATE SCHEMA "Sales Data"; CREATE TABLE "Sales Data"."Odd Table" '
                        '("e-mail" text, "Mobile Phone" varchar(20), amount numeric)')
    res = _run("copy", "--master", master_url, "--replica", replica_url, "--config", tmp_path / "taken.toml",
               "--table", '"Sales Data"."Odd Table"', "--out-dir", tmp_path, env={"REPLICATOR_MASK_KEY": "k"})
    assert res.exit_code == 0, res.output
    assert sql_on(replica_url, 'SELECT count(*), count(DISTINCT "e-mail") FROM "Sales Data"."Odd Table" '
                               "WHERE \"e-mail\" LIKE 'user_%@example.invalid'") == [(2, 1)]


def load_config_text(tmp_path, text):
    p = tmp_path / "taken.toml"
    p.write_text(text)
    return load_config(p)


@pytest.mark.parametrize("table,column,type_,nullable,unique,expected", [
    ("users", "email", "text", True, False, '"email"'),
    ("users", "email", "citext", True, True, '"hash"'),
    ("users", "phone", "character varying(20)", True, False, '"phone"'),
    ("users", "name", "text", True, False, '"hash"'),
    ("clients", "name", "text", True, False, None),  # a company's name: not proposed
    ("users", "password_hash", "text", False, False, '{ value = "" }'),
    ("users", "refresh_token", "text", True, False, '"null"'),
    ("users", "postcode", "text", True, False, '"hash"'),
    ("users", "ip_address", "inet", True, False, '"null"'),
    ("users", "date_of_birth", "date", True, False, '"null"'),
    ("orders", "amount", "numeric", True, False, None),
    ("users", "created_at", "timestamp with time zone", True, False, None),
])
def test_mask_proposals(table, column, type_, nullable, unique, expected):
    t = Table(key=f"public.{table}", schema_name="public", name=table,
              columns={column: Column(name=column, type=type_, nullable=nullable)},
              indexes={"u": Index(name="u", definition="", unique=True, columns=[column])} if unique else {})
    p = mask_proposal(t, t.columns[column])
    assert (p.rule if p else None) == expected
