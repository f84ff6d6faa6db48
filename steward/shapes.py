"""The one JSON shape of every object steward prints (``--json``) or serves (the HTTP API).

The CLI, the API and the Python API's ``to_json`` all call these functions, so an object has one
shape wherever it is read; ``docs/JSON.md`` lists every field (a test keeps the two in step).
Typed contracts with their own ``to_dict`` (``DriftSummary``, ``MaintenanceSummary``,
``CollectionStatus``, ``ModelReport``) are that shape already; the registry's entities are shaped
here. Every object carries ``schema_version``; timestamps are ISO-8601 in UTC (``...Z``); paths in
the data store are absolute (or URIs for object stores).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from storage.serialization import iso_utc

SCHEMA_VERSION = 1


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _entity(obj: Any) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **_plain(dataclasses.asdict(obj))}


def store_path(data_uri: str, path: str | None) -> str | None:
    """A path inside the data store as a person can open it: absolute locally, a URI remotely."""
    if path is None:
        return None
    if "://" in data_uri:
        return path if "://" in path else f"{data_uri.rstrip('/')}/{path.lstrip('/')}"
    return path if os.path.isabs(path) else os.path.join(os.path.abspath(data_uri), path)


def batch(b: Any, data_uri: str) -> dict[str, Any]:
    """A batch (``storage.registry.entities.Batch``)."""
    out = _entity(b)
    out.update(excluded=b.excluded, data_path=store_path(data_uri, b.data_path),
               quarantine_path=store_path(data_uri, b.quarantine_path))
    return out


def ingest_result(r: Any, data_uri: str) -> dict[str, Any]:
    """What ingesting one file did (``storage.parquet_store.IngestResult``)."""
    return {**_entity(r), "quarantine_path": store_path(data_uri, r.quarantine_path)}


def model_version(m: Any, indexes: Sequence[Any] | None = None) -> dict[str, Any]:
    """A model version; ``metrics`` is its ModelReport (``embedding.report``). ``indexes`` when asked for."""
    out = _entity(m)
    if indexes is not None:
        out["indexes"] = [index_version(i) for i in indexes]
    return out


def index_version(i: Any) -> dict[str, Any]:
    """An index version (``storage.registry.entities.IndexVersion``)."""
    return _entity(i)


def alias_change(change: Any, **extra: Any) -> dict[str, Any]:
    """A production change (promotion or rollback); ``extra`` adds what the caller knows besides."""
    return {**_entity(change), **_plain(extra)}


def alias_target(target: Any, **extra: Any) -> dict[str, Any]:
    """Where an alias points, and its pin."""
    return {**_entity(target), "pinned": target.pinned, **_plain(extra)}


def alert(record: Any) -> dict[str, Any]:
    """One alert of the history (``monitoring.alerts.AlertRecord``)."""
    out = _entity(record.alert)
    change = record.answered_by
    out.update(open=record.open, undelivered=record.undelivered,
               answered_by=None if change is None else {"change_id": change.id, "kind": change.kind,
                                                        "to_model": change.to_model, "actor": change.actor,
                                                        "at": iso_utc(change.at)})
    return out


def retrain_outcome(collection: str, outcome: Any) -> dict[str, Any]:
    """A retrain (``embedding.retrain.RetrainOutcome``): the version, the gate's decision, its report."""
    mv = outcome.model
    return {"schema_version": SCHEMA_VERSION, "collection": collection, "model_version": mv.version,
            "status": mv.status, "parent_version": mv.parent_version, "decision": outcome.decision.to_dict(),
            "report": outcome.report.to_dict()}


def training_run(run: Any) -> dict[str, Any]:
    """A training run (``storage.registry.entities.TrainingRun``); ``details`` is its experiment record
    (``embedding.retrain.experiment_record``: config, seed, as_of, parent, gate settings, library versions)."""
    return _entity(run)


def gc_result(result: Any) -> dict[str, Any]:
    """A garbage collection (``storage.retention.GcResult``): what went and why the rest stayed."""
    return _entity(result)


def search_result(collection: str, model_version: int, index_version: int, k: int,
                  item_ids: Sequence[Sequence[Any]], scores: Sequence[Sequence[float]] | None,
                  query_item_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Nearest neighbours: one result per query, best first. ``query`` is the query's position;
    ``query_item_id`` the item it was when the queries were item ids."""
    results = []
    for q, ids in enumerate(item_ids):
        ids = [str(x) for x in ids]
        row_scores = [] if scores is None else [float(s) for s in list(scores[q])[: len(ids)]]
        results.append({"query": q, "query_item_id": None if query_item_ids is None else str(query_item_ids[q]),
                        "item_ids": ids, "scores": row_scores})
    return {"schema_version": SCHEMA_VERSION, "collection": collection, "model_version": int(model_version),
            "index_version": int(index_version), "k": int(k), "results": results}


def embed_result(collection: str, model_version: int, rows: int, out: str) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "collection": collection, "model_version": model_version,
            "rows": rows, "out": os.path.abspath(out) if "://" not in out else out}
