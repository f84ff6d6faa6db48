"""The ``steward`` command line.

Start-up must stay fast (``steward --help`` under a second), so this module and the command
modules it discovers import nothing heavy at module level: torch, prefect, evidently, faiss and
pandas are imported inside the functions that run a command.

Each module in ``steward/commands/`` exposes ``register(subparsers)``, which adds its
sub-commands and sets ``func`` on them; ``func(args, ctx)`` returns the process exit code.
Settings are resolved once per command (:class:`CommandContext`): ``--set KEY=VALUE`` and a
command's own setting flags (declared with :func:`setting_flag`) override the environment and
``--config``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

from core.errors import StewardError
from steward import __version__

log = logging.getLogger("steward")

EPILOG = """exit codes: 0 success; 1 error; 2 bad configuration; 3 invalid input data;
4 not found; 5 conflict (e.g. another run holds the lock); 6 artifact failed its checksum.
Some commands define more (see their --help)."""

# Options every sub-command accepts too, so `steward run -c x -v` works like `steward -v run -c x`.
_COMMON = argparse.ArgumentParser(add_help=False)
_COMMON.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                     help="more logging (-vv for debug)")
_COMMON.add_argument("--config", default=argparse.SUPPRESS,
                     help="path to steward.toml (default: $STEWARD_CONFIG or ./steward.toml)")
_COMMON.add_argument("--set", action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE",
                     help="override a setting, e.g. --set drift.alpha=0.01 (repeatable)")


class CommandContext:
    """Settings (resolved once, with this command's overrides) and the workspace they open."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._settings = None
        self._workspace = None

    def overrides(self) -> dict[str, Any]:
        from core.settings import parse_assignments

        out: dict[str, Any] = parse_assignments(getattr(self.args, "set", None))
        for dest, key in (getattr(self.args, "setting_flags", None) or {}).items():
            value = getattr(self.args, dest, None)
            if value is not None:
                out[key] = value
        return out

    @property
    def settings(self):  # -> core.settings.Settings
        if self._settings is None:
            from core.settings import load_settings
            from flows.secrets import resolve_secrets

            self._settings = resolve_secrets(load_settings(config_path=getattr(self.args, "config", None),
                                                           overrides=self.overrides()))
        return self._settings

    @property
    def workspace(self):  # -> storage.workspace.Workspace
        if self._workspace is None:
            from embedding.observers import open_observed_workspace

            self._workspace = open_observed_workspace(self.settings)
        return self._workspace

    @property
    def api(self):  # -> steward.python_api.Steward: the commands call the Python API's methods
        from steward.python_api import Steward

        return Steward(self.settings, self.workspace)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def emit(self, payload: Any, text: str | None = None) -> None:
        """Print ``payload`` (its shape from :mod:`steward.shapes`) as JSON under ``--json``, else the text."""
        if self.json:
            print(json.dumps(payload, indent=2, default=str))
        elif text is not None:
            print(text)

    def stage(self, desc: str):
        """A progress stage for a step that may take a while (:func:`core.progress.stage`): on stderr, so
        ``--json`` output on stdout stays clean."""
        from core.progress import stage

        return stage(desc)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def add_collection(parser: argparse.ArgumentParser, *, required: bool = True, **kwargs: Any) -> None:
    parser.add_argument("--collection", "-c", required=required, **kwargs)


def setting_flag(parser: argparse.ArgumentParser, *flags: str, setting: str, **kwargs: Any) -> None:
    """A flag that overrides the setting ``setting`` (dotted key) for this command."""
    action = parser.add_argument(*flags, default=None, **kwargs)
    mapping = dict(parser.get_default("setting_flags") or {})
    mapping[action.dest] = setting
    parser.set_defaults(setting_flags=mapping)


def add_subcommand(subparsers: argparse._SubParsersAction, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A sub-command parser that also takes the common options (-v, --config, --set)."""
    return subparsers.add_parser(name, parents=[_COMMON], **kwargs)


def add_command(subparsers: argparse._SubParsersAction, name: str, func: Any, *, collection: str = "required",
                json: bool = True, **kwargs: Any) -> argparse.ArgumentParser:
    """A runnable sub-command: the common options, ``-c/--collection`` (``collection`` is "required",
    "optional" or "none"), ``--json`` and its handler ``func(args, ctx) -> exit code``."""
    parser = add_subcommand(subparsers, name, **kwargs)
    if collection != "none":
        add_collection(parser, required=collection == "required")
    if json:
        add_json_flag(parser)
    parser.set_defaults(func=func)
    return parser


INT64_MAX = 2**63 - 1


def int64(text: str) -> int:
    """An integer flag: versions, ids and counts fit a 64-bit registry column, or argparse says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if not -INT64_MAX <= value <= INT64_MAX:
        raise argparse.ArgumentTypeError(f"{text} is out of range (at most {INT64_MAX})")
    return value


int64.__name__ = "integer"  # argparse names the type in its messages


def _bound_integers(parser: argparse.ArgumentParser) -> None:
    # Every ``type=int`` flag of every command becomes int64, so no command can pass an integer the
    # registry (SQLite's driver, PostgreSQL's bigint) would refuse with a traceback.
    for action in parser._actions:
        if action.type is int:
            action.type = int64
        for sub in (action.choices or {}).values() if isinstance(action, argparse._SubParsersAction) else ():
            _bound_integers(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steward",
        description="Continual embedding maintenance: ingest, drift, retrain, gate, index, rollback.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"steward {__version__}")
    parser.add_argument("--config", help="path to steward.toml (default: $STEWARD_CONFIG or ./steward.toml)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a setting, e.g. --set drift.alpha=0.01 (repeatable)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import steward.commands as commands_pkg

    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"steward.commands.{info.name}")
        module.register(subparsers)
    _bound_integers(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    ctx = CommandContext(args)
    try:
        return int(args.func(args, ctx) or 0)
    except StewardError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
