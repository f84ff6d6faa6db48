"""The Python API: what the CLI does, as method calls returning the typed contracts.

    import steward

    with steward.open(home="./.steward") as st:
        st.ingest("shop", "batch-1.parquet")
        summary = st.run("shop")                   # maintenance.summary.MaintenanceSummary
        hits = st.search("shop", item_ids=["a1"])  # SearchResult

A thin facade: each method is one library call on the workspace (the same calls the CLI's commands
make; most commands go through these methods), so the two cannot disagree. Objects come back as
the library's own types (``DriftSummary``, ``ModelReport``, ``MaintenanceSummary``,
``CollectionStatus``, the registry's entities); :func:`to_json` gives any of them the JSON shape the
CLI's ``--json`` prints and the HTTP API serves (:mod:`steward.shapes`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from core.settings import Settings
    from embedding.config import TrainConfig
    from embedding.label_noise import SuspectReport
    from embedding.report import ModelReport
    from embedding.retrain import RetrainOutcome
    from maintenance.summary import MaintenanceSummary
    from monitoring.alerts import AlertRecord
    from monitoring.shadow import ShadowReport
    from monitoring.status import CollectionStatus
    from monitoring.summary import DriftSummary
    from storage.parquet_store import IngestResult
    from storage.registry.entities import (
        AliasChange,
        AliasTarget,
        Batch,
        Collection,
        IndexVersion,
        ModelVersion,
        TrainingRun,
    )
    from storage.retention import GcResult
    from storage.workspace import Workspace

PathLike = str | os.PathLike[str]


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """Nearest neighbours of each query, best first, from one index version of one model version."""

    collection: str
    model_version: int
    index_version: int
    k: int
    item_ids: list[list[str]]
    scores: Any  # numpy (n_queries, k): cosine similarities
    query_item_ids: list[str] | None = None  # the queries, when they were items of the index

    def to_dict(self) -> dict[str, Any]:
        from steward.shapes import search_result

        return search_result(self.collection, self.model_version, self.index_version, self.k, self.item_ids,
                             self.scores, self.query_item_ids)


def load(home: PathLike | None = None, config: PathLike | None = None, **overrides: Any) -> Settings:
    """Settings as the CLI resolves them: ``overrides`` (flat or dotted names, e.g. ``drift_alpha=0.01``)
    > environment > ``config`` (else $STEWARD_CONFIG or ./steward.toml) > defaults; ``home`` overrides too.
    Secrets named as Prefect blocks (``secrets.*``) are read."""
    from core.settings import load_settings
    from flows.secrets import resolve_secrets

    values = dict(overrides)
    if home is not None:
        values["home"] = str(home)
    return resolve_secrets(load_settings(config_path=config, overrides=values))


class Steward:
    """One steward home (its registry, stores and settings). Open with :func:`steward.open`."""

    def __init__(self, settings: Settings, workspace: Workspace | None = None) -> None:
        self.settings = settings
        self._workspace = workspace
        self._indexes: dict[int, Any] = {}  # loaded ANN indexes by version id (loading verifies checksums)

    @property
    def workspace(self) -> Workspace:
        """The stores (registry, artifacts, items, production) for power users and plug-ins."""
        if self._workspace is None:
            from embedding.observers import open_observed_workspace

            self._workspace = open_observed_workspace(self.settings)
        return self._workspace

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()
            self._workspace = None
        self._indexes.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"steward.open(home={str(self.settings.home)!r})"

    def to_json(self, obj: Any) -> Any:
        """``obj`` (anything a method here returns) in its JSON shape, as ``--json`` and the API give it."""
        return to_json(obj, data_uri=self.settings.data_uri)

    # --- collections and data --------------------------------------------------------------------

    def collections(self) -> list[Collection]:
        return self.workspace.registry.catalog.list_collections()

    def batches(self, collection: str) -> list[Batch]:
        return self.workspace.registry.catalog.list_batches(collection)

    def ingest(self, collection: str, source: PathLike | pa.Table) -> IngestResult:
        """Validate and store one batch (a Parquet/CSV/JSONL path, or a pyarrow Table)."""
        store = self.workspace.store
        if isinstance(source, (str, os.PathLike)):
            return store.ingest(str(source), collection)
        return store.ingest_table(source, collection)

    def exclude_batches(self, collection: str, seqs: Iterable[int], *, reason: str) -> list[Batch]:
        catalog = self.workspace.registry.catalog
        return [catalog.exclude_batch(collection, seq, reason=reason) for seq in seqs]

    def include_batches(self, collection: str, seqs: Iterable[int]) -> list[Batch]:
        catalog = self.workspace.registry.catalog
        return [catalog.include_batch(collection, seq) for seq in seqs]

    # --- monitoring ------------------------------------------------------------------------------

    def drift(self, collection: str, batch: int | None = None, *, model_version: int | None = None,
              html: PathLike | None = None, notify: bool = True) -> DriftSummary:
        """Check a batch (default: the latest) against the batches before it; see ``steward drift``."""
        from monitoring.check import check_drift

        return check_drift(self.workspace, collection, batch, model_version=model_version,
                           html_path=None if html is None else str(html), notify=notify)

    def status(self, collection: str) -> CollectionStatus:
        from monitoring.status import collection_status

        return collection_status(self.workspace, collection)

    def alerts(self, collection: str, *, open_only: bool = False, limit: int | None = None) -> list[AlertRecord]:
        """The alert history, newest first: open ones and those a production change answered."""
        from monitoring.alerts import alert_history

        return alert_history(self.workspace, collection, open_only=open_only, limit=limit)

    def shadow_report(self, collection: str, *, version: int | None = None,
                      production_version: int | None = None) -> ShadowReport:
        """Shadow A/B (``steward api --shadow-fraction``): how ``version`` (default: the newest recorded)
        answered mirrored live queries against production: overlap@k, hit rates, latency."""
        from monitoring.shadow import shadow_report

        return shadow_report(self.workspace.registry, collection, shadow_model=version,
                             production_model=production_version)

    # --- training --------------------------------------------------------------------------------

    def train_config(self, collection: str, *, full: bool = False, **changes: Any) -> TrainConfig:
        """The config a retrain uses: production's (else the defaults) with ``changes`` applied;
        ``epochs`` means ``incremental_epochs`` for an incremental update."""
        from embedding.config import TrainConfig

        production = self.workspace.production
        target = production.target(collection)
        base = TrainConfig()
        if target is not None:
            prod = production.model(collection, target.model_version)
            if "train_config" in prod.config:
                base = TrainConfig.from_dict(prod.config["train_config"])
        if changes.get("epochs") and not full and target is not None:
            changes["incremental_epochs"] = changes.pop("epochs")
        changes.setdefault("device", self.settings.device or "cpu")
        return base.replace(**{k: v for k, v in changes.items() if v is not None})

    def retrain(self, collection: str, *, full: bool = False, as_of: int | None = None, progress: bool = True,
                from_run: int | None = None, **config: Any) -> RetrainOutcome:
        """Train, evaluate and gate a candidate (never promotes); ``config``: TrainConfig fields.
        ``from_run``: reproduce that training run (its config, seed, data as of, parent and gate settings)."""
        from embedding.retrain import retrain, retrain_from_run

        if from_run is not None:
            given = sorted(k for k, v in config.items() if v is not None and k != "device")
            if given or full or as_of is not None:
                from core.errors import ConfigError

                extra = given + (["full"] if full else []) + (["as_of"] if as_of is not None else [])
                raise ConfigError(f"--from-run {from_run} reproduces that run's own config and data; drop {extra} "
                                  "(or retrain without --from-run to change them)")
            return retrain_from_run(self.workspace, collection, from_run, progress=progress,
                                    device=config.get("device"))
        return retrain(self.workspace, collection, full=full, config=self.train_config(collection, full=full, **config),
                       as_of=as_of, thresholds=self.settings.gate, progress=progress)

    def training_runs(self, collection: str) -> list[TrainingRun]:
        """Every training run of ``collection``, oldest first, each with its experiment record."""
        return self.workspace.registry.runs.list_training_runs(collection)

    def training_run(self, run_id: int) -> TrainingRun:
        return self.workspace.registry.runs.get_training_run(run_id)

    def suspect_labels(self, collection: str, *, batch: int | None = None, model: int | None = None,
                       device: str | None = None) -> SuspectReport:
        """Items (of ``batch``, default every batch) whose label disagrees with most of their k nearest
        neighbours under ``model`` (default production); k and the agreement from the ``labels`` settings."""
        from embedding.label_noise import check_collection

        s = self.settings.labels
        return check_collection(self.workspace, collection, batch=batch, model=model, k=s.k,
                                min_agreement=s.min_agreement, device=device or self.settings.device or "cpu")

    # --- the registry ----------------------------------------------------------------------------

    def models(self, collection: str) -> list[ModelVersion]:
        return self.workspace.registry.models.list_models(collection)

    def model(self, collection: str, version: int | None = None) -> ModelVersion:
        """Model ``version``, or the production model."""
        return self.workspace.production.model(collection, version)

    def report(self, collection: str, version: int | None = None) -> ModelReport:
        """A version's evaluation, baselines, gate decision and training (its ``ModelReport``)."""
        from embedding.report import ModelReport

        return ModelReport.from_dict(self.model(collection, version).metrics or {})

    def indexes(self, collection: str, model: int | None = None) -> list[IndexVersion]:
        return self.workspace.registry.models.list_indexes(collection, model)

    def build_index(self, collection: str, model: int | None = None, *, as_of: int | None = None,
                    progress: bool = True, factory: str | None = None) -> IndexVersion:
        """Embed the gallery with a model version (default production's), build, tune, register.

        ``factory`` (a faiss ``index_factory`` string) overrides the measured index choice."""
        from embedding.index.service import build_index_for_model

        index = self.settings.index
        budget = int(index.memory_budget_mb * 2**20) if index.memory_budget_mb else None
        return build_index_for_model(self.workspace, collection, self.model(collection, model).version, as_of=as_of,
                                     target_recall=index.target_recall, memory_budget_bytes=budget,
                                     latency_target_ms=index.latency_target_ms, progress=progress,
                                     factory=factory)

    def update_index(self, collection: str, index_version: int | None = None, *, batch: int | None = None
                     ) -> IndexVersion:
        """Apply the batches after an index's as-of batch (default production's index, up to the newest)."""
        from embedding.index.incremental import IncrementalPolicy
        from embedding.index.service import update_index

        iv = self.workspace.production.index(collection, index_version=index_version)
        if batch is None:
            batch = self._latest_batch(collection)
        s = self.settings.index
        policy = IncrementalPolicy(target_recall=float(iv.params.get("target_recall", s.target_recall)),
                                   max_tombstone_fraction=s.max_tombstone_fraction,
                                   max_latency_ratio=s.max_latency_ratio)
        return update_index(self.workspace, collection, iv.id, batch, policy=policy)

    def _latest_batch(self, collection: str) -> int:
        from core.errors import NotFoundError

        latest = self.workspace.registry.catalog.latest_batch(collection)
        if latest is None:
            raise NotFoundError(f"collection {collection!r} has no batches; ingest data first")
        return latest.seq

    # --- production ------------------------------------------------------------------------------

    def production(self, collection: str) -> AliasTarget | None:
        return self.workspace.production.target(collection)

    def history(self, collection: str) -> list[AliasChange]:
        """Every production change, oldest first."""
        return self.workspace.production.history(collection)

    def promote(self, collection: str, model: int, index: int | None = None, *, reason: str = "manual promotion",
                actor: str | None = None) -> AliasChange:
        """Point production at a model and index (default: the model's newest index)."""
        production = self.workspace.production
        if index is None and self.indexes(collection, model):
            index = production.index(collection, model_version=model).id
        return production.promote(collection, model, index, reason=reason, actor=actor)

    def rollback(self, collection: str, to: int | None = None, *, reason: str = "manual rollback",
                 pin: bool = True, actor: str | None = None) -> AliasChange:
        """The previous production pair (or model ``to``'s); pins production unless ``pin=False``."""
        return self.workspace.production.rollback(collection, to, reason=reason, pin=pin, actor=actor)

    def batches_added_by(self, collection: str, version: int, since_version: int) -> list[int]:
        """Batches ``version`` learnt from that ``since_version`` had not (what a rollback may exclude)."""
        from storage.production import batches_added_by

        return batches_added_by(self.workspace.registry, collection, version, since_version)

    def pin(self, collection: str, *, reason: str, actor: str | None = None) -> AliasTarget:
        return self.workspace.production.pin(collection, reason=reason, actor=actor)

    def unpin(self, collection: str, *, actor: str | None = None) -> AliasTarget:
        return self.workspace.production.unpin(collection, actor=actor)

    def gc(self, collection: str, *, keep: int = 5, dry_run: bool = False) -> GcResult:
        """Delete artifacts outside the retention window; the result says why each version stays."""
        from storage.retention import collect_garbage

        ws = self.workspace
        return collect_garbage(ws.registry, ws.artifacts, collection, keep=keep, dry_run=dry_run, store=ws.store)

    # --- the maintenance cycle -------------------------------------------------------------------

    def run(self, collection: str, files: Sequence[PathLike] = (), *, retrain_on: str | None = None,
            html: bool = False) -> MaintenanceSummary:
        """One maintenance cycle in this process (``steward run --no-prefect``)."""
        from maintenance.cycle import run_maintenance
        from maintenance.steps import LibrarySteps

        ws = self.workspace
        return run_maintenance(ws, StagedSteps(LibrarySteps(ws)), collection, [str(f) for f in files],
                               retrain_on=retrain_on, html_report=html)

    # --- search and embeddings -------------------------------------------------------------------

    def _index(self, collection: str, index_version: int | None, model: int | None) -> tuple[Any, Any]:
        from embedding.index.service import load_index

        iv = self.workspace.production.index(collection, index_version=index_version, model_version=model)
        if iv.id not in self._indexes:
            self._indexes[iv.id] = load_index(self.workspace, iv.id)
        return iv, self._indexes[iv.id]

    def search(self, collection: str, *, item_ids: Sequence[str] | None = None, vectors: Any = None,
               features: Any = None, texts: Sequence[str] | None = None, k: int = 10,
               index_version: int | None = None, model: int | None = None) -> SearchResult:
        """Nearest neighbours from an index (default production's) for exactly one kind of query:
        ``item_ids`` in the index, embedding ``vectors``, raw ``features`` or ``texts`` (embedded with
        the index's model first)."""
        import numpy as np

        from core.errors import ValidationError

        given = [n for n, v in (("item_ids", item_ids), ("vectors", vectors), ("features", features),
                                ("texts", texts)) if v is not None]
        if len(given) != 1:
            raise ValidationError(f"give exactly one of item_ids, vectors, features or texts (got {given or 'none'})")
        if k < 1:
            raise ValidationError(f"k={k} must be at least 1")
        iv, index = self._index(collection, index_version, model)
        if item_ids is not None:
            found = index.search_ids([str(i) for i in item_ids], k)
        else:
            queries = vectors if vectors is not None else self.embed(collection, features=features, texts=texts,
                                                                     model=iv.model_version)
            found = index.search(np.atleast_2d(np.asarray(queries, dtype=np.float32)), k)
        return SearchResult(collection, iv.model_version, iv.id, k, found.item_ids, found.scores,
                            None if item_ids is None else [str(i) for i in item_ids])

    def embed(self, collection: str, *, features: Any = None, texts: Sequence[str] | None = None,
              input: PathLike | None = None, out: PathLike | None = None, model: int | None = None,
              as_of: int | None = None, batch_size: int = 8192, progress: bool = True, device: str | None = None,
              sink: Any = None) -> Any:
        """Embeddings under a model version of ``collection`` (default production's): of ``features`` or
        ``texts`` (an array back); of the rows of the file ``input`` (in no collection; validated as
        ingest validates, bad rows reported), to Parquet at ``out``, to ``sink`` per batch, or in memory
        (a :class:`embedding.streaming.FileEmbedding` back, like ``steward embed --input``); or of the
        whole collection written to Parquet at ``out`` (the row count back)."""
        from core.errors import ValidationError

        device = device or self.settings.device or "cpu"
        if input is not None:
            from embedding.streaming import embed_file

            return embed_file(self.workspace, collection, model, str(input), out=None if out is None else str(out),
                              sink=sink, batch_size=batch_size, device=device, progress=progress)
        version = self.model(collection, model).version
        if out is not None:
            from embedding.streaming import write_embeddings

            return write_embeddings(self.workspace, collection, version, str(out), as_of=as_of,
                                    batch_size=batch_size, device=device, progress=progress)
        from embedding.inference import load_embedder

        embedder = load_embedder(self.workspace, collection, version, device=device)
        if features is not None:
            import numpy as np

            return embedder.embed_features(np.atleast_2d(np.asarray(features, dtype=np.float32)))
        if texts is not None:
            import pyarrow as pa

            return embedder.embed_table(pa.table({"text": pa.array(list(texts), pa.string())}))
        raise ValidationError("give features, texts, or out= (a Parquet path for the whole collection)")


@dataclasses.dataclass(frozen=True)
class StagedSteps:
    """Maintenance steps with a progress stage each (a live line on a terminal, log lines elsewhere)."""

    inner: Any  # maintenance.steps.Steps

    def _stage(self, desc: str):
        from core.progress import stage

        return stage(desc)

    def ingest(self, path: str, collection: str):
        with self._stage(f"ingesting {Path(path).name}"):
            return self.inner.ingest(path, collection)

    def check_quality(self, collection: str, batch_seq: int):
        with self._stage(f"checking the data quality of batch {batch_seq}"):
            return self.inner.check_quality(collection, batch_seq)

    def check_drift(self, collection: str, batch_seq: int, html: bool):
        with self._stage(f"checking batch {batch_seq} for drift" + (" (and writing the HTML report)" if html else "")):
            return self.inner.check_drift(collection, batch_seq, html)

    def retrain(self, collection: str, full: bool):
        with self._stage(f"training a candidate ({'full' if full else 'incremental'})"):
            return self.inner.retrain(collection, full)

    def build_index(self, collection: str, model_version: int, as_of: int):
        with self._stage(f"building and tuning the index of model v{model_version}"):
            return self.inner.build_index(collection, model_version, as_of)

    def promote(self, collection: str, model_version: int, index_version: int | None, reason: str) -> None:
        with self._stage(f"promoting model v{model_version}"):
            self.inner.promote(collection, model_version, index_version, reason)

    def deliver_alerts(self) -> int:
        with self._stage("delivering alerts"):
            return self.inner.deliver_alerts()


def to_json(obj: Any, *, data_uri: str = "") -> Any:
    """The JSON shape of any object this API returns (what ``--json`` prints and the HTTP API serves);
    ``data_uri`` makes batch paths absolute (``Steward.to_json`` passes the home's)."""
    from steward import shapes

    if isinstance(obj, (list, tuple)):
        return [to_json(o, data_uri=data_uri) for o in obj]
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    by_type = {
        "ModelVersion": shapes.model_version, "IndexVersion": shapes.index_version, "AliasChange": shapes.alias_change,
        "AliasTarget": shapes.alias_target, "AlertRecord": shapes.alert, "GcResult": shapes.gc_result,
        "TrainingRun": shapes.training_run,
        "RetrainOutcome": lambda o: shapes.retrain_outcome(o.model.collection, o),
        "Batch": lambda b: shapes.batch(b, data_uri), "IngestResult": lambda r: shapes.ingest_result(r, data_uri),
    }
    shape = by_type.get(type(obj).__name__)
    if shape is None:
        raise TypeError(f"{type(obj).__name__} has no JSON shape in steward.shapes")
    return shape(obj)
