"""All drift knobs in one frozen config (defaults sized for a ≤ 1 s check of 10k×384 vs 2k×384)."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitoring.decision import SeverityConfig
from monitoring.detectors.classifier import ClassifierConfig
from monitoring.detectors.ks import KSConfig
from monitoring.detectors.labels import LabelConfig
from monitoring.detectors.mmd import MMDConfig
from monitoring.detectors.novelty import NoveltyConfig

ALL_DETECTORS: tuple[str, ...] = (
    "mmd",
    "classifier",
    "ks",
    "novelty",
    "label_shift",
    "prototype_displacement",
)


@dataclass(frozen=True)
class DriftConfig:
    alpha: float = 0.05
    method: str = "holm"  # family-wise correction across detectors: "holm" or "bonferroni"
    detectors: tuple[str, ...] = ALL_DETECTORS  # label detectors run only when both sides have labels
    seed: int = 0
    mmd: MMDConfig = field(default_factory=MMDConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    ks: KSConfig = field(default_factory=KSConfig)
    novelty: NoveltyConfig = field(default_factory=NoveltyConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    # when a significant detector acts (alert + retrain): floors, control-chart k, history needed
    severity: SeverityConfig = field(default_factory=SeverityConfig)
