"""One continual-learning step, pure (no I/O): what ``steward retrain`` does and what the benchmark
measures.

An incremental step trains on the new items plus a rehearsal sample from the previous version's
buffer, warm-started from the previous model with distillation on the rehearsal items; then the
buffer takes in the new items, the class prototypes are refreshed under the new model, and the
candidate is evaluated (with the previous model on the same items, for the gate). A full step
trains from scratch on everything it is given and starts a fresh buffer from it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ValidationError
from embedding.buffer import RehearsalBuffer, empty_buffer, update_buffer
from embedding.config import TrainConfig
from embedding.evaluation import EvaluationReport, compatibility, evaluate_embeddings
from embedding.prototypes import Prototypes, refresh_prototypes
from embedding.skip_weight import (
    SkipWeightChoice,
    SkipWeightTrial,
    choose_skip_weight,
    choose_skip_weight_pooled,
    skip_weight_trials,
)
from embedding.threads import limited_threads

if TYPE_CHECKING:  # pragma: no cover
    from embedding.model import EmbeddingHead
    from embedding.trainer import TrainResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledData:
    """Labelled items as the head consumes them: ids, labels and input features, row-aligned."""

    item_ids: np.ndarray  # str (n,)
    labels: np.ndarray  # str (n,)
    features: np.ndarray  # float32 (n, in_dim)
    groups: np.ndarray | None = None  # str (n,): values of the collection's group column, when named

    def __post_init__(self) -> None:
        object.__setattr__(self, "item_ids", np.asarray(self.item_ids).astype(str))
        object.__setattr__(self, "labels", np.asarray(self.labels).astype(str))
        object.__setattr__(self, "features", np.ascontiguousarray(self.features, dtype=np.float32))
        if not len(self.item_ids) == len(self.labels) == len(self.features) or self.features.ndim != 2:
            raise ValidationError(
                f"{len(self.item_ids)} item ids, {len(self.labels)} labels and features of shape "
                f"{self.features.shape} do not line up"
            )
        if self.groups is not None:
            object.__setattr__(self, "groups", np.array(["(none)" if g is None or g == "" else str(g)
                                                         for g in self.groups], dtype=str))
            if len(self.groups) != len(self.item_ids):
                raise ValidationError(f"{len(self.groups)} group values for {len(self.item_ids)} items")

    def __len__(self) -> int:
        return len(self.item_ids)

    def select(self, mask: np.ndarray) -> LabelledData:
        return LabelledData(self.item_ids[mask], self.labels[mask], self.features[mask],
                            None if self.groups is None else self.groups[mask])

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels.tolist()))


@dataclass(frozen=True)
class ModelState:
    """A model version as continual learning needs it: the head, the class order of its loss
    weights, the parametric loss's state, and its rehearsal buffer."""

    model: EmbeddingHead
    classes: tuple[str, ...]
    loss_state: dict[str, Any] | None = None
    buffer: RehearsalBuffer | None = None
    # skip_weight_auto's evidence: each version's scored weights on its held-out classes, oldest first
    # (what skip_weight_rule="pooled_lcb" pools; in memory only, a reloaded version starts afresh)
    skip_history: tuple[tuple[SkipWeightTrial, ...], ...] = ()


@dataclass(frozen=True)
class StepOutcome:
    candidate: ModelState
    prototypes: Prototypes
    training: TrainResult
    mode: str  # "full" or "incremental"
    new_items: int
    rehearsal_items: int
    evaluation: EvaluationReport | None = None  # candidate on the evaluation items
    baselines: dict[str, EvaluationReport] = field(default_factory=dict)  # "production": previous model
    forgetting: dict[str, float] = field(default_factory=dict)  # per previous class: previous - candidate MAP@R
    compatibility: dict[str, Any] = field(default_factory=dict)
    skip_weight: SkipWeightChoice | None = None  # with TrainConfig.skip_weight_auto, when measurable


def _fresh_buffer(dim: int, config: TrainConfig) -> RehearsalBuffer:
    return empty_buffer(dim, budget=config.buffer_items(dim), policy=config.buffer_policy,
                        min_quota=config.buffer_min_quota, seed=config.seed)


def continual_step(data: LabelledData, config: TrainConfig, *, previous: ModelState | None = None,
                   full: bool = False, evaluation: LabelledData | None = None, progress: bool = False,
                   desc: str = "train", sample_weight: np.ndarray | None = None,
                   group_column: str | None = None) -> StepOutcome:
    """Train a candidate from ``data`` (the new items; everything, for a full step); see module doc.

    ``previous``: the version the candidate would replace (required for an incremental step; for a
    full step it is only evaluated beside the candidate). ``evaluation``: held-out items scored for
    both; none of them may be in ``data``. ``sample_weight``: per item of ``data``, the weight of its
    loss terms (rehearsal items weigh 1). ``group_column``: the name of ``evaluation.groups``.
    """
    if len(data) == 0:
        raise ValidationError("a training step needs at least one labelled item")
    # The embedding passes after training (buffer, prototypes, evaluation) run under the training's
    # thread limit too: on two spinning torch threads they cost more CPU than a digits update's training.
    with limited_threads(config.cpu_threads):
        return _step(data, config, previous=previous, full=full, evaluation=evaluation, progress=progress,
                     desc=desc, sample_weight=sample_weight, group_column=group_column)


def _step(data: LabelledData, config: TrainConfig, *, previous: ModelState | None, full: bool,
          evaluation: LabelledData | None, progress: bool, desc: str, sample_weight: np.ndarray | None,
          group_column: str | None) -> StepOutcome:
    from embedding.model import embed_array
    from embedding.trainer import train

    incremental = previous is not None and not full
    if incremental:
        buffer = previous.buffer if previous.buffer is not None else _fresh_buffer(data.features.shape[1], config)
        # The config's budget wins (a larger memory budget takes effect at the next update).
        buffer = dataclasses.replace(buffer, budget=config.buffer_items(data.features.shape[1]))
        rehearse = ~np.isin(buffer.item_ids, data.item_ids)  # an item re-sent by the stream is new again
        x = np.concatenate([data.features, buffer.features[rehearse]])
        y = np.concatenate([data.labels, buffer.labels[rehearse]])
        is_rehearsal = np.concatenate([np.zeros(len(data), bool), np.ones(int(rehearse.sum()), bool)])
        weights = None if sample_weight is None else np.concatenate(
            [np.asarray(sample_weight, np.float32), np.ones(int(rehearse.sum()), np.float32)])
        result = train(x, y, config, init_model=previous.model, init_classes=previous.classes,
                       init_loss_state=previous.loss_state, teacher=previous.model,
                       rehearsal_mask=is_rehearsal, progress=progress, desc=desc, sample_weight=weights)
        if config.interpolate_previous > 0:
            share = (validated_share(result.model, previous.model, x[result.val_mask], y[result.val_mask], config)
                     if config.interpolate_rule == "validated" else config.interpolate_previous)
            if share > 0:
                interpolate_weights(result.model, previous.model, share)
        kept = buffer.select(rehearse)
    else:
        buffer = kept = _fresh_buffer(data.features.shape[1], config)
        result = train(data.features, data.labels, config, progress=progress, desc=desc, sample_weight=sample_weight)
        is_rehearsal = np.zeros(len(data), bool)

    choice = _choose_skip_weight(data, config, previous if incremental else None) if config.skip_weight_auto else None
    if choice is not None:
        result.model.spec = dataclasses.replace(result.model.spec, skip_weight=choice.skip_weight)
        log.info("skip weight %.2f (%s)", choice.skip_weight, choice.reason)

    def embed(a: np.ndarray) -> np.ndarray:
        return embed_array(result.model, a, device="cpu")

    # Items weighted 0 (suspect labels left out of training) neither enter the rehearsal buffer nor
    # move their (wrong) class's prototype.
    admitted = data if sample_weight is None else data.select(np.asarray(sample_weight) > 0)
    new_buffer = update_buffer(buffer, admitted.item_ids, admitted.labels, admitted.features, embed_fn=embed)
    prototypes = refresh_prototypes(embed, np.concatenate([kept.features, admitted.features]),
                                    np.concatenate([kept.labels, admitted.labels]))
    history = (previous.skip_history if incremental else ()) + ((choice.trials,) if choice is not None else ())
    candidate = ModelState(result.model, result.classes, result.loss_state, new_buffer, history)
    outcome = StepOutcome(candidate, prototypes, result, "incremental" if incremental else "full",
                          new_items=len(data), rehearsal_items=int(is_rehearsal.sum()), skip_weight=choice)
    if evaluation is not None and len(set(evaluation.labels.tolist())) >= 2:
        outcome = _evaluated(outcome, evaluation, previous, embed, group_column)
    return outcome


def interpolate_weights(model: EmbeddingHead, previous: EmbeddingHead, share: float) -> None:
    """``model``'s parameters (in place) := (1 - share) * its own + share * ``previous``'s
    (TrainConfig.interpolate_previous). Buffers (the standardiser, a skip path) are left alone: an update
    keeps or refits them, and averaging a refitted skip path would match neither version."""
    import torch

    old = dict(previous.named_parameters())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in old or old[name].shape != p.shape:
                raise ValidationError(f"cannot interpolate {name}: the previous model has no parameter of shape "
                                      f"{tuple(p.shape)} there (architectures differ)")
            p.mul_(1.0 - share).add_(old[name].to(p.device), alpha=share)


def validated_share(model: EmbeddingHead, previous: EmbeddingHead, x_val: np.ndarray, y_val: np.ndarray,
                    config: TrainConfig) -> float:
    """TrainConfig.interpolate_rule="validated": of 0, half and all of interpolate_previous, the share
    whose interpolated model scores the highest MAP@R on the update's validation items (``x_val``,
    ``y_val``: the split the trainer kept out, ``TrainResult.val_mask``), ties to the larger share.
    Fewer than two validation classes: the configured share."""
    import copy

    from embedding.evaluation import SmallSetMapAtR
    from embedding.model import embed_array

    if len(np.unique(y_val)) < 2:
        return config.interpolate_previous
    score = SmallSetMapAtR.of(y_val)
    best, best_value = 0.0, score(embed_array(model, x_val))
    for share in (config.interpolate_previous / 2, config.interpolate_previous):
        mixed = copy.deepcopy(model)
        interpolate_weights(mixed, previous, share)
        value = score(embed_array(mixed, x_val))
        if value >= best_value:
            best, best_value = share, value
    log.info("interpolation share %.3f (validation MAP@R %.4f)", best, best_value)
    return best


def _choose_skip_weight(data: LabelledData, config: TrainConfig, previous: ModelState | None) -> SkipWeightChoice | None:
    """The blend's skip weight from classes a head did not train on (embedding/skip_weight.py): the
    previous version scored on this step's new classes, or, for a full training, a validation fit
    that leaves a quarter of the classes out (at least two, so both sides keep two). None: fewer than
    two such classes, the configured weight stays."""
    from embedding.model import HeadOnly, SkipOnly, embed_array
    from embedding.trainer import train

    if previous is not None:
        held = ~np.isin(data.labels, list(previous.classes))
        head = previous.model
    else:
        classes = data.classes
        if len(classes) < 4:
            return None
        rng = np.random.default_rng([config.seed, 12])
        left_out = rng.choice(classes, size=max(2, len(classes) // 4), replace=False)
        held = np.isin(data.labels, left_out)
        head = train(data.features[~held], data.labels[~held], config, progress=False,
                     desc="skip-weight validation fit").model
    if len(set(data.labels[held].tolist())) < 2:
        return None
    x = data.features[held]
    trials, raw = skip_weight_trials(x, embed_array(HeadOnly(head), x), data.labels[held],
                                     skip=embed_array(SkipOnly(head), x))
    if config.skip_weight_rule == "pooled_lcb":
        earlier = previous.skip_history if previous is not None else ()
        in_force = previous.model.spec.skip_weight if previous is not None else config.skip_weight
        return choose_skip_weight_pooled([*earlier, trials], raw, seed=config.seed,
                                         confidence=config.skip_weight_confidence,
                                         min_classes=config.skip_weight_min_classes, fallback_weight=in_force)
    return choose_skip_weight(trials, raw)


def _evaluated(outcome: StepOutcome, items: LabelledData, previous: ModelState | None, embed,
               group_column: str | None = None) -> StepOutcome:
    """``outcome`` with the candidate (and the previous model, on the same items) evaluated."""
    from embedding.model import embed_array

    old_classes = previous.classes if previous is not None else None
    groups = {"groups": items.groups, "group_column": group_column or "group"} if items.groups is not None else {}
    cand_emb = embed(items.features)
    evaluation = evaluate_embeddings(cand_emb, items.labels, old_classes=old_classes, **groups)
    # The raw input features, normalised, with no model: what serving without a model would give.
    raw = evaluate_embeddings(_l2(items.features), items.labels, old_classes=old_classes, per_class=False, **groups)
    if previous is None:
        return dataclasses.replace(outcome, evaluation=evaluation, baselines={"raw": raw})
    prev_emb = embed_array(previous.model, items.features)
    baseline = evaluate_embeddings(prev_emb, items.labels, old_classes=old_classes, **groups)
    forgetting = {c: baseline.per_class[c].map_at_r - m.map_at_r for c, m in evaluation.per_class.items()
                  if c in baseline.per_class and c in set(old_classes)}
    return dataclasses.replace(outcome, evaluation=evaluation, baselines={"production": baseline, "raw": raw},
                               forgetting=forgetting,
                               compatibility=compatibility(cand_emb, prev_emb, items.labels))


def _l2(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)
