"""The demo story: scikit-learn's digits arriving as a class-incremental stream.

1. digits 0-4 arrive: no production yet, so steward trains, indexes and promotes v1;
2. more 0-4 from the same distribution: drift is checked and (correctly) not found;
3. digits 5-7 appear, a new product line: drift and novelty fire, v2 is trained, gated, promoted;
4. digits 8-9 appear: again (v3), with the Evidently HTML report of the drift;
5. a sensor fault corrupts inputs (noise and dead pixels): the batch fails its data-quality
   checks, raises a ``data_quality`` alert and is excluded from training; production stays;
then an operator rolls back the last promotion (production is pinned), and the next scheduled run
trains a candidate but leaves the pin alone.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maintenance.summary import MaintenanceSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoBatch:
    name: str
    story: str
    item_index: np.ndarray
    corrupt: bool = False


def digits_stream(n_batches: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[DemoBatch]]:
    """Pure: the digits data and how it is cut into arriving batches."""
    from sklearn.datasets import load_digits

    if n_batches < 4:
        raise ValueError(f"the demo needs at least 4 batches, got {n_batches}")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    rng = np.random.default_rng(seed)
    by_class = {c: rng.permutation(np.flatnonzero(y == c)) for c in range(10)}

    def take(classes: range, start: float, stop: float) -> np.ndarray:
        parts = [idx[int(start * len(idx)):int(stop * len(idx))] for c, idx in by_class.items() if c in classes]
        return np.concatenate(parts)

    batches = [
        DemoBatch("b1-digits-0-4", "digits 0-4 arrive (bootstrap)", take(range(5), 0.0, 0.6)),
        DemoBatch("b2-more-0-4", "more 0-4, same distribution (no drift expected)", take(range(5), 0.6, 0.8)),
        DemoBatch("b3-new-5-7", "new classes 5-7 arrive", np.concatenate([take(range(5, 8), 0.0, 0.8), take(range(5), 0.8, 0.9)])),
        DemoBatch("b4-new-8-9", "new classes 8-9 arrive", np.concatenate([take(range(8, 10), 0.0, 0.8), take(range(5), 0.9, 1.0)])),
    ]
    if n_batches >= 5:
        batches.append(DemoBatch("b5-sensor-fault", "a sensor fault corrupts inputs (noise, dead pixels)",
                                 take(range(5, 10), 0.8, 1.0), corrupt=True))
    return x, y, batches[:n_batches]


def corrupt(x: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = x + rng.normal(0.0, 0.35, size=x.shape).astype(np.float32)
    dead = rng.random(x.shape) < 0.3
    return np.clip(np.where(dead, 0.0, noisy), 0.0, 1.0).astype(np.float32)


def write_batch(path: Path, x: np.ndarray, y: np.ndarray, batch: DemoBatch, seed: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    feats = x[batch.item_index]
    if batch.corrupt:
        feats = corrupt(feats, seed)
    # Corrupted re-sends get new ids: they are new observations, not updates of clean items.
    prefix = "f" if batch.corrupt else "d"
    table = pa.table({
        "item_id": [f"{prefix}{i}" for i in batch.item_index],
        "label": [str(int(v)) for v in y[batch.item_index]],
        "features": pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel(), pa.float32()), x.shape[1]),
        "source": [batch.name] * len(batch.item_index),
    })
    pq.write_table(table, path)
    return path


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def _row(i: int, classes: str, summary: MaintenanceSummary) -> dict[str, Any]:
    drift, candidate, index, production = summary.drift, summary.candidate, summary.index, summary.production
    maps = candidate.map_at_r if candidate else {}
    return {
        "batch": i,
        "classes": classes,
        "quality": "—" if not summary.quality else ("ok" if all(q.passed for q in summary.quality) else "FAILED"),
        "drift": None if drift is None else drift.drifted,
        "min_p": min((p for p in drift.p_values.values() if p is not None), default=None) if drift else None,
        "candidate": candidate.model_version if candidate else None,
        "map_old": maps.get("old"), "map_new": maps.get("new"), "map_all": maps.get("overall"),
        "recall10": index.recall_at_10 if index else None,
        "decision": summary.outcome,
        "production": f"v{production['model_version']}+i{production['index_version']}" if production else "—",
    }


def _print_table(rows: list[dict[str, Any]]) -> None:
    print("\n batch | classes          | quality | drift | min p     | cand | MAP@R old | MAP@R new | MAP@R all | "
          "idx R@10 | production | decision")
    print("-------|------------------|---------|-------|-----------|------|-----------|-----------|-----------|"
          "----------|------------|---------")
    for r in rows:
        drift_text = "—" if r["drift"] is None else ("yes" if r["drift"] else "no")
        print(f" {r['batch']:>5} | {r['classes']:<16} | {r['quality']:<7} | {drift_text:<5} | {_fmt(r['min_p'], '.2e'):>9} | "
              f"{_fmt(r['candidate'], 'd') if r['candidate'] else '—':>4} | {_fmt(r['map_old']):>9} | "
              f"{_fmt(r['map_new']):>9} | {_fmt(r['map_all']):>9} | {_fmt(r['recall10']):>8} | "
              f"{r['production']:>10} | {r['decision']}")


def run_demo(home: Path, batches: int = 5, seed: int = 0) -> dict[str, Any]:
    """Play the story in a fresh ``home`` (deleted first) through the Prefect maintenance flow."""
    if home.exists():
        shutil.rmtree(home)  # the demo always starts from nothing, in its own folder
    home.mkdir(parents=True)
    from core.settings import load_settings

    # The demo's own home and defaults: no environment or config file of the caller's applies.
    settings = load_settings(env={"STEWARD_HOME": str(home)}, config_path=None)
    from steward.prefect_env import configure_prefect, start_temporary_server_if_needed

    configure_prefect(settings)
    start_temporary_server_if_needed()
    from flows.maintenance_flows import maintenance_flow, rollback_flow

    started = time.perf_counter()
    x, y, stream = digits_stream(batches, seed)
    inputs = home / "incoming"
    inputs.mkdir()
    rows: list[dict[str, Any]] = []
    html_reports: list[str] = []
    params = settings.to_dict()
    print(f"steward demo: {len(stream)} batches of scikit-learn digits into {home}\n")
    for i, batch in enumerate(stream, start=1):
        path = write_batch(inputs / f"{batch.name}.parquet", x, y, batch, seed + i)
        print(f"[{time.perf_counter() - started:5.0f}s] batch {i}: {batch.story} ({len(batch.item_index)} items)")
        html = i == 4  # the drift of digits 8-9 also gets a human-readable report
        summary = MaintenanceSummary.from_dict(maintenance_flow(
            collection="digits", files=[str(path)], html_report=html, settings=params))
        if html and summary.drift is not None and summary.drift.report_artifact:
            html_reports.append(str(settings.reports_dir / "digits" / f"drift-batch-{summary.latest_batch}.html"))
        row = _row(i, ",".join(sorted({str(int(v)) for v in y[batch.item_index]})), summary)
        rows.append(row)
        print(f"         -> {row['decision']}")
    change = rollback_flow(collection="digits", reason="demo: operator rolls back the last promotion", settings=params)
    print(f"[{time.perf_counter() - started:5.0f}s] operator rolls back: production model v{change['from_model']} + "
          f"index {change['from_index']} -> v{change['to_model']} + index {change['to_index']} (pinned)")
    nightly = MaintenanceSummary.from_dict(maintenance_flow(collection="digits", retrain_on="new-data",
                                                            settings=params))
    print(f"[{time.perf_counter() - started:5.0f}s] nightly run after the rollback -> {nightly.outcome}")
    elapsed = time.perf_counter() - started
    _print_table(rows)
    if html_reports:
        print("HTML drift reports:\n  " + "\n  ".join(html_reports))
    print(f"registry: {settings.database_url}\nartifacts: {settings.artifacts_uri}\ndone in {elapsed:.0f} s")
    return {"rows": rows, "rollback": change, "after_rollback": nightly.to_dict(), "html_reports": html_reports,
            "seconds": elapsed, "home": str(home)}
