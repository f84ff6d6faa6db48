"""Run every applicable detector on two embedding matrices and decide (pure: no I/O)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import ConfigError, ValidationError
from monitoring.config import ALL_DETECTORS, DriftConfig
from monitoring.decision import EFFECT_SCALE, Decision, EffectBaseline, decide
from monitoring.detectors.base import DetectorResult, check_pair, is_missing

log = logging.getLogger(__name__)

NOVELTY_DETECTORS = ("novelty", "neighbourhood")  # the detectors that name rows (``extra["novel_rows"]``)


@dataclass(frozen=True)
class SuiteResult:
    detectors: dict[str, DetectorResult]
    decision: Decision
    seconds: dict[str, float]  # wall time per detector
    current_ids: tuple[str, ...] | None = None  # ids of the current rows, to name novel items

    @property
    def effects(self) -> dict[str, float]:
        """What a later check's :class:`EffectBaseline` learns from (stored in the summary)."""
        return {k: float(v.effect) for k, v in self.detectors.items()}

    def novel_items(self) -> list[dict]:
        """The current rows the novelty detectors name (``novelty``, then ``neighbourhood``), most
        novel first within each (item ids when known)."""
        out: list[dict] = []
        for name in NOVELTY_DETECTORS:
            det = self.detectors.get(name)
            if det is not None:
                out += self._named_rows(det, start=len(out))
        return out

    def _named_rows(self, det: DetectorResult, start: int) -> list[dict]:
        rows = det.extra.get("novel_rows", [])
        out = []
        for i, (row, p, score) in enumerate(zip(rows, det.extra.get("novel_row_p_values", []),
                                                det.extra.get("novel_row_scores", []), strict=True)):
            item = {"rank": start + i + 1, "detector": det.name, "row": row, "p_value": p, "score": score}
            if self.current_ids is not None:
                item["item_id"] = self.current_ids[row]
            out.append(item)
        return out

    def summary(self) -> dict:
        return {
            "drifted": self.decision.drifted,
            "status": self.decision.status,
            "significant": self.decision.significant,
            "decision": self.decision.to_dict(),
            "detectors": {k: v.to_dict() for k, v in self.detectors.items()},
            "effects": self.effects,
            "effect_scale": EFFECT_SCALE,
            "novel_items": self.novel_items(),
            "seconds": self.seconds,
        }


def _has_labels(labels: np.ndarray | None, n: int) -> bool:
    if labels is None or len(labels) != n:
        return False
    return any(not is_missing(v) for v in labels)


def run_suite(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    reference_labels: np.ndarray | None = None,
    current_labels: np.ndarray | None = None,
    config: DriftConfig | None = None,
    baseline: EffectBaseline | None = None,
    current_ids: Sequence[str] | None = None,
) -> SuiteResult:
    """Every applicable detector, then :func:`monitoring.decision.decide` against ``baseline`` (the
    collection's past accepted effects; None = a young collection, floors only).
    """
    from monitoring.detectors.classifier import classifier_test
    from monitoring.detectors.ks import ks_test
    from monitoring.detectors.labels import label_shift_test, prototype_displacement_test
    from monitoring.detectors.mmd import mmd_test
    from monitoring.detectors.neighbourhood import neighbourhood_test
    from monitoring.detectors.novelty import novelty_test

    config = config or DriftConfig()
    unknown = set(config.detectors) - set(ALL_DETECTORS)
    if unknown:
        raise ConfigError(f"unknown drift detectors {sorted(unknown)}; choose from {list(ALL_DETECTORS)}")
    ref, cur = check_pair(reference, current, min_rows=4)
    ref_lab = np.asarray(reference_labels, dtype=object) if reference_labels is not None else None
    cur_lab = np.asarray(current_labels, dtype=object) if current_labels is not None else None
    labelled = _has_labels(ref_lab, len(ref)) and _has_labels(cur_lab, len(cur))
    if current_ids is not None and len(current_ids) != len(cur):
        raise ValidationError(f"current_ids has {len(current_ids)} ids for {len(cur)} current rows")
    # one independent seed per detector so adding a detector doesn't change the others' draws
    seeds = dict(zip(ALL_DETECTORS, np.random.SeedSequence(config.seed).generate_state(len(ALL_DETECTORS))))

    runners = {
        "mmd": lambda: mmd_test(ref, cur, config.mmd, seed=int(seeds["mmd"])),
        "classifier": lambda: classifier_test(ref, cur, config.classifier, seed=int(seeds["classifier"])),
        "ks": lambda: ks_test(ref, cur, config.ks, seed=int(seeds["ks"])),
        "novelty": lambda: novelty_test(ref, cur, config.novelty, seed=int(seeds["novelty"])),
        # permutations sized so that Holm over every configured detector can fire at config.alpha
        "neighbourhood": lambda: neighbourhood_test(ref, cur, config.neighbourhood, seed=int(seeds["neighbourhood"]),
                                                    alpha=config.alpha, n_tests=len(config.detectors)),
        "label_shift": lambda: label_shift_test(
            ref_lab, cur_lab, config.labels.min_expected, null_draws=config.labels.null_draws,
            seed=int(seeds["label_shift"]),
        )
        if labelled
        else None,
        "prototype_displacement": lambda: prototype_displacement_test(
            ref, cur, ref_lab, cur_lab, config.labels, seed=int(seeds["prototype_displacement"])
        )
        if labelled
        else None,
    }
    results: dict[str, DetectorResult] = {}
    seconds: dict[str, float] = {}
    for name in config.detectors:
        t0 = time.perf_counter()
        res = runners[name]()
        seconds[name] = time.perf_counter() - t0
        if res is not None:
            results[name] = res
            log.debug("drift detector %s: p=%.4g (%s)", name, res.p_value, res.effect_description)
    decision = decide(results, config.alpha, config.method, baseline=baseline, severity=config.severity)  # type: ignore[arg-type]
    return SuiteResult(
        detectors=results,
        decision=decision,
        seconds=seconds,
        current_ids=tuple(str(i) for i in current_ids) if current_ids is not None else None,
    )
