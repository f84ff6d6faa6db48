"""``steward api``: the search service and dashboard under uvicorn (loopback by default)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from steward.cli import add_command, setting_flag

    parser = add_command(
        subparsers, "api", run_api, collection="none", json=False,
        help="serve search, the dashboard and promote/rollback over HTTP",
        description=(
            "Serve nearest-neighbour search over each collection's production model+index, the "
            "dashboard at /, and the OpenAPI docs at /docs. The service follows the production "
            "alias (promotions and rollbacks from any process) and swaps without downtime. "
            "POST /promote and /rollback need the api_token setting (STEWARD_API_TOKEN); without "
            "it they are disabled."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1, loopback only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--poll-seconds", type=float, default=2.0, help="how often to check the production alias (default 2)"
    )
    setting_flag(parser, "--shadow-fraction", setting="shadow.fraction", type=float,
                 help="shadow A/B: share of search requests also answered by --shadow-version in the background, "
                      "never served, and compared with production (default: the shadow.fraction setting, 0 = off); "
                      "see `steward shadow report`")
    setting_flag(parser, "--shadow-version", setting="shadow.version", type=int,
                 help="model version the shadow answers with (default: the shadow.version setting; unset: the "
                      "newest version that is not production and has an index)")


def run_api(args: argparse.Namespace, ctx) -> int:
    from core.errors import ConfigError

    if args.poll_seconds <= 0:
        raise ConfigError(f"--poll-seconds={args.poll_seconds} must be positive")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port={args.port} is not a valid TCP port")
    import uvicorn

    from steward.api.app import create_app

    settings = ctx.settings
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_token:
        log.warning("serving on %s without an api_token: promote/rollback stay disabled", args.host)
    if settings.shadow.version is not None and settings.shadow.fraction == 0:
        log.warning("shadow version v%s is set but shadow.fraction is 0: nothing is mirrored (add "
                    "--shadow-fraction)", settings.shadow.version)
    app = create_app(settings, poll_seconds=args.poll_seconds, workspace=ctx.workspace)
    level = logging.getLogger().getEffectiveLevel()
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=logging.getLevelName(min(level, logging.INFO)).lower()
    )
    return 0
