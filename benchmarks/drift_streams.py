"""Real-embedding drift streams for ``benchmarks.drift --real``: how batches arrive, what goes wrong
in them, and the decision replayed the way production takes it.

A stream is a labelled corpus with a few labels held out (the "new classes" that may arrive later),
cut into batches of ``batch_size`` rows:

- ``contiguous``: each label's rows ordered by sub-population (``group``, e.g. the sub-module of a
  package; the group order is shuffled per seed) and cut into consecutive slices, batch t taking
  slice t of every label: the same label mix in every batch, different sub-populations, as real
  nightly batches arrive;
- ``random``: the same rows dealt out at random (the textbook null the tests are calibrated for).

Each check compares batch t with the ``reference_batches`` before it. Scenarios change only the
current batch: ``null``; ``new_class_<p>`` (p% of the rows replaced by rows of one held-out label);
``fault_zero`` / ``fault_constant`` / ``fault_noise`` (10% of the rows zeroed, replaced by one
repeated vector, or drowned in noise twice the row's norm); ``noise_shift`` (small Gaussian noise
on every row).

The decision is replayed per stream in check order with the shipped :func:`monitoring.decision.decide`
and :class:`monitoring.decision.EffectBaseline`: a check's baseline holds the effects of the
stream's earlier *null* checks that did not act, as ``monitoring.check.past_effects`` would find
them in the registry (a scenario is a one-off event in batch t, so its past is the null stream's).

Embedding space. The product checks drift on what the *production model* serves, not on the raw
encoder output: ``production_head`` trains a head the way ``steward retrain`` does (a full
:func:`embedding.continual.continual_step` with the product's ``TrainConfig`` defaults) on the
labelled rows of a reference window, and returns its torch-free serving path
(:class:`embedding.numpy_head.NumpyHead`, what ``steward drift`` embeds with). Scenarios act on the
encoder output (a new class's MiniLM rows, zeroed or noisy encoder rows), which the head then maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.decision import EffectBaseline, SeverityConfig, decide

FAULT_SHARE = 0.10
FAULT_NOISE_RATIO = 2.0  # noise norm / row norm: cosine to the original ≈ 0.45 ("heavy"; at 1.0 it is ≈ 0.71)
NOISE_SHIFT_SD = 0.01  # per dimension on unit-norm rows: norm ≈ 0.2, cosine to the original ≈ 0.98


@dataclass(frozen=True)
class Stream:
    kind: str
    seed: int
    batches: tuple[np.ndarray, ...]  # corpus row indices per batch
    new_labels: tuple[str, ...]  # held out: never in any batch


def make_stream(labels: np.ndarray, groups: np.ndarray, *, kind: str, seed: int, batch_size: int,
                n_new: int) -> Stream:
    rng = np.random.default_rng([seed, 17])
    classes = sorted(set(labels.tolist()))
    new = tuple(sorted(rng.choice(classes, n_new, replace=False).tolist()))
    known = [c for c in classes if c not in new]
    rows_known = np.flatnonzero(np.isin(labels, known))
    n_batches = len(rows_known) // batch_size
    if kind == "random":
        perm = rng.permutation(rows_known)
        return Stream(kind, seed, tuple(np.array_split(perm, n_batches)), new)
    if kind != "contiguous":
        raise ValueError(kind)
    parts: list[list[np.ndarray]] = [[] for _ in range(n_batches)]
    for c in known:
        rows = np.flatnonzero(labels == c)
        order = {g: i for i, g in enumerate(rng.permutation(sorted(set(groups[rows].tolist()))))}
        rows = rows[np.lexsort((rng.random(len(rows)), [order[g] for g in groups[rows]]))]
        for t, chunk in enumerate(np.array_split(rows, n_batches)):
            parts[t].append(chunk)
    return Stream(kind, seed, tuple(np.concatenate(p) for p in parts), new)


def production_head(features: np.ndarray, labels: np.ndarray, *, seed: int, config: Any = None) -> Any:
    """A production model trained on labelled rows as ``steward retrain --full`` trains one
    (``config``: a ``TrainConfig``, default the product's defaults with ``seed``), as the numpy head
    the drift check embeds with."""
    from embedding.config import TrainConfig
    from embedding.continual import LabelledData, continual_step
    from embedding.model import head_arrays
    from embedding.numpy_head import NumpyHead

    data = LabelledData(np.array([f"r{i}" for i in range(len(labels))]), np.asarray(labels, str), features)
    outcome = continual_step(data, config or TrainConfig(seed=seed), full=True)
    model = outcome.candidate.model
    return NumpyHead(model.spec.to_dict(), head_arrays(model))


def apply_scenario(scenario: str, x: np.ndarray, y: np.ndarray, *, embeddings: np.ndarray, labels: np.ndarray,
                   new_labels: Sequence[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The current batch as the scenario makes it (copies; the inputs are not changed)."""
    x, y = x.copy(), y.copy()
    n = len(x)
    if scenario == "null":
        return x, y
    if scenario.startswith("new_class_"):
        k = round(int(scenario.rsplit("_", 1)[1]) / 100 * n)
        label = rng.choice(list(new_labels))
        pool = np.flatnonzero(labels == label)
        new_rows = rng.choice(pool, min(k, len(pool)), replace=False)
        replace = rng.choice(n, len(new_rows), replace=False)
        x[replace], y[replace] = embeddings[new_rows], labels[new_rows]
        return x, y
    if scenario.startswith("fault_"):
        rows = rng.choice(n, round(FAULT_SHARE * n), replace=False)
        kind = scenario.split("_", 1)[1]
        if kind == "zero":  # an encoder that failed and returned zeros
            x[rows] = 0.0
        elif kind == "constant":  # a stuck encoder: one output repeated
            x[rows] = x[rng.integers(n)]
        elif kind == "noise":  # corrupted inputs: noise larger than the signal
            noise = rng.standard_normal((len(rows), x.shape[1])).astype(np.float32)
            noise *= FAULT_NOISE_RATIO * np.linalg.norm(x[rows], axis=1, keepdims=True) / np.linalg.norm(
                noise, axis=1, keepdims=True)
            x[rows] = x[rows] + noise
        else:
            raise ValueError(scenario)
        return x, y
    if scenario == "noise_shift":
        return x + rng.normal(0.0, NOISE_SHIFT_SD, size=x.shape).astype(np.float32), y
    raise ValueError(scenario)


def replay(null_checks: Sequence[dict[str, Any]], scenario_checks: Sequence[dict[str, Any]], *, alpha: float,
           detectors: Sequence[str] | None, severity: SeverityConfig) -> list[tuple[Any, int]]:
    """(decision, past checks in its baseline) for ``scenario_checks[i]`` (detector results of check
    i of one stream, in order), each against the baseline the stream's null checks before i built.
    ``detectors`` restricts the decision to some detectors (the unlabelled view), as a suite given
    no labels would run them."""
    def pick(results: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in results.items() if detectors is None or k in detectors}

    history: list[dict[str, float]] = []
    out = []
    for null, scen in zip(null_checks, scenario_checks, strict=True):
        baseline = EffectBaseline.from_effects(history)
        out.append((decide(pick(scen), alpha, baseline=baseline, severity=severity), len(history)))
        null_decision = decide(pick(null), alpha, baseline=baseline, severity=severity)
        if not null_decision.drifted:  # production learns only from checks that did not act
            history.append({k: float(v.effect) for k, v in pick(null).items()})
    return out
