from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tests.factories import feature_table

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "prefect", "evidently", "faiss", "pandas", "sklearn", "pytorch_metric_learning", "sqlalchemy")


def test_help_imports_nothing_heavy() -> None:
    # `steward --help` must stay fast: no command module may import a heavy library at import time.
    code = (
        "import sys, contextlib, io\n"
        "from steward.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _steward(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STEWARD_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_API_URL", None)
    cwd = next(p for p in (home, *home.parents) if p.exists())
    return subprocess.run([sys.executable, "-m", "steward.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_ingest_cli_reports_json_and_errors_without_traceback(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = tmp_path / "b.parquet"
    pq.write_table(feature_table(12, dim=4), path)
    ok = _steward(home, "ingest", str(path), "--collection", "c", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["rows"] == 12
    again = _steward(home, "ingest", str(path), "--collection", "c")
    assert again.returncode == 0 and "already ingested" in again.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    refused = _steward(home, "ingest", str(bad), "--collection", "c")
    assert refused.returncode == 3
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip().startswith("error:") and "item_id" in refused.stderr

    missing = _steward(home, "rollback", "--collection", "nope")
    assert missing.returncode == 4 and "does not exist" in missing.stderr

    status = _steward(home, "status", "--collection", "c", "--json")
    assert json.loads(status.stdout)["latest_batch"] == 1


def _leaf_parsers(parser, path=()):
    """(command path, parser) of every runnable sub-command."""
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaf_parsers(sub, (*path, name))


def test_every_command_takes_config_set_verbose_and_collection_flags() -> None:
    from steward.cli import build_parser

    leaves = dict(_leaf_parsers(build_parser()))
    assert len(leaves) >= 15
    for path, parser in leaves.items():
        options = {s for a in parser._actions for s in a.option_strings}
        assert {"--config", "--set", "-v"} <= options, path
        if "--collection" in options:
            assert "-c" in options, path  # the short form works wherever the long one does


def test_config_file_reaches_a_command_after_the_subcommand(tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    pq.write_table(feature_table(12, dim=4), path)
    elsewhere = tmp_path / "elsewhere"
    cfg = tmp_path / "x.toml"
    cfg.write_text(f'database_url = "sqlite:///{elsewhere / "reg.db"}"\ndata_uri = "{elsewhere / "data"}"\n')
    home = tmp_path / "home"
    ok = _steward(home, "ingest", str(path), "-c", "c", "--config", str(cfg), "--json")
    assert ok.returncode == 0, ok.stderr
    assert (elsewhere / "reg.db").exists() and (elsewhere / "data" / "c").is_dir()
    assert not (home / "registry.db").exists()  # the default home's registry was never touched
    status = _steward(home, "--config", str(cfg), "status", "-c", "c", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["latest_batch"] == 1
    bad = _steward(home, "status", "--set", "drift.alpha=2")
    assert bad.returncode == 2 and "drift.alpha" in bad.stderr


def test_run_without_prefect_on_a_home_that_does_not_exist_yet_then_operator_commands(tmp_path: Path) -> None:
    from steward.demo import digits_stream, write_batch

    x, y, stream = digits_stream(4, seed=0)
    files = [write_batch(tmp_path / f"{b.name}.parquet", x, y, b, seed=i) for i, b in enumerate(stream[:3])]
    home = tmp_path / "not" / "there" / "yet"
    env_args = ("--set", "maintenance.retrain_policy=new-data")
    first = _steward(home, "run", "-c", "digits", str(files[0]), "--json", *env_args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["production"]["model_version"] == 1
    third = _steward(home, "run", "-c", "digits", str(files[1]), str(files[2]), *env_args)
    assert third.returncode == 0 and "promoted model v2" in third.stdout, third.stdout + third.stderr

    back = _steward(home, "rollback", "-c", "digits", "--reason", "v2 misranks", "--exclude-batches", "--json")
    payload = json.loads(back.stdout)
    assert payload["to_model"] == 1 and payload["pinned"] is True and payload["batches_excluded"] == [2, 3]
    listing = _steward(home, "batches", "list", "-c", "digits")
    assert listing.stdout.count("EXCLUDED") == 2 and "rolled back from v2: v2 misranks" in listing.stdout
    status = _steward(home, "status", "-c", "digits")
    assert "pinned by" in status.stdout and "batch 2 excluded from training" in status.stdout
    again = _steward(home, "run", "-c", "digits", "--force")
    assert again.returncode == 0 and "production now   model v1 + index 1 (pinned)" in again.stdout, again.stdout
    assert _steward(home, "batches", "include", "-c", "digits", "2", "3").returncode == 0
    unpin = _steward(home, "unpin", "-c", "digits")
    assert unpin.returncode == 0 and "never re-promote v2" in unpin.stdout


def test_a_held_lock_ends_with_one_error_line_and_exit_code_5(tmp_path: Path) -> None:
    import socket

    from storage.registry import open_registry

    home = tmp_path / "home"
    path = tmp_path / "b.parquet"
    pq.write_table(feature_table(30, dim=4), path)
    assert _steward(home, "ingest", str(path), "-c", "c").returncode == 0
    registry = open_registry(f"sqlite:///{home / 'registry.db'}")
    holder = f"other@{socket.gethostname()}:{os.getpid()}"  # a live process: this test
    assert registry.runs.try_acquire_lock("maintenance:c", owner=holder, ttl_seconds=600)
    out = _steward(home, "run", "-c", "c")
    registry.dispose()
    assert out.returncode == 5 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [(f"error: lock 'maintenance:c' is held by {holder} until "
                                               f"{out.stderr.split('until ')[1].split(' UTC')[0]} UTC; wait for that "
                                               "run to finish")]


def test_reading_contracts_and_running_the_cycle_imports_nothing_heavy() -> None:
    # What `steward status`, `models list` and a run with nothing new need: no torch, Prefect, faiss or
    # Evidently (they cost seconds each); training and embedding import them when they run.
    code = ("import sys\nimport embedding.report, embedding.gate, monitoring.status, monitoring.summary, "
            "maintenance.cycle, maintenance.steps, storage.workspace\n"
            f"print([m for m in {HEAVY[:5]!r} if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_status_line_tells_significant_but_small_drift_from_none() -> None:
    from monitoring.status import CollectionStatus, DriftCheckView
    from steward.commands.registry import _status_line

    def line(drifted: bool, flagged: tuple[str, ...]) -> str:
        check = DriftCheckView(1, 4, drifted, flagged, 0.01, "2026-01-01T00:00:00Z")
        return _status_line(CollectionStatus("c", None, 4, check, (), None, 1))

    assert "last drift check significant, small on batch 4" in line(False, ("mmd",))
    assert "last drift check DRIFT on batch 4" in line(True, ("mmd",))
    assert "last drift check no drift on batch 4" in line(False, ())
    assert "undelivered" not in line(False, ())  # no webhook configured: nothing is undelivered
