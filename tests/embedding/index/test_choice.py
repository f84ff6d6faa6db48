"""Table tests for the index choice rules."""

from __future__ import annotations

import math

import pytest

from core.errors import ConfigError, ValidationError
from embedding.index.choice import (
    EXACT_MAX_WORK,
    HNSW_MAX_N,
    choice_from_factory,
    choose_index,
    hnsw_sq_bytes,
    ivf_flat_bytes,
    ivf_nlist,
)

MiB = 2**20


W, H = EXACT_MAX_WORK, HNSW_MAX_N


@pytest.mark.parametrize(
    ("n", "dim", "budget", "latency_ms", "family", "factory"),
    [
        (500, 64, None, None, "flat", "Flat"),  # tiny: exact
        (W // 128, 128, None, None, "flat", "Flat"),  # at the exact crossover
        (W // 128 + 1, 128, None, None, "ivf_flat", f"IVF{ivf_nlist(W // 128 + 1)},Flat"),  # just past it
        (W // 64, 64, None, None, "flat", "Flat"),  # the exact limit follows dimension:
        (W // 384 + 1, 384, None, None, "hnsw", "HNSW32,Flat"),  # fewer items stay exact at 384-d
        (H, 384, None, None, "hnsw", "HNSW32,Flat"),  # the largest size HNSW is chosen for
        (H + 1, 384, None, None, "ivf_flat", f"IVF{ivf_nlist(H + 1)},Flat"),  # past it IVF
        (H, 128, None, None, "ivf_flat", f"IVF{ivf_nlist(H)},Flat"),  # below HNSW_MIN_DIM IVF at any size
        (1_000_000, 128, None, None, "ivf_flat", "IVF4096,Flat"),
        # exact search estimated within a generous latency target stays exact
        (50_000, 64, None, 10.0, "flat", "Flat"),
        # ... but not within a tight one
        (50_000, 64, None, 0.5, "ivf_flat", f"IVF{ivf_nlist(50_000)},Flat"),
        # HNSW with float vectors does not fit, with 8-bit codes it does
        (H, 384, hnsw_sq_bytes(H, 384, 32) + MiB, None, "hnsw", "HNSW32,SQ8"),
        # raw vectors do not fit: IVF-PQ with a refine step; IVF-Flat under a budget that holds raw vectors
        (H, 128, hnsw_sq_bytes(H, 128, 32) - MiB, None, "ivf_pq", f"IVF{ivf_nlist(H)},PQ64x4fs,Refine(SQ8)"),
        (2 * H, 128, ivf_flat_bytes(2 * H, 128, ivf_nlist(2 * H)) + MiB, None, "ivf_flat",
         f"IVF{ivf_nlist(2 * H)},Flat"),
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


@pytest.mark.parametrize(
    ("factory", "family", "params"),
    [("HNSW48,Flat", "hnsw", {"M": 48}), ("IVF256,Flat", "ivf_flat", {"nlist": 256}),
     ("IVF256,PQ16x4fs", "ivf_pq", {"nlist": 256}), ("Flat", "flat", {}), ("PCA64,HNSW16", "hnsw", {"M": 16}),
     ("LSH", "custom", {})],
)
def test_factory_override_reads_the_family(factory, family, params):
    choice = choice_from_factory(factory, 100_000, 128)
    assert choice.factory == factory and choice.family == family and "--factory" in choice.reason
    assert params.items() <= choice.params.items()


@pytest.mark.parametrize("factory", ["", "IDMap2,Flat", "IVF4096,Flat"])
def test_factory_override_refuses_what_cannot_work(factory):
    with pytest.raises(ValidationError):
        choice_from_factory(factory, 1_000, 128)
