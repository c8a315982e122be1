"""replicator is a real package: a wheel built from the checkout, installed into a fresh venv outside
it, runs `replicator demo` from an unrelated directory (the samples are package data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                              "reports", "schemas", "replicator-demo")


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPLICATOR_", "PYTHON", "VIRTUAL_ENV"))}
    env["XDG_STATE_HOME"] = str(tmp / "state")
    env["COLUMNS"] = "120"
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_demo_from_anywhere(tmp_path):
    env = _env(tmp_path)
    # Build from a copy of the sources, so nothing is written into the checkout.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(src)],
         tmp_path, env)
    wheel = next((tmp_path / "dist").glob("replicator-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for sample in ("master.sql", "replica.sql", "replicator.toml"):
        assert f"replicator/examples/{sample}" in names
    assert "replicator/introspect/sql/columns.sql" in names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    _run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], tmp_path, env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([str(venv / "bin" / "python"), "-c", "import replicator.examples as e; print(e.EXAMPLES_DIR)"],
                 elsewhere, env).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout

    res = _run([str(venv / "bin" / "replicator"), "demo"], elsewhere, env)
    assert "demo passed" in res.stdout, res.stdout
    assert "whatsapp_messages: 1,296/1,296" in res.stdout
    assert (elsewhere / "replicator-demo" / "replicator.toml").is_file()
    assert any((elsewhere / "replicator-demo" / "reports").glob("verify-*.md"))


def _ignored(path: str) -> bool:
    res = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, capture_output=True)
    assert res.returncode in (0, 1), res.stderr
    return res.returncode == 0


def test_gitignore_agrees_with_what_the_readme_says_to_commit():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for committed in ("replicator.toml", "schemas/master-schema.json", ".github/workflows/daily-sync.yml"):
        assert committed in readme
        assert not _ignored(committed), f"{committed} is ignored by .gitignore but the README says to commit it"
    for generated in ("reports/sync-20260101T000000Z.md", "reports/backups/x/plan.sql",
                      "schemas/master-schema-replication.sql", "schemas/master-schema-rollback.sql",
                      "replicator-demo/replicator.toml"):
        assert _ignored(generated), f"{generated} is generated: .gitignore should keep it out"
