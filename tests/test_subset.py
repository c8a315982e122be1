"""Referentially complete subsets (`--subset "table: condition"`, `--with-referencing`, `[subset]`).

Judged with independent SQL, not with replicator's verify alone: every replica row is a master row,
every row the start condition chooses (and, with referencing, every row that references them) is on
the replica, every other replica row is there because a replica row references it, and every
foreign key holds."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from replicator.cli import main
from replicator.examples import load_example

# (child table, child columns, parent table, parent columns): the sample master's foreign keys
SAMPLE_FKS = [
    ("projects", "client_id", "clients", "id"),
    ("leads", "current_project_id", "projects", "id"),
    ("conversations", "lead_id", "leads", "id"),
    ("agent_interaction_logs", "lead_id", "leads", "id"),
    ("agent_interaction_logs", "conversation_id", "conversations", "id"),
    ("conversation_audit_log", "conversation_id", "conversations", "id"),
    ("lead_status_history", "lead_id", "leads", "id"),
]
REACHED = ["clients", "projects", "leads", "conversations", "agent_interaction_logs", "conversation_audit_log",
           "lead_status_history"]


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _rows(sql_on, url, table) -> set[str]:
    # jsonb: rows compared by column name (the migrated replica orders its columns otherwise)
    return {r[0] for r in sql_on(url, f"SELECT to_jsonb(t)::text FROM {table} t")}


def _ids(sql_on, url, query) -> set[str]:
    return {r[0] for r in sql_on(url, query)}


def orphans(sql_on, url, fks) -> dict[str, int]:
    """Rows whose foreign key value matches no parent row (independent anti-joins)."""
    out = {}
    for child, ccol, parent, pcol in fks:
        n = sql_on(url, f"SELECT count(*) FROM {child} c WHERE c.{ccol} IS NOT NULL AND NOT EXISTS "
                        f"(SELECT 1 FROM {parent} p WHERE p.{pcol} = c.{ccol})")[0][0]
        out[f"{child}.{ccol}"] = n
    return out


def referenced_only_by_subset(sql_on, url, table, fks, chosen: set[str]) -> set[str]:
    """Ids of `table` rows on the replica that are neither chosen nor referenced by a replica row."""
    ids = _ids(sql_on, url, f"SELECT id::text FROM {table}") - chosen
    for child, ccol, parent, pcol in fks:
        if parent == table:
            ids -= _ids(sql_on, url, f"SELECT {ccol}::text FROM {child} WHERE {ccol} IS NOT NULL")
    return ids


@pytest.fixture
def samples(master_url, replica_url, tmp_path):
    load_example(master_url, "master")
    load_example(replica_url, "replica")
    cfg = tmp_path / "replicator.toml"
    cfg.write_text('[copy]\npolicy = "mirror"\n[tables.leads.renames]\nproject_id = "current_project_id"\n')
    common = ["--master", master_url, "--replica", replica_url, "--config", cfg, "--out-dir", tmp_path]
    res = _run("migrate", *common)
    assert res.exit_code == 0, res.output
    return master_url, replica_url, common


def test_one_clients_subset_with_referencing_rows(samples, sql_on):
    m, r, common = samples
    client = sql_on(m, "SELECT id::text FROM clients ORDER BY name LIMIT 1")[0][0]
    start = f"clients: id = '{client}'"
    res = _run("copy", *common, "--subset", start, "--with-referencing", "--json")
    assert res.exit_code == 0, res.output
    copied = {t["table"] for t in json.loads(res.stdout)["tables"]}
    assert copied == {f"public.{t}" for t in REACHED}  # whatsapp_messages has no foreign key: not reached

    # 1. every replica row is a master row, as it is on the master
    for t in REACHED:
        extra = _rows(sql_on, r, t) - _rows(sql_on, m, t)
        assert not extra, (t, list(extra)[:2])
    # 2. the client's own rows are all there, down the foreign keys
    down = {
        "clients": f"SELECT id::text FROM clients WHERE id = '{client}'",
        "projects": f"SELECT id::text FROM projects WHERE client_id = '{client}'",
        "leads": f"SELECT l.id::text FROM leads l JOIN projects p ON p.id = l.current_project_id WHERE p.client_id = '{client}'",
    }
    down["conversations"] = f"SELECT id::text FROM conversations WHERE lead_id::text IN ({down['leads']})"
    down["lead_status_history"] = f"SELECT id::text FROM lead_status_history WHERE lead_id::text IN ({down['leads']})"
    down["conversation_audit_log"] = (f"SELECT id::text FROM conversation_audit_log "
                                      f"WHERE conversation_id::text IN ({down['conversations']})")
    down["agent_interaction_logs"] = (f"SELECT id::text FROM agent_interaction_logs WHERE lead_id::text IN ({down['leads']}) "
                                      f"OR conversation_id::text IN ({down['conversations']})")
    chosen = {t: _ids(sql_on, m, q) for t, q in down.items()}
    assert chosen["projects"] and chosen["leads"] and chosen["conversations"]
    for t, ids in chosen.items():
        have = _ids(sql_on, r, f"SELECT id::text FROM {t}")
        assert ids <= have, (t, len(ids - have))
    # 3. nothing else, except rows that replica rows reference
    for t in ("clients", "projects", "leads", "conversations"):
        assert not referenced_only_by_subset(sql_on, r, t, SAMPLE_FKS, chosen[t]), t
    for t in ("agent_interaction_logs", "conversation_audit_log", "lead_status_history"):
        assert _ids(sql_on, r, f"SELECT id::text FROM {t}") == chosen[t], t
    # the other client is not there, nor the replica's own local rows (mirror)
    assert sql_on(r, "SELECT count(*) FROM clients")[0][0] == 1
    # 4. every foreign key holds (judged by anti-joins, and by the replica's own constraints)
    assert set(orphans(sql_on, r, SAMPLE_FKS).values()) == {0}
    sql_on(r, "SET session_replication_role = origin; ALTER TABLE conversations VALIDATE CONSTRAINT conversations_lead_id_fkey")
    # unreached tables are left alone
    assert sql_on(r, "SELECT count(*) FROM whatsapp_messages")[0][0] == 0

    # verify checks each table as the subset (master side filtered, replica side whole): green
    res = _run("verify", *common, "--deep", "--subset", start, "--with-referencing", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert {c["table"] for c in report["checks"] if c["name"] == "content"} == {f"public.{t}" for t in REACHED}
    assert all(c["evidence"].get("master_filter", "").startswith("subset") for c in report["checks"]
               if c["name"] == "row_counts")
    # without the subset, verify sees that the replica holds only part of the master
    assert _run("verify", *common).exit_code == 1
    # a second copy of the same subset finds nothing to do
    res = _run("copy", *common, "--subset", start, "--with-referencing", "--json")
    tables = json.loads(res.stdout)["tables"]
    assert sum(t["inserted"] + t["updated"] + t["deleted"] for t in tables) == 0, tables


def test_subset_without_referencing_copies_the_rows_and_what_they_reference(samples, sql_on):
    m, r, common = samples
    lead = sql_on(m, "SELECT id::text FROM leads ORDER BY phone_number LIMIT 1")[0][0]
    res = _run("copy", *common, "--subset", f"conversations: lead_id = '{lead}'", "--json")
    assert res.exit_code == 0, res.output
    copied = {t["table"] for t in json.loads(res.stdout)["tables"]}
    assert copied == {"public.conversations", "public.leads", "public.projects", "public.clients"}
    assert _ids(sql_on, r, "SELECT lead_id::text FROM conversations") == {lead}
    assert _ids(sql_on, r, "SELECT id::text FROM leads") == {lead}
    assert sql_on(r, "SELECT count(*) FROM projects")[0][0] == 1 and sql_on(r, "SELECT count(*) FROM clients")[0][0] == 1
    assert set(orphans(sql_on, r, SAMPLE_FKS).values()) == {0}
    # referencing tables were not reached: left as they were
    assert sql_on(r, "SELECT count(*) FROM lead_status_history")[0][0] == 0


def test_subset_from_the_config_and_bad_input(samples, sql_on, tmp_path):
    m, r, common = samples
    cfg = tmp_path / "replicator.toml"
    cfg.write_text(cfg.read_text() + '[subset]\nstart = ["projects: name = \'Riverside Quarter\'"]\nreferencing = true\n')
    res = _run("copy", *common, "--json")
    assert res.exit_code == 0, res.output
    assert _ids(sql_on, r, "SELECT name FROM projects") == {"Riverside Quarter"}
    assert set(orphans(sql_on, r, SAMPLE_FKS).values()) == {0}
    assert _run("verify", *common).exit_code == 0
    for bad, msg in [("clients id = 2", "table: condition"), ("nosuch: id = 1", "no such table"),
                     ("clients: id = (", "not a SQL condition"), ("clients: 1 = 1; DROP TABLE x", "SQL condition")]:
        res = _run("copy", *common, "--subset", bad)
        assert res.exit_code == 2 and msg in res.output, (bad, res.output)
        assert "Traceback" not in res.output
    res = _run("copy", *common, "--subset", "clients: true", "--exclude", "clients")
    assert res.exit_code == 2 and "not selected" in res.output


CYCLES = """
CREATE TABLE dept (id int PRIMARY KEY, head int, name text);
CREATE TABLE emp (id int PRIMARY KEY, dept int NOT NULL REFERENCES dept, manager int REFERENCES emp, name text);
ALTER TABLE dept ADD FOREIGN KEY (head) REFERENCES emp;
CREATE TABLE skill (emp int NOT NULL, dept int NOT NULL, skill text NOT NULL,
                    PRIMARY KEY (emp, skill), FOREIGN KEY (dept) REFERENCES dept);
CREATE TABLE note (emp int REFERENCES emp, body text);  -- no key at all
CREATE TABLE pair (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE pair_ref (id int PRIMARY KEY, a int, b int, FOREIGN KEY (a, b) REFERENCES pair);
"""
CYCLE_FKS = [("emp", "dept", "dept", "id"), ("emp", "manager", "emp", "id"), ("dept", "head", "emp", "id"),
             ("skill", "dept", "dept", "id"), ("note", "emp", "emp", "id")]


def test_cycles_self_references_composite_and_keyless_tables(master_url, replica_url, sql_on, tmp_path):
    for url in (master_url, replica_url):
        sql_on(url, CYCLES)
    sql_on(master_url, """
        INSERT INTO dept VALUES (1, NULL, 'one'), (2, NULL, 'two'), (3, NULL, 'three');
        INSERT INTO emp VALUES (10, 1, NULL, 'boss1'), (11, 1, 10, 'a'), (12, 1, 11, 'b'),
                               (20, 2, NULL, 'boss2'), (21, 2, 20, 'c'), (22, 2, 12, 'crosses to dept 1'),
                               (30, 3, NULL, 'boss3');
        UPDATE dept SET head = 10 WHERE id = 1; UPDATE dept SET head = 20 WHERE id = 2; UPDATE dept SET head = 30 WHERE id = 3;
        INSERT INTO skill VALUES (12, 1, 'sql'), (21, 2, 'go'), (30, 3, 'x');
        INSERT INTO note VALUES (22, 'n22'), (30, 'n30'), (NULL, 'orphan note');
        INSERT INTO pair VALUES (1, 1), (1, 2), (2, 1);
        INSERT INTO pair_ref VALUES (1, 1, 2), (2, 2, 1), (3, NULL, NULL);
    """)
    cfg = tmp_path / "replicator.toml"
    cfg.write_text('[copy]\npolicy = "mirror"\n')
    common = ["--master", master_url, "--replica", replica_url, "--config", cfg, "--out-dir", tmp_path]
    # emp 22: its manager chain crosses into dept 1 (12 -> 11 -> 10), whose head is emp 10: a cycle
    res = _run("copy", *common, "--subset", "emp: id = 22", "--json")
    assert res.exit_code == 0, res.output
    assert _ids(sql_on, replica_url, "SELECT id::text FROM emp") == {"22", "12", "11", "10", "20"}
    assert _ids(sql_on, replica_url, "SELECT id::text FROM dept") == {"1", "2"}
    assert set(orphans(sql_on, replica_url, CYCLE_FKS).values()) == {0}
    # with referencing rows: dept 2's people, their skills and notes (a keyless table), and all they need
    res = _run("copy", *common, "--subset", "dept: id = 2", "--with-referencing", "--json")
    assert res.exit_code == 0, res.output
    assert _ids(sql_on, replica_url, "SELECT id::text FROM emp") >= {"20", "21", "22", "12", "11", "10"}
    # skills of dept 2 only: dept 1 came in because dept 2's rows reference it, so its own
    # referencing rows (skill 'sql') do not follow
    assert _ids(sql_on, replica_url, "SELECT skill FROM skill") == {"go"}
    assert _ids(sql_on, replica_url, "SELECT body FROM note") >= {"n22"}
    assert "orphan note" not in _ids(sql_on, replica_url, "SELECT body FROM note")
    assert set(orphans(sql_on, replica_url, CYCLE_FKS).values()) == {0}
    for t in ("dept", "emp", "skill", "note"):
        assert not _rows(sql_on, replica_url, t) - _rows(sql_on, master_url, t), t
    assert _run("verify", *common, "--subset", "dept: id = 2", "--with-referencing", "--deep").exit_code == 0
    # composite foreign key
    res = _run("copy", *common, "--subset", "pair_ref: id = 1")
    assert res.exit_code == 0, res.output
    assert _ids(sql_on, replica_url, "SELECT a || ',' || b FROM pair") == {"1,2"}


def test_a_subset_too_large_is_refused(samples, sql_on, monkeypatch):
    import replicator.subset as subset

    monkeypatch.setattr(subset, "MAX_KEYS_PER_TABLE", 100)
    m, r, common = samples
    res = _run("copy", *common, "--subset", "clients: true", "--with-referencing")
    assert res.exit_code == 2 and "subset too large" in res.output, res.output
