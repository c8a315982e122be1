"""The README cannot go stale: commands, options, config keys and the two quickstart commands are
checked against the code and against what CI runs."""

from __future__ import annotations

import re
import subprocess
import typing
from pathlib import Path

import click
import pytest

from replicator.cli import main
from replicator.config import Config, Policy, TableConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(name: str) -> str:
    m = re.search(rf"<!-- section: {re.escape(name)} -->\n(.*?)<!-- /section: {re.escape(name)} -->", README, re.S)
    assert m, f"README has no section {name!r}"
    return m.group(1)


def block_after(marker: str) -> str:
    """The first ```bash block after an HTML comment marker."""
    m = re.search(rf"<!-- {re.escape(marker)} -->\s*\n```bash\n(.*?)\n```", README, re.S)
    assert m, f"README has no ```bash block right after <!-- {marker} -->"
    return m.group(1).strip()


def _commands() -> list[tuple[str, click.Command]]:
    out = []

    def walk(group: click.Group, prefix: str) -> None:
        for name, cmd in sorted(group.commands.items()):
            full = f"{prefix} {name}".strip()
            out.append((full, cmd))
            if isinstance(cmd, click.Group):
                walk(cmd, full)

    walk(main, "")
    return out


COMMANDS = _commands()


def test_all_four_steps_and_the_demo_are_commands():
    names = {n for n, _ in COMMANDS}
    assert {"analyze", "migrate", "copy", "status", "verify", "demo"} <= names


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_and_option_is_in_the_readme(name, cmd):
    assert f"replicator {name}" in README, f"`replicator {name}` is not in the README"
    missing = []
    for param in cmd.params:
        if not isinstance(param, click.Option):
            continue
        for opt in param.opts + param.secondary_opts:
            if opt in ("-h", "--help"):
                continue
            if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", README):
                missing.append(opt)
    assert not missing, f"`replicator {name}` options missing from the README: {', '.join(missing)}"


def test_every_command_has_a_row_in_the_exit_code_table():
    text = section("exit-codes")
    rows = [ln for ln in text.splitlines() if ln.startswith("| `replicator ")]
    documented = {re.match(r"\| `replicator ([\w -]+?)[` ]", ln).group(1) for ln in rows}
    assert {n for n, _ in COMMANDS} <= documented


# ----------------------------------------------------------------------------- config reference


def _documented_keys(text: str, heading: str) -> set[str]:
    """First-column keys of the Markdown table that follows `heading`."""
    start = text.index(heading)
    keys = set()
    in_table = False
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            in_table = True
            m = re.match(r"\| `([a-z_]+)` \|", line)
            if m:
                keys.add(m.group(1))
        elif in_table:
            break
    return keys


def test_config_reference_matches_the_models():
    text = section("config")
    assert _documented_keys(text, "Top level:") == {f.alias or n for n, f in Config.model_fields.items()}
    assert _documented_keys(text, "Per table, `[tables.<name>]`:") == set(TableConfig.model_fields)


def test_every_policy_and_mask_rule_is_documented():
    text = section("config")
    table = text[text.index("### Conflict policies"):]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", table, re.M))
    assert documented == {p.value for p in Policy}
    mask_type = typing.get_args(TableConfig.model_fields["mask"].annotation)[1]
    rules = typing.get_args(typing.get_args(typing.get_args(mask_type)[0])[0])
    assert set(rules) == {"null", "hash", "phone", "email"}
    for rule in rules:
        assert f'`"{rule}"`' in text
    assert "{ value =" in text


def test_the_example_config_in_the_readme_is_valid():
    import tomllib

    m = re.search(r"```toml\n(.*?)```", section("config"), re.S)
    Config.model_validate(tomllib.loads(m.group(1)))


# ----------------------------------------------------------------------------- the two commands


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    awk = re.search(r"awk '([^']*)' README.md", ci).group(1)
    extracted = subprocess.run(["awk", awk, "README.md"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
    assert extracted == block_after("test-command")
    assert "-e '.[test]'" in extracted and "pytest" in extracted
    assert extracted.startswith("python3 -m venv .venv")
    assert "<!-- test-command -->" in section("quickstart")


def test_the_demo_command_installs_and_runs_the_demo():
    cmd = block_after("demo-command")
    assert "<!-- demo-command -->" in section("quickstart")
    assert cmd.startswith("python3 -m venv .venv") and "pip install" in cmd
    assert cmd.endswith(".venv/bin/replicator demo")
    assert "demo" in main.commands


def test_python_requirement_matches_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'requires-python = ">=(\d+\.\d+)"', pyproject).group(1)
    assert f"Python ≥ {version}" in section("quickstart")
