"""Training loops: a full retrain from scratch and an incremental, warm-started update.

An update trains on the new data plus the rehearsal sample, starting from the previous model,
with distillation from that model on the rehearsal items (and optionally a BCT term). Both modes
run bounded epochs and stop early when validation MAP@R stops improving, keeping the best epoch.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.errors import ValidationError
from core.progress import progress as report_progress
from embedding.buffer import allocate
from embedding.config import TrainConfig
from embedding.craft import (
    augment,
    augments,
    compactness_loss,
    metric_subset,
    smoothed_centre_loss,
    warmup_factor,
)
from embedding.distillation import bct_loss, feature_distillation, raw_structure_loss, relational_distillation
from embedding.evaluation import SmallSetMapAtR
from embedding.losses import (
    SMOOTHED_NATIVELY,
    LossBundle,
    build_loss,
    grow_loss,
    set_class_weights,
    set_warmup,
    warmup_bases,
)
from embedding.model import EmbeddingHead, HeadOnly, HeadSpec, build_head, embed_array, resolve_device
from embedding.prototypes import compute_prototypes
from embedding.sampling import make_batches
from embedding.threads import limited_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    model: EmbeddingHead
    classes: tuple[str, ...]  # row order of the loss's class weights
    loss_state: dict[str, Any] | None  # state_dict of a parametric loss, to grow it next time
    history: tuple[dict[str, float], ...]
    epochs_run: int
    best_epoch: int
    best_val_map: float | None
    seconds: float
    stopped_early: bool
    steps: int = 0  # optimizer steps taken: a machine-independent measure of training cost
    # bool per training item: the validation split early stopping scored (never trained on); all False
    # when there was none
    val_mask: np.ndarray | None = None


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation items: ``fraction`` of each class with >= 4 items, seeded."""
    rng = np.random.default_rng([seed, 7])
    mask = np.zeros(len(labels), dtype=bool)
    if fraction <= 0:
        return mask
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) >= 4:
            n_val = max(1, round(len(idx) * fraction))
            mask[rng.choice(idx, size=n_val, replace=False)] = True
    return mask


def _trained_view(model: EmbeddingHead, config: TrainConfig) -> torch.nn.Module:
    """What the training losses see: the served embedding, or for a ``blend`` head with
    ``blend_head_loss`` its learned part alone (the raw input is put beside it only when serving)."""
    if config.blend_head_loss and model.spec.kind == "blend":
        return HeadOnly(model)
    return model


def train(features: np.ndarray, labels: np.ndarray, config: TrainConfig, *,
          init_model: EmbeddingHead | None = None, init_classes: tuple[str, ...] = (),
          init_loss_state: dict[str, Any] | None = None, teacher: EmbeddingHead | None = None,
          rehearsal_mask: np.ndarray | None = None, epochs: int | None = None, lr: float | None = None,
          progress: bool = True, desc: str = "train", sample_weight: np.ndarray | None = None) -> TrainResult:
    """Train (or continue training) an embedding head on labelled features.

    ``init_model``: warm start (copied, never modified). ``teacher``: the previous model, used for
    distillation on items where ``rehearsal_mask`` is True and for the BCT term. Classes not in
    ``init_classes`` are appended, and a parametric loss grows to hold them, new rows initialised
    from their prototypes under the warm-started model. ``sample_weight``: per-item weights in [0, 1]
    (e.g. ``TrainConfig.suspect_weight`` for suspect labels; None: all 1): each sampled batch keeps an
    item with that probability, so in expectation every loss term it takes part in (as anchor,
    positive or negative) counts w times, and weight 0 leaves it out.
    """
    with limited_threads(config.cpu_threads):
        return _train(features, labels, config, init_model=init_model, init_classes=init_classes,
                      init_loss_state=init_loss_state, teacher=teacher, rehearsal_mask=rehearsal_mask,
                      epochs=epochs, lr=lr, progress=progress, desc=desc, sample_weight=sample_weight)


def _check_inputs(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels).astype(str)
    if len(features) != len(labels) or features.ndim != 2:
        raise ValidationError(f"features {features.shape} and {len(labels)} labels do not match")
    if len(np.unique(labels)) < 2:
        raise ValidationError(
            f"training needs at least two classes, got {np.unique(labels).tolist()}; ingest more labelled data"
        )
    return features, labels


@dataclass
class _Teacher:
    """What the previous model contributes to every batch: distillation targets on rehearsal items
    and, with a BCT weight, its prototypes as a frozen cosine classifier."""

    config: TrainConfig
    embeddings: torch.Tensor  # the previous model's embeddings of the training items (rehearsed ones only without BCT)
    rehearsal: np.ndarray  # bool per training item
    prototypes: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    distill_scale: float = 1.0  # sqrt(old / new classes) with distill_adaptive
    anchors: torch.Tensor | None = None  # the previous model's prototypes of the old classes
    anchor_targets: torch.Tensor | None = None  # per training item: its row in anchors, -1 if none

    @classmethod
    def of(cls, teacher: EmbeddingHead, x: np.ndarray, y: np.ndarray, rehearsal: np.ndarray,
           config: TrainConfig, device: str, old_classes: tuple[str, ...] = ()) -> _Teacher:
        if next(teacher.parameters()).device != torch.device(device):
            # embed_array leaves the caller's model as it found it; a copy only to move it.
            teacher = copy.deepcopy(teacher).to(device)
        rehearsal = np.asarray(rehearsal, bool)
        view = _trained_view(teacher, config)
        if config.bct_weight > 0:
            emb = torch.as_tensor(embed_array(view, x, device=device), device=device)
        else:
            # Distillation and anchoring read the rehearsed rows only (a third of a digits update's
            # items are new): the others stay zero. Each row's embedding does not depend on which
            # rows are embedded beside it (row-wise layers; bit for bit here but for a lone row, which BLAS
            # computes with another kernel), so the rows read are what embedding every item gives.
            emb = torch.zeros((len(x), view.spec.embedding_dim), device=device)
            if rehearsal.any():
                at = torch.as_tensor(np.flatnonzero(rehearsal), device=device)
                emb[at] = torch.as_tensor(embed_array(view, x[rehearsal], device=device), device=device)
        out = cls(config, emb, rehearsal)
        if config.distill_adaptive:
            n_new = len(set(y.tolist()) - set(old_classes))
            out.distill_scale = float(np.sqrt(max(len(old_classes), 1) / max(n_new, 1)))
        if config.anchor_weight > 0 and rehearsal.any():
            # Prototypes of the old classes from the rehearsal items under the previous model, once
            # per update (the teacher's embeddings are already at hand).
            old = np.isin(y, list(old_classes)) & rehearsal
            if old.any():
                p = compute_prototypes(emb.cpu().numpy()[old], y[old])
                pos = {c: i for i, c in enumerate(p.labels)}
                out.anchors = torch.as_tensor(p.vectors, device=device)
                out.anchor_targets = torch.as_tensor([pos.get(c, -1) for c in y], dtype=torch.long, device=device)
        if config.bct_weight > 0:
            # The old model's prototypes, over every class in this training set, act as a frozen
            # cosine classifier (BCT uses the old model's features to place new classes).
            p = compute_prototypes(emb.cpu().numpy(), y)
            pos = {c: i for i, c in enumerate(p.labels)}
            out.prototypes = torch.as_tensor(p.vectors, device=device)
            out.targets = torch.as_tensor([pos[c] for c in y], dtype=torch.long, device=device)
        return out

    def loss(self, emb: torch.Tensor, batch: torch.Tensor, rows: np.ndarray) -> torch.Tensor | float:
        """``rows``: ``batch`` as a host array. Which of its items are rehearsed is looked up there:
        a boolean mask on the tensor would cost a few more dispatches and a sync every step."""
        cfg, total = self.config, 0.0
        pos = np.flatnonzero(self.rehearsal[rows])
        if len(pos) and (cfg.distill_feature or cfg.distill_relational):
            # The teacher's rows are gathered with the host's indices (one index op, not two), and the
            # student's rehearsed rows once for both terms: an update's steps are few and small, so each
            # dispatched op (and its backward node) is a visible share of the step.
            t_emb = self.embeddings[torch.as_tensor(rows[pos], device=emb.device)]
            new = emb[torch.as_tensor(pos, device=emb.device)]
            if cfg.distill_feature:
                total = total + self.distill_scale * cfg.distill_feature * feature_distillation(new, t_emb)
            if cfg.distill_relational:
                total = total + self.distill_scale * cfg.distill_relational * relational_distillation(new, t_emb)
        if self.anchors is not None:
            total = total + cfg.anchor_weight * bct_loss(emb, self.anchor_targets[batch], self.anchors,
                                                         cfg.anchor_temperature)
        if self.prototypes is not None:
            total = total + cfg.bct_weight * bct_loss(emb, self.targets[batch], self.prototypes, cfg.bct_temperature)
        return total


_TIE = 1e-6  # validation scores closer than this are a tie: the earlier epoch stays the best


@dataclass
class _Best:
    """Early stopping on validation MAP@R: the best epoch's weights (and loss state) are kept."""

    model_state: dict[str, Any]
    loss_state: dict[str, Any] | None
    value: float = -1.0
    epoch: int = 0
    bad_epochs: int = 0
    paired: np.ndarray | None = None  # the best epoch's per-class (or per-query) validation scores

    @property
    def unbeatable(self) -> bool:
        """MAP@R cannot exceed 1: from a perfect score on, no epoch can replace the best (later epochs
        would only be trained and thrown away)."""
        return self.value + _TIE >= 1.0

    def update(self, epoch: int, value: float | None, model: EmbeddingHead, bundle: LossBundle,
               min_delta: float = 0.0, paired: np.ndarray | None = None) -> None:
        """``paired`` (TrainConfig.incremental_gain_rule): this epoch's validation MAP@R per class or
        AP@R per query; a new best then resets the patience only if more of them improved than worsened."""
        if value is None:  # no validation split: the last epoch is the best
            self.epoch, self.model_state = epoch, model.state_dict()
            self.loss_state = bundle.loss.state_dict() if bundle.parametric else None
        elif value > self.value + _TIE:
            # A new best is always kept; it resets the patience only if it is a real gain.
            real = value > self.value + min_delta and _more_gained(paired, self.paired)
            self.bad_epochs = 0 if real else self.bad_epochs + 1
            self.value, self.epoch, self.paired = value, epoch, paired
            self.model_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.loss_state = copy.deepcopy(bundle.loss.state_dict()) if bundle.parametric else None
        else:
            self.bad_epochs += 1


def _more_gained(current: np.ndarray | None, best: np.ndarray | None) -> bool:
    """The paired sign rule: more classes (or queries) scored above ``best`` than below it (True without
    both)."""
    if current is None or best is None or current.shape != best.shape:
        return True
    return int((current > best).sum()) > int((current < best).sum())


def epoch_pool(rehearsal: np.ndarray, draw: float | None, rng: np.random.Generator,
               labels: np.ndarray | None = None, min_quota: int = 0) -> np.ndarray:
    """Training indices of one epoch: every new item, and the whole rehearsal set or (``draw``) a
    fresh draw of ``draw`` x (new items) of it. With ``labels`` the draw is class-balanced: every
    rehearsal class gets min(``min_quota``, what it has) items, possibly exceeding the draw, and the
    rest is shared equally (water-filled); without, it is uniform over the rehearsal items."""
    return EpochPools.of(rehearsal, draw, labels, min_quota).draw(rng)


@dataclass(frozen=True)
class EpochPools:
    """:func:`epoch_pool` for one training: the grouping of the rehearsal items by class and each
    class's share of the draw do not change between epochs, so they are worked out once."""

    new: np.ndarray  # indices of the new items
    groups: tuple[np.ndarray, ...]  # rehearsal indices: one group (uniform draw) or one per class, sorted
    sizes: tuple[int, ...]  # items drawn from each group every epoch
    everything: np.ndarray | None  # the whole training set every epoch (no draw, or nothing to rehearse)

    @classmethod
    def of(cls, rehearsal: np.ndarray, draw: float | None, labels: np.ndarray | None = None,
           min_quota: int = 0) -> EpochPools:
        new = np.flatnonzero(~rehearsal)
        if draw is None or not rehearsal.any():
            return cls(new, (), (), np.arange(len(rehearsal)))
        reh = np.flatnonzero(rehearsal)
        k = min(len(reh), max(1, int(np.ceil(draw * len(new)))))
        if labels is None:
            return cls(new, (reh,), (k,), None)
        by_class = {str(c): reh[labels[reh] == c] for c in np.unique(labels[reh])}
        available = {c: len(v) for c, v in by_class.items()}
        floor = sum(min(min_quota, n) for n in available.values())
        alloc = allocate({c: 1.0 for c in by_class}, available, max(k, floor), min_quota)
        order = sorted(by_class)
        return cls(new, tuple(by_class[c] for c in order), tuple(alloc[c] for c in order), None)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        if self.everything is not None:
            return self.everything
        drawn = [rng.choice(g, size=n, replace=False) for g, n in zip(self.groups, self.sizes, strict=True)]
        return np.sort(np.concatenate([self.new, *drawn]))


def lr_factor(epoch: int, epochs: int, schedule: str) -> float:
    """Multiplier of the base learning rate in ``epoch`` (1-based) of ``epochs``: 1 for "constant";
    for "cosine" half a cosine from 1 (first epoch) towards 0 (after the last)."""
    if schedule == "cosine":
        return 0.5 * (1.0 + float(np.cos(np.pi * (epoch - 1) / max(epochs, 1))))
    return 1.0


def _epoch(model: EmbeddingHead, bundle: LossBundle, teacher: _Teacher | None, x: torch.Tensor, y: torch.Tensor,
           y_idx: np.ndarray, optimizers: list[torch.optim.Optimizer], config: TrainConfig,
           rng: np.random.Generator, pool: np.ndarray, gen: torch.Generator,
           keep: np.ndarray | None = None, epoch: int = 1, batch_size: int | None = None) -> tuple[float, int]:
    """One pass over freshly sampled batches of ``pool``; returns (mean loss, optimizer steps).
    ``epoch`` (1-based) drives the curriculum."""
    batches = make_batches(y_idx[pool], sampler=config.sampler, m=config.m_per_class,
                           batch_size=batch_size or config.batch_size, rng=rng, long_tail_power=config.long_tail_power)
    total, n_steps = 0.0, 0
    view = _trained_view(model, config)
    for b in batches:
        b = pool[b]
        if keep is not None:  # per-item weights: thin the batch (the generator is only drawn from here)
            b = b[rng.random(len(b)) < keep[b]]
            if len(b) < 2:
                continue
        bt = torch.as_tensor(b, device=x.device)
        xb = raw_b = x[bt]
        if augments(config):
            xb = augment(xb, y[bt], config, model.input_mean, model.input_std, gen)
        emb = view(xb)
        yb = y[bt]
        # Curriculum / focal weighting: the metric loss sees a subset; the other terms the whole batch.
        sel = metric_subset(emb, yb, config, epoch, gen)
        loss = bundle(emb, yb) if sel is None else bundle(emb[sel], yb[sel])
        if config.label_smoothing > 0 and config.loss not in SMOOTHED_NATIVELY:
            loss = loss + smoothed_centre_loss(emb, yb, config.label_smoothing)
        if config.compact_weight > 0:
            loss = loss + config.compact_weight * compactness_loss(emb, y[bt])
        if config.raw_structure_weight > 0:
            loss = loss + config.raw_structure_weight * raw_structure_loss(emb, raw_b)
        if teacher is not None:
            loss = loss + teacher.loss(emb, bt, b)
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in optimizers:
            opt.step()
        total += float(loss.detach())
        n_steps += 1
    return total / max(n_steps, 1), n_steps


def _train(features: np.ndarray, labels: np.ndarray, config: TrainConfig, *,
           init_model: EmbeddingHead | None, init_classes: tuple[str, ...],
           init_loss_state: dict[str, Any] | None, teacher: EmbeddingHead | None,
           rehearsal_mask: np.ndarray | None, epochs: int | None, lr: float | None,
           progress: bool, desc: str, sample_weight: np.ndarray | None = None) -> TrainResult:
    t0 = time.perf_counter()
    features, labels = _check_inputs(features, labels)
    device = str(resolve_device(config.device))
    rehearsal_mask = np.zeros(len(labels), bool) if rehearsal_mask is None else np.asarray(rehearsal_mask, bool)
    epochs = epochs or (config.incremental_epochs if init_model is not None else config.epochs)
    lr = lr or (config.incremental_lr if init_model is not None else config.lr)
    warm = init_model is not None
    patience = (config.incremental_patience or config.patience) if warm else config.patience
    schedule = config.incremental_schedule if warm else "constant"
    min_delta = config.incremental_min_delta if warm else 0.0
    paired_by = config.incremental_gain_rule if warm else "mean"
    batch_size = (config.incremental_batch_size or config.batch_size) if warm else config.batch_size

    # Validation split for early stopping (never trained on).
    val_mask = stratified_split(labels, config.val_fraction, config.seed)
    if len(np.unique(labels[val_mask])) < 2:
        val_mask[:] = False
    x_tr, y_tr, reh_tr = features[~val_mask], labels[~val_mask], rehearsal_mask[~val_mask]
    if sample_weight is not None and len(sample_weight) != len(labels):
        raise ValidationError(f"{len(sample_weight)} sample weights for {len(labels)} training items")
    w_tr = None if sample_weight is None else np.asarray(sample_weight, np.float32)[~val_mask]
    x_val, y_val = features[val_mask], labels[val_mask]

    if init_model is None:
        model = build_head(HeadSpec.from_config(features.shape[1], config), config.seed)
        model.fit_standardizer(x_tr)
    else:
        model = copy.deepcopy(init_model)
    # A whitened blend's raw path is refitted on every training's items (new and rehearsed): unlike
    # the standardiser it is not learned on, so it can follow the classes seen so far.
    model.fit_skip(x_tr, y_tr, config.skip_shrinkage)
    model.to(device).train()

    classes = tuple(init_classes) + tuple(sorted(set(y_tr.tolist()) - set(init_classes)))
    class_index = {c: i for i, c in enumerate(classes)}
    y_idx = np.array([class_index[c] for c in y_tr], dtype=np.int64)
    bundle = _build_or_grow_loss(config, model, init_classes, init_loss_state, classes, x_tr, y_tr, device)
    guide = (_Teacher.of(teacher, x_tr, y_tr, reh_tr, config, device, tuple(init_classes))
             if teacher is not None else None)
    optimizers = [torch.optim.Adam([{"params": model.parameters(), "lr": lr, "weight_decay": config.weight_decay}])]
    if bundle.parametric:
        optimizers.append(torch.optim.Adam(bundle.loss.parameters(), lr=config.loss_lr))

    x_t, y_t = torch.as_tensor(x_tr, device=device), torch.as_tensor(y_idx, device=device)
    keep = w_tr if w_tr is not None and bool((w_tr < 1.0).any()) else None
    rng = np.random.default_rng([config.seed, 11])
    gen = torch.Generator().manual_seed(config.seed + 13)  # augmentation draws
    history: list[dict[str, float]] = []
    best = _Best({k: v.detach().clone() for k, v in model.state_dict().items()},
                 copy.deepcopy(bundle.loss.state_dict()) if bundle.parametric else None)
    has_val, stopped_early, total_steps = bool(val_mask.any()), False, 0
    val_map = SmallSetMapAtR.of(y_val) if has_val else None
    bases = warmup_bases(bundle, config) if config.margin_warmup_epochs > 0 else {}

    def last_epoch() -> str:
        return ", ".join(f"{k} {v:.4f}" for k, v in history[-1].items() if k != "epoch") if history else ""

    pools = EpochPools.of(reh_tr, config.rehearsal_draw, y_tr, config.rehearsal_min_quota)
    for epoch in report_progress(range(1, epochs + 1), desc, total=epochs, unit="epoch", enabled=progress,
                                 status=last_epoch):
        pool = pools.draw(rng)
        if schedule != "constant":
            optimizers[0].param_groups[0]["lr"] = lr * lr_factor(epoch, epochs, schedule)
        if bases:
            set_warmup(bundle, config, bases, warmup_factor(epoch, config.margin_warmup_epochs))
        mean_loss, n_steps = _epoch(model, bundle, guide, x_t, y_t, y_idx, optimizers, config, rng, pool, gen, keep,
                                    epoch, batch_size)
        total_steps += n_steps
        row = {"epoch": epoch, "loss": mean_loss}
        paired = None  # per-class or per-query validation scores, for incremental_gain_rule
        if val_map is not None:
            val_emb = embed_array(model, x_val, device=device)
            if paired_by == "classes":
                row["val_map_at_r"], paired = val_map.with_classes(val_emb)
            elif paired_by == "queries":
                row["val_map_at_r"], paired = val_map.with_queries(val_emb)
            else:
                row["val_map_at_r"] = val_map(val_emb)
        best.update(epoch, row.get("val_map_at_r"), model, bundle, min_delta, paired)
        history.append(row)
        if has_val and (best.bad_epochs >= patience or best.unbeatable):
            stopped_early = True
            break
    if bases:  # leave the loss as configured (it may be grown and reused by the next update)
        set_warmup(bundle, config, bases, 1.0)
    model.load_state_dict(best.model_state)
    model.to("cpu").eval()
    loss_state = ({k: v.detach().cpu().clone() for k, v in best.loss_state.items()}
                  if best.loss_state is not None else None)
    seconds = time.perf_counter() - t0
    log.info("%s: %d epochs (best %d, val MAP@R %.4f) in %.1fs", desc, len(history), best.epoch, best.value, seconds)
    return TrainResult(model, classes, loss_state, tuple(history), len(history), best.epoch,
                       best.value if has_val else None, seconds, stopped_early, total_steps, val_mask)


def _build_or_grow_loss(config: TrainConfig, model: EmbeddingHead, init_classes: tuple[str, ...],
                        init_loss_state: dict[str, Any] | None, classes: tuple[str, ...],
                        x: np.ndarray, y: np.ndarray, device: str) -> LossBundle:
    dim = _trained_view(model, config).spec.embedding_dim
    if not config.parametric or not init_classes or init_loss_state is None:
        bundle = build_loss(config, len(classes), dim)
        if config.parametric and init_classes:
            # Warm start without saved proxies: start every row from its refreshed prototype.
            _init_rows_from_prototypes(bundle, config, model, classes, x, y, device)
        return bundle.__class__(bundle.loss.to(device), bundle.miner, bundle.num_classes, dim, bundle.parametric)
    old = build_loss(config, len(init_classes), dim)
    old.loss.load_state_dict(init_loss_state)
    added = [c for c in classes if c not in init_classes]
    new_rows = None
    if added:
        emb = embed_array(_trained_view(model, config), x[np.isin(y, added)], device=device)
        protos = compute_prototypes(emb, y[np.isin(y, added)])
        new_rows = torch.as_tensor(np.stack([protos.vectors[protos.index_of(c)] for c in added]))
    grown = grow_loss(old, config, len(classes), new_rows)
    grown.loss.to(device)
    return grown


def _init_rows_from_prototypes(bundle: LossBundle, config: TrainConfig, model: EmbeddingHead,
                               classes: tuple[str, ...], x: np.ndarray, y: np.ndarray, device: str) -> None:
    protos = compute_prototypes(embed_array(_trained_view(model, config), x, device=device), y)
    rows = torch.as_tensor(np.stack([protos.vectors[protos.index_of(c)] for c in classes]))
    set_class_weights(bundle.loss, rows)
