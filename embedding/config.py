"""The training configuration: one frozen dataclass, stored with every model version.

Defaults are sized for CPU: a one-hidden-layer head trains on sklearn digits in seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError

LOSSES: tuple[str, ...] = (
    "contrastive",
    "triplet",
    "multi_similarity",
    "proxy_anchor",
    "arcface",
    "cosface",
    "supcon",
)
# Losses that own a per-class parameter matrix (proxies / classifier weights).
PARAMETRIC_LOSSES: frozenset[str] = frozenset({"proxy_anchor", "arcface", "cosface"})
MINERS: tuple[str, ...] = ("default", "none", "hard", "semihard", "all", "multi_similarity", "batch_hard")
BUFFER_POLICIES: tuple[str, ...] = ("balanced_reservoir", "reservoir", "herding")
SAMPLERS: tuple[str, ...] = ("m_per_class", "long_tail", "random")
HEAD_KINDS: tuple[str, ...] = ("mlp", "residual", "blend")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
GAIN_RULES: tuple[str, ...] = ("mean", "classes", "queries")  # see TrainConfig.incremental_gain_rule
INTERPOLATE_RULES: tuple[str, ...] = ("fixed", "validated")  # see TrainConfig.interpolate_rule
BLEND_SKIPS: tuple[str, ...] = ("raw", "whitened")
SKIP_WEIGHT_RULES: tuple[str, ...] = ("point", "pooled_lcb")  # see embedding/skip_weight.py


@dataclass(frozen=True)
class TrainConfig:
    # Head architecture: "mlp", "residual" (frozen skip path + zero-initialised MLP) or "blend"
    # (raw input and MLP output side by side, cosine = skip_weight * raw + rest * head); see model.py
    head: str = "mlp"
    skip_weight: float = 0.5  # "blend": share of the raw input in the served cosine, in [0, 1)
    # "blend": train the metric loss (and distillation) on the head's own output, the raw input put
    # beside it only when serving. Off (default): the losses see the blended embedding, whose fixed raw
    # share soaks up the loss margins and leaves the head under-trained (issue 12).
    blend_head_loss: bool = False
    # "blend" with blend_head_loss: choose skip_weight per version on classes the head did not train
    # on (the previous version on the step's new classes; for a full training a validation fit that
    # leaves a quarter of the classes out), the smallest weight keeping them at or above the raw
    # features (embedding/skip_weight.py). skip_weight is the fallback when fewer than two such
    # classes exist. Costs a second training on full steps.
    skip_weight_auto: bool = False
    # How skip_weight_auto decides. "point": the held-out MAP@R of this version's held-out classes at or
    # above raw. "pooled_lcb": a lower confidence bound on the per-class gain over raw, pooled over the
    # held-out classes of every version in this process's chain (a version reloaded from the registry
    # starts a new chain), so two lucky classes do not take the weight to 0 (issue 12).
    skip_weight_rule: str = "point"
    # "pooled_lcb": one-sided level of the lower bound, and the fewest pooled held-out classes it decides on
    # (fewer: the previous version's weight, or skip_weight at first, stays)
    skip_weight_confidence: float = 0.9
    skip_weight_min_classes: int = 2
    # "blend": the raw path beside the head. "raw": the L2-normalised input. "whitened": the normalised
    # input centred and whitened by the trained classes' within-class scatter, shrunk towards the
    # identity by skip_shrinkage (WCCN, as speaker verification does for unseen speakers), refitted on
    # every training's data. On the real text stream it scored at or above the raw features on classes
    # not trained on (issue 12).
    blend_skip: str = "raw"
    skip_shrinkage: float = 0.9
    hidden_dims: tuple[int, ...] = (256,)
    out_dim: int = 64
    dropout: float = 0.0
    # Loss and mining ("default" miner = the loss's natural companion, see losses.py)
    loss: str = "multi_similarity"
    loss_params: dict[str, Any] = field(default_factory=dict)
    miner: str = "default"
    # Sampling
    sampler: str = "m_per_class"
    m_per_class: int = 4
    batch_size: int = 128
    # Batch size of a warm-started update (None: batch_size). A step's cost is mostly fixed per-step
    # overhead at these sizes, so larger batches pass more items per second.
    incremental_batch_size: int | None = None
    long_tail_power: float = 0.5  # weight ~ count^-power when sampler="long_tail"
    # Optimisation
    epochs: int = 40  # full retrain
    incremental_epochs: int = 10  # warm-started update
    patience: int = 5
    # Early-stopping patience of a warm-started update (None: ``patience``). An update starts from a
    # model that already fits most of what it sees, so its validation score plateaus sooner.
    incremental_patience: int | None = 2
    # An update's epoch counts towards its patience unless it beats the best validation MAP@R by more
    # than this: on an easy stream (the score already near its ceiling) the update stops after a few
    # epochs, on a hard one it keeps going. 0 = any improvement resets the patience. Updates only.
    incremental_min_delta: float = 0.0
    # What counts as an update's real gain (one that resets its patience). "mean": any new best validation
    # MAP@R (beyond incremental_min_delta). "classes": a new best also needs more validation classes to
    # have improved than worsened against the previous best (a paired sign rule): on a small validation
    # set a gain carried by one or two classes is as likely noise as progress, while a small gain shared
    # by most classes is not. "queries": the same rule on the validation queries' AP@R (finer where
    # classes are few). A new best's weights are kept either way. Updates only. "queries" is the default:
    # on digits, synthetic and text (2 seeds, two runs) it left MAP@R and forgetting as they were and cut
    # digits' update steps from 26.9% to 25.5% of joint's (section continual_budget_screen); "classes"
    # stopped text updates too soon (85-89% of joint).
    incremental_gain_rule: str = "queries"
    lr: float = 1e-3
    # The warm start needs room to place new classes; with the cosine schedule and the bounded rehearsal
    # draw below, 6e-3 kept >= 95% of joint retraining at ~27% of its time on the text and synthetic
    # streams (benchmarks/continual.py, section "continual"; 2e-3 and the whole buffer: 32-69%).
    incremental_lr: float = 6e-3
    # Learning rate over an update's epochs: "constant", or "cosine" (decays from incremental_lr to 0 over
    # incremental_epochs: a short schedule ends annealed instead of at its largest step).
    incremental_schedule: str = "cosine"
    loss_lr: float = 1e-2  # proxies / classifier weights get their own optimizer
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    # Rehearsal
    # Items kept for rehearsal. None (default): sized from memory, buffer_mib MiB of float32 input
    # features (4 MiB holds 2730 items of 384-d text features, 16384 of 64-d digits). On the real
    # text stream 500 items ended at 70% of joint retraining's MAP@R, 4 MiB at ~96%
    # (benchmarks/continual.py --ablation). A count set here wins over the memory budget.
    buffer_budget: int | None = None
    buffer_mib: float = 4.0
    buffer_policy: str = "balanced_reservoir"
    buffer_min_quota: int = 5
    # Rehearsal items per epoch, as a multiple of the new items, drawn afresh every epoch (None: the
    # whole buffer every epoch). Bounds an update's cost when the buffer is large.
    rehearsal_draw: float | None = 1.0
    # With rehearsal_draw: every class in the rehearsal set gets at least this many items in each
    # epoch's draw (or all it has), even when draw x new items is smaller than classes x quota; the
    # rest of the draw is shared equally among classes (water-filled, embedding.buffer.allocate).
    rehearsal_min_quota: int = 4
    # Against forgetting / for compatibility (weights of terms added to the metric loss)
    distill_feature: float = 1.0
    distill_relational: float = 1.0
    # Scale both distillation weights by sqrt(old classes / new classes) (LUCIR's adaptive weight):
    # the more the model already knows relative to what the step brings, the more it is held.
    distill_adaptive: bool = False
    # Old-class anchoring: the previous model's class prototypes (from the rehearsal items, computed once
    # per update) act as a frozen cosine classifier for items of those classes (cross-entropy at
    # anchor_temperature): each batch is pulled towards where every old class was, not only the old
    # classes it happens to sample. 0 = off.
    anchor_weight: float = 0.0
    anchor_temperature: float = 0.1
    bct_weight: float = 0.0
    # Weight-space interpolation after an update (WiSE-FT, Wortsman et al. CVPR 2022; model averaging
    # against forgetting): the candidate's parameters become (1 - share) * updated + share * previous.
    # A warm-started update stays in the previous model's basin, so the average keeps most of what the
    # update learnt while pulling every old class back towards where it was. 0 = off. Updates only.
    # Off: on the text stream it lowers forgetting mostly by learning the new classes less (the old
    # classes end where they did), and with incremental_lr=1e-2 to make up for it synthetic and digits
    # lose MAP@R (share 0.15: 93.5% / 95.0% of joint, 4 seeds; RESULTS.md tforget_interp4).
    interpolate_previous: float = 0.0
    # How the share is set. "fixed": interpolate_previous itself. "validated": the share among 0,
    # interpolate_previous / 2 and interpolate_previous with the highest MAP@R on the update's validation
    # items (the split early stopping uses, never trained on), ties to the larger share, as WiSE-FT picks
    # its mixing weight on held-out data: where pulling back costs the new classes more than it gives the
    # old ones (a stream whose inputs drift), the update stays as trained.
    interpolate_rule: str = "fixed"
    # Keep what the input knows (issue 12): weight of 1 - the row-wise correlation between the batch's
    # cosines under the head and under the raw input features (distillation.raw_structure_loss),
    # on every item of every batch, new and rehearsed, in full and incremental training. 0 = off.
    raw_structure_weight: float = 0.0
    bct_temperature: float = 0.05
    # Noisy labels: weight of the metric-loss terms of items flagged as suspect labels (their label
    # disagrees with most of their neighbours under production, embedding.label_noise); 1.0 = off.
    suspect_weight: float = 1.0
    # Training craft (issue 17), all off by default; see embedding/craft.py
    aug_noise: float = 0.0  # Gaussian noise on standardised inputs, this std
    aug_dropout: float = 0.0  # input feature dropout rate
    aug_mixup: float = 0.0  # share of items replaced by a mix with a same-class item of the batch
    compact_weight: float = 0.0  # intra-class compactness: 1 - cos(item, its batch class mean)
    # Label smoothing (eps): ArcFace/CosFace smooth their own cross-entropy targets; the other losses
    # get an auxiliary batch-prototype classifier term with smoothed targets (craft.py says why).
    label_smoothing: float = 0.0
    # Focal-style weighting: the metric loss keeps an item with probability ~ (1 - p_correct)^gamma,
    # p_correct = softmax over cosines to the batch's class centres (well-placed items count less).
    focal_gamma: float = 0.0
    # Margin warm-up: the loss's margin (or scale / inverse temperature) ramps linearly from
    # 1/(N+1) of its configured value to the full value over the first N epochs of each training run.
    margin_warmup_epochs: int = 0
    # Curriculum: for the first N epochs the metric loss leaves out the hardest share of each
    # batch's items (farthest from their class centre), 50% in epoch 1 shrinking linearly to none.
    curriculum_epochs: int = 0
    # Misc
    seed: int = 0
    device: str = "cpu"
    # torch (and BLAS) CPU threads while training and for the rest of a continual step's embedding
    # passes (None: leave the process's setting). Small heads train fastest on one thread; on a shared
    # CPU more intra-op threads were ~10x slower (measured here).
    cpu_threads: int | None = 1
    text_encoder: str | None = None  # "all-MiniLM-L6-v2" for text collections

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.miner not in MINERS:
            raise ConfigError(f"unknown miner {self.miner!r}; choose one of {', '.join(MINERS)}")
        if self.buffer_policy not in BUFFER_POLICIES:
            raise ConfigError(
                f"unknown buffer policy {self.buffer_policy!r}; choose one of {', '.join(BUFFER_POLICIES)}"
            )
        if self.head not in HEAD_KINDS:
            raise ConfigError(f"unknown head {self.head!r}; choose one of {', '.join(HEAD_KINDS)}")
        if self.skip_weight_auto and (self.head != "blend" or not self.blend_head_loss):
            raise ConfigError("skip_weight_auto needs head='blend' and blend_head_loss=True (the weight is "
                              f"chosen after training), got head={self.head!r}, blend_head_loss={self.blend_head_loss}")
        if self.skip_weight_rule not in SKIP_WEIGHT_RULES:
            raise ConfigError(f"unknown skip_weight_rule {self.skip_weight_rule!r}; choose one of "
                              f"{', '.join(SKIP_WEIGHT_RULES)}")
        if self.skip_weight_rule != "point" and not self.skip_weight_auto:
            raise ConfigError(f"skip_weight_rule={self.skip_weight_rule!r} decides skip_weight_auto's choice; "
                              "set skip_weight_auto=True or leave the rule at 'point'")
        if not 0.5 <= self.skip_weight_confidence < 1.0:
            raise ConfigError(f"skip_weight_confidence must be in [0.5, 1) (a one-sided level), got "
                              f"{self.skip_weight_confidence}")
        if self.skip_weight_min_classes < 2:
            raise ConfigError(f"skip_weight_min_classes must be >= 2 (one class has no spread), got "
                              f"{self.skip_weight_min_classes}")
        if self.blend_skip not in BLEND_SKIPS:
            raise ConfigError(f"unknown blend_skip {self.blend_skip!r}; choose one of {', '.join(BLEND_SKIPS)}")
        if not 0.0 < self.skip_shrinkage <= 1.0:
            raise ConfigError(f"skip_shrinkage must be in (0, 1] (1 = no whitening), got {self.skip_shrinkage}")
        if not 0.0 <= self.skip_weight < 1.0:
            raise ConfigError(f"skip_weight must be in [0, 1), got {self.skip_weight}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        for name in ("out_dim", "m_per_class", "batch_size", "epochs", "incremental_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if (self.buffer_budget is not None and self.buffer_budget < 0) or self.buffer_min_quota < 0:
            raise ConfigError("buffer_budget and buffer_min_quota must be >= 0")
        if not 0.0 <= self.suspect_weight <= 1.0:
            raise ConfigError(f"suspect_weight must be in [0, 1] (1 = off), got {self.suspect_weight}")
        if self.buffer_mib < 0:
            raise ConfigError(f"buffer_mib must be >= 0, got {self.buffer_mib}")
        if self.incremental_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown incremental_schedule {self.incremental_schedule!r}; choose one of "
                              f"{', '.join(LR_SCHEDULES)}")
        if self.incremental_patience is not None and self.incremental_patience < 1:
            raise ConfigError(f"incremental_patience must be >= 1 (or unset for patience), got {self.incremental_patience}")
        if not 0.0 <= self.incremental_min_delta < 1.0:
            raise ConfigError(f"incremental_min_delta must be in [0, 1), got {self.incremental_min_delta}")
        if self.incremental_gain_rule not in GAIN_RULES:
            raise ConfigError(f"unknown incremental_gain_rule {self.incremental_gain_rule!r}; choose one of "
                              f"{', '.join(GAIN_RULES)}")
        if self.rehearsal_min_quota < 0:
            raise ConfigError(f"rehearsal_min_quota must be >= 0, got {self.rehearsal_min_quota}")
        if self.anchor_weight < 0 or self.anchor_temperature <= 0:
            raise ConfigError(f"anchor_weight must be >= 0 and anchor_temperature > 0, got "
                              f"{self.anchor_weight} and {self.anchor_temperature}")
        if self.rehearsal_draw is not None and self.rehearsal_draw <= 0:
            raise ConfigError(f"rehearsal_draw must be > 0 (or unset for the whole buffer), got {self.rehearsal_draw}")
        for name in ("aug_dropout", "aug_mixup"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.interpolate_previous < 1.0:
            raise ConfigError(f"interpolate_previous must be in [0, 1) (0 = off; 1 would discard the update), "
                              f"got {self.interpolate_previous}")
        if self.interpolate_rule not in INTERPOLATE_RULES:
            raise ConfigError(f"unknown interpolate_rule {self.interpolate_rule!r}; choose one of "
                              f"{', '.join(INTERPOLATE_RULES)}")
        if self.raw_structure_weight < 0:
            raise ConfigError(f"raw_structure_weight must be >= 0 (0 = off), got {self.raw_structure_weight}")
        if self.aug_noise < 0 or self.compact_weight < 0:
            raise ConfigError("aug_noise and compact_weight must be >= 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1) (0 = off), got {self.label_smoothing}")
        if self.focal_gamma < 0:
            raise ConfigError(f"focal_gamma must be >= 0 (0 = off), got {self.focal_gamma}")
        for name in ("margin_warmup_epochs", "curriculum_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a whole number of epochs >= 0 (0 = off), got {value!r}")
        if not 0.0 <= self.val_fraction < 0.9:
            raise ConfigError(f"val_fraction must be in [0, 0.9), got {self.val_fraction}")
        if self.incremental_batch_size is not None and self.incremental_batch_size < 2 * self.m_per_class:
            raise ConfigError(f"incremental_batch_size {self.incremental_batch_size} must hold at least two "
                              f"classes of m_per_class {self.m_per_class} (or be unset for batch_size)")
        if self.batch_size < 2 * self.m_per_class:
            raise ConfigError(
                f"batch_size {self.batch_size} must hold at least two classes of m_per_class "
                f"{self.m_per_class}; raise batch_size or lower m_per_class"
            )
        # Normalise the sequence type so configs rebuilt from JSON compare equal.
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))

    @property
    def parametric(self) -> bool:
        return self.loss in PARAMETRIC_LOSSES

    def buffer_items(self, dim: int) -> int:
        """The rehearsal budget in items for inputs of ``dim`` float32 features."""
        if self.buffer_budget is not None:
            return self.buffer_budget
        return int(self.buffer_mib * 2**20 // (4 * max(dim, 1)))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_dims"] = list(self.hidden_dims)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training config keys {unknown}; valid keys: {sorted(known)}")
        return cls(**data)
