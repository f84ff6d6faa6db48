"""`steward labels suspect`, groups in `models show`, `steward retrain --from-run` and `steward runs`,
in-process, and the Python API's mirror of them."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from steward.cli import main
from tests.factories import feature_table


def _batch(tmp_path):
    t = feature_table(150, dim=6, n_classes=3, spread=0.4)
    labels = t.column("label").to_pylist()
    labels[1] = "c1" if labels[1] != "c1" else "c0"  # one wrong label (i1: a training item, not held out)
    groups = ["small" if i % 6 == 0 else "large" for i in range(t.num_rows)]
    t = t.set_column(t.schema.get_field_index("label"), "label", pa.array(labels)).append_column(
        "group", pa.array(groups))
    path = tmp_path / "b.parquet"
    pq.write_table(t, path)
    return path


def test_labels_groups_and_reproducible_runs_from_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STEWARD_EVALUATION_GROUP_COLUMN", "group")
    monkeypatch.chdir(tmp_path)
    assert main(["ingest", str(_batch(tmp_path)), "-c", "c"]) == 0
    capsys.readouterr()

    # Before any model: the raw features decide the neighbours.
    assert main(["labels", "suspect", "-c", "c", "--batch", "1"]) == 0
    text = capsys.readouterr().out
    assert "raw input features" in text and "i1 " in text

    assert main(["retrain", "-c", "c", "--epochs", "3", "--seed", "3", "--suspect-weight", "0.5", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["report"]["training"]["suspects_flagged"] >= 1
    assert set(first["report"]["evaluation"]["per_group"]) == {"small", "large"}
    assert main(["promote", "-c", "c", "--model", "1"]) == 0
    capsys.readouterr()

    assert main(["models", "show", "-c", "c", "1"]) == 0
    text = capsys.readouterr().out
    assert "groups (group):" in text and "small" in text and "largest gap" in text and "suspect labels:" in text

    assert main(["labels", "suspect", "-c", "c", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model_version"] == 1 and report["batch"] is None
    assert "i1" in [s["item_id"] for s in report["suspects"]]

    assert main(["retrain", "-c", "c", "--from-run", "1", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["model_version"] == 2 and again["parent_version"] is None
    assert again["report"]["evaluation"] == first["report"]["evaluation"]
    assert main(["runs", "list", "-c", "c"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "seed 3" in lines[0] and "(reproduces run 1)" in lines[1]
    assert main(["runs", "show", "2"]) == 0
    assert '"from_run": 1' in capsys.readouterr().out
    assert main(["retrain", "-c", "c", "--from-run", "99"]) == 4  # not found
    assert main(["retrain", "-c", "c", "--from-run", "1", "--seed", "4"]) == 2  # options it would ignore
    assert "drop ['seed']" in capsys.readouterr().err


def test_python_api_mirrors_the_cli(tmp_path):
    import steward

    with steward.open(home=tmp_path / "home", evaluation_group_column="group") as st:
        st.ingest("c", _batch(tmp_path))
        out = st.retrain("c", progress=False, epochs=2, seed=1)
        report = st.suspect_labels("c", batch=1)
        assert report.collection == "c" and "i1" in report.item_ids()
        assert st.to_json(report)["flagged"] == len(report.suspects)
        runs = st.training_runs("c")
        assert [r.id for r in runs] == [out.training_run.id]
        assert st.to_json(st.training_run(runs[0].id))["details"]["seed"] == 1
        again = st.retrain("c", from_run=runs[0].id, progress=False)
        assert again.report.evaluation.overall == out.report.evaluation.overall
        assert np.isclose(again.report.evaluation.group_gap, out.report.evaluation.group_gap)
