from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import binom

from core.errors import ConfigError, ValidationError
from monitoring.config import DriftConfig
from monitoring.decision import EffectBaseline, SeverityConfig, adjust_p_values, decide
from monitoring.detectors.base import DetectorResult
from monitoring.detectors.classifier import ClassifierConfig
from monitoring.detectors.ks import KSConfig
from monitoring.suite import run_suite
from tests.monitoring._data import centres, mixture


def result(name: str, p: float, effect: float = 1.0) -> DetectorResult:
    return DetectorResult(name, 0.0, p, effect, "", 10, 10)


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


SMALL = DriftConfig(alpha=0.1, classifier=ClassifierConfig(), ks=KSConfig(n_components=8))


def test_combined_decision_is_calibrated_and_uncorrected_is_not():
    """Null trials through the whole suite: the corrected decision stays within the binomial bound
    at α; "drift if any detector's own p ≤ α" (no correction) does not."""
    c = centres(6, 16)
    trials = 60
    bound = int(binom.ppf(0.999, trials, SMALL.alpha))
    corrected = uncorrected = acting = 0
    for t in range(trials):
        rng = np.random.default_rng(5000 + t)
        ref, ry = mixture(rng, 300, c)
        cur, cy = mixture(rng, 120, c)
        r = run_suite(ref, cur, reference_labels=ry, current_labels=cy, config=replace(SMALL, seed=t))
        assert set(r.detectors) == {"mmd", "classifier", "ks", "novelty", "label_shift", "prototype_displacement"}
        corrected += r.decision.significant
        acting += r.decision.drifted
        uncorrected += any(d.p_value <= SMALL.alpha for d in r.detectors.values())
    assert corrected <= bound
    assert uncorrected > bound
    assert acting <= corrected  # acting needs significance


def _planted_shift() -> tuple[np.ndarray, np.ndarray]:
    """400 reference rows of a 6-class mixture and 200 current rows shifted by 0.4 along one axis."""
    c = centres(6, 16)
    rng = np.random.default_rng(11)
    ref, _ = mixture(rng, 400, c)
    shift = np.zeros(16)
    shift[2] = 0.4
    cur, _ = mixture(rng, 200, c, shift=shift)
    return ref, cur


def test_suite_flags_planted_shift_and_skips_label_tests_without_labels():
    ref, cur = _planted_shift()
    r = run_suite(ref, cur, config=SMALL)
    assert set(r.detectors) == {"mmd", "classifier", "ks", "novelty"}
    assert r.decision.drifted and r.decision.status == "drift"
    s = r.summary()
    assert s["drifted"] and set(s["detectors"]["mmd"]) >= {"p_value", "effect_description"}
    assert s["effects"] == {k: v.effect for k, v in r.detectors.items()}
    assert s["decision"]["acting"] and all(s["decision"]["verdicts"][k]["acting"] for k in s["decision"]["acting"])


def test_unknown_detector_is_a_config_error():
    x = np.zeros((10, 4), dtype=np.float32)
    with pytest.raises(ConfigError, match="unknown drift detectors"):
        run_suite(x, x, config=DriftConfig(detectors=("mmd", "typo")))


# --- severity: significant is not enough, the effect must beat the stream's own variation -------


def test_young_collection_acts_only_above_the_floor():
    sev = SeverityConfig(floors={"mmd": 0.01, "novelty": 0.02})
    d = decide([result("mmd", 1e-6, effect=0.005), result("novelty", 0.5, effect=0.5)], 0.05, severity=sev)
    assert d.significant and not d.drifted and d.status == "significant, small"
    assert d.flagged == ("mmd",) and d.acting == ()
    v = d.verdicts["mmd"]
    assert v.threshold.source == "floor" and v.threshold.value == 0.01
    assert v.reason.startswith("significant, small") and "floor" in v.reason
    # a large effect that is not significant does not act either
    assert not d.verdicts["novelty"].acting and d.verdicts["novelty"].reason.startswith("not significant")
    d = decide([result("mmd", 1e-6, effect=0.02)], 0.05, severity=sev)
    assert d.drifted and d.acting == ("mmd",) and d.status == "drift"
    assert d.verdicts["mmd"].reason.startswith("acts")


def test_baseline_is_median_plus_k_robust_sd_of_past_effects_and_never_below_the_floor():
    sev = SeverityConfig(floors={"mmd": 0.01}, k=3.0, min_history=5, window=30)
    past = [{"mmd": v} for v in (0.10, 0.12, 0.08, 0.11, 0.09)]
    b = EffectBaseline.from_effects(past)
    t = b.threshold("mmd", sev)
    mad = np.median(np.abs(np.array([0.10, 0.12, 0.08, 0.11, 0.09]) - 0.10))
    assert t.source == "baseline" and t.n_past == 5
    assert t.value == pytest.approx(0.10 + 3 * 1.4826 * mad)
    # 0.13 is significant and above the floor, but inside this stream's usual variation
    assert not decide([result("mmd", 1e-9, effect=0.13)], 0.05, baseline=b, severity=sev).drifted
    assert decide([result("mmd", 1e-9, effect=0.2)], 0.05, baseline=b, severity=sev).drifted
    # a quiet stream: the baseline limit falls under the floor, which then holds
    quiet = EffectBaseline.from_effects([{"mmd": 0.0}] * 8)
    assert quiet.threshold("mmd", sev).value == 0.01
    # four past checks are still "young"
    assert EffectBaseline.from_effects(past[:4]).threshold("mmd", sev).source == "floor"


def test_baseline_window_keeps_the_most_recent_checks_and_skips_missing_effects():
    sev = SeverityConfig(floors={}, k=0.0, min_history=2, window=3)
    b = EffectBaseline.from_effects([{"mmd": 9.0}, {"mmd": 9.0}, {"mmd": 1.0, "ks": None}, {"mmd": 2.0},
                                     {"mmd": 3.0, "ks": float("nan")}])
    assert b.threshold("mmd", sev).median == 2.0  # median of the last three
    assert b.n_past("ks") == 0 and b.threshold("ks", sev).source == "floor"
    assert EffectBaseline.from_dict(b.to_dict()) == b


def test_decision_dict_says_why_per_detector():
    d = decide([result("mmd", 1e-6, effect=0.05), result("ks", 0.3, effect=0.2)], 0.05)
    out = d.to_dict()
    assert out["status"] == "drift" and out["significant"] and out["acting"] == ["mmd"]
    assert set(out["verdicts"]) == {"mmd", "ks"}
    assert out["verdicts"]["ks"]["reason"].startswith("not significant")
    assert out["verdicts"]["mmd"]["threshold"]["source"] == "floor"


def test_low_alpha_can_fire_for_mmd_and_displacement():
    """α = 0.01 with six detectors needs p ≤ 0.0017 for the first Holm step: permutation tests with
    200 permutations could not go below 0.005; the spectral null has no such floor."""
    c = centres(6, 16)
    rng = np.random.default_rng(21)
    ref, ry = mixture(rng, 600, c)
    shift = np.zeros(16)
    shift[4] = 0.3
    cur, cy = mixture(rng, 300, c, shift=shift)
    r = run_suite(ref, cur, reference_labels=ry, current_labels=cy, config=replace(SMALL, alpha=0.01))
    assert r.detectors["mmd"].p_value < 1e-5 and r.detectors["prototype_displacement"].p_value < 1e-5
    assert {"mmd", "prototype_displacement"} <= set(r.decision.flagged)


def test_baseline_passed_to_the_suite_decides_action():
    ref, cur = _planted_shift()
    young = run_suite(ref, cur, config=SMALL)
    assert young.decision.drifted
    # a stream whose batches always move this much: the same batch is significant but usual
    usual = EffectBaseline.from_effects([young.effects] * 6)
    seasoned = run_suite(ref, cur, config=SMALL, baseline=usual)
    assert seasoned.decision.significant and not seasoned.decision.drifted
    assert seasoned.summary()["status"] == "significant, small"


def test_suite_names_novel_items_by_id_and_checks_the_ids():
    c = centres(6, 16)
    rng = np.random.default_rng(13)
    ref, _ = mixture(rng, 600, c[:5])
    known, _ = mixture(rng, 190, c[:5])
    new, _ = mixture(rng, 10, c[5:])
    cur = np.concatenate([new, known])  # rows 0-9 are the new class
    ids = [f"item-{i}" for i in range(200)]
    r = run_suite(ref, cur, config=SMALL, current_ids=ids)
    named = r.summary()["novel_items"]
    planted = {f"item-{i}" for i in range(10)}
    assert len(named) >= 5 and {x["item_id"] for x in named[:5]} <= planted  # most novel first
    assert sum(x["item_id"] not in planted for x in named) <= len(named) * 0.2  # BH at FDR 0.1
    assert [x["rank"] for x in named] == list(range(1, len(named) + 1))
    with pytest.raises(ValidationError, match="current_ids"):
        run_suite(ref, cur, config=SMALL, current_ids=ids[:5])
