"""``steward shadow report``, ``Steward.shadow_report`` and ``steward api``'s shadow flags; the shape is documented."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from storage.registry.entities import ShadowRecord
from tests.json_docs import documented_fields as _documented


def _seed(home) -> None:
    from storage.workspace import open_workspace
    from tests.factories import make_settings

    ws = open_workspace(make_settings(home))
    try:
        ws.registry.catalog.ensure_collection("shop", kind="features", dim=4)
        t0 = datetime(2026, 11, 27, tzinfo=UTC)
        ws.registry.shadow.record(
            [ShadowRecord("shop", 1, 1, 2, 2, 10, 1, 0.7, 1, i % 2, 1, 1.0 + i, 2.0, t0 + timedelta(seconds=i))
             for i in range(20)]
            + [ShadowRecord("shop", 1, 1, 3, 3, 10, 1, 0.1, 0, 0, 0, 1.0, 1.0, t0)])
    finally:
        ws.registry.dispose()


def test_shadow_report_cli_json_and_text(tmp_path, capsys, monkeypatch) -> None:
    from steward.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("STEWARD_HOME", str(home))
    monkeypatch.delenv("STEWARD_CONFIG", raising=False)
    _seed(home)
    capsys.readouterr()
    assert main(["shadow", "report", "-c", "shop", "--version", "2", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["shadow_model"], body["requests"], body["labelled"]) == (2, 20, 20)
    assert abs(body["overlap_at_k"]["value"] - 0.7) < 1e-9
    assert body["production_hit_rate"]["value"] == 0.5 and body["shadow_hit_rate"]["value"] == 1.0
    assert body["first_at"].endswith("Z")
    docs = _documented()["shadow_report"]
    assert set(body) <= docs and docs - set(body) == {"live"}  # live: API only
    assert main(["shadow", "report", "-c", "shop"]) == 0  # newest pair recorded: v3
    text = capsys.readouterr().out
    assert "shadow v3 against production v1" in text and "other pairs recorded: v2 vs v1 (20 queries)" in text


def test_python_api_and_api_flags(tmp_path, monkeypatch) -> None:
    import steward
    from steward.cli import build_parser

    _seed(tmp_path / "home")
    with steward.open(home=tmp_path / "home") as st:
        report = st.shadow_report("shop", version=2)
        assert report.requests == 20 and st.to_json(report)["shadow_model"] == 2
    args = build_parser().parse_args(["api", "--shadow-fraction", "0.1", "--shadow-version", "4"])
    assert args.setting_flags["shadow_fraction"] == "shadow.fraction" and args.shadow_version == 4
