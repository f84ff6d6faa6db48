from core.settings import GateSettings
from embedding.evaluation import EvaluationReport
from embedding.gate import decide


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
