"""`replicator analyze` end to end through the CLI (in-process): files, JSON, exit codes, errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from replicator.cli import main
from replicator.examples import EXAMPLES_DIR, load_example

from conftest import url_with

TOML = str(EXAMPLES_DIR / "replicator.toml")


def _run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def golden(master_url, replica_url):
    load_example(master_url, "master")
    load_example(replica_url, "replica")
    return master_url, replica_url


def test_golden_pair_outputs(golden, tmp_path):
    m, r = golden
    res = _run("analyze", "--master", m, "--replica", r, "--config", TOML, "--out-dir", str(tmp_path))
    assert res.exit_code == 0, res.output
    plan = (tmp_path / "schemas" / "master-schema-replication.sql").read_text()
    assert "RENAME COLUMN project_id TO current_project_id" in plan
    assert "DROP COLUMN project_id" not in plan and "ADD COLUMN current_project_id" not in plan
    assert "-- ALTER TABLE public.leads DROP CONSTRAINT leads_project_id_fkey;" in plan  # destructive: commented
    assert "rollback (whole plan)" in plan
    assert (tmp_path / "schemas" / "master-schema.json").is_file()
    cmp_ = (tmp_path / "reports" / "schema-comparison-report.md").read_text()
    assert "```mermaid" in cmp_ and "MISSING_ON_REPLICA" in cmp_
    assert "public.whatsapp_messages | master only | 1296" in cmp_
    assert "guard audit" in cmp_
    dm = (tmp_path / "reports" / "data-migration-plan.md").read_text()
    # clients before projects before leads (FK order); key overlap measured
    assert dm.index("public.clients") < dm.index("public.projects") < dm.index("public.leads")
    assert "| 4 / 22 / 7 |" in dm
    assert "password" not in res.output


def test_json_and_exit_code(golden, tmp_path):
    m, r = golden
    res = _run("analyze", "--master", m, "--replica", r, "--config", TOML, "--out-dir", str(tmp_path), "--json", "--exit-code")
    assert res.exit_code == 2
    data = json.loads(res.output)
    assert data["differences"] == 37 and data["by_kind"]["table_missing"] == 5
    assert data["master_statements_refused"] == 0
    res = _run("migrate", "--master", m, "--replica", r, "--config", TOML, "--out-dir", str(tmp_path), "--allow-destructive")
    assert res.exit_code == 0, res.output
    res = _run("analyze", "--master", m, "--replica", r, "--config", TOML, "--out-dir", str(tmp_path), "--exit-code")
    assert res.exit_code == 0, res.output
    assert "no differences" in res.output


def test_schema_options(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, 'CREATE SCHEMA app; CREATE TABLE app.t (id int); CREATE TABLE "Other"(id int)')
    res = _run("analyze", "--master", master_url, "--replica", replica_url, "--schema", "app", "--out-dir", str(tmp_path), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["by_kind"] == {"schema_missing": 1, "table_missing": 1}
    res = _run("analyze", "--master", master_url, "--replica", replica_url, "--all-schemas", "--out-dir", str(tmp_path), "--json")
    assert json.loads(res.output)["by_kind"]["table_missing"] == 2


def test_pooler_is_reported(pooler, master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, "CREATE TABLE t (id int PRIMARY KEY, v text CHECK (v <> ''))")
    sql_on(replica_url, "CREATE TABLE t (id int PRIMARY KEY, v text CHECK (v <> ''))")
    res = _run("analyze", "--master", pooler.url_for(master_url), "--replica", replica_url, "--out-dir", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert "transaction pooler" in res.output
    assert "no differences" in res.output


@pytest.mark.parametrize("case", ["malformed", "password", "unreachable", "database"])
def test_bad_input_is_one_line(case, master_url, replica_url, tmp_path):
    bad = {
        "malformed": "postgresql://user:s3cret@host:notaport/db",
        "password": url_with(master_url, password="wrong-s3cret"),
        "unreachable": url_with(master_url, host="127.0.0.1", port="1", password="s3cret"),
        "database": url_with(master_url, dbname="no_such_database"),
    }[case]
    res = _run("analyze", "--master", bad, "--replica", replica_url, "--out-dir", str(tmp_path))
    assert res.exit_code == 2
    out = res.output.strip()
    assert out.startswith("error:") and "\n" not in out
    assert "Traceback" not in out and "s3cret" not in out


def test_no_select_privilege(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, """
        CREATE TABLE secret (id int PRIMARY KEY);
        DROP ROLE IF EXISTS analyze_reader;
        CREATE ROLE analyze_reader LOGIN PASSWORD 'pw-reader';
    """)
    sql_on(master_url, "GRANT USAGE ON SCHEMA public TO analyze_reader")
    url = url_with(master_url, user="analyze_reader", password="pw-reader")
    res = _run("analyze", "--master", url, "--replica", replica_url, "--out-dir", str(tmp_path))
    exact = _run("analyze", "--master", url, "--replica", replica_url, "--out-dir", str(tmp_path), "--exact-counts")
    sql_on(master_url, "DROP OWNED BY analyze_reader; DROP ROLE analyze_reader")
    # without --exact-counts the unreadable table keeps its estimate, and the output says so
    assert res.exit_code == 0, res.output
    assert "estimates" in res.output and "public.secret" in res.output
    res = exact
    assert res.exit_code == 2
    out = res.output.strip()
    assert "\n" not in out and "no SELECT privilege" in out and "public.secret" in out
    assert "pw-reader" not in out


def test_interrupt_during_key_overlap_does_not_hang(master_url, replica_url, sql_on, monkeypatch):
    """Ctrl-C while both key streams are open must surface promptly and leave both sessions usable."""
    import threading

    from replicator import analyze as analyze_mod
    from replicator.config import Config

    for url in (master_url, replica_url):
        sql_on(url, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 20000)")
    comparisons = 0
    real_lt = analyze_mod._lt

    def interrupted_lt(a, b):
        nonlocal comparisons
        comparisons += 1
        if comparisons == 10:
            raise KeyboardInterrupt
        return real_lt(a, b)

    monkeypatch.setattr(analyze_mod, "_lt", interrupted_lt)
    sessions = analyze_mod.Sessions(Config(master_url=master_url, replica_url=replica_url), analyze_mod.MasterGuard())
    table = analyze_mod.introspect(sessions.master).tables["public.t"]
    outcome: list[BaseException | None] = []

    def run():
        try:
            analyze_mod.key_overlap(sessions, table, ["id"], ["id"])
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "key_overlap hung after the interrupt"
    assert isinstance(outcome[0], KeyboardInterrupt)
    for conn in (sessions.master, sessions.replica):
        assert conn.execute("SELECT 1").fetchone() == (1,)
    sessions.close()


@pytest.mark.parametrize("command", ["analyze", "migrate", "verify"])
def test_unusable_out_dir_is_one_line(command, master_url, replica_url, tmp_path):
    (tmp_path / "a-file").write_text("")
    res = _run(command, "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path / "a-file" / "out"))
    assert res.exit_code == 2, res.output
    out = res.output.strip()
    assert out.startswith("error: --out-dir") and "\n" not in out and "Traceback" not in out


def test_report_path_that_cannot_be_written_is_one_line(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, "CREATE TABLE t (id int PRIMARY KEY)")
    (tmp_path / "reports").write_text("a file where the reports directory should be")
    res = _run("analyze", "--master", master_url, "--replica", replica_url, "--out-dir", str(tmp_path))
    assert res.exit_code == 2, res.output
    out = res.output.strip()
    assert out.startswith("error:") and "reports" in out and "\n" not in out
    assert isinstance(res.exception, SystemExit)  # handled, not an escaping OSError


def test_schema_that_does_not_exist_is_an_error(master_url, replica_url, sql_on, tmp_path):
    sql_on(master_url, "CREATE TABLE t (id int)")
    res = _run("analyze", "--master", master_url, "--replica", replica_url, "--schema", "public", "--schema", "pubic",
               "--out-dir", str(tmp_path))
    assert res.exit_code == 2
    assert res.output.strip() == "error: schema pubic does not exist on the master"
    assert not (tmp_path / "schemas").exists()
