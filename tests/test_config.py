"""replicator.toml + environment + flags."""

import pytest

from replicator.config import Config, FixedValue, Policy, load_config, require_url
from replicator.errors import ConfigError


def test_precedence_flag_over_env_over_file(tmp_path, monkeypatch):
    f = tmp_path / "r.toml"
    f.write_text('master_url = "postgresql://file/m"\nreplica_url = "postgresql://file/r"\n')
    monkeypatch.setenv("REPLICATOR_MASTER_URL", "postgresql://env/m")
    cfg = load_config(f, replica="postgresql://flag/r")
    assert cfg.master_url == "postgresql://env/m"
    assert cfg.replica_url == "postgresql://flag/r"


def test_table_settings(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text("""
[tables.leads]
policy = "master-wins"
[tables.leads.renames]
project_id = "current_project_id"
[tables.leads.mask]
email = "email"
notes = { value = "redacted" }
""")
    cfg = load_config(f)
    t = cfg.table("leads")
    assert t.policy is Policy.MASTER_WINS
    assert t.renames == {"project_id": "current_project_id"}
    assert t.mask["email"] == "email" and t.mask["notes"] == FixedValue(value="redacted")
    assert cfg.table("public.leads") is t
    assert cfg.table("other").policy is None


@pytest.mark.parametrize("text, where", [
    ('[tables.leads]\npolicy = "sometimes"\n', "tables.leads.policy"),
    ('unknown_key = 1\n', "unknown_key"),
    ('[tables.x.mask]\nc = "rot13"\n', "tables.x.mask.c"),
    ('schemas = []\n', "schemas"),
    ('batch_size = 0\n', "batch_size"),
])
def test_invalid_config_is_one_line(tmp_path, text, where):
    f = tmp_path / "r.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    assert where in str(exc.value)
    assert "\n" not in str(exc.value)


def test_invalid_toml_and_missing_file(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(f)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_missing_url_message(monkeypatch):
    monkeypatch.delenv("REPLICATOR_MASTER_URL", raising=False)
    with pytest.raises(ConfigError, match="pass --master, set REPLICATOR_MASTER_URL"):
        require_url(Config(), "master")


def test_rename_applies_until_migrate_has_applied_it():
    from replicator.config import TableConfig

    t = TableConfig(renames={"project_id": "current_project_id"})
    assert t.replica_column("current_project_id", {"id", "project_id"}) == "project_id"  # before migrate
    assert t.replica_column("current_project_id", {"id", "current_project_id"}) == "current_project_id"  # after
    assert t.replica_column("name", {"name"}) == "name"
