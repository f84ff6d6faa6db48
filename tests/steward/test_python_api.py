"""The Python API: cheap to import, mirrors the CLI, and the README's example runs as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tests.factories import feature_table

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "prefect", "evidently", "faiss", "pandas", "sklearn", "pytorch_metric_learning", "sqlalchemy",
         "numpy", "pyarrow", "mlflow", "fastapi")


def test_import_steward_is_cheap() -> None:
    code = f"import sys, steward\nprint(callable(steward.open), [m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True []"


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    for var in [v for v in env if v.startswith("STEWARD_") or v == "PREFECT_API_URL"]:
        env.pop(var)
    (tmp_path / "example.py").write_text(_readme_example())
    out = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "promoted model v1 + index 1" in out.stdout
    assert (tmp_path / ".steward" / "registry.db").exists()


def test_the_api_and_the_cli_see_the_same_home(tmp_path: Path, capsys, monkeypatch) -> None:
    import steward
    from steward.cli import main

    path = tmp_path / "b.parquet"
    pq.write_table(feature_table(40, dim=4), path)
    with steward.open(home=tmp_path / "home", drift_alpha=0.01) as st:
        assert st.settings.drift.alpha == 0.01
        result = st.ingest("c", path)
        assert result.batch_seq == 1 and result.rows == 40
        assert [c.name for c in st.collections()] == ["c"]
        assert st.to_json(st.batches("c"))[0]["data_path"].startswith(str(tmp_path / "home"))
        assert st.status("c").latest_batch == 1 and st.production("c") is None
        assert st.alerts("c") == [] and st.models("c") == []
    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "home"))
    assert main(["batches", "list", "-c", "c"]) == 0
    assert "1" in capsys.readouterr().out
