from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import SCHEMA, Settings, load_settings, parse_assignments, with_secrets_from


def test_defaults_live_under_home(tmp_path: Path) -> None:
    s = load_settings(env={"STEWARD_HOME": str(tmp_path / "h")}, config_path=None)
    assert s.home == tmp_path / "h"
    assert s.database_url == f"sqlite:///{tmp_path / 'h' / 'registry.db'}"
    assert s.artifacts_uri == str(tmp_path / "h" / "artifacts")
    assert s.drift.alpha == 0.05
    assert s.index.target_recall == 0.95
    assert s.maintenance.retrain_policy == "drift" and s.maintenance.promotion == "auto"


def test_env_beats_toml_beats_default(tmp_path: Path) -> None:
    cfg = tmp_path / "steward.toml"
    cfg.write_text('[steward]\nartifacts_uri = "s3://bucket/x"\ndrift_alpha = 0.01\nwebhook_url = "http://127.0.0.1:9/hook"\n')
    s = load_settings(env={"STEWARD_HOME": str(tmp_path), "STEWARD_DRIFT_ALPHA": "0.1"}, config_path=cfg)
    assert s.artifacts_uri == "s3://bucket/x"
    assert s.drift.alpha == 0.1
    assert s.webhook_url == "http://127.0.0.1:9/hook"


def test_sections_in_toml_env_and_overrides_in_that_order(tmp_path: Path) -> None:
    cfg = tmp_path / "steward.toml"
    cfg.write_text("[gate]\nmax_class_map_drop = 0.2\nmax_old_map_drop = 0.03\n[index]\ntarget_recall = 0.9\n"
                   "[maintenance]\npromotion = \"manual\"\n")
    env = {"STEWARD_HOME": str(tmp_path), "STEWARD_GATE_MAX_OLD_MAP_DROP": "0.05"}
    s = load_settings(env=env, config_path=cfg, overrides={"index.target_recall": "0.97"})
    assert s.gate.max_class_map_drop == 0.2  # toml
    assert s.gate.max_old_map_drop == 0.05  # env beats toml
    assert s.index.target_recall == 0.97  # command line beats toml
    assert s.maintenance.promotion == "manual"
    none = load_settings(env={**env, "STEWARD_GATE_MAX_CLASS_MAP_DROP": "none"}, config_path=cfg)
    assert none.gate.max_class_map_drop is None  # an optional check can be switched off


def test_every_setting_has_one_environment_variable_and_round_trips(tmp_path: Path) -> None:
    s = load_settings(env={"STEWARD_HOME": str(tmp_path), "STEWARD_API_TOKEN": "t"}, config_path=None)
    again = Settings.from_dict(s.to_dict(secrets=True))
    assert again == s
    public = s.to_dict()
    assert "api_token" not in public and "webhook_url" not in public  # flows never carry secrets
    assert with_secrets_from(Settings.from_dict(public), {"STEWARD_API_TOKEN": "t"}).api_token == "t"
    assert len(SCHEMA) == len({k.replace(".", "_") for k in SCHEMA})  # no two keys share a variable


def test_assignments_from_the_command_line() -> None:
    assert parse_assignments(["drift.alpha=0.01", "gate_max_old_map_drop=0.2"]) == {
        "drift.alpha": "0.01", "gate.max_old_map_drop": "0.2"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["drift.alpha"])
    with pytest.raises(ConfigError, match="unknown setting 'drift.alfa'"):
        parse_assignments(["drift.alfa=1"])


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('nonsense = 1\n', {}, "unknown setting 'nonsense'"),
        ("[gate]\nmax_drop = 1\n", {}, "unknown setting 'gate.max_drop'"),
        ("drift_alpha = [\n", {}, "not valid TOML"),
        ("", {"STEWARD_DRIFT_ALPHA": "abc"}, "not a valid float"),
        ("", {"STEWARD_DRIFT_ALPHA": "1.5"}, "strictly between 0 and 1"),
        ("", {"STEWARD_MAINTENANCE_PROMOTION": "sometimes"}, "one of auto, manual"),
        ("", {"STEWARD_INDEX_TARGET_RECALL": "0"}, r"in \(0, 1\]"),
    ],
)
def test_bad_settings_are_refused_with_the_value(tmp_path: Path, toml: str, env: dict, message: str) -> None:
    cfg = tmp_path / "steward.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(env={"STEWARD_HOME": str(tmp_path), **env}, config_path=cfg)


def test_short_storage_variables_from_the_deployment_docs() -> None:
    from core.settings import load_settings

    env = {"STEWARD_HOME": "/tmp/h", "STEWARD_ARTIFACTS": "s3://b/a", "STEWARD_DATA": "s3://b/d"}
    s = load_settings(env=env, config_path=None)
    assert (s.artifacts_uri, s.data_uri) == ("s3://b/a", "s3://b/d")
    s = load_settings(env={**env, "STEWARD_ARTIFACTS_URI": "s3://b/long"}, config_path=None)
    assert s.artifacts_uri == "s3://b/long"  # the full name wins
