"""The retrain service: data from the Parquet store, warm start from production, one continual
step (:func:`embedding.continual.continual_step`), the gate, artifacts, a registered version.

It never promotes: a flow or a person does, and only candidates the gate accepted. Excluded
batches are never trained on. Candidate, production and the raw input features are scored on the
collection's stable evaluation set (:mod:`embedding.holdout`), which no version trains on, so
their scores compare across versions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ConfigError, NotFoundError, ValidationError
from core.settings import GateSettings
from embedding.config import TrainConfig
from embedding.continual import LabelledData, ModelState, StepOutcome, continual_step
from embedding.gate import GateDecision, decide
from embedding.holdout import HOLDOUT_PERCENT, holdout_mask
from embedding.report import ModelReport, TrainingSummary
from storage.serialization import jsonable

if TYPE_CHECKING:  # pragma: no cover
    from embedding.label_noise import SuspectReport
    from storage.registry.entities import EvaluationSet, ModelVersion, TrainingRun
    from storage.workspace import Workspace

log = logging.getLogger(__name__)


NO_PARENT = 0  # ``retrain(parent=NO_PARENT)``: no parent version (versions count from 1)


@dataclass(frozen=True)
class RetrainOutcome:
    model: ModelVersion  # registered: status "candidate" (gate accepted) or "rejected"
    decision: GateDecision
    report: ModelReport
    training_run: TrainingRun | None = None


def load_labelled(workspace: Workspace, collection: str, as_of: int, input_kind: str, device: str,
                  group_column: str | None = None) -> LabelledData:
    """Every labelled item as of ``as_of`` (excluded batches left out) as head inputs (features, or
    encoded text), with its group when ``group_column`` names one (rows without it: "(none)")."""
    from storage.parquet_store import features_to_numpy

    column = "features" if input_kind == "features" else "text"
    columns = ["label", column] + ([group_column] if group_column else [])
    table = workspace.store.read(collection, as_of=as_of, columns=columns, skip_excluded=True)
    labels = table.column("label").to_pylist() if "label" in table.schema.names else [None] * table.num_rows
    keep = np.array([lab is not None and lab != "" for lab in labels], dtype=bool)
    ids = np.array(table.column("item_id").to_pylist(), dtype=str)[keep]
    labs = np.array([lab for lab, k in zip(labels, keep, strict=True) if k], dtype=str)
    if input_kind == "features":
        inputs = features_to_numpy(table)[keep]
    else:
        from embedding.text_cache import cached_text_encoder

        texts = [t or "" for t, k in zip(table.column("text").to_pylist(), keep, strict=True) if k]
        inputs = cached_text_encoder(workspace.vectors, device).encode(texts)
    groups = None
    if group_column:
        raw = (table.column(group_column).to_pylist() if group_column in table.schema.names
               else [None] * table.num_rows)
        groups = np.array(["(none)" if g is None or g == "" else str(g)
                           for g, k in zip(raw, keep, strict=True) if k], dtype=str)
    return LabelledData(ids, labs, inputs, groups)


def _new_item_ids(workspace: Workspace, collection: str, after: int | None, upto: int) -> tuple[set[str], list[int]]:
    seqs = [b.seq for b in workspace.registry.catalog.list_batches(collection)
            if (after is None or b.seq > after) and b.seq <= upto and not b.excluded]
    ids: set[str] = set()
    for seq in seqs:
        ids.update(workspace.store.read_batch(collection, seq, columns=[]).column("item_id").to_pylist())
    return ids, seqs


def load_state(workspace: Workspace, mv: ModelVersion) -> ModelState:
    """A registered version as continual learning needs it (verified artifacts)."""
    from embedding.inference import head_from_model_version, load_buffer, load_loss_state

    return ModelState(head_from_model_version(workspace, mv), tuple(mv.config.get("classes", ())),
                      load_loss_state(workspace, mv), load_buffer(workspace, mv))


def _resolve_config(prod: ModelVersion | None, config: TrainConfig | None, device: str | None) -> TrainConfig:
    if config is None:
        config = (TrainConfig.from_dict(prod.config["train_config"]) if prod and "train_config" in prod.config
                  else TrainConfig())
    return config.replace(device=device) if device is not None else config


def _check_architecture(prod: ModelVersion, config: TrainConfig) -> None:
    from embedding.model import HeadSpec

    spec = HeadSpec.from_dict(prod.config.get("architecture") or {})
    if (spec.hidden_dims, spec.out_dim, spec.kind) != (config.hidden_dims, config.out_dim, config.head):
        raise ConfigError(
            f"the config's {config.head} head {config.hidden_dims}->{config.out_dim} differs from production "
            f"v{prod.version}'s {spec.kind} head {spec.hidden_dims}->{spec.out_dim}; an incremental update must "
            "keep the architecture, "
            "retrain with --full to change it"
        )


def retrain(workspace: Workspace, collection: str, *, full: bool = False, config: TrainConfig | None = None,
            as_of: int | None = None, thresholds: GateSettings | None = None, progress: bool = True,
            device: str | None = None, parent: int | None = None, from_run: int | None = None) -> RetrainOutcome:
    """Train a candidate for ``collection`` and register it (candidate or rejected). See module doc.

    ``parent``: the version to start from and compare with (default: production; ``NO_PARENT``: none,
    as for a first model). ``from_run``: only recorded with the new run (see :func:`retrain_from_run`).
    """
    registry = workspace.registry
    coll = registry.catalog.get_collection(collection)
    latest = registry.catalog.latest_batch(collection)
    if latest is None:
        raise NotFoundError(f"collection {collection!r} has no batches; ingest data first")
    as_of = latest.seq if as_of is None else as_of
    if parent == NO_PARENT:
        prod = None
    elif parent is not None:
        prod = registry.models.get_model(collection, parent)
    else:
        target = workspace.production.target(collection)
        prod = registry.models.get_model(collection, target.model_version) if target else None
    config = _resolve_config(prod, config, device)
    thresholds = thresholds or workspace.settings.gate
    incremental = not full and prod is not None
    if incremental:
        _check_architecture(prod, config)

    group_column = workspace.settings.evaluation.group_column
    data = load_labelled(workspace, collection, as_of, coll.kind, config.device, group_column)
    held_out = holdout_mask(data.item_ids)
    train_data = data.select(~held_out)
    eval_set = evaluation_set(workspace, collection, data.select(held_out), as_of)
    eval_data = data.select(np.isin(data.item_ids, np.array(eval_set.item_ids, dtype=str)))
    new_ids, seqs = _new_item_ids(workspace, collection, prod.trained_on_batch if incremental else None, as_of)
    step_data = train_data.select(np.isin(train_data.item_ids, sorted(new_ids))) if incremental else train_data
    if incremental and len(step_data) == 0:
        raise ValidationError(
            f"no new labelled training items in {collection!r} since model v{prod.version} (trained on "
            f"batch {prod.trained_on_batch}); ingest labelled data or retrain with --full"
        )
    record = experiment_record(workspace, config, as_of=as_of, parent=prod.version if prod else None,
                               full=not incremental, thresholds=thresholds, from_run=from_run)
    run = registry.runs.start_training_run(collection, kind="incremental" if incremental else "full", batches=seqs,
                                           details=record)
    try:
        previous = load_state(workspace, prod) if prod else None
        suspects, weights = _suspect_weights(workspace, step_data, train_data, config, previous,
                                             prod.version if prod else None)
        outcome = continual_step(step_data, config, previous=previous, full=not incremental, evaluation=eval_data,
                                 progress=progress, desc=f"{'retrain' if incremental else 'full retrain'} {collection}",
                                 sample_weight=weights, group_column=group_column)
        decision = _gate(outcome, eval_data, thresholds, seed=config.seed)
        report = ModelReport(
            evaluation=outcome.evaluation, gate=decision, baselines=outcome.baselines, forgetting=outcome.forgetting,
            compatibility=outcome.compatibility, training=_training_summary(outcome, len(eval_data), suspects,
                                                                            config.suspect_weight),
            evaluation_set={"revision": eval_set.revision, "items": len(eval_data),
                            "classes": len(set(eval_data.labels.tolist()))},
        )
        artifacts = _save_artifacts(workspace, outcome)
        mv = registry.models.register_model(
            collection, config=_model_config(outcome, config, coll.kind), metrics=report.to_dict(),
            artifacts=artifacts, parent_version=prod.version if incremental else None, trained_on_batch=as_of,
            status="candidate" if decision.accepted else "rejected",
            status_reason=None if decision.accepted else "; ".join(decision.reasons),
            require_present=workspace.artifacts.require_present,
        )
        finished = registry.runs.finish_training_run(
            run.id, status="finished", model_version=mv.version, buffer_artifact=artifacts.get("buffer"),
            details={"seconds": round(outcome.training.seconds, 3), "accepted": decision.accepted,
                     "suspects_flagged": None if suspects is None else len(suspects.suspects)},
        )
    except BaseException as e:
        registry.runs.finish_training_run(run.id, status="failed", details={"error": f"{type(e).__name__}: {e}"})
        raise
    log.info("%s v%d (%s): %s", collection, mv.version, outcome.mode, "accepted" if decision.accepted else "rejected")
    workspace.observers.model_registered(mv)  # e.g. MLflow: the run, its curves and the registered version
    return RetrainOutcome(mv, decision, report, finished)


def evaluation_set(workspace: Workspace, collection: str, held_out: LabelledData, as_of: int) -> EvaluationSet:
    """The collection's stable evaluation set, topped up from ``held_out`` (new classes join it)."""
    from embedding.holdout import evaluation_picks

    catalog = workspace.registry.catalog
    current = catalog.evaluation_set(collection)
    counts: dict[str, int] = {}
    for label in current.labels:
        counts[label] = counts.get(label, 0) + 1
    picks = evaluation_picks(held_out.item_ids, held_out.labels, counts,
                             per_class=workspace.settings.evaluation.per_class)
    return catalog.extend_evaluation_set(collection, picks, as_of) if picks else current


def _gate(outcome: StepOutcome, eval_data: LabelledData, thresholds: GateSettings, *, seed: int) -> GateDecision:
    if outcome.evaluation is None:
        n_cls = len(eval_data.classes)
        return GateDecision(False, ((f"the evaluation set has {n_cls} class(es); need 2 to evaluate; "
                                    "ingest more labelled data"),))
    return decide(outcome.evaluation, outcome.baselines.get("production"), thresholds,
                  raw=outcome.baselines.get("raw"), seed=seed)


def _suspect_weights(workspace: Workspace, step_data: LabelledData, train_data: LabelledData, config: TrainConfig,
                     previous: ModelState | None, version: int | None) -> tuple[SuspectReport | None, np.ndarray | None]:
    """With ``config.suspect_weight`` < 1: flag the new items' suspect labels (neighbours among every
    training item, under the previous model, else the raw features) and weight them down."""
    from embedding.label_noise import find_suspects, suspect_weights

    if config.suspect_weight >= 1.0 or len(step_data) == 0:
        return None, None
    if previous is not None:
        from embedding.model import embed_array

        emb = embed_array(previous.model, train_data.features, device="cpu")
    else:
        emb = train_data.features
    s = workspace.settings.labels
    report = find_suspects(emb, train_data.labels, train_data.item_ids,
                           check=np.isin(train_data.item_ids, step_data.item_ids), k=s.k,
                           min_agreement=s.min_agreement, model_version=version)
    log.info("%d of %d new items have suspect labels; weighted %.2g", len(report.suspects), report.checked,
             config.suspect_weight)
    return report, suspect_weights(step_data.item_ids, report, config.suspect_weight)


def library_versions() -> dict[str, str | None]:
    """The versions of what a training run's numbers depend on."""
    import importlib.metadata as md
    import platform

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("steward", "torch", "numpy", "faiss-cpu", "pytorch-metric-learning", "scikit-learn"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def experiment_record(workspace: Workspace, config: TrainConfig, *, as_of: int, parent: int | None, full: bool,
                      thresholds: GateSettings, from_run: int | None = None) -> dict[str, Any]:
    """What a training run records so that ``steward retrain --from-run`` can reproduce it: the full
    config (with its seed), the data (as of which batch, the batches trained on), the parent version,
    the settings that shape data and gate, and the library versions."""
    import dataclasses

    settings = workspace.settings
    return jsonable({
        "as_of": as_of, "parent_version": parent, "full": full, "seed": config.seed,
        "train_config": config.to_dict(), "gate": dataclasses.asdict(thresholds),
        "evaluation": dataclasses.asdict(settings.evaluation), "labels": dataclasses.asdict(settings.labels),
        "libraries": library_versions(), "from_run": from_run,
    })


def retrain_from_run(workspace: Workspace, collection: str, run_id: int, *, progress: bool = True,
                     device: str | None = None) -> RetrainOutcome:
    """Run training run ``run_id`` again: same config and seed, same data (as of the same batch), same
    parent version and gate settings. Library versions that differ are logged (numbers may then move)."""
    run = workspace.registry.runs.get_training_run(run_id)
    if run.collection != collection:
        raise ValidationError(f"training run {run_id} belongs to collection {run.collection!r}, not {collection!r}")
    d = run.details
    if "train_config" not in d:
        raise ValidationError(f"training run {run_id} predates experiment records (no train_config); "
                              "it cannot be reproduced, retrain with explicit options instead")
    changed = {k: (v, now) for k, now in library_versions().items()
               if (v := (d.get("libraries") or {}).get(k)) != now}
    if changed:
        log.warning("library versions differ from run %d: %s", run_id, changed)
    config = TrainConfig.from_dict(d["train_config"])
    thresholds = GateSettings(**d["gate"]) if d.get("gate") else None
    return retrain(workspace, collection, full=bool(d.get("full")), config=config, as_of=int(d["as_of"]),
                   thresholds=thresholds, progress=progress, device=device,
                   parent=NO_PARENT if d.get("parent_version") is None else int(d["parent_version"]), from_run=run_id)


def _training_summary(outcome: StepOutcome, holdout_items: int, suspects: SuspectReport | None = None,
                      suspect_weight: float = 1.0) -> TrainingSummary:
    t = outcome.training
    return TrainingSummary(
        mode=outcome.mode, epochs_run=t.epochs_run, best_epoch=t.best_epoch, best_val_map_at_r=t.best_val_map,
        stopped_early=t.stopped_early, seconds=round(t.seconds, 3),
        train_items=outcome.new_items + outcome.rehearsal_items, new_items=outcome.new_items,
        rehearsal_items=outcome.rehearsal_items, holdout_items=holdout_items, history=tuple(t.history),
        suspects_flagged=None if suspects is None else len(suspects.suspects),
        suspect_weight=suspect_weight,
    )


def _save_artifacts(workspace: Workspace, outcome: StepOutcome) -> dict[str, str]:
    from embedding.inference import ROLE_BUFFER, ROLE_HEAD_ARRAYS, ROLE_LOSS, ROLE_PROTOTYPES, ROLE_WEIGHTS
    from embedding.model import head_arrays
    from embedding.numpy_head import arrays_to_head_bytes
    from storage.serialization import state_dict_to_bytes

    put = workspace.artifacts.put_bytes
    state = outcome.candidate
    artifacts = {
        ROLE_WEIGHTS: put(state_dict_to_bytes(state.model.state_dict())),
        # The same weights as plain arrays: drift checks, search and embedding run without torch.
        ROLE_HEAD_ARRAYS: put(arrays_to_head_bytes(state.model.spec.to_dict(), head_arrays(state.model))),
        ROLE_BUFFER: put(state.buffer.to_bytes()),
        ROLE_PROTOTYPES: put(outcome.prototypes.to_bytes()),
    }
    if state.loss_state is not None:
        artifacts[ROLE_LOSS] = put(state_dict_to_bytes(state.loss_state))
    return artifacts


def _model_config(outcome: StepOutcome, config: TrainConfig, input_kind: str) -> dict[str, Any]:
    from embedding.model import TEXT_ENCODER_NAME

    buffer = outcome.candidate.buffer
    return jsonable({
        "architecture": outcome.candidate.model.spec.to_dict(),
        "input_kind": input_kind,
        "text_encoder": TEXT_ENCODER_NAME if input_kind == "text" else None,
        "classes": list(outcome.candidate.classes),
        "train_config": config.to_dict(),
        "mode": outcome.mode,
        # the blend's skip weight chosen on held-out classes (TrainConfig.skip_weight_auto), when it was
        "skip_weight_choice": outcome.skip_weight.to_dict() if outcome.skip_weight is not None else None,
        "holdout_percent": HOLDOUT_PERCENT,
        "buffer": {"items": len(buffer), "budget": buffer.budget, "policy": buffer.policy,
                   "per_class": buffer.class_counts()},
    })
