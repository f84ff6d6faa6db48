import numpy as np

from core.settings import GateSettings
from embedding.gate import decide, paired_drop
from embedding.metrics import EvaluationReport


def _metrics(overall, old=None, per_class=None):
    m = {"overall": {"map_at_r": overall}}
    if old is not None:
        m["old"] = {"map_at_r": old}
    if per_class is not None:
        m["per_class"] = {c: {"map_at_r": v} for c, v in per_class.items()}
    return EvaluationReport.from_dict(m)


def test_first_model_is_accepted_without_production():
    d = decide(_metrics(0.8), None)
    assert d.accepted and "first model" in d.reasons[0]


def test_planted_regression_on_old_classes_is_rejected_with_the_numbers():
    prod = _metrics(0.80, old=0.85, per_class={"a": 0.9, "b": 0.8})
    cand = _metrics(0.82, old=0.819, per_class={"a": 0.88, "b": 0.79})
    d = decide(cand, prod, GateSettings(max_old_map_drop=0.01))
    assert not d.accepted
    assert d.reasons[0].startswith("MAP@R on old classes fell 0.031, limit 0.01")


def test_improvement_is_accepted():
    prod = _metrics(0.80, old=0.85, per_class={"a": 0.9})
    cand = _metrics(0.83, old=0.845, per_class={"a": 0.89})
    d = decide(cand, prod, GateSettings(max_old_map_drop=0.01))
    assert d.accepted, d.reasons


def test_single_class_collapse_is_rejected():
    prod = _metrics(0.80, old=0.80, per_class={"a": 0.9, "b": 0.7})
    cand = _metrics(0.81, old=0.80, per_class={"a": 0.6, "b": 0.95})
    d = decide(cand, prod, GateSettings(max_class_map_drop=0.1))
    assert not d.accepted and any("class 'a' fell 0.300" in r for r in d.reasons)


def test_floor_applies_to_first_model():
    d = decide(_metrics(0.2), None, GateSettings(min_overall_map=0.5))
    assert not d.accepted and "below the floor" in d.reasons[0]


def test_missing_candidate_metrics_reject():
    assert not decide(None, None).accepted
    assert not decide(EvaluationReport.from_dict({}), None).accepted  # no overall MAP@R recorded


def _report(per_query: dict[str, list[float]], old: set[str] | None = None) -> EvaluationReport:
    """A report whose per-class and overall MAP@R are the means of the given per-query AP@R."""
    from embedding.metrics import ClassMetrics, QueryScores, RetrievalMetrics

    labels = np.array([c for c, v in per_query.items() for _ in v])
    scores = np.array([s for v in per_query.values() for s in v], dtype=float)

    def metrics(mask):
        return RetrievalMetrics(float(scores[mask].mean()), 0.0, float(scores[mask].mean()), {}, None, None,
                                int(mask.sum()))

    old_mask = np.isin(labels, sorted(old or ()))
    return EvaluationReport(
        num_items=len(labels), num_classes=len(per_query), overall=metrics(np.ones(len(labels), bool)),
        old=metrics(old_mask) if old else None, new=metrics(~old_mask) if old and (~old_mask).any() else None,
        per_class={c: ClassMetrics(float(np.mean(v)), 0.0) for c, v in per_query.items()},
        old_classes=tuple(sorted(old or ())), queries=QueryScores(labels, scores, scores),
    )


def _noisy(rng, mean, n, sd=0.3):
    return list(np.clip(rng.normal(mean, sd, n), 0, 1))


def test_a_better_candidate_whose_small_class_dips_within_noise_passes():
    rng = np.random.default_rng(0)
    base = {f"c{i}": _noisy(rng, 0.5, 60) for i in range(8)}
    base["small"] = _noisy(rng, 0.6, 6)
    prod = _report(base, old=set(base))
    better = {c: list(np.clip(np.array(v) + 0.12, 0, 1)) for c, v in base.items()}
    # the small class loses 0.13 on 6 queries: past the 0.10 limit on paper, well within noise
    better["small"] = list(np.clip(np.array(base["small"]) + np.array([-0.5, 0.2, -0.4, 0.1, 0.05, -0.25]), 0, 1))
    cand = _report(better, old=set(base))
    assert prod.per_class["small"].map_at_r - cand.per_class["small"].map_at_r > 0.10
    noisy = decide(cand, prod, GateSettings())
    assert noisy.accepted, noisy.reasons
    point = decide(cand, prod, GateSettings(bootstrap_samples=0))  # the old threshold gate rejects it
    assert not point.accepted and "of class 'small' fell" in point.reasons[0]


def test_a_real_drop_of_an_old_class_is_rejected_with_its_interval():
    rng = np.random.default_rng(1)
    base = {f"c{i}": _noisy(rng, 0.6, 80) for i in range(6)}
    prod = _report(base, old=set(base))
    worse = {c: list(np.clip(np.array(v) + 0.05, 0, 1)) for c, v in base.items()}
    worse["c0"] = list(np.clip(np.array(base["c0"]) - 0.3, 0, 1))  # every query of c0 loses 0.3
    decision = decide(_report(worse, old=set(base)), prod, GateSettings())
    assert not decision.accepted
    failed = [c for c in decision.checks if not c.passed]
    assert [c.name for c in failed] == ["class:c0"] and failed[0].low > 0.10
    assert "bootstrap interval" in failed[0].detail


def test_a_candidate_below_the_raw_features_is_rejected_even_as_the_first_model():
    rng = np.random.default_rng(2)
    raw = _report({c: _noisy(rng, 0.7, 50, sd=0.1) for c in "abcd"})
    cand = _report({c: list(np.array(v) - 0.2) for c, v in zip("abcd", [raw.queries.map_at_r[raw.queries.labels == c]
                                                                        for c in "abcd"], strict=True)})
    decision = decide(cand, None, GateSettings(), raw=raw)
    assert not decision.accepted and "against the raw input features fell" in decision.reasons[0]
    off = decide(cand, None, GateSettings(max_drop_vs_raw=None), raw=raw)
    assert off.accepted


def test_paired_drop_by_class_covers_which_classes_were_measured():
    # two classes, each with 200 queries: one gains 0.1 from the candidate, the other loses 0.1 (mean 0)
    # plus one class much worse: resampling queries is narrow, resampling classes spans the classes' spread
    groups = np.repeat(["a", "b", "c"], 200)
    baseline = np.zeros(600)
    candidate = np.concatenate([np.full(200, 0.1), np.full(200, -0.1), np.full(200, -0.3)])
    candidate = candidate + np.random.default_rng(0).normal(scale=0.01, size=600)
    by_query = paired_drop(baseline, candidate, samples=500, confidence=0.975, rng=np.random.default_rng(1))
    by_class = paired_drop(baseline, candidate, samples=500, confidence=0.975, rng=np.random.default_rng(1),
                           groups=groups)
    assert np.isclose(by_query.value, by_class.value) and by_class.n == 600
    assert by_query.high - by_query.low < 0.05
    # drops per class are -0.1, 0.1, 0.3: draws range from all-"a" (-0.1) to all-"c" (0.3)
    assert by_class.low < 0.0 and by_class.high > 0.25
    # one class: nothing to resample
    assert paired_drop(baseline[:200], candidate[:200], samples=100, confidence=0.975,
                       rng=np.random.default_rng(0), groups=groups[:200]).low is None


def test_paired_drop_without_groups_is_the_query_bootstrap_and_skips_nan():
    diff = np.array([0.1, 0.2, np.nan, 0.3])
    d = paired_drop(diff, np.zeros(4), samples=200, confidence=0.9, rng=np.random.default_rng(0))
    assert d.n == 3 and np.isclose(d.value, 0.2) and 0.1 <= d.low <= d.high <= 0.3
