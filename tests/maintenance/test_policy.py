from __future__ import annotations

import pytest

from core.errors import ConfigError
from maintenance.policy import promotion, should_retrain


@pytest.mark.parametrize(
    ("policy", "drifted", "trained_on", "latest", "retrain", "why"),
    [
        ("drift", True, 1, 2, True, "drift detected"),
        ("drift", False, 1, 2, False, "no drift"),
        ("drift", False, 2, 2, False, "already trained"),
        ("new-data", False, 1, 2, True, "scheduled retrain"),
        ("new-data", False, 2, 2, False, "already trained"),
        # drift on a batch production already learnt from (a manual `steward drift`) is no reason to retrain
        ("new-data", True, 2, 2, False, "already trained"),
        ("drift", True, 2, 2, False, "already trained"),
        ("always", False, 2, 2, True, "nothing new: a full retrain"),
        ("always", False, 1, 2, True, "forced"),
        ("drift", None, None, 1, False, "no drift"),
    ],
)
def test_should_retrain_table(policy, drifted, trained_on, latest, retrain, why) -> None:
    decision = should_retrain(policy=policy, drifted=drifted, production_trained_on=trained_on, latest_batch=latest)
    assert decision.retrain is retrain
    assert why in decision.reason
    assert decision.full == ("full retrain" in decision.reason)


FAILED = "failed data-quality checks (10.0% of rows are constant)"


@pytest.mark.parametrize(
    ("policy", "drifted", "trained_on", "latest", "trainable", "retrain", "full", "why"),
    [
        # the faulty newest batch is the only new one: nothing to learn from, and the run says why
        ("drift", True, 4, 5, 4, False, False, f"batch 5 {FAILED}"),
        ("new-data", False, 4, 5, 4, False, False, f"batch 5 {FAILED}"),
        ("always", False, 4, 5, 4, True, True, "full retrain"),  # forced: from scratch, without batch 5
        # an earlier good batch is still unseen: learn from it, the faulty one stays out
        ("new-data", False, 3, 5, 4, True, False, "batches up to 4"),
        # every batch excluded
        ("always", False, None, 1, None, False, False, "no batch to learn from"),
    ],
)
def test_excluded_batches_are_never_a_reason_to_learn(policy, drifted, trained_on, latest, trainable, retrain,
                                                      full, why) -> None:
    decision = should_retrain(policy=policy, drifted=drifted, production_trained_on=trained_on, latest_batch=latest,
                              latest_trainable=trainable, excluded={latest: FAILED})
    assert (decision.retrain, decision.full) == (retrain, full)
    assert why in decision.reason


@pytest.mark.parametrize(
    ("mode", "blocked", "promote", "status", "why"),
    [
        ("auto", None, True, "production", "promoted"),
        ("manual", None, False, "approved", "waiting for `steward promote`"),
        ("auto", "production is pinned by ops (rolled back)", False, "candidate", "not promoted: production is pinned"),
        ("manual", "an operator rolled production away from v4", False, "candidate", "rolled production away"),
    ],
)
def test_promotion_table(mode, blocked, promote, status, why) -> None:
    decision = promotion(mode=mode, blocked_because=blocked)
    assert (decision.promote, decision.status) == (promote, status)
    assert why in decision.reason


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ConfigError, match="nightly"):
        should_retrain(policy="nightly", drifted=False, production_trained_on=1, latest_batch=1)


def test_auto_promotion_waits_for_the_shadow_sample_and_says_how_to_get_it() -> None:
    waiting = promotion(mode="auto", blocked_because=None, min_shadow_queries=100, shadow_queries=40, model_version=4)
    assert (waiting.promote, waiting.status) == (False, "candidate")
    assert "needs 100 shadow queries" in waiting.reason and "has 40" in waiting.reason
    assert "--shadow-version 4" in waiting.reason
    assert promotion(mode="auto", blocked_because=None, min_shadow_queries=100, shadow_queries=100).promote
    assert promotion(mode="auto", blocked_because=None, min_shadow_queries=0, shadow_queries=0).promote
    # A pin or manual mode still decides first.
    assert promotion(mode="manual", blocked_because=None, min_shadow_queries=100).status == "approved"
