"""Shadow A/B statistics on seeded records: overlap@k, hit rates with intervals, latency percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitoring.shadow import ShadowReport, summarise, wilson
from storage.registry.entities import ShadowRecord

T0 = datetime(2026, 11, 27, tzinfo=UTC)


def _records(n: int, *, seed: int = 0) -> list[ShadowRecord]:
    """Requests of 2 queries each: overlap 0.8 on average, production right on 1 of 2, the shadow on 2."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        overlap = 1.6 + (0.2 if i % 2 else -0.2)  # mean 1.6 per request = 0.8 per query
        out.append(ShadowRecord("c", 1, 11, 2, 12, 10, 2, overlap, 2, 1, 2, float(rng.uniform(1, 3)),
                                float(rng.uniform(2, 6)), T0 + timedelta(seconds=i)))
    return out


def test_report_numbers_on_seeded_records() -> None:
    records = _records(200)
    r = summarise(records, collection="c", seed=1)
    assert (r.requests, r.queries, r.labelled, r.k) == (200, 400, 400, 10)
    assert (r.production_model, r.shadow_model) == (1, 2)
    assert r.overlap_at_k.value == pytest.approx(0.8)
    assert r.overlap_at_k.low < 0.8 < r.overlap_at_k.high and r.overlap_at_k.high - r.overlap_at_k.low < 0.05
    assert r.production_hit_rate.value == pytest.approx(0.5) and r.shadow_hit_rate.value == pytest.approx(1.0)
    assert r.hit_rate_difference.value == pytest.approx(0.5)
    prod_ms = np.array([x.production_ms for x in records])
    assert r.production_latency.p99_ms == pytest.approx(np.percentile(prod_ms, 99))
    assert r.shadow_latency.p50_ms == pytest.approx(np.percentile([x.shadow_ms for x in records], 50))
    assert r.first_at == "2026-11-27T00:00:00Z" and r.last_at == "2026-11-27T00:03:19Z"
    assert ShadowReport.from_dict(r.to_dict()) == r
    assert any("overlap@10 with production: 0.800" in line for line in r.lines())


def test_wilson_interval_matches_the_textbook_value() -> None:
    e = wilson(8, 10, 0.95)
    assert (e.value, round(e.low, 4), round(e.high, 4)) == (0.8, 0.4902, 0.9433)
    assert wilson(0, 0).value is None
    assert wilson(10, 10).high == 1.0


def test_intervals_resample_requests_so_a_larger_request_does_not_narrow_them_for_free() -> None:
    # The same per-request outcomes with 10x the queries per request: same point value, similar interval.
    small = _records(100)
    big = [ShadowRecord(**{**r.__dict__, "queries": 20, "overlap_sum": 10 * r.overlap_sum}) for r in small]
    a, b = (summarise(x, collection="c", seed=3).overlap_at_k for x in (small, big))
    assert a.value == pytest.approx(b.value)
    assert (b.high - b.low) == pytest.approx(a.high - a.low, rel=0.3)


def test_no_records_is_an_empty_report_not_an_error() -> None:
    r = summarise([], collection="c")
    assert r.requests == 0 and r.overlap_at_k.value is None and r.production_latency.p50_ms is None
    assert "no shadow records yet" in r.lines()[0]
