"""Prefect reads its settings when first imported: set steward's defaults before that happens."""

from __future__ import annotations

import os

from core.settings import Settings


def configure_prefect(settings: Settings) -> None:
    """Keep Prefect's local state (ephemeral server database, results) inside steward's home unless
    the user pointed Prefect elsewhere, and give the ephemeral server time to start on small machines."""
    os.environ.setdefault("PREFECT_HOME", str(settings.home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
