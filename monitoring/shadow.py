"""Shadow A/B statistics: how a shadow version's answers to mirrored live queries compare with production's.

Pure: :func:`summarise` takes the stored records (``storage.registry.entities.ShadowRecord``, one per
mirrored request) and returns a :class:`ShadowReport`. Intervals resample *requests*, not queries:
the queries of one request share its latency and tend to be alike, so treating them as independent
would make the intervals too narrow. :func:`shadow_report` is the one reader (registry -> report).

- overlap@k: per query, the share of production's top-k ids the shadow also returned; the report's
  value is the mean over queries (ratio of sums), with a bootstrap interval;
- hit rate: of the queries that carried a label or an expected item, the share each pair answered
  right (Wilson intervals) and the paired difference shadow - production (bootstrap);
- latency: percentiles of each pair's search time per request (production's on the request path,
  the shadow's in the background worker).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from storage.serialization import iso_utc

SCHEMA_VERSION = 1
_CHUNK = 200  # bootstrap resamples drawn at a time (bounds memory at n_requests * _CHUNK)


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None = None
    high: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Estimate:
        d = d or {}
        return cls(d.get("value"), d.get("low"), d.get("high"))


@dataclass(frozen=True)
class Latency:
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None


@dataclass(frozen=True)
class ShadowReport:
    collection: str
    production_model: int | None  # the production version compared against (None: no record)
    shadow_model: int | None
    requests: int
    queries: int
    k: int | None  # the largest k asked for
    overlap_at_k: Estimate
    labelled: int  # queries that carried a label or an expected item
    production_hit_rate: Estimate
    shadow_hit_rate: Estimate
    hit_rate_difference: Estimate  # shadow - production, paired over requests
    production_latency: Latency
    shadow_latency: Latency
    confidence: float
    first_at: str | None = None
    last_at: str | None = None
    pairs: tuple[dict[str, int], ...] = field(default_factory=tuple)  # every (production, shadow) pair recorded

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pairs"] = [dict(p) for p in self.pairs]
        return {"schema_version": SCHEMA_VERSION, **out}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ShadowReport:
        est = {k: Estimate.from_dict(d.get(k)) for k in
               ("overlap_at_k", "production_hit_rate", "shadow_hit_rate", "hit_rate_difference")}
        lat = {k: Latency(**(d.get(k) or {"p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None}))
               for k in ("production_latency", "shadow_latency")}
        plain = {k: d.get(k) for k in ("collection", "production_model", "shadow_model", "requests", "queries", "k",
                                       "labelled", "confidence", "first_at", "last_at")}
        return cls(**plain, **est, **lat, pairs=tuple(dict(p) for p in d.get("pairs") or ()))

    def lines(self) -> list[str]:
        """What ``steward shadow report`` prints."""
        if not self.requests:
            return [f"{self.collection}: no shadow records yet (run `steward api --shadow-fraction F` and send queries)"]

        def est(e: Estimate, pct: bool = False) -> str:
            if e.value is None:
                return "n/a"
            f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
            ci = f" [{f(e.low)}, {f(e.high)}]" if e.low is not None and e.high is not None else ""
            return f(e.value) + ci

        def lat(x: Latency) -> str:
            return "n/a" if x.p50_ms is None else f"p50 {x.p50_ms:.2f} ms, p99 {x.p99_ms:.2f} ms"

        level = f"{100 * self.confidence:.0f}%"
        out = [
            (f"{self.collection}: shadow v{self.shadow_model} against production v{self.production_model}: "
             f"{self.queries} queries in {self.requests} requests ({self.first_at} .. {self.last_at})"),
            f"  overlap@{self.k} with production: {est(self.overlap_at_k)} ({level} interval)",
        ]
        if self.labelled:
            out.append(f"  hit rate on {self.labelled} labelled queries: production {est(self.production_hit_rate, True)}"
                       f", shadow {est(self.shadow_hit_rate, True)}, difference {est(self.hit_rate_difference, True)}")
        else:
            out.append("  hit rate: no query carried a label or an expected item")
        out.append(f"  latency: production {lat(self.production_latency)}; shadow {lat(self.shadow_latency)}")
        others = [p for p in self.pairs if (p["production_model"], p["shadow_model"])
                  != (self.production_model, self.shadow_model)]
        if others:
            out.append("  other pairs recorded: " + ", ".join(
                f"v{p['shadow_model']} vs v{p['production_model']} ({p['queries']} queries)" for p in others))
        return out


def wilson(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """The Wilson score interval of a proportion (good at small n and near 0 or 1)."""
    if n <= 0:
        return Estimate(None)
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def _ratio_bootstrap(num: np.ndarray, den: np.ndarray, *, samples: int, confidence: float,
                     rng: np.random.Generator) -> Estimate:
    """sum(num)/sum(den) with a percentile interval from resampling the rows (requests) together."""
    total = den.sum()
    if total <= 0:
        return Estimate(None)
    value = float(num.sum() / total)
    if samples <= 0 or len(num) < 2:
        return Estimate(value)
    stats = []
    for start in range(0, samples, _CHUNK):
        idx = rng.integers(0, len(num), size=(min(_CHUNK, samples - start), len(num)), dtype=np.int64)
        d = den[idx].sum(axis=1)
        ok = d > 0
        stats.append(num[idx].sum(axis=1)[ok] / d[ok])
    boot = np.concatenate(stats)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high))


def _latency(ms: np.ndarray) -> Latency:
    if len(ms) == 0:
        return Latency(None, None, None, None)
    p50, p90, p99 = (float(x) for x in np.percentile(ms, [50, 90, 99]))
    return Latency(p50, p90, p99, float(ms.mean()))


def summarise(records: Sequence[Any], *, collection: str, confidence: float = 0.95, samples: int = 1000,
              seed: int = 0, pairs: Sequence[tuple[int, int, int]] = ()) -> ShadowReport:
    """The report over ``records`` (all of one production and one shadow version; see :func:`shadow_report`)."""
    rng = np.random.default_rng(seed)
    n = len(records)
    queries = np.array([r.queries for r in records], np.float64)
    overlap = np.array([r.overlap_sum for r in records], np.float64)
    labelled = np.array([r.labelled for r in records], np.float64)
    prod_hits = np.array([r.production_hits for r in records], np.float64)
    shadow_hits = np.array([r.shadow_hits for r in records], np.float64)
    n_labelled = int(labelled.sum())
    times = sorted(r.at for r in records)
    return ShadowReport(
        collection=collection,
        production_model=records[0].production_model if n else None,
        shadow_model=records[0].shadow_model if n else None,
        requests=n,
        queries=int(queries.sum()),
        k=max((r.k for r in records), default=None),
        overlap_at_k=_ratio_bootstrap(overlap, queries, samples=samples, confidence=confidence, rng=rng),
        labelled=n_labelled,
        production_hit_rate=wilson(int(prod_hits.sum()), n_labelled, confidence),
        shadow_hit_rate=wilson(int(shadow_hits.sum()), n_labelled, confidence),
        hit_rate_difference=_ratio_bootstrap(shadow_hits - prod_hits, labelled, samples=samples,
                                             confidence=confidence, rng=rng),
        production_latency=_latency(np.array([r.production_ms for r in records], np.float64)),
        shadow_latency=_latency(np.array([r.shadow_ms for r in records], np.float64)),
        confidence=confidence,
        first_at=iso_utc(times[0]) if times else None,
        last_at=iso_utc(times[-1]) if times else None,
        pairs=tuple({"production_model": p, "shadow_model": s, "queries": q} for p, s, q in pairs),
    )


def shadow_report(registry: Any, collection: str, *, shadow_model: int | None = None,
                  production_model: int | None = None, limit: int = 10_000, confidence: float = 0.95,
                  samples: int = 1000) -> ShadowReport:
    """The report of one (production, shadow) pair from the registry's records, the newest ``limit``.

    Without versions: the pair recorded most recently (with only ``shadow_model``: its newest production).
    """
    pairs = registry.shadow.pairs(collection)
    chosen = [(p, s) for p, s, _ in pairs if (shadow_model is None or s == shadow_model)
              and (production_model is None or p == production_model)]
    if not chosen:
        return summarise([], collection=collection, confidence=confidence, samples=samples, pairs=pairs)
    prod, shadow = chosen[0]
    records = registry.shadow.list_records(collection, shadow_model=shadow, production_model=prod, limit=limit)
    return summarise(records, collection=collection, confidence=confidence, samples=samples, pairs=pairs)
