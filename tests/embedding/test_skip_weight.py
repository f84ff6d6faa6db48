import numpy as np
import pytest

from core.errors import ConfigError, ValidationError
from embedding.config import TrainConfig
from embedding.continual import LabelledData, continual_step
from embedding.skip_weight import (
    SKIP_WEIGHT_GRID,
    SkipWeightTrial,
    blend_embeddings,
    choose_skip_weight,
    choose_skip_weight_pooled,
    skip_weight_trials,
)

from .conftest import make_blobs_nonlinear

T = SkipWeightTrial


@pytest.mark.parametrize(("trials", "raw", "weight", "feasible"), [
    # no trained-class scores: the smallest weight keeping held-out classes at the raw features
    ([T(0.0, 0.05), T(0.5, 0.09), T(0.7, 0.10), T(0.9, 0.12)], 0.10, 0.7, True),
    # the order trials come in does not matter
    ([T(0.9, 0.12), T(0.0, 0.05), T(0.7, 0.10), T(0.5, 0.09)], 0.10, 0.7, True),
    # the head alone already at or above raw: weight 0
    ([T(0.0, 0.30), T(0.5, 0.25)], 0.20, 0.0, True),
    # none reaches raw: the largest weight tried (closest to raw), flagged infeasible
    ([T(0.0, 0.05), T(0.5, 0.07), T(0.9, 0.09)], 0.10, 0.9, False),
    # with trained-class scores: the best of them among feasible weights ...
    ([T(0.0, 0.05, 0.9), T(0.5, 0.11, 0.7), T(0.7, 0.12, 0.8), T(0.9, 0.13, 0.6)], 0.10, 0.7, True),
    # ... ties to the larger weight
    ([T(0.5, 0.11, 0.8), T(0.7, 0.12, 0.8)], 0.10, 0.7, True),
    # a non-monotone held-out curve: an infeasible weight between feasible ones is skipped
    ([T(0.3, 0.11), T(0.5, 0.09), T(0.7, 0.12)], 0.10, 0.3, True),
])
def test_choose_skip_weight_table(trials, raw, weight, feasible):
    choice = choose_skip_weight(trials, raw)
    assert (choice.skip_weight, choice.feasible) == (weight, feasible)
    assert [t.skip_weight for t in choice.trials] == sorted(t.skip_weight for t in trials)
    assert choice.to_dict()["trials"][0]["skip_weight"] == min(t.skip_weight for t in trials)


def test_margin_and_empty_input():
    assert choose_skip_weight([T(0.0, 0.095), T(0.9, 0.2)], 0.10, margin=0.01).skip_weight == 0.0
    with pytest.raises(ValidationError):
        choose_skip_weight([], 0.1)


def test_trials_score_the_blend_and_the_raw_features():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 10)
    raw = rng.normal(size=(30, 6)) + np.repeat(np.eye(6)[:3] * 3, 10, axis=0)  # separable raw features
    head = rng.normal(size=(30, 4))
    head /= np.linalg.norm(head, axis=1, keepdims=True)  # a head that knows nothing about them
    trials, raw_map = skip_weight_trials(raw, head, labels)
    assert [t.skip_weight for t in trials] == list(SKIP_WEIGHT_GRID)
    by_w = {t.skip_weight: t.heldout_map_at_r for t in trials}
    assert raw_map > by_w[0.0] and by_w[0.95] > by_w[0.0]
    e = blend_embeddings(raw, head, 0.7)
    r = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(e @ e.T, 0.7 * r @ r.T + 0.3 * head @ head.T, atol=1e-5)


def test_trials_overall_map_is_the_query_mean_of_the_library():
    """The overall MAP@R is rebuilt from per-class means; it must be the library's query mean,
    classes of unequal size and a lone item (no query) included."""
    from embedding.evaluation import retrieval_metrics

    rng = np.random.default_rng(1)
    labels = np.array(["a"] * 12 + ["b"] * 5 + ["c"] * 8 + ["d"])
    raw = rng.normal(size=(26, 6)) + np.eye(6)[np.unique(labels, return_inverse=True)[1]] * 1.5
    head = rng.normal(size=(26, 4))
    head /= np.linalg.norm(head, axis=1, keepdims=True)
    trials, raw_map = skip_weight_trials(raw, head, labels, grid=(0.0, 0.6))
    r = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    assert raw_map == pytest.approx(retrieval_metrics(r.astype(np.float32), labels, ks=(1,),
                                                      clustering=False).map_at_r, abs=1e-9)
    for t in trials:
        expected = retrieval_metrics(blend_embeddings(raw, head, t.skip_weight), labels, ks=(1,), clustering=False)
        assert t.heldout_map_at_r == pytest.approx(expected.map_at_r, abs=1e-9)
        assert len(t.heldout_class_gains) == 3  # the lone class has no query


def G(w: float, *gains: float) -> SkipWeightTrial:
    """A trial with per-class gains over raw (its MAP@R is not what the pooled rule reads)."""
    return T(w, 0.0, heldout_class_gains=gains)


@pytest.mark.parametrize(("versions", "weight", "feasible"), [
    # two held-out classes, both gain at weight 0: the head alone
    ([[G(0.0, 0.02, 0.03), G(0.7, 0.01, 0.02)]], 0.0, True),
    # one of two classes loses at 0 (mean +0.01, the point rule would take 0): the bound needs 0.7
    ([[G(0.0, 0.05, -0.03), G(0.7, 0.01, 0.00), G(0.9, 0.01, 0.01)]], 0.7, True),
    # an earlier version's classes that lost at 0 keep the weight up although this version's two gained
    ([[G(0.0, -0.10, -0.05), G(0.7, 0.00, 0.01)], [G(0.0, 0.02, 0.03), G(0.7, 0.01, 0.01)]], 0.7, True),
    # pooled evidence that weight 0 is safe on six classes of three versions
    ([[G(0.0, 0.02, 0.01), G(0.7, 0.0, 0.0)], [G(0.0, 0.03, 0.02), G(0.7, 0.0, 0.0)],
      [G(0.0, 0.01, 0.04), G(0.7, 0.0, 0.0)]], 0.0, True),
    # no weight's bound reaches 0: the largest weight of the current grid, flagged infeasible
    ([[G(0.0, -0.2, -0.1), G(0.5, -0.1, -0.05), G(0.9, -0.02, 0.01)]], 0.9, False),
    # an earlier version scored a weight the current grid lacks: only the current grid is chosen from
    ([[G(0.3, 0.05, 0.05)], [G(0.0, -0.1, 0.01), G(0.7, 0.02, 0.01)]], 0.7, True),
    # one class in all: too few to decide (no spread), the largest weight without a weight in force
    ([[G(0.0, 0.01), G(0.7, 0.002)]], 0.7, False),
])
def test_choose_skip_weight_pooled_table(versions, weight, feasible):
    choice = choose_skip_weight_pooled(versions, 0.3, samples=500)
    assert (choice.skip_weight, choice.feasible) == (weight, feasible)
    assert [t.skip_weight for t in choice.trials] == sorted(t.skip_weight for t in versions[-1])


def test_pooled_rule_decides_nothing_on_too_few_classes():
    # two classes that both gain at weight 0 would take the head alone; with min_classes=4 the weight in force stays
    versions = [[G(0.0, 0.09, 0.1), G(0.85, 0.0, 0.01)]]
    assert choose_skip_weight_pooled(versions, 0.3, samples=200).skip_weight == 0.0
    kept = choose_skip_weight_pooled(versions, 0.3, samples=200, min_classes=4, fallback_weight=0.85)
    assert (kept.skip_weight, kept.feasible) == (0.85, False) and "fewer than 4" in kept.reason
    # a second version brings the pool to four classes: now it decides
    more = [*versions, [G(0.0, 0.05, 0.08), G(0.85, 0.0, 0.0)]]
    assert choose_skip_weight_pooled(more, 0.3, samples=200, min_classes=4, fallback_weight=0.85).skip_weight == 0.0
    # a lower level of confidence accepts a weight a higher one refuses (one class of four loses)
    mixed = [[G(0.0, 0.04, 0.03, 0.05, -0.06), G(0.9, 0.0, 0.0, 0.0, 0.0)]]
    assert choose_skip_weight_pooled(mixed, 0.3, samples=2000, confidence=0.95).skip_weight == 0.9
    assert choose_skip_weight_pooled(mixed, 0.3, samples=2000, confidence=0.6).skip_weight == 0.0


def test_pooled_rule_needs_current_trials_with_class_gains():
    with pytest.raises(ValidationError):
        choose_skip_weight_pooled([], 0.1)
    with pytest.raises(ValidationError, match="per-class gains"):
        choose_skip_weight_pooled([[T(0.0, 0.2)]], 0.1)


def test_pooled_rule_is_a_switch_of_the_auto_weight():
    with pytest.raises(ConfigError, match="skip_weight_rule"):
        TrainConfig(head="blend", blend_head_loss=True, skip_weight_auto=True, skip_weight_rule="mean")
    with pytest.raises(ConfigError, match="skip_weight_auto=True"):
        TrainConfig(head="blend", blend_head_loss=True, skip_weight_rule="pooled_lcb")
    assert TrainConfig().skip_weight_rule == "point"  # off by default
    with pytest.raises(ConfigError, match="skip_weight_confidence"):
        TrainConfig(skip_weight_confidence=1.0)
    with pytest.raises(ConfigError, match="skip_weight_min_classes"):
        TrainConfig(skip_weight_min_classes=1)


def test_auto_needs_a_blend_trained_on_its_head():
    with pytest.raises(ConfigError, match="skip_weight_auto"):
        TrainConfig(head="blend", skip_weight_auto=True)
    with pytest.raises(ConfigError, match="skip_weight_auto"):
        TrainConfig(head="mlp", blend_head_loss=True, skip_weight_auto=True)


def test_continual_step_chooses_the_weight_from_held_out_classes(blobs):
    x, y = blobs
    cfg = TrainConfig(hidden_dims=(16,), out_dim=8, epochs=3, incremental_epochs=2, batch_size=64,
                      head="blend", blend_head_loss=True, skip_weight_auto=True, skip_weight=0.85)
    ids = np.array([f"i{i}" for i in range(len(y))])
    first = np.isin(y, ["c0", "c1", "c2", "c3"])
    full = continual_step(LabelledData(ids[first], y[first], x[first]), cfg, full=True)
    # 4 classes: a validation fit leaves 2 out; the served weight is the chosen one
    assert full.skip_weight is not None and full.skip_weight.skip_weight in SKIP_WEIGHT_GRID
    assert full.candidate.model.spec.skip_weight == full.skip_weight.skip_weight
    # one new class: nothing to rank among held-out classes, the warm-started weight stays
    new = ~first
    upd = continual_step(LabelledData(ids[new], y[new], x[new]), cfg, previous=full.candidate)
    assert upd.skip_weight is None and upd.candidate.model.spec.skip_weight == full.skip_weight.skip_weight
    # too few classes for a validation fit: the configured weight
    two = np.isin(y, ["c0", "c1"])
    small = continual_step(LabelledData(ids[two], y[two], x[two]), cfg, full=True)
    assert small.skip_weight is None and small.candidate.model.spec.skip_weight == 0.85


def test_continual_step_scores_the_previous_version_on_the_new_classes(blobs):
    x, y = blobs
    cfg = TrainConfig(hidden_dims=(16,), out_dim=8, epochs=3, incremental_epochs=2, batch_size=64,
                      head="blend", blend_head_loss=True, skip_weight_auto=True)
    ids = np.array([f"i{i}" for i in range(len(y))])
    first = np.isin(y, ["c0", "c1"])
    full = continual_step(LabelledData(ids[first], y[first], x[first]), cfg, full=True)
    upd = continual_step(LabelledData(ids[~first], y[~first], x[~first]), cfg, previous=full.candidate)
    assert upd.skip_weight is not None and len(upd.skip_weight.trials) == len(SKIP_WEIGHT_GRID)
    assert upd.candidate.model.spec.skip_weight == upd.skip_weight.skip_weight
    # each trial carries the gain over raw of every new class (the evidence the pooled rule reads)
    assert all(len(t.heldout_class_gains) == len(set(y[~first])) for t in upd.skip_weight.trials)
    assert upd.candidate.skip_history == (upd.skip_weight.trials,)  # two classes: no validation fit at first


def test_pooled_rule_carries_the_evidence_of_every_version():
    x, y = make_blobs_nonlinear(n_classes=6, per_class=30)
    cfg = TrainConfig(hidden_dims=(16,), out_dim=8, epochs=3, incremental_epochs=2, batch_size=64,
                      head="blend", blend_head_loss=True, skip_weight_auto=True, skip_weight_rule="pooled_lcb")
    ids = np.array([f"i{i}" for i in range(len(y))])
    classes = sorted(set(y))
    state = continual_step(LabelledData(ids[np.isin(y, classes[:2])], y[np.isin(y, classes[:2])],
                                        x[np.isin(y, classes[:2])]), cfg, full=True).candidate
    assert state.skip_history == ()
    for k, step in enumerate([classes[2:4], classes[4:6]], start=1):
        m = np.isin(y, step)
        upd = continual_step(LabelledData(ids[m], y[m], x[m]), cfg, previous=state)
        state = upd.candidate
        assert len(state.skip_history) == k and state.skip_history[-1] == upd.skip_weight.trials
        # the bound was taken over the new classes of every update so far: 2, then 4
        reason = upd.skip_weight.reason
        assert f"over {2 * k} held-out classes of {k} version(s)" in reason or f"on {2 * k} pooled classes" in reason
        assert state.model.spec.skip_weight == upd.skip_weight.skip_weight
