from __future__ import annotations

import pytest

from core.errors import ConfigError
from maintenance.policy import should_retrain


@pytest.mark.parametrize(
    ("policy", "drifted", "trained_on", "latest", "retrain", "why"),
    [
        ("drift", True, 1, 2, True, "drift detected"),
        ("drift", False, 1, 2, False, "no drift"),
        ("drift", False, 2, 2, False, "already trained"),
        ("new-data", False, 1, 2, True, "scheduled retrain"),
        ("new-data", False, 2, 2, False, "already trained"),
        ("new-data", True, 2, 2, True, "drift detected"),
        ("always", False, 2, 2, True, "forced"),
        ("drift", None, None, 1, False, "no drift"),
    ],
)
def test_should_retrain_table(policy, drifted, trained_on, latest, retrain, why) -> None:
    decision = should_retrain(policy=policy, drifted=drifted, production_trained_on=trained_on, latest_batch=latest)
    assert decision.retrain is retrain
    assert why in decision.reason


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ConfigError, match="nightly"):
        should_retrain(policy="nightly", drifted=False, production_trained_on=1, latest_batch=1)
