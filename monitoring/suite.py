"""Run every applicable detector on two embedding matrices and decide (pure: no I/O)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from core.errors import ConfigError
from monitoring.config import ALL_DETECTORS, DriftConfig
from monitoring.decision import Decision, decide
from monitoring.detectors.base import DetectorResult, check_pair, is_missing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuiteResult:
    detectors: dict[str, DetectorResult]
    decision: Decision
    seconds: dict[str, float]  # wall time per detector

    def summary(self) -> dict:
        return {
            "drifted": self.decision.drifted,
            "decision": self.decision.to_dict(),
            "detectors": {k: v.to_dict() for k, v in self.detectors.items()},
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
    prototypes: np.ndarray | None = None,
    config: DriftConfig | None = None,
) -> SuiteResult:
    from monitoring.detectors.classifier import classifier_test
    from monitoring.detectors.ks import ks_test
    from monitoring.detectors.labels import label_shift_test, prototype_displacement_test
    from monitoring.detectors.mmd import mmd_test
    from monitoring.detectors.novelty import novelty_test

    config = config or DriftConfig()
    unknown = set(config.detectors) - set(ALL_DETECTORS)
    if unknown:
        raise ConfigError(f"unknown drift detectors {sorted(unknown)}; choose from {list(ALL_DETECTORS)}")
    ref, cur = check_pair(reference, current, min_rows=4)
    ref_lab = np.asarray(reference_labels, dtype=object) if reference_labels is not None else None
    cur_lab = np.asarray(current_labels, dtype=object) if current_labels is not None else None
    labelled = _has_labels(ref_lab, len(ref)) and _has_labels(cur_lab, len(cur))
    # one independent seed per detector so adding a detector doesn't change the others' draws
    seeds = dict(zip(ALL_DETECTORS, np.random.SeedSequence(config.seed).generate_state(len(ALL_DETECTORS))))

    runners = {
        "mmd": lambda: mmd_test(ref, cur, config.mmd, seed=int(seeds["mmd"])),
        "classifier": lambda: classifier_test(ref, cur, config.classifier, seed=int(seeds["classifier"])),
        "ks": lambda: ks_test(ref, cur, config.ks, seed=int(seeds["ks"])),
        "novelty": lambda: novelty_test(
            ref,
            cur,
            prototypes=prototypes,
            reference_labels=ref_lab if _has_labels(ref_lab, len(ref)) else None,
            config=config.novelty,
            seed=int(seeds["novelty"]),
        ),
        "label_shift": lambda: label_shift_test(ref_lab, cur_lab, config.labels.min_expected)
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
    return SuiteResult(detectors=results, decision=decide(results, config.alpha, config.method), seconds=seconds)  # type: ignore[arg-type]
