from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def test_defaults_live_under_home(tmp_path: Path) -> None:
    s = load_settings(env={"STEWARD_HOME": str(tmp_path / "h")}, config_path=None)
    assert s.home == tmp_path / "h"
    assert s.database_url == f"sqlite:///{tmp_path / 'h' / 'registry.db'}"
    assert s.artifacts_uri == str(tmp_path / "h" / "artifacts")
    assert s.drift_alpha == 0.05


def test_env_beats_toml_beats_default(tmp_path: Path) -> None:
    cfg = tmp_path / "steward.toml"
    cfg.write_text('[steward]\nartifacts_uri = "s3://bucket/x"\ndrift_alpha = 0.01\nwebhook_url = "http://127.0.0.1:9/hook"\n')
    s = load_settings(env={"STEWARD_HOME": str(tmp_path), "STEWARD_DRIFT_ALPHA": "0.1"}, config_path=cfg)
    assert s.artifacts_uri == "s3://bucket/x"
    assert s.drift_alpha == 0.1
    assert s.webhook_url == "http://127.0.0.1:9/hook"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('nonsense = 1\n', {}, "unknown keys"),
        ("drift_alpha = [\n", {}, "not valid TOML"),
        ("", {"STEWARD_DRIFT_ALPHA": "abc"}, "not a valid float"),
        ("", {"STEWARD_DRIFT_ALPHA": "1.5"}, "strictly between 0 and 1"),
    ],
)
def test_bad_settings_are_refused_with_the_value(tmp_path: Path, toml: str, env: dict, message: str) -> None:
    cfg = tmp_path / "steward.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(env={"STEWARD_HOME": str(tmp_path), **env}, config_path=cfg)
