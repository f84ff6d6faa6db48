"""Test doubles for the search service: a registry world on real SQLite plus fake model/index loaders.

Each fake model version embeds with its own random rotation, and each fake index holds the gallery
embedded by its own model. A query made from a gallery item's features therefore finds that item
with score ~1.0 only when the embedder and the index come from the same model version: a response
that mixed versions would show it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from core.errors import ArtifactIntegrityError, NotFoundError
from embedding.index.ann import SearchResult
from steward.api.serving import ServingPair

TOKEN = "s3cret-token"
COLLECTION = "digits"
DIM_IN = 8
DIM_OUT = 16
N_ITEMS = 40


def gallery() -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(0)
    return [f"item-{i:03d}" for i in range(N_ITEMS)], rng.normal(size=(N_ITEMS, DIM_IN)).astype(np.float32)


class FakeEmbedder:
    input_kind = "features"
    output_dim = DIM_OUT

    def __init__(self, model_version: int) -> None:
        self.model_version = model_version
        rng = np.random.default_rng(1000 + model_version)
        self.weights = rng.normal(size=(DIM_IN, DIM_OUT)).astype(np.float32)

    def embed_features(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] != DIM_IN:
            raise ValueError("wrong dim reached the embedder")  # the service must catch this first
        out = x @ self.weights
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


class FakeIndex:
    def __init__(self, index_version: int, embedder: FakeEmbedder) -> None:
        self.index_version = index_version
        self.ids, feats = gallery()
        self.vectors = embedder.embed_features(feats)
        self.dim = DIM_OUT

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    def search(self, vectors: np.ndarray, k: int, filter: Any = None) -> SearchResult:
        sims = vectors @ self.vectors.T
        order = np.argsort(-sims, axis=1)[:, :k]
        return SearchResult(
            item_ids=[[self.ids[j] for j in row] for row in order],
            scores=np.take_along_axis(sims, order, axis=1),
        )

    def search_ids(self, item_ids: list[str], k: int) -> SearchResult:
        missing = [i for i in item_ids if i not in self.ids]
        if missing:
            raise NotFoundError(f"item ids {missing} are not in index {self.index_version}")
        rows = np.stack([self.vectors[self.ids.index(i)] for i in item_ids])
        return self.search(rows, k)


class FakeLoader:
    """Builds fake pairs; ``delay`` simulates a slow load, ``broken`` model versions fail their checksum."""

    def __init__(self, delay: float = 0.0, broken: set[int] | None = None) -> None:
        self.delay = delay
        self.broken = set(broken or ())
        self.calls: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def __call__(
        self, workspace: Any, collection: str, model_version: int, index_version: int
    ) -> ServingPair:
        with self._lock:
            self.calls.append((model_version, index_version))
        meta = workspace.registry.models.get_index(index_version)
        assert meta.model_version == model_version, "service asked for a mismatched pair"
        if self.delay:
            time.sleep(self.delay)
        if model_version in self.broken:
            raise ArtifactIntegrityError(f"artifact of model v{model_version} failed its checksum (fake)")
        embedder = FakeEmbedder(model_version)
        return ServingPair(
            collection=collection,
            model_version=model_version,
            index_version=index_version,
            embedder=embedder,
            index=FakeIndex(index_version, embedder),
            input_dim=DIM_IN,
            input_kind="features",
        )


def model_metrics(v: int) -> dict[str, Any]:
    """A model report as the retrain service stores it: MAP@R old/new/overall and forgetting."""
    from embedding.gate import GateDecision
    from embedding.metrics import EvaluationReport
    from embedding.report import ModelReport, TrainingSummary

    evaluation = EvaluationReport.from_dict({"overall": {"map_at_r": 0.55 + v / 100},
                                             "old": {"map_at_r": 0.5 + v / 100}, "new": {"map_at_r": 0.6 + v / 100}})
    return ModelReport(evaluation, GateDecision(True, ()), TrainingSummary(mode="incremental"),
                       forgetting={"a": 0.01 * v}).to_dict()


def populate(workspace: Any, models: int = 3) -> dict[int, int]:
    """Collection, ``models`` model versions with one index each, v1 in production; model -> index id."""
    registry = workspace.registry
    registry.catalog.ensure_collection(COLLECTION, kind="features", dim=DIM_IN)
    pairs = {}
    for v in range(1, models + 1):
        model = registry.models.register_model(
            COLLECTION,
            config={"loss": "multi_similarity"},
            metrics=model_metrics(v),
            artifacts={},
            parent_version=v - 1 or None,
            trained_on_batch=v,
        )
        index = registry.models.register_index(
            COLLECTION,
            model.version,
            factory="Flat",
            params={},
            metrics={"recall_at_10": 0.95 + v / 1000, "latency_ms_p50": 0.1 * v},
            artifact=f"{v:064x}",
            as_of_batch=v,
            num_vectors=N_ITEMS,
        )
        pairs[model.version] = index.id
    registry.models.switch_alias(COLLECTION, 1, pairs[1], actor="test", reason="first model")
    return pairs


def self_match_ok(response: dict[str, Any], query_ids: list[str]) -> bool:
    """True when every query's top hit is itself with score ~1 (embedder and index agree)."""
    for qid, hits in zip(query_ids, response["results"], strict=True):
        if hits["item_ids"][0] != qid or hits["scores"][0] < 0.999:
            return False
    return True


EVIL_LABEL = '<script>alert("x")</script>'  # a class label a user could ingest: pages must escape it


def _evaluated(v: int, classes: list[str], old: list[str], accepted: bool = True) -> dict[str, Any]:
    """A model report with per-class numbers (class i of version v: 0.4 + 0.05 i + 0.02 v)."""
    from embedding.gate import GateCheck, GateDecision
    from embedding.metrics import EvaluationReport
    from embedding.report import ModelReport, TrainingSummary

    per = {c: {"map_at_r": 0.4 + 0.05 * i + 0.02 * v, "precision_at_1": 0.6 + 0.02 * v} for i, c in enumerate(classes)}
    evaluation = EvaluationReport.from_dict({
        "num_items": 60, "num_classes": len(classes), "overall": {"map_at_r": 0.55 + v / 100, "precision_at_1": 0.7},
        "old": {"map_at_r": 0.5 + v / 100}, "new": {"map_at_r": 0.6 + v / 100}, "per_class": per,
        "old_classes": old})
    check = GateCheck("old", accepted, 0.01 if accepted else 0.06, -0.01, 0.03, 0.02, "old classes, paired bootstrap")
    reasons = ("no class lost more than the limit",) if accepted else ("old classes lost 0.06 MAP@R (limit 0.02)",)
    return ModelReport(evaluation, GateDecision(accepted, reasons, (check,)),
                       TrainingSummary(mode="incremental", epochs_run=3 + v, seconds=12.5),
                       forgetting={c: 0.01 * v for c in old},
                       compatibility={"comparable": True, "new_vs_old_map_at_r": 0.5, "new_vs_new_map_at_r": 0.6}).to_dict()


def _drift_summary(batch: int, model_version: int, p: float, effect: float, novel_ids: list[str]) -> dict[str, Any]:
    from monitoring.decision import EFFECT_SCALE, decide
    from monitoring.detectors.base import DetectorResult

    results = {"mmd": DetectorResult("mmd", 0.1, p, effect, "MMD² between the batches", 80, 40),
               "novelty": DetectorResult("novelty", 0.0, min(1.0, p * 3), effect * 5, "share of novel rows", 80, 40)}
    decision = decide(results, 0.05)
    return {"batch_seq": batch, "model_version": model_version, "embedding": f"model v{model_version}",
            "n_reference": 80, "n_current": 40, "drifted": decision.drifted, "decision": decision.to_dict(),
            "detectors": {k: r.to_dict() for k, r in results.items()},
            "effects": {k: r.effect for k, r in results.items()}, "effect_scale": EFFECT_SCALE,
            "novel_items": [{"rank": i + 1, "row": i, "p_value": 0.001, "score": 0.4, "item_id": n}
                            for i, n in enumerate(novel_ids)]}


def populate_rich(workspace: Any) -> dict[int, int]:
    """A collection people would look at: four labelled batches (one class label is markup), three model
    versions with per-class reports and real index artifacts, drift checks with effects and novel
    items, an alert answered by a rollback and an open one. Production ends on v2; model -> index id."""
    from embedding.index.ann import AnnIndex
    from storage.parquet_store import features_to_numpy
    from tests.factories import feature_table

    registry = workspace.registry
    classes = ["c0", "c1", EVIL_LABEL]
    for seq in range(1, 5):
        table = feature_table(30, DIM_IN, n_classes=3, seed=seq, start=30 * (seq - 1))
        labels = [EVIL_LABEL if lab == "c2" else lab for lab in table["label"].to_pylist()]
        table = table.set_column(table.schema.get_field_index("label"), "label", pa_array(labels))
        workspace.store.ingest_table(table, COLLECTION, source=f"batch-{seq}")
    pairs = {}
    for v, (old, accepted) in enumerate([([], True), (["c0", "c1"], True), (classes, False)], start=1):
        as_of = v + 1
        gallery = workspace.store.read(COLLECTION, as_of=as_of, columns=["features"])
        vectors = features_to_numpy(gallery) @ np.random.default_rng(v).normal(size=(DIM_IN, DIM_OUT))
        ann = AnnIndex.build(gallery["item_id"].to_pylist(), vectors.astype(np.float32))
        model = registry.models.register_model(COLLECTION, config={"loss": "multi_similarity"},
                                               metrics=_evaluated(v, classes[: 2 + (v > 1)], old, accepted),
                                               artifacts={}, parent_version=v - 1 or None, trained_on_batch=as_of)
        index = registry.models.register_index(
            COLLECTION, model.version, factory=ann.factory, params={},
            metrics={"recall_at_10": 0.95 + v / 1000, "latency_p50_ms": 0.1 * v, "build_seconds": 0.01},
            artifact=workspace.artifacts.put_bytes(ann.to_bytes()), as_of_batch=as_of, num_vectors=ann.ntotal)
        pairs[model.version] = index.id
        run = registry.runs.start_training_run(COLLECTION, kind="incremental", batches=list(range(1, as_of + 1)),
                                               details={"prefect_flow_run_id": f"run-{v}"})
        registry.runs.finish_training_run(run.id, status="finished", model_version=model.version)
    for seq, mv, p, effect, novel in ((2, 1, 0.3, 0.001, []), (3, 1, 0.001, 0.02, ["i61", "i62"]),
                                      (3, 2, 0.002, 0.002, []), (4, 2, 0.004, 0.0015, ["i95"])):
        summary = _drift_summary(seq, mv, p, effect, novel)
        report = registry.monitoring.record_drift_report(COLLECTION, batch_seq=seq, model_version=mv,
                                                         drifted=summary["drifted"], alpha=0.05, summary=summary)
        if summary["drifted"]:
            registry.monitoring.add_alert(COLLECTION, kind="drift", message=f"Drift detected in batch {seq}\nmmd",
                                          payload={}, dedup_key=f"d{seq}", drift_report_id=report.id)
    registry.models.switch_alias(COLLECTION, 1, pairs[1], actor="test", reason="first model")
    registry.models.switch_alias(COLLECTION, 2, pairs[2], actor="ci", reason="passed the gate")
    registry.monitoring.add_alert(COLLECTION, kind="data_quality", message="batch 4: 3 rows quarantined",
                                  payload={}, dedup_key="q4")
    return pairs


def pa_array(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, pa.string())
