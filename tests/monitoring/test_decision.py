from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import binom

from core.errors import ConfigError
from monitoring.config import DriftConfig
from monitoring.decision import adjust_p_values, decide
from monitoring.detectors.base import DetectorResult
from monitoring.detectors.classifier import ClassifierConfig
from monitoring.detectors.ks import KSConfig
from monitoring.detectors.mmd import MMDConfig
from monitoring.detectors.novelty import NoveltyConfig
from monitoring.suite import run_suite
from tests.monitoring._data import centres, mixture


def result(name: str, p: float) -> DetectorResult:
    return DetectorResult(name, 0.0, p, 0.0, "", 10, 10)


def test_holm_adjusted_values():
    adj = adjust_p_values({"a": 0.01, "b": 0.04, "c": 0.03}, "holm")
    assert adj == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert adjust_p_values({"a": 0.01, "b": 0.04}, "bonferroni") == pytest.approx({"a": 0.02, "b": 0.08})


def test_decide_controls_family_not_each_test():
    # each of five detectors would fire alone at 0.05; together none survives
    d = decide([result(f"d{i}", 0.03) for i in range(5)], alpha=0.05)
    assert not d.drifted and d.flagged == ()
    d = decide([result("a", 0.001), result("b", 0.03), result("c", 0.5)], alpha=0.05)
    assert d.drifted and d.flagged == ("a",)
    assert d.combined_p_value == pytest.approx(0.003)
    d = decide([result("a", 0.001), result("b", 0.02)], alpha=0.05)
    assert d.flagged == ("a", "b")  # Holm step-down: after a, b is tested at α/1


def test_decide_validates_alpha_and_method():
    with pytest.raises(ConfigError, match="alpha"):
        decide([result("a", 0.1)], alpha=1.5)
    with pytest.raises(ConfigError, match="holm"):
        decide([result("a", 0.1)], alpha=0.05, method="fisher")  # type: ignore[arg-type]
    assert not decide([], alpha=0.05).drifted


SMALL = DriftConfig(
    alpha=0.1,
    mmd=MMDConfig(n_permutations=99),
    classifier=ClassifierConfig(),
    ks=KSConfig(n_components=8),
    novelty=NoveltyConfig(n_clusters=6),
)


def test_combined_decision_is_calibrated_and_uncorrected_is_not():
    """Null trials through the whole suite: the corrected decision stays within the binomial bound
    at α; "drift if any detector's own p ≤ α" (no correction) does not."""
    c = centres(6, 16)
    trials = 60
    bound = int(binom.ppf(0.999, trials, SMALL.alpha))
    corrected = uncorrected = 0
    for t in range(trials):
        rng = np.random.default_rng(5000 + t)
        ref, ry = mixture(rng, 300, c)
        cur, cy = mixture(rng, 120, c)
        r = run_suite(ref, cur, reference_labels=ry, current_labels=cy, config=replace(SMALL, seed=t))
        assert set(r.detectors) == {"mmd", "classifier", "ks", "novelty", "label_shift", "prototype_displacement"}
        corrected += r.decision.drifted
        uncorrected += any(d.p_value <= SMALL.alpha for d in r.detectors.values())
    assert corrected <= bound
    assert uncorrected > bound


def test_suite_flags_planted_shift_and_skips_label_tests_without_labels():
    c = centres(6, 16)
    rng = np.random.default_rng(11)
    ref, _ = mixture(rng, 400, c)
    shift = np.zeros(16)
    shift[2] = 0.4
    cur, _ = mixture(rng, 200, c, shift=shift)
    r = run_suite(ref, cur, config=SMALL)
    assert set(r.detectors) == {"mmd", "classifier", "ks", "novelty"}
    assert r.decision.drifted
    s = r.summary()
    assert s["drifted"] and set(s["detectors"]["mmd"]) >= {"p_value", "effect_description"}


def test_unknown_detector_is_a_config_error():
    x = np.zeros((10, 4), dtype=np.float32)
    with pytest.raises(ConfigError, match="unknown drift detectors"):
        run_suite(x, x, config=DriftConfig(detectors=("mmd", "typo")))
