"""Secrets from Prefect blocks: the webhook URL and the API token, read where they are used.

Prefect users keep secrets in ``Secret`` blocks. ``secrets.webhook_url_block`` and
``secrets.api_token_block`` name them; the value is read at run time (by the CLI, the API and each
flow run, on the machine that runs it) when the secret itself is not set in the environment or
steward.toml, so it never travels as a flow parameter. Prefect is imported only when a block is named.
"""

from __future__ import annotations

import dataclasses

from core.errors import ConfigError
from core.settings import Settings

BLOCK_SETTINGS: dict[str, str] = {"webhook_url": "webhook_url_block", "api_token": "api_token_block"}


def resolve_secrets(settings: Settings) -> Settings:
    """``settings`` with each unset secret read from the Prefect ``Secret`` block its setting names."""
    wanted = {key: getattr(settings.secrets, field) for key, field in BLOCK_SETTINGS.items()
              if getattr(settings.secrets, field) and getattr(settings, key) is None}
    if not wanted:
        return settings
    from prefect.blocks.system import Secret

    values = {}
    for key, block in wanted.items():
        try:
            values[key] = str(Secret.load(block).get())
        except Exception as e:  # not found, or no Prefect API to ask: either way the setting cannot be met
            raise ConfigError(
                f"setting secrets.{BLOCK_SETTINGS[key]}={block!r} names a Prefect Secret block that could not be "
                f"read ({type(e).__name__}: {e}); create it (prefect block create secret, or "
                f"Secret(value=...).save({block!r})), point PREFECT_API_URL at its server, or set {key} directly"
            ) from e
    return dataclasses.replace(settings, **values)
