"""Table tests for the index choice rules."""

from __future__ import annotations

import math

import pytest

from core.errors import ConfigError, ValidationError
from embedding.index.choice import (
    choose_index,
    flat_bytes,
    hnsw_bytes,
    ivf_flat_bytes,
    ivf_nlist,
)

MiB = 2**20


@pytest.mark.parametrize(
    ("n", "dim", "budget", "latency_ms", "family", "factory"),
    [
        (500, 64, None, None, "flat", "Flat"),  # tiny: exact
        (10_000, 128, None, None, "flat", "Flat"),  # at the exact threshold
        (10_001, 128, None, None, "hnsw", "HNSW32,Flat"),  # just past it, memory unbounded
        (500_000, 128, None, None, "hnsw", "HNSW32,Flat"),  # the largest size HNSW is chosen for
        (500_001, 128, None, None, "ivf_flat", "IVF4096,Flat"),  # past it IVF builds and answers faster
        (1_000_000, 128, None, None, "ivf_flat", "IVF4096,Flat"),
        (100_000, 384, None, None, "hnsw", "HNSW32,Flat"),
        # exact search estimated within a generous latency target stays exact
        (50_000, 64, None, 10.0, "flat", "Flat"),
        # ... but not within a tight one
        (50_000, 64, None, 0.5, "hnsw", "HNSW32,Flat"),
        # HNSW32 does not fit, HNSW16 does
        (400_000, 128, hnsw_bytes(400_000, 128, 16) + MiB, None, "hnsw", "HNSW16,Flat"),
        # no HNSW fits, raw vectors do: IVF-Flat
        (400_000, 128, ivf_flat_bytes(400_000, 128, 4096) + MiB, None, "ivf_flat", "IVF4096,Flat"),
        (100_000, 128, flat_bytes(100_000, 128) + 10 * MiB // 10, None, "ivf_flat", "IVF2048,Flat"),
        # raw vectors do not fit: IVF-PQ with a refine step
        (1_000_000, 128, 200 * MiB, None, "ivf_pq", "IVF4096,PQ64x4fs,Refine(SQ8)"),
        # too tight even for the refine step: IVF-PQ alone
        (1_000_000, 128, 60 * MiB, None, "ivf_pq", "IVF4096,PQ64x4fs"),
        # small collection over a budget that cannot hold its raw vectors: compressed, not exact
        (5_000, 128, 400_000, None, "ivf_pq", "IVF128,PQ64x4fs"),
    ],
)
def test_choice_table(n, dim, budget, latency_ms, family, factory):
    choice = choose_index(n, dim, memory_budget_bytes=budget, latency_target_ms=latency_ms)
    assert choice.family == family
    assert choice.factory == factory
    assert choice.metric == "inner_product"
    assert choice.reason
    if budget is not None:
        assert choice.estimated_bytes <= budget


@pytest.mark.parametrize("n", [100_000, 1_000_000, 10_000_000])
def test_nlist_is_a_power_of_two_within_guideline_range(n):
    nlist = ivf_nlist(n)
    assert nlist & (nlist - 1) == 0
    assert 4 * math.sqrt(n) <= nlist <= 16 * math.sqrt(n)
    assert n >= 39 * nlist  # enough training points per centroid


def test_nlist_shrinks_when_too_few_points_to_train():
    for n in (5_000, 20_000):
        assert ivf_nlist(n) * 39 <= n


def test_budget_too_small_for_anything_is_a_config_error():
    with pytest.raises(ConfigError, match="raise the budget"):
        choose_index(1_000_000, 128, memory_budget_bytes=1_000_000)


@pytest.mark.parametrize(("n", "dim"), [(0, 128), (10, 0)])
def test_empty_or_dimensionless_gallery_is_rejected(n, dim):
    with pytest.raises(ValidationError):
        choose_index(n, dim)


def test_nonpositive_budget_is_a_config_error():
    with pytest.raises(ConfigError):
        choose_index(100, 8, memory_budget_bytes=0)
