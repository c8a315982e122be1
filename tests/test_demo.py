"""`replicator demo` end to end, in a subprocess, exactly as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "from replicator.cli import main; main()"]


def _env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_STATE_HOME"] = str(state)  # isolates this test's demos from any others
    env.pop("REPLICATOR_MASTER_URL", None)
    env.pop("REPLICATOR_REPLICA_URL", None)
    env["COLUMNS"] = "120"
    return env


def _demo(args: list[str], tmp_path: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + ["demo", *args], cwd=tmp_path, env=_env(tmp_path / "state"),
                          capture_output=True, text=True, timeout=300, **kw)


def _records(tmp_path: Path) -> list[dict]:
    root = tmp_path / "state" / "replicator" / "demo"
    return [json.loads((d / "demo.json").read_text()) for d in sorted(root.glob("*")) if (d / "demo.json").exists()]


def _postgres_processes_under(paths: list[str]) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(p in cmd for p in paths):
            found.append(cmd)
    return found


def test_demo_runs_the_whole_pipeline(tmp_path):
    res = _demo([], tmp_path)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    for step in ("analyze", "migrate", "copy", "verify", "sync"):
        assert f"✓ {step}" in out
    assert "sync: in line" in out
    # the figures are read from the two databases after the run
    assert "conversations: 499/499" in out
    assert "whatsapp_messages: 1,296/1,296" in out
    assert "verify: green" in out
    assert re.search(r"demo passed in \d+\.\d s", out)
    # reports went to ./replicator-demo/reports, not to the state directory
    reports = tmp_path / "replicator-demo" / "reports"
    assert any(reports.glob("*.md")), out
    # nothing is left behind: no record, no server
    assert _records(tmp_path) == []
    assert not list((tmp_path / "state" / "replicator" / "demo").glob("*"))


def test_two_kept_demos_do_not_collide_and_stop_removes_both(tmp_path):
    env = _env(tmp_path / "state")
    procs = [subprocess.Popen(CLI + ["demo", "--keep", "--out-dir", f"out{i}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    records: list[dict] = []
    data_dirs: list[str] = []
    urls: list[str] = []
    try:
        for p, (out, err) in zip(procs, outs):
            assert "replicator demo --stop" in out, out + err
            assert "psql" in out
        records = _records(tmp_path)
        assert len(records) == 2 and all(r["kept"] for r in records)
        assert records[0]["id"] != records[1]["id"]
        urls = [u for r in records for u in (r["master_url"], r["replica_url"])]
        assert len({re.search(r":(\d+)/", u).group(1) for u in urls}) == 4  # four distinct ports
        data_dirs = [c for r in records for c in r["clusters"]]
        assert len(set(data_dirs)) == 4

        # the kept servers answer, with the passwords from the pgpass file (none is printed)
        for r in records:
            assert ":" not in r["master_url"].split("@")[0].removeprefix("postgresql://")
            passfile = str(tmp_path / "state" / "replicator" / "demo" / r["id"] / "pgpass")
            with psycopg.connect(r["master_url"], passfile=passfile) as conn:
                assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
                assert conn.execute("SELECT count(*) FROM whatsapp_messages").fetchone()[0] == 1296
            with psycopg.connect(r["replica_url"], passfile=passfile) as conn:
                assert conn.execute("SELECT 1").fetchone()[0] == 1
        assert _postgres_processes_under(data_dirs)
    finally:
        res = _demo(["--stop"], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("stopped demo") == 2
    assert _records(tmp_path) == []
    for d in data_dirs:
        assert not Path(d).exists()
    assert _postgres_processes_under(data_dirs) == []
    for u in urls:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(u, connect_timeout=2, password="x").close()
    # a second --stop has nothing to do
    again = _demo(["--stop"], tmp_path)
    assert again.returncode == 0 and "no demo servers" in again.stdout
    # and both kept demos ran the whole pipeline
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
        assert "whatsapp_messages: 1,296/1,296" in out
