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
