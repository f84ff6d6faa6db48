"""Per-group evaluation (fairness) and the gate's group-gap check."""

import math

import numpy as np
import pytest

from core.settings import GateSettings
from embedding.evaluation import evaluate_embeddings
from embedding.gate import decide, group_gap_check
from embedding.metrics import (
    ClassMetrics,
    EvaluationReport,
    GroupMetrics,
    QueryScores,
    RetrievalMetrics,
    group_metrics,
    largest_gap,
)


def test_group_metrics_are_means_of_their_queries_and_nan_queries_are_skipped():
    scores = QueryScores(np.array(["a"] * 4), np.array([1.0, 0.5, np.nan, 0.0]), np.array([1.0, 1.0, np.nan, 0.0]))
    per = group_metrics(scores, np.array(["x", "x", "y", "y"]))
    assert per["x"] == GroupMetrics(0.75, 1.0, 2)
    assert per["y"].map_at_r == 0.0 and per["y"].items == 2
    assert largest_gap(per) == pytest.approx(0.75)
    assert largest_gap({"x": per["x"]}) is None
    assert math.isnan(group_metrics(scores, np.array(["x", "x", "z", "y"]))["z"].map_at_r)


def test_evaluation_reports_each_group_and_the_gap_and_round_trips():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4, size=(3, 6))
    labels = np.repeat(["a", "b", "c"], 20)
    groups = np.tile(["en", "en", "en", "de"], 15)
    emb = centres[np.searchsorted(["a", "b", "c"], labels)] + rng.normal(size=(60, 6))
    emb[groups == "de"] += rng.normal(scale=6, size=((groups == "de").sum(), 6))  # "de" items are noisier
    rep = evaluate_embeddings(emb.astype(np.float32), labels, groups=groups, group_column="language")
    assert set(rep.per_group) == {"en", "de"} and rep.group_column == "language"
    assert rep.per_group["de"].items == 15 and rep.per_group["en"].items == 45
    assert rep.per_group["de"].map_at_r < rep.per_group["en"].map_at_r
    # The group means are the means of the per-query scores the overall MAP@R averages.
    en = groups == "en"
    assert rep.per_group["en"].map_at_r == pytest.approx(np.nanmean(rep.queries.map_at_r[en]))
    assert rep.group_gap == pytest.approx(rep.per_group["en"].map_at_r - rep.per_group["de"].map_at_r)
    d = rep.to_dict()
    assert d["group_gap"] == rep.group_gap and d["per_group"]["de"]["items"] == 15
    back = EvaluationReport.from_dict(d)
    assert back.per_group == rep.per_group and back.group_column == "language"
    assert evaluate_embeddings(emb.astype(np.float32), labels).to_dict()["per_group"] == {}


def _grouped(per_group: dict[str, list[float]]) -> EvaluationReport:
    groups = np.array([g for g, v in per_group.items() for _ in v])
    scores = np.array([s for v in per_group.values() for s in v], dtype=float)
    labels = np.array(["a", "b"] * (len(scores) // 2) + ["a"] * (len(scores) % 2))
    q = QueryScores(labels, scores, scores, groups)
    overall = RetrievalMetrics(float(scores.mean()), 0.0, float(scores.mean()), {}, None, None, len(scores))
    return EvaluationReport(len(scores), 2, overall, per_class={c: ClassMetrics(float(scores[labels == c].mean()), 0)
                                                                for c in ("a", "b")},
                            per_group=group_metrics(q, groups), group_column="region", queries=q)


def _noisy(rng, mean, n, sd=0.2):
    return list(np.clip(rng.normal(mean, sd, n), 0, 1))


def test_gate_refuses_a_candidate_that_widens_the_gap_beyond_noise():
    rng = np.random.default_rng(0)
    big = _noisy(rng, 0.7, 200)
    small = _noisy(rng, 0.65, 40)
    prod = _grouped({"big": big, "small": small})
    # Better overall, but the small group falls far behind.
    cand = _grouped({"big": [min(1.0, s + 0.05) for s in big], "small": [max(0.0, s - 0.3) for s in small]})
    d = decide(cand, prod, GateSettings(max_overall_map_drop=0.5, max_old_map_drop=0.5, max_class_map_drop=None,
                                        max_group_gap_increase=0.05))
    assert not d.accepted
    check = next(c for c in d.checks if c.name == "group_gap")
    assert not check.passed and check.low > 0.05
    assert "worst group 'small'" in check.detail and "limit 0.05" in d.reasons[0]
    # Off: the same candidate passes.
    assert decide(cand, prod, GateSettings(max_overall_map_drop=0.5, max_old_map_drop=0.5, max_class_map_drop=None,
                                           max_group_gap_increase=None)).accepted


def test_gap_widening_within_noise_of_a_tiny_group_passes():
    rng = np.random.default_rng(1)
    big = _noisy(rng, 0.7, 200)
    tiny = list(np.array([0.9, 0.3, 1.0, 0.5, 0.8, 0.2]) - 0.6 + np.mean(big))  # same mean as "big", spread wide
    prod = _grouped({"big": big, "tiny": tiny})
    cand = _grouped({"big": big, "tiny": [s - 0.12 for s in tiny]})
    check = group_gap_check(cand, prod, 0.05, samples=1000, rng=np.random.default_rng(0))
    assert check.passed and check.drop > 0.05 and "within noise" in check.detail
    # Point values alone (no bootstrap) would refuse it.
    assert not group_gap_check(cand, prod, 0.05, samples=0).passed


def test_no_check_without_two_shared_groups():
    rng = np.random.default_rng(2)
    a = _grouped({"only": _noisy(rng, 0.5, 30)})
    assert group_gap_check(a, a, 0.0) is None
    plain = EvaluationReport.from_dict({"overall": {"map_at_r": 0.5}})
    assert group_gap_check(plain, plain, 0.0) is None
