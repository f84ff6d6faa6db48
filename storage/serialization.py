"""Turning weights, arrays and JSON into bytes and back, without unpickling arbitrary code."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.errors import ArtifactIntegrityError


def state_dict_to_bytes(state_dict: dict[str, Any]) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() if hasattr(v, "detach") else v for k, v in state_dict.items()}, buffer)
    return buffer.getvalue()


def state_dict_from_bytes(data: bytes) -> dict[str, Any]:
    import torch

    try:
        # weights_only: tensors and plain containers only, never arbitrary pickled objects.
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ArtifactIntegrityError(f"model weights could not be loaded safely: {e}") from e


def arrays_to_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def arrays_from_bytes(data: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as e:
        raise ArtifactIntegrityError(f"array artifact could not be loaded without pickle: {e}") from e


def json_to_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, default=str).encode()


def json_from_bytes(data: bytes) -> Any:
    return json.loads(data.decode())


def jsonable(obj: Any) -> Any:
    """Plain JSON values: numpy scalars become Python numbers, tuples lists, keys strings, and
    NaN/inf become None (PostgreSQL's JSON type rejects them, SQLite would store invalid JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def iso_utc(ts: datetime | None) -> str | None:
    """The one timestamp format of every JSON steward prints or serves: ISO-8601 in UTC with a ``Z``
    (as pydantic writes it, so the API and the CLI agree). Naive values are UTC (SQLite drops zones)."""
    if ts is None:
        return None
    aware = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")
