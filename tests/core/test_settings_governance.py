"""The governance settings: group column, group-gap gate, suspect labels."""

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def _load(tmp_path, env=None, **overrides):
    return load_settings(env={"STEWARD_HOME": str(tmp_path), **(env or {})}, config_path=None, overrides=overrides)


def test_defaults_environment_and_overrides(tmp_path):
    s = _load(tmp_path)
    assert s.evaluation.group_column is None and s.gate.max_group_gap_increase == 0.05
    assert (s.labels.k, s.labels.min_agreement) == (10, 0.5)
    s = _load(tmp_path, {"STEWARD_EVALUATION_GROUP_COLUMN": "language"},
              **{"gate.max_group_gap_increase": "none", "labels.k": "5"})
    assert s.evaluation.group_column == "language" and s.gate.max_group_gap_increase is None and s.labels.k == 5
    assert s.to_dict()["labels"] == {"k": 5, "min_agreement": 0.5}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("evaluation.group_column", "label", "reserved"),
    ("gate.max_group_gap_increase", "-0.1", "0 or more"),
    ("labels.k", "0", "at least 1"),
    ("labels.min_agreement", "1.5", r"in \(0, 1\]"),
])
def test_bad_values_name_the_setting(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, **{key: value})
