"""One settings object, read from the environment and an optional ``steward.toml``.

Precedence: environment variable > ``steward.toml`` > default. The toml file is looked up at
``$STEWARD_CONFIG`` or ``./steward.toml``; keys are the field names below, at the top level or
under a ``[steward]`` table.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steward.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    artifacts_uri: str
    data_uri: str
    webhook_url: str | None = None
    alert_dedup_seconds: int = 3600
    drift_alpha: float = 0.05
    api_token: str | None = None
    maintenance_cron: str = "0 2 * * *"
    drift_check_interval_seconds: int = 3600
    device: str = "cpu"

    @property
    def reports_dir(self) -> Path:
        """Local folder for human-readable reports (HTML); the artifact store keeps the copies."""
        return self.home / "reports"


# field name -> environment variable
_ENV = {
    "home": "STEWARD_HOME",
    "database_url": "STEWARD_DATABASE_URL",
    "artifacts_uri": "STEWARD_ARTIFACTS",
    "data_uri": "STEWARD_DATA",
    "webhook_url": "STEWARD_WEBHOOK_URL",
    "alert_dedup_seconds": "STEWARD_ALERT_DEDUP_SECONDS",
    "drift_alpha": "STEWARD_DRIFT_ALPHA",
    "api_token": "STEWARD_API_TOKEN",
    "maintenance_cron": "STEWARD_MAINTENANCE_CRON",
    "drift_check_interval_seconds": "STEWARD_DRIFT_CHECK_INTERVAL_SECONDS",
    "device": "STEWARD_DEVICE",
}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}; fix or remove it") from e
    table = data.get("steward", data)
    unknown = set(table) - set(_ENV)
    if unknown:
        raise ConfigError(
            f"config file {path} has unknown keys {sorted(unknown)}; known keys are {sorted(_ENV)}"
        )
    return dict(table)


def _coerce(name: str, raw: Any) -> Any:
    field_type = {f.name: f.type for f in dataclasses.fields(Settings)}[name]
    if raw is None or raw == "":
        return None if "None" in str(field_type) else raw
    try:
        if field_type == "int":
            return int(raw)
        if field_type == "float":
            return float(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"setting {name}={raw!r} is not a valid {field_type}") from e
    return str(raw)


def load_settings(
    env: Mapping[str, str] | None = None, config_path: str | os.PathLike[str] | None = None
) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``) and the toml file."""
    env = os.environ if env is None else env
    path = Path(config_path or env.get("STEWARD_CONFIG") or "steward.toml")
    values: dict[str, Any] = _read_toml(path) if path.is_file() else {}
    if config_path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    for name, var in _ENV.items():
        if var in env:
            values[name] = env[var]
    values = {k: _coerce(k, v) for k, v in values.items()}

    home = Path(values.pop("home", None) or ".steward").expanduser().absolute()
    database_url = values.pop("database_url", None) or f"sqlite:///{home / 'registry.db'}"
    artifacts_uri = values.pop("artifacts_uri", None) or str(home / "artifacts")
    data_uri = values.pop("data_uri", None) or str(home / "data")
    settings = Settings(
        home=home, database_url=database_url, artifacts_uri=artifacts_uri, data_uri=data_uri, **values
    )
    if not 0 < settings.drift_alpha < 1:
        raise ConfigError(f"drift_alpha={settings.drift_alpha} must lie strictly between 0 and 1")
    return settings
