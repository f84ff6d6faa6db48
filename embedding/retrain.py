"""The retrain service: data from the Parquet store, warm start from production, train, evaluate
candidate and production on the same held-out items, gate, save artifacts, register the version.

It never promotes: a flow or a person does, and only candidates the gate accepted.

Held-out split: an item is held out iff a hash of its item_id falls in the lowest
``HOLDOUT_PERCENT`` percent. The split is stable across versions and batches, so every version is
evaluated on items no version trained on, and old and new versions can be compared fairly.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedding.config import TrainConfig
from embedding.gate import GateDecision, GateThresholds, decide
from steward.errors import ConfigError, NotFoundError, ValidationError
from storage.serialization import jsonable

if TYPE_CHECKING:  # pragma: no cover
    from steward.workspace import Workspace
    from storage.registry.entities import ModelVersion, TrainingRun

log = logging.getLogger(__name__)

HOLDOUT_PERCENT = 20
MAX_HOLDOUT_ITEMS = 20_000  # evaluation cost bound; the hash order picks the same items every time


@dataclass(frozen=True)
class RetrainOutcome:
    model: ModelVersion  # registered: status "candidate" (gate accepted) or "rejected"
    decision: GateDecision
    metrics: dict[str, Any]
    training_run: TrainingRun | None = None


def holdout_mask(item_ids: np.ndarray, percent: int = HOLDOUT_PERCENT) -> np.ndarray:
    return _hash_bucket(item_ids) < percent * 100


def _hash_bucket(item_ids: np.ndarray) -> np.ndarray:
    """0..9999 per item id, stable across processes (not Python's salted hash)."""
    return np.array([int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=4).digest(), "big") % 10_000
                     for i in item_ids], dtype=np.int64)


@dataclass(frozen=True)
class _Data:
    item_ids: np.ndarray
    labels: np.ndarray
    inputs: np.ndarray  # head inputs: features, or encoded text


def _load_data(workspace: Workspace, collection: str, as_of: int, input_kind: str, device: str) -> _Data:
    from storage.parquet_store import features_to_numpy

    column = "features" if input_kind == "features" else "text"
    table = workspace.store.read(collection, as_of=as_of, columns=["label", column])
    labels = table.column("label").to_pylist() if "label" in table.schema.names else [None] * table.num_rows
    keep = np.array([lab is not None and lab != "" for lab in labels], dtype=bool)
    ids = np.array(table.column("item_id").to_pylist(), dtype=str)[keep]
    labs = np.array([lab for lab, k in zip(labels, keep, strict=True) if k], dtype=str)
    if input_kind == "features":
        inputs = features_to_numpy(table)[keep]
    else:
        from embedding.model import get_text_encoder

        texts = [t or "" for t, k in zip(table.column("text").to_pylist(), keep, strict=True) if k]
        inputs = get_text_encoder(device).encode(texts)
    return _Data(ids, labs, np.ascontiguousarray(inputs, dtype=np.float32))


def _new_item_ids(workspace: Workspace, collection: str, after: int | None, upto: int) -> tuple[set[str], list[int]]:
    seqs = [b.seq for b in workspace.registry.list_batches(collection) if (after is None or b.seq > after) and b.seq <= upto]
    ids: set[str] = set()
    for seq in seqs:
        ids.update(workspace.store.read_batch(collection, seq, columns=[]).column("item_id").to_pylist())
    return ids, seqs


def retrain(workspace: Workspace, collection: str, *, full: bool = False, config: TrainConfig | None = None,
            as_of: int | None = None, thresholds: GateThresholds | None = None, progress: bool = True,
            device: str | None = None) -> RetrainOutcome:
    """Train a candidate for ``collection`` and register it (candidate or rejected). See module doc."""
    from embedding.buffer import empty_buffer, update_buffer
    from embedding.evaluation import compatibility, evaluate_embeddings
    from embedding.inference import (
        ROLE_BUFFER,
        ROLE_LOSS,
        ROLE_PROTOTYPES,
        ROLE_WEIGHTS,
        head_from_model_version,
        load_buffer,
        load_loss_state,
    )
    from embedding.model import HeadSpec, embed_array
    from embedding.prototypes import refresh_prototypes
    from embedding.trainer import train
    from storage.serialization import state_dict_to_bytes

    registry = workspace.registry
    coll = registry.get_collection(collection)
    latest = registry.latest_batch(collection)
    if latest is None:
        raise NotFoundError(f"collection {collection!r} has no batches; ingest data first")
    as_of = latest.seq if as_of is None else as_of
    alias = registry.get_alias(collection)
    prod = registry.get_model(collection, alias.model_version) if alias else None

    if config is None:
        config = (TrainConfig.from_dict(prod.config["train_config"]) if prod and "train_config" in prod.config
                  else TrainConfig())
    if device is not None:
        config = config.replace(device=device)
    thresholds = thresholds or GateThresholds()
    input_kind = coll.kind
    mode = "full" if (full or prod is None) else "incremental"
    if mode == "incremental":
        prod_spec = HeadSpec.from_dict(prod.config.get("architecture") or {})
        if (prod_spec.hidden_dims, prod_spec.out_dim) != (config.hidden_dims, config.out_dim):
            raise ConfigError(
                f"the config's head {config.hidden_dims}->{config.out_dim} differs from production v{prod.version}'s "
                f"{prod_spec.hidden_dims}->{prod_spec.out_dim}; an incremental update must keep the architecture, "
                "retrain with --full to change it"
            )

    data = _load_data(workspace, collection, as_of, input_kind, config.device)
    is_test = holdout_mask(data.item_ids)
    if is_test.sum() > MAX_HOLDOUT_ITEMS:
        order = np.argsort(_hash_bucket(data.item_ids[is_test]), kind="stable")
        keep = np.flatnonzero(is_test)[order[:MAX_HOLDOUT_ITEMS]]
        is_test = np.zeros_like(is_test)
        is_test[keep] = True
    tr_ids, tr_labels, tr_x = data.item_ids[~is_test], data.labels[~is_test], data.inputs[~is_test]

    after = prod.trained_on_batch if (mode == "incremental") else None
    new_ids, seqs = _new_item_ids(workspace, collection, after, as_of)
    run = registry.start_training_run(collection, kind=mode, batches=seqs,
                                      details={"as_of": as_of, "parent_version": prod.version if prod else None})
    t0 = time.perf_counter()
    try:
        prod_model = head_from_model_version(workspace, prod) if prod else None
        old_classes = tuple(prod.config.get("classes", ())) if prod else ()
        if mode == "incremental":
            is_new = np.isin(tr_ids, np.array(sorted(new_ids), dtype=str))
            if not is_new.any():
                raise ValidationError(
                    f"no new labelled training items in {collection!r} since model v{prod.version} (trained on "
                    f"batch {prod.trained_on_batch}); ingest labelled data or retrain with --full"
                )
            buffer = load_buffer(workspace, prod) or empty_buffer(
                tr_x.shape[1], budget=config.buffer_budget, policy=config.buffer_policy,
                min_quota=config.buffer_min_quota, seed=config.seed)
            new_x, new_y, new_i = tr_x[is_new], tr_labels[is_new], tr_ids[is_new]
            reh = ~np.isin(buffer.item_ids, new_i)
            x = np.concatenate([new_x, buffer.features[reh]])
            y = np.concatenate([new_y, buffer.labels[reh]])
            rehearsal = np.concatenate([np.zeros(len(new_y), bool), np.ones(int(reh.sum()), bool)])
            result = train(x, y, config, init_model=prod_model, init_classes=old_classes,
                           init_loss_state=load_loss_state(workspace, prod), teacher=prod_model,
                           rehearsal_mask=rehearsal, progress=progress, desc=f"retrain {collection}")
        else:
            buffer = empty_buffer(tr_x.shape[1], budget=config.buffer_budget, policy=config.buffer_policy,
                                  min_quota=config.buffer_min_quota, seed=config.seed)
            new_x, new_y, new_i = tr_x, tr_labels, tr_ids
            result = train(tr_x, tr_labels, config, progress=progress, desc=f"full retrain {collection}")
        train_seconds = time.perf_counter() - t0

        def embed(a: np.ndarray) -> np.ndarray:
            return embed_array(result.model, a, device="cpu")

        # Evaluation: candidate and production on the same held-out items.
        te_x, te_y = data.inputs[is_test], data.labels[is_test]
        metrics: dict[str, Any] = {}
        prod_metrics = None
        if len(np.unique(te_y)) >= 2:
            cand_emb = embed(te_x)
            metrics = evaluate_embeddings(cand_emb, te_y, old_classes=old_classes if prod else None)
            if prod_model is not None:
                prod_emb = embed_array(prod_model, te_x)
                prod_metrics = evaluate_embeddings(prod_emb, te_y, old_classes=old_classes)
                metrics["forgetting"] = {
                    c: prod_metrics["per_class"][c]["map_at_r"] - v["map_at_r"]
                    for c, v in metrics["per_class"].items() if c in prod_metrics["per_class"] and c in old_classes
                }
                metrics["compatibility"] = compatibility(cand_emb, prod_emb, te_y)
                metrics["production_baseline"] = {"version": prod.version, "overall": prod_metrics["overall"],
                                                  "old": prod_metrics.get("old"), "new": prod_metrics.get("new")}
            decision = decide(metrics, prod_metrics, thresholds)
        else:
            n_cls = len(np.unique(te_y))
            why = f"held-out split has {n_cls} class(es); need 2 to evaluate; ingest more labelled data"
            decision = GateDecision(False, (why,))

        # Rehearsal buffer and prototypes under the new model.
        new_buffer = update_buffer(buffer, new_i, new_y, new_x, embed_fn=embed)
        proto_x = np.concatenate([buffer.features[~np.isin(buffer.item_ids, new_i)], new_x])
        proto_y = np.concatenate([buffer.labels[~np.isin(buffer.item_ids, new_i)], new_y])
        prototypes = refresh_prototypes(embed, proto_x, proto_y)

        artifacts = {
            ROLE_WEIGHTS: workspace.artifacts.put_bytes(state_dict_to_bytes(result.model.state_dict())),
            ROLE_BUFFER: workspace.artifacts.put_bytes(new_buffer.to_bytes()),
            ROLE_PROTOTYPES: workspace.artifacts.put_bytes(prototypes.to_bytes()),
        }
        if result.loss_state is not None:
            artifacts[ROLE_LOSS] = workspace.artifacts.put_bytes(state_dict_to_bytes(result.loss_state))
        metrics["gate"] = decision.to_dict()
        metrics["training"] = {
            "mode": mode, "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
            "best_val_map_at_r": result.best_val_map, "stopped_early": result.stopped_early,
            "seconds": round(train_seconds, 3), "train_items": int(len(new_y) + (int(rehearsal.sum()) if mode == "incremental" else 0)),
            "new_items": len(new_y), "rehearsal_items": int(rehearsal.sum()) if mode == "incremental" else 0,
            "holdout_items": int(is_test.sum()), "history": list(result.history),
        }
        if metrics.get("overall"):
            metrics["map_at_r"] = metrics["overall"]["map_at_r"]
            metrics["precision_at_1"] = metrics["overall"]["precision_at_1"]
        metrics = jsonable(metrics)
        model_config = jsonable({
            "architecture": result.model.spec.to_dict(),
            "input_kind": input_kind,
            "text_encoder": "all-MiniLM-L6-v2" if input_kind == "text" else None,
            "classes": list(result.classes),
            "train_config": config.to_dict(),
            "mode": mode,
            "holdout_percent": HOLDOUT_PERCENT,
            "buffer": {"items": len(new_buffer), "budget": new_buffer.budget, "policy": new_buffer.policy,
                       "per_class": new_buffer.class_counts()},
        })
        mv = registry.register_model(
            collection, config=model_config, metrics=metrics, artifacts=artifacts,
            parent_version=prod.version if (prod and mode == "incremental") else None, trained_on_batch=as_of,
            status="candidate" if decision.accepted else "rejected",
            status_reason=None if decision.accepted else "; ".join(decision.reasons),
        )
        finished = registry.finish_training_run(run.id, status="finished", model_version=mv.version,
                                                buffer_artifact=artifacts[ROLE_BUFFER],
                                                details={"seconds": round(train_seconds, 3),
                                                         "accepted": decision.accepted})
    except BaseException as e:
        registry.finish_training_run(run.id, status="failed", details={"error": f"{type(e).__name__}: {e}"})
        raise
    log.info("%s v%d (%s): %s", collection, mv.version, mode, "accepted" if decision.accepted else "rejected")
    return RetrainOutcome(mv, decision, metrics, finished)
