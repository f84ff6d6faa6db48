from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.errors import NotFoundError
from monitoring.check import check_drift, past_effects
from monitoring.config import DriftConfig
from monitoring.decision import EFFECT_SCALE
from monitoring.summary import DriftSummary
from tests.monitoring._data import centres, mixture, table
from tests.monitoring._http import Receiver

DIM = 16
C = centres(6, DIM)
CONFIG = DriftConfig()


@pytest.fixture
def ws(workspace, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("STEWARD_PREFECT_EVENTS", "off")
    rng = np.random.default_rng(0)
    for b in range(3):
        x, y = mixture(rng, 300, C[:5])
        workspace.store.ingest_table(table(x, y, 1000 * b), "shop")
    return workspace


def test_no_drift_records_report_without_alert(ws):
    rng = np.random.default_rng(1)
    x, y = mixture(rng, 200, C[:5])
    ws.store.ingest_table(table(x, y, 9000), "shop")
    res = check_drift(ws, "shop", config=CONFIG)
    assert not res.drifted and res.alert_id is None
    assert res.reference_batches == (1, 2, 3) and res.embedding == "raw"
    assert {"mmd", "classifier", "ks", "novelty", "label_shift", "prototype_displacement"} <= set(res.detectors)
    [report] = ws.registry.monitoring.list_drift_reports("shop")
    assert report.id == res.report_id and report.batch_seq == 4 and not report.drifted
    assert report.summary["n_reference"] == 900 and report.summary["n_current"] == 200
    assert report.summary["detectors"]["mmd"]["p_value"] > 0.01
    assert ws.registry.monitoring.list_alerts("shop") == []
    # The stored summary is the typed contract every reader uses.
    assert DriftSummary.from_report(report) == res


def test_planted_shift_drifts_and_alerts_once(ws):
    rng = np.random.default_rng(2)
    shift = np.zeros(DIM)
    shift[3] = 0.4
    with Receiver() as rx:
        w = replace(ws, settings=replace(ws.settings, webhook_url=rx.url))
        for k in range(2):
            x, y = mixture(rng, 200, C[:5], shift=shift)
            w.store.ingest_table(table(x, y, 9000 + 1000 * k), "shop")
            res = check_drift(w, "shop", config=CONFIG, reference_batches=2)
            assert res.drifted
            if k == 0:
                alert = w.registry.monitoring.get_alert(res.alert_id)
                assert alert.drift_report_id == res.report_id
                assert alert.delivered_at is not None
            else:
                assert res.alert_id is None  # same ongoing drift, inside the dedup window
        assert len(rx.delivered) == 1
        assert "mmd" in rx.delivered[0]["payload"]["detectors"]
    assert len(ws.registry.monitoring.list_drift_reports("shop")) == 2


def test_planted_new_classes_are_flagged_by_novelty(ws):
    rng = np.random.default_rng(3)
    known, _ = mixture(rng, 190, C[:5])
    new, _ = mixture(rng, 10, C[5:])
    x = np.concatenate([known, new])
    # unlabelled batch: the label detectors can't help, novelty must
    ws.store.ingest_table(table(x, np.array([None] * 200, dtype=object), 9000), "shop")
    res = check_drift(ws, "shop", config=CONFIG, notify=False)
    assert "label_shift" not in res.detectors
    assert res.drifted and "novelty" in res.decision.acting
    # the alert and the dashboard can show which items looked new: the planted ones, by id
    named = res.novel_items
    assert list(named) == ws.registry.monitoring.get_drift_report(res.report_id).summary["novel_items"]
    planted = {f"i{9000 + i}" for i in range(190, 200)}
    assert len(named) >= 5 and {x["item_id"] for x in named[:5]} <= planted  # most novel first
    assert sum(x["item_id"] not in planted for x in named) <= len(named) * 0.2  # BH at FDR 0.1


def test_explicit_batch_and_errors(ws):
    res = check_drift(ws, "shop", batch_seq=2, config=CONFIG, notify=False)
    assert res.reference_batches == (1,)
    with pytest.raises(NotFoundError, match="no earlier batch"):
        check_drift(ws, "shop", batch_seq=1, config=CONFIG)
    with pytest.raises(NotFoundError):
        check_drift(ws, "shop", batch_seq=99, config=CONFIG)
    with pytest.raises(NotFoundError):
        check_drift(ws, "nope", config=CONFIG)


def test_alpha_override_is_recorded(ws):
    res = check_drift(ws, "shop", alpha=0.01, config=CONFIG, notify=False)
    assert ws.registry.monitoring.get_drift_report(res.report_id).alpha == 0.01 and res.decision.alpha == 0.01


def test_uses_production_model_and_its_prototypes(ws):
    import torch

    from embedding.inference import ROLE_PROTOTYPES, ROLE_WEIGHTS
    from embedding.model import EmbeddingHead, HeadSpec
    from embedding.prototypes import compute_prototypes
    from storage.parquet_store import features_to_numpy
    from storage.serialization import state_dict_to_bytes

    torch.manual_seed(0)
    spec = HeadSpec(DIM, (32,), 8)
    head = EmbeddingHead(spec).eval()
    ws_name = "shop"
    ref = ws.store.read(ws_name)
    with torch.no_grad():
        feats = torch.from_numpy(np.array(features_to_numpy(ref)))
        emb = torch.nn.functional.normalize(head(feats), dim=1).numpy()
    protos = compute_prototypes(emb, np.array(ref.column("label").to_pylist()))
    artifacts = {
        ROLE_WEIGHTS: ws.artifacts.put_bytes(state_dict_to_bytes(head.state_dict())),
        ROLE_PROTOTYPES: ws.artifacts.put_bytes(protos.to_bytes()),
    }
    mv = ws.registry.models.register_model(
        ws_name, config={"architecture": spec.to_dict(), "input_kind": "features"}, metrics={}, artifacts=artifacts
    )
    ws.registry.models.switch_alias(ws_name, mv.version, actor="test", reason="drift test")
    rng = np.random.default_rng(4)
    x, y = mixture(rng, 200, C[:5])
    ws.store.ingest_table(table(x, y, 9000), ws_name)
    res = check_drift(ws, ws_name, config=CONFIG, notify=False)
    assert res.embedding == f"model v{mv.version}" and res.model_version == mv.version
    assert ws.registry.monitoring.get_drift_report(res.report_id).model_version == mv.version
    assert res.detectors["mmd"].n_current == 200


def test_baseline_learns_from_earlier_accepted_checks_only(ws):
    rng = np.random.default_rng(5)
    for k in range(3):
        x, y = mixture(rng, 200, C[:5])
        ws.store.ingest_table(table(x, y, 9000 + 1000 * k), "shop")
        check_drift(ws, "shop", config=CONFIG, notify=False)
    reports = sorted(ws.registry.monitoring.list_drift_reports("shop"), key=lambda r: r.batch_seq)
    assert [r.batch_seq for r in reports] == [4, 5, 6] and not any(r.drifted for r in reports)
    assert all(r.summary["effect_scale"] == EFFECT_SCALE for r in reports)
    got = past_effects(ws.registry.monitoring, "shop", before_batch=6, model_version=None)
    assert got == [reports[0].summary["effects"], reports[1].summary["effects"]]  # oldest first, not batch 6
    assert past_effects(ws.registry.monitoring, "shop", before_batch=6, model_version=3) == []  # another embedding
    # an acting check, a check on an older effect scale and a superseded check are left out
    ws.registry.monitoring.record_drift_report("shop", batch_seq=5, model_version=None, drifted=True, alpha=0.05,
                                    summary={"effect_scale": EFFECT_SCALE, "effects": {"mmd": 9.0}})
    ws.registry.monitoring.record_drift_report("shop", batch_seq=3, model_version=None, drifted=False, alpha=0.05,
                                    summary={"effects": {"mmd": 7.0}})
    assert past_effects(ws.registry.monitoring, "shop", before_batch=7, model_version=None) == [
        reports[0].summary["effects"], reports[2].summary["effects"]]


def test_a_stream_that_always_moves_this_much_does_not_act(ws):
    """The same shifted batch acts on a young collection and is "significant, small" once the
    collection's history shows batches moving that much all the time."""
    rng = np.random.default_rng(6)
    shift = np.zeros(DIM)
    shift[3] = 0.4
    x, y = mixture(rng, 200, C[:5], shift=shift)
    ws.store.ingest_table(table(x, y, 9000), "shop")
    young = check_drift(ws, "shop", config=CONFIG, notify=False)
    assert young.drifted
    effects = young.effects
    for seq in (1, 2, 3):  # earlier batches whose accepted checks moved as much
        ws.registry.monitoring.record_drift_report("shop", batch_seq=seq, model_version=None, drifted=False, alpha=0.05,
                                        summary={"effect_scale": EFFECT_SCALE, "effects": effects})
    seasoned = check_drift(ws, "shop", config=replace(CONFIG, severity=replace(CONFIG.severity, min_history=3)),
                           notify=False)
    assert seasoned.decision.significant and not seasoned.drifted and seasoned.alert_id is None
    stored = ws.registry.monitoring.get_drift_report(seasoned.report_id)
    assert stored.summary["status"] == "significant, small" and not stored.drifted
    verdict = stored.summary["decision"]["verdicts"]["mmd"]
    assert verdict["threshold"]["source"] == "baseline" and verdict["threshold"]["n_past"] == 3


def _production_with_index(ws):
    """A registered head promoted with an index built as of batch 3 (which keeps the reference embeddings)."""
    import torch

    from embedding.index.service import build_index_for_model
    from embedding.inference import ROLE_WEIGHTS
    from embedding.model import EmbeddingHead, HeadSpec
    from storage.serialization import state_dict_to_bytes

    torch.manual_seed(0)
    spec = HeadSpec(DIM, (32,), 8)
    weights = ws.artifacts.put_bytes(state_dict_to_bytes(EmbeddingHead(spec).eval().state_dict()))
    mv = ws.registry.models.register_model(
        "shop", config={"architecture": spec.to_dict(), "input_kind": "features"}, metrics={},
        artifacts={ROLE_WEIGHTS: weights})
    iv = build_index_for_model(ws, "shop", mv.version, tune_queries=50, progress=False)
    ws.registry.models.switch_alias("shop", mv.version, iv.id, actor="test", reason="drift test")
    return mv, iv


def test_reference_taken_from_the_index_is_not_embedded_again_and_decides_the_same(ws, monkeypatch):
    from embedding.index import reference
    from embedding.inference import Embedder

    _mv, iv = _production_with_index(ws)
    assert iv.params["reference_embeddings"]["batches"] == [1, 2, 3]
    rng = np.random.default_rng(5)
    shift = np.zeros(DIM)
    shift[2] = 0.3
    x, y = mixture(rng, 200, C[:5], shift=shift)
    ws.store.ingest_table(table(x, y, 9000), "shop")

    embedded_ids: list[str] = []
    real = Embedder.embed_table

    def spy(self, t):
        embedded_ids.extend(t.column("item_id").to_pylist())
        return real(self, t)

    monkeypatch.setattr(Embedder, "embed_table", spy)
    with_index = check_drift(ws, "shop", config=CONFIG, notify=False)
    assert sorted(embedded_ids) == sorted(f"i{9000 + i}" for i in range(200))  # the new batch only
    assert "900 of 900 embeddings reused from index" in with_index.reference_items

    embedded_ids.clear()
    monkeypatch.setattr(reference, "reference_for_check", lambda *a, **k: None)  # as before: embed everything
    without = check_drift(ws, "shop", config=CONFIG, notify=False)
    assert len(embedded_ids) == 1100
    assert with_index.decision.status == without.decision.status
    assert with_index.decision.flagged == without.decision.flagged
    assert with_index.decision.acting == without.decision.acting
    for name, det in without.detectors.items():
        assert with_index.detectors[name].p_value == pytest.approx(det.p_value, rel=1e-6, abs=1e-9), name


def test_a_rewritten_reference_item_is_embedded_not_taken_from_the_index(ws):
    from embedding.index.reference import input_digests, reference_for_check

    mv, iv = _production_with_index(ws)
    stored = reference_for_check(ws, "shop", mv.version, [1, 2, 3])
    assert stored is not None and stored[0].id == iv.id
    ref = stored[1]
    t = ws.store.read_batch("shop", 1, columns=["features"])
    digests = input_digests(t, "features")
    digests[0, 0] ^= 1  # the row's content changed since the index was built
    _, found = ref.lookup(t.column("item_id").to_pylist(), digests)
    assert not found[0] and found[1:].all()


def test_html_report_is_written_after_the_decision_is_recorded(ws, monkeypatch, tmp_path):
    import monitoring.evidently_report as er

    seen = {}

    def fake_html(workspace, path, **kwargs):
        # The decision is already stored when the report is rendered.
        [report] = workspace.registry.monitoring.list_drift_reports("shop")
        seen["recorded"] = report.report_artifact is None
        seen["label"] = "label" in kwargs["current_table"].column_names
        return workspace.artifacts.put_bytes(b"<html></html>")

    monkeypatch.setattr(er, "write_html_report", fake_html)
    rng = np.random.default_rng(6)
    x, y = mixture(rng, 100, C[:5])
    ws.store.ingest_table(table(x, y, 9000), "shop")
    res = check_drift(ws, "shop", config=CONFIG, notify=False, html_path=str(tmp_path / "r.html"))
    assert seen == {"recorded": True, "label": True}
    stored = ws.registry.monitoring.get_drift_report(res.report_id)
    assert stored.report_artifact == res.report_artifact is not None
    assert "html" in stored.summary["seconds"]


def test_decision_lines_name_the_status_the_acting_detectors_and_novel_ids(ws):
    from monitoring.alerts import alert_text
    from monitoring.summary import decision_lines

    rng = np.random.default_rng(3)
    known, _ = mixture(rng, 190, C[:5])
    new, _ = mixture(rng, 10, C[5:])
    ws.store.ingest_table(table(np.concatenate([known, new]), np.array([None] * 200, dtype=object), 9000), "shop")
    res = check_drift(ws, "shop", config=CONFIG, notify=False)
    lines = decision_lines(res, novel=3)
    assert lines[0].startswith("status: drift — acts")
    assert lines[1].startswith("acting: ") and "novelty (effect " in lines[1] and "vs threshold" in lines[1]
    [novel] = [line for line in lines if line.startswith("novel items")]
    assert novel.split(": ", 1)[1].count(", ") == 2 and all(n["item_id"] in novel for n in res.novel_items[:3])
    assert f"(+{len(res.novel_items) - 3} more in the JSON)" in novel
    text = alert_text(res)
    assert "status: drift" in text and res.novel_items[0]["item_id"] in text

    small = replace(res, decision=replace(res.decision, drifted=False, acting=()))
    lines = decision_lines(small)
    assert lines[0].startswith("status: significant, small — reported, does not act")
    assert lines[1] == "acting: none" and lines[2].startswith("significant, small: ")


def test_extra_detectors_setting_adds_an_opt_in_detector_and_refuses_unknown_names(ws):
    from dataclasses import replace as dc_replace

    from core.errors import ConfigError

    assert "neighbourhood" not in check_drift(ws, "shop", config=CONFIG, notify=False).detectors
    opted = dc_replace(ws, settings=ws.settings.replace(**{"drift.extra_detectors": "neighbourhood"}))
    res = check_drift(opted, "shop", config=CONFIG, notify=False)
    assert "neighbourhood" in res.detectors and "mmd" in res.detectors
    wrong = dc_replace(ws, settings=ws.settings.replace(**{"drift.extra_detectors": "neighborhood"}))
    with pytest.raises(ConfigError, match="'neighborhood'"):
        check_drift(wrong, "shop", config=CONFIG, notify=False)
