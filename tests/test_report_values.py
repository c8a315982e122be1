"""verify's reports are safe to publish: keys and column names, not the values of differing rows,
unless --show-values; columns masked by the copy config never, not even then."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli, run_sql

SCHEMA = """
CREATE TABLE parents (id int PRIMARY KEY, name text);
CREATE TABLE customers (id int PRIMARY KEY, note text, parent_id int REFERENCES parents (id));
INSERT INTO parents SELECT g, 'p' || g FROM generate_series(1, 5) g;
INSERT INTO customers SELECT g, 'note-' || g, 1 + g % 5 FROM generate_series(1, 300) g;
"""
MASTER_VALUE = "note-77"
REPLICA_VALUE = "replica-local-secret-value"
ORPHAN_PARENT = 424242


def run_verify(master_url, replica_url, out: Path, *extra: str):
    config = out / "replicator.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[tables.customers.mask]\nparent_id = "null"\n')
    res = run_cli("verify", "--deep", "--examples", "3", "--config", str(config), "--master", master_url,
                  "--replica", replica_url, "--out-dir", str(out), *extra)
    assert res.code == 1, res.stderr  # the replica differs: checks fail
    md = next((out / "reports").glob("verify-*.md")).read_text()
    js = next((out / "reports").glob("verify-*.json")).read_text()
    return res, md, js


def broken_replica(master_url, replica_url):
    for url in (master_url, replica_url):
        run_sql(url, SCHEMA)
    run_sql(replica_url, f"UPDATE customers SET note = '{REPLICA_VALUE}' WHERE id = 77; "
                         "ALTER TABLE customers DROP CONSTRAINT customers_parent_id_fkey; "
                         f"UPDATE customers SET parent_id = {ORPHAN_PARENT} WHERE id = 5")


def test_reports_name_keys_and_columns_but_not_values(master_url, replica_url, tmp_path):
    broken_replica(master_url, replica_url)
    res, md, js = run_verify(master_url, replica_url, tmp_path)
    report = json.loads(js)
    assert report["values_shown"] is False
    content = next(c for c in report["checks"] if c["name"] == "content" and c["table"] == "public.customers")
    diffs = content["evidence"]["differences"]
    assert any(d["key"] == {"id": "77"} and d["columns"] == ["note"] and d["values"] is None for d in diffs)
    for text in (md, js, res.stdout, res.stderr):
        assert MASTER_VALUE not in text and REPLICA_VALUE not in text
    assert "note" in md and "77" in md and "--show-values" in md
    # the masked FK column: its orphan examples never show the value
    fk = next(c for c in report["checks"] if c["name"] == "foreign_keys" and c["table"] == "public.customers")
    assert fk["evidence"]["examples"] == [{"id": "5", "parent_id": "(masked)"}]
    assert str(ORPHAN_PARENT) not in md.split("## Statements sent to the master")[0]


def test_show_values_puts_them_in_but_never_masked_columns(master_url, replica_url, tmp_path):
    broken_replica(master_url, replica_url)
    res, md, js = run_verify(master_url, replica_url, tmp_path, "--show-values")
    report = json.loads(js)
    assert report["values_shown"] is True
    assert MASTER_VALUE in md and REPLICA_VALUE in md and REPLICA_VALUE in js
    fk = next(c for c in report["checks"] if c["name"] == "foreign_keys" and c["table"] == "public.customers")
    assert fk["evidence"]["examples"] == [{"id": "5", "parent_id": "(masked)"}]


def test_daily_workflow_publishes_the_redacted_report():
    workflow = (Path(__file__).resolve().parents[1] / ".github" / "workflows" / "daily-verify.yml").read_text()
    run_lines = [ln.strip() for ln in workflow.splitlines() if ln.strip().startswith("replicator ")]
    assert run_lines and all("--show-values" not in ln for ln in run_lines)
    assert "GITHUB_STEP_SUMMARY" in workflow
