"""Prefect reads its settings when first imported: set steward's defaults before that happens."""

from __future__ import annotations

import os

from core.settings import Settings


def configure_prefect(settings: Settings) -> None:
    """Keep Prefect's local state (ephemeral server database, results) inside steward's home unless
    the user pointed Prefect elsewhere, and give the ephemeral server time to start on small machines."""
    os.environ.setdefault("PREFECT_HOME", str(settings.home / "prefect"))
    # Prefect's temporary server keeps its database there; a home that does not exist yet made it
    # fail its start after minutes of retries.
    os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The run's INFO logs go to the Prefect UI; the console shows warnings only (steward prints its own
    # summary). Setting PREFECT_LOGGING_LEVEL instead would starve the UI as well.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def quiet_flow_run_logs(*, verbose: bool) -> None:
    """A flow that fails with a user error is reported by the CLI in one ``error:`` line; Prefect's
    console would print its traceback first. Only the console is filtered: the run's logs in the
    Prefect UI keep everything. ``-v`` keeps the console's too."""
    import logging

    if verbose:
        return

    def not_a_run_traceback(record: logging.LogRecord) -> bool:
        return not record.name.startswith(("prefect.flow_runs", "prefect.task_runs")) or record.levelno >= logging.CRITICAL

    for handler in logging.getLogger().handlers:  # Prefect puts its console handler on the root logger
        if not any(getattr(f, "__name__", "") == "not_a_run_traceback" for f in handler.filters):
            handler.addFilter(not_a_run_traceback)


def start_temporary_server_if_needed() -> bool:
    """Start Prefect's temporary (ephemeral) server now, under a progress stage, when no Prefect API is
    configured; otherwise the first flow call starts it silently (tens of seconds on small machines).
    Returns whether one was started."""
    from monitoring.alerts import prefect_api_configured

    if prefect_api_configured():
        return False
    from core.progress import stage

    with stage("starting Prefect's temporary server (no PREFECT_API_URL; 10-60 s)", after=0.5):
        from prefect.server.api.server import SubprocessASGIServer

        SubprocessASGIServer().start()  # one per process: the flows' clients reuse it
    return True
