"""Small seeded data for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from core.settings import Settings, load_settings


def feature_table(
    n: int, dim: int = 8, *, n_classes: int = 3, seed: int = 0, prefix: str = "i", start: int = 0,
    label_prefix: str = "c", spread: float = 0.3,
) -> pa.Table:
    """``n`` items in ``n_classes`` Gaussian blobs, with item ids ``{prefix}{start}..``."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(1234).normal(size=(max(n_classes, 1), dim))
    labels = rng.integers(0, n_classes, size=n)
    x = (centers[labels] + spread * rng.normal(size=(n, dim))).astype(np.float32)
    return pa.table({
        "item_id": [f"{prefix}{start + i}" for i in range(n)],
        "label": [f"{label_prefix}{k}" for k in labels],
        "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), dim),
    })


def make_settings(home: Path, **extra: str) -> Settings:
    env = {"STEWARD_HOME": str(home), **extra}
    return load_settings(env=env, config_path=None)


def drift_summary(model_version: int | None = None, collection: str = "c", batch_seq: int = 2):
    """A drifted DriftSummary as a check would record it (one MMD detector, p = 0.001)."""
    from monitoring.summary import DriftSummary

    return DriftSummary.from_dict({
        "collection": collection, "batch_seq": batch_seq, "model_version": model_version,
        "decision": {"drifted": True, "alpha": 0.05, "flagged": ["mmd"]},
        "detectors": {"mmd": {"name": "mmd", "p_value": 0.001, "effect": 0.1, "effect_description": "big"}},
    })


def kill_when_ready(proc, ready, timeout: float) -> None:
    """SIGKILL ``proc`` as soon as it creates the file ``ready`` (its kill point), failing the test
    if it exits first or takes longer than ``timeout`` seconds."""
    import signal
    import time

    deadline = time.time() + timeout
    while not ready.exists():
        assert proc.poll() is None, "writer exited before reaching the kill point"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
