"""All drift knobs in one frozen config (defaults sized for a ≤ 1 s check of 10k×384 vs 2k×384)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.errors import ConfigError
from monitoring.decision import SeverityConfig
from monitoring.detectors.classifier import ClassifierConfig
from monitoring.detectors.ks import KSConfig
from monitoring.detectors.labels import LabelConfig
from monitoring.detectors.mmd import MMDConfig
from monitoring.detectors.neighbourhood import NeighbourhoodConfig
from monitoring.detectors.novelty import NoveltyConfig

ALL_DETECTORS: tuple[str, ...] = (
    "mmd",
    "classifier",
    "ks",
    "novelty",
    "label_shift",
    "prototype_displacement",
    "neighbourhood",
)

# What runs unless a config names its detectors. ``neighbourhood`` is opt-in: on streams whose batches
# bring sub-populations the reference has not seen (contiguous slices of real text) its effect is as
# large without a new class as with one, and it would act on every batch (benchmarks/drift.py --real
# --real-new-shares, sections drift_real_shares and drift_real_debian_shares).
DEFAULT_DETECTORS: tuple[str, ...] = tuple(d for d in ALL_DETECTORS if d != "neighbourhood")


@dataclass(frozen=True)
class DriftConfig:
    alpha: float = 0.05
    method: str = "holm"  # family-wise correction across detectors: "holm" or "bonferroni"
    detectors: tuple[str, ...] = DEFAULT_DETECTORS  # label detectors run only when both sides have labels
    seed: int = 0
    mmd: MMDConfig = field(default_factory=MMDConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    ks: KSConfig = field(default_factory=KSConfig)
    novelty: NoveltyConfig = field(default_factory=NoveltyConfig)
    neighbourhood: NeighbourhoodConfig = field(default_factory=NeighbourhoodConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    # when a significant detector acts (alert + retrain): floors, control-chart k, history needed
    severity: SeverityConfig = field(default_factory=SeverityConfig)

    def with_extra_detectors(self, names: str) -> DriftConfig:
        """This config with the comma-separated detectors ``names`` (the ``drift.extra_detectors``
        setting) added to the ones it runs; unknown names are refused."""
        extra = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in extra if n not in ALL_DETECTORS]
        if unknown:
            raise ConfigError(f"drift.extra_detectors names unknown detector(s) {', '.join(map(repr, unknown))}; "
                              f"choose from {', '.join(ALL_DETECTORS)}")
        return replace(self, detectors=self.detectors + tuple(n for n in extra if n not in self.detectors))
