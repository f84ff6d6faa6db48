"""Data-quality checks: faults fail, clean batches (new classes included) pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.settings import QualitySettings
from monitoring.data_quality import QualityReport, check_quality

SETTINGS = QualitySettings()


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y


def _clean(digits, classes, n, seed):
    """``n`` images of ``classes``; seeds 0 and 1.. draw disjoint images (a batch never repeats the reference)."""
    x, y = digits
    pool = np.random.default_rng(42).permutation(np.flatnonzero(np.isin(y, list(classes))))
    part = pool[: len(pool) * 2 // 3] if seed == 0 else pool[len(pool) * 2 // 3:]
    return x[np.random.default_rng(seed).choice(part, min(n, len(part)), replace=False)]


def _zero(cur, rng):
    cur[rng.choice(len(cur), len(cur) // 10, replace=False)] = 0.0
    return cur


def _constant(cur, rng):
    rows = rng.choice(len(cur), len(cur) // 10, replace=False)
    cur[rows] = rng.uniform(0.2, 0.8, size=(len(rows), 1))  # a stuck sensor: one value on every pixel
    return cur


def _scaled(cur, rng):
    return cur * 16.0  # the raw 0..16 pixels instead of 0..1: a unit error upstream


def _duplicated(cur, rng):
    cur[: len(cur) // 3] = cur[0]  # a replayed record
    return cur


def _stuck(cur, rng):
    cur[:, 20:26] = 0.5  # six pixels report one value for every image
    return cur


@pytest.mark.parametrize(("fault", "check"), [
    (_zero, "zero_rows"), (_constant, "constant_rows"), (_scaled, "out_of_range"),
    (_duplicated, "duplicate_burst"), (_stuck, "stuck_dimensions"),
])
def test_each_fault_fails_its_check(digits, fault, check) -> None:
    rng = np.random.default_rng(1)
    ref = _clean(digits, range(5), 600, seed=0)
    cur = fault(_clean(digits, range(5), 200, seed=1).copy(), rng)
    report = check_quality(cur, ref, settings=SETTINGS)
    assert not report.passed
    assert not report.checks[check].passed, report.summary()
    assert report.checks[check].where  # names the offending rows (or dimensions)


def test_a_clean_batch_and_a_batch_of_new_classes_pass(digits) -> None:
    ref = _clean(digits, range(5), 600, seed=0)
    for classes, seed in ((range(5), 1), (range(5, 8), 2), (range(8, 10), 3)):  # the world changing is no fault
        report = check_quality(_clean(digits, classes, 200, seed=seed), ref, settings=SETTINGS)
        assert report.passed, report.summary()


def test_a_small_batch_does_not_call_a_rarely_used_pixel_stuck(digits) -> None:
    ref = _clean(digits, range(10), 800, seed=0)
    # In 20 images a corner pixel that is nearly always 0 is 0 everywhere: likely, not a fault.
    report = check_quality(_clean(digits, range(10), 20, seed=5), ref, settings=SETTINGS)
    assert report.checks["stuck_dimensions"].passed


def test_quarantine_jump_and_report_round_trip(digits) -> None:
    ref = _clean(digits, range(5), 300, seed=0)
    cur = _clean(digits, range(5), 90, seed=1)
    report = check_quality(cur, ref, settings=SETTINGS, quarantined=10, reference_quarantine_rates=(0.0, 0.01))
    assert not report.checks["quarantine_jump"].passed and "10.0% of rows were quarantined" in report.summary()
    assert QualityReport.from_dict(report.to_dict()) == report
    calm = check_quality(cur, ref, settings=SETTINGS, quarantined=10, reference_quarantine_rates=(0.09, 0.11))
    assert calm.checks["quarantine_jump"].passed  # this source always loses about a tenth


def test_without_enough_reference_only_reference_free_checks_run(digits) -> None:
    cur = _zero(_clean(digits, range(5), 100, seed=1).copy(), np.random.default_rng(0))
    report = check_quality(cur, _clean(digits, range(5), 10, seed=0), settings=SETTINGS)
    assert set(report.checks) == {"zero_rows"} and not report.passed and report.skipped


def test_thresholds_are_settings(digits) -> None:
    ref = _clean(digits, range(5), 600, seed=0)
    cur = _constant(_clean(digits, range(5), 200, seed=1).copy(), np.random.default_rng(1))
    lenient = dataclasses.replace(SETTINGS, max_constant_rows=0.2)
    assert check_quality(cur, ref, settings=lenient).checks["constant_rows"].passed
