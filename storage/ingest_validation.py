"""Pure validation of an incoming batch: file-level refusal or row-level quarantine.

No I/O here: :func:`validate_batch` takes an Arrow table and the collection's fixed shape and
returns the good rows, the quarantined rows (with a ``reason`` column) and the shape.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import ValidationError

RESERVED = ("item_id", "label", "features", "text", "deleted")
_FEATURE_COLUMN = re.compile(r"^feature_(\d+)$")


@dataclass(frozen=True)
class ValidatedBatch:
    good: pa.Table
    quarantined: pa.Table  # the offending rows as strings, plus ``reason``
    kind: str  # "features" or "text"
    dim: int | None


def _refuse(source: str, message: str) -> ValidationError:
    return ValidationError(f"{source}: {message}; nothing was written")


def _gather_feature_columns(table: pa.Table, source: str) -> pa.Table:
    """CSV has no list type: accept ``feature_0..feature_{d-1}`` columns or a JSON ``features`` string."""
    wide = sorted(
        ((int(m.group(1)), name) for name in table.column_names if (m := _FEATURE_COLUMN.match(name))),
    )
    if wide and "features" not in table.column_names:
        indices = [i for i, _ in wide]
        if indices != list(range(len(indices))):
            raise _refuse(source, f"feature columns must be feature_0..feature_{len(indices) - 1} without gaps, got {indices[:5]}...")
        matrix = np.column_stack([table[name].to_numpy(zero_copy_only=False).astype(np.float64) for _, name in wide])
        values = pa.array(matrix.astype(np.float32).ravel(), pa.float32())
        features = pa.FixedSizeListArray.from_arrays(values, len(wide))
        table = table.drop_columns([name for _, name in wide]).append_column("features", features)
    elif "features" in table.column_names and pa.types.is_string(table.schema.field("features").type):
        parsed: list[list[float] | None] = []
        for i, raw in enumerate(table["features"].to_pylist()):
            if raw is None or raw == "":
                parsed.append(None)
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as e:
                raise _refuse(source, f"column 'features' row {i} is not a JSON list of numbers: {raw[:40]!r}") from e
            parsed.append(value if isinstance(value, list) else None)
        table = table.set_column(table.column_names.index("features"), "features", pa.array(parsed, pa.list_(pa.float64())))
    return table


def _feature_lists(column: pa.ChunkedArray, source: str) -> tuple[list[np.ndarray | None], int]:
    t = column.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise _refuse(source, f"column 'features' has type {t}; expected a list of floats (fixed-size list<float32>)")
    if not (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type) or pa.types.is_null(t.value_type)):
        raise _refuse(source, f"column 'features' holds {t.value_type}; expected floats")
    rows: list[np.ndarray | None] = []
    for chunk in column.chunks:
        for value in chunk:
            if not value.is_valid:
                rows.append(None)
            else:
                arr = value.values.to_numpy(zero_copy_only=False)
                rows.append(np.asarray(arr, dtype=np.float64))
    lengths = [len(r) for r in rows if r is not None]
    if not lengths:
        return rows, 0
    values, counts = np.unique(lengths, return_counts=True)
    return rows, int(values[np.argmax(counts)])


def validate_batch(table: pa.Table, *, source: str, kind: str | None, dim: int | None) -> ValidatedBatch:
    """Split ``table`` into good and quarantined rows; refuse the whole file on file-level problems.

    ``kind``/``dim`` are the collection's (None for a new collection: the first batch fixes them).
    """
    if table.num_rows == 0:
        # An empty file or a header without rows: nothing to store, and no shape to learn from.
        raise _refuse(source, f"the file has no rows (columns: {table.column_names or 'none'}); "
                              "send a file with at least one item")
    if "item_id" not in table.column_names:
        raise _refuse(source, f"no 'item_id' column (columns are {table.column_names}); every row needs a unique item_id")
    table = _gather_feature_columns(table, source)
    has_features, has_text = "features" in table.column_names, "text" in table.column_names
    if not has_features and not has_text:
        raise _refuse(source, "neither a 'features' column (list of floats, or feature_0..feature_N) nor a 'text' column")
    batch_kind = "features" if has_features else "text"
    if kind is not None and batch_kind != kind:
        raise _refuse(source, f"collection holds '{kind}' items but this file has '{batch_kind}'")

    n = table.num_rows
    reasons: list[str | None] = [None] * n
    deleted = _deleted_flags(table, source)
    feature_rows: list[np.ndarray | None] = []
    if batch_kind == "features":
        feature_rows, modal_dim = _feature_lists(table["features"], source)
        expected = dim if dim is not None else modal_dim
        if n and expected == 0:
            raise _refuse(source, "column 'features' has no non-null values")
        if dim is not None and modal_dim and modal_dim != dim:
            raise _refuse(source, f"column 'features' has dimension {modal_dim}; collection expects {dim}")
        dim = expected
        for i, row in enumerate(feature_rows):
            if row is None:
                reasons[i] = "features is null"
            elif len(row) != dim:
                reasons[i] = f"features has length {len(row)}, expected {dim}"
            elif not np.all(np.isfinite(row)):
                reasons[i] = "features contains NaN or Inf"
            elif not np.any(row) and not deleted[i]:
                # No direction: its cosine similarity to anything is undefined, so it can neither be
                # searched for nor learnt from (and a zero vector is what a dead sensor sends).
                reasons[i] = "features are all zero"
    else:
        if not pa.types.is_string(table.schema.field("text").type) and not pa.types.is_large_string(table.schema.field("text").type):
            raise _refuse(source, f"column 'text' has type {table.schema.field('text').type}; expected strings")
        for i, value in enumerate(table["text"].to_pylist()):
            if value is None or not str(value).strip():
                reasons[i] = "text is empty"

    item_ids = pc.cast(table["item_id"], pa.string()).to_pylist()
    first_seen: dict[str, int] = {}
    for i, item_id in enumerate(item_ids):
        if item_id is None or item_id == "":
            reasons[i] = reasons[i] or "item_id is empty"
            continue
        if item_id in first_seen:
            reasons[i] = f"duplicate item_id {item_id!r} within the batch (first at row {first_seen[item_id]})"
        else:
            first_seen[item_id] = i

    good_mask = np.array([r is None for r in reasons], dtype=bool)
    good_idx = np.flatnonzero(good_mask)
    bad_idx = np.flatnonzero(~good_mask)

    columns: dict[str, pa.Array] = {"item_id": pa.array([item_ids[i] for i in good_idx], pa.string())}
    if "label" in table.column_names:
        labels = pc.cast(table["label"], pa.string()).take(pa.array(good_idx, pa.int64()))
        columns["label"] = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
    else:
        columns["label"] = pa.nulls(len(good_idx), pa.string())
    if batch_kind == "features":
        flat = np.concatenate([feature_rows[i] for i in good_idx]).astype(np.float32) if len(good_idx) else np.zeros(0, np.float32)
        columns["features"] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
    else:
        columns["text"] = pc.cast(table["text"], pa.string()).take(pa.array(good_idx, pa.int64())).combine_chunks()
    columns["deleted"] = pa.array(deleted[good_idx])
    for name in table.column_names:
        if name not in RESERVED:
            columns[name] = table[name].take(pa.array(good_idx, pa.int64())).combine_chunks()
    good = pa.table(columns)

    bad = {name: pa.array([_to_text(table[name][int(i)].as_py()) for i in bad_idx], pa.string()) for name in table.column_names}
    bad["row"] = pa.array(bad_idx.astype(np.int64))
    bad["reason"] = pa.array([reasons[i] for i in bad_idx], pa.string())
    return ValidatedBatch(good=good, quarantined=pa.table(bad), kind=batch_kind, dim=dim if batch_kind == "features" else None)


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0", ""}


def _deleted_flags(table: pa.Table, source: str) -> np.ndarray:
    """The ``deleted`` column as booleans (null: not deleted); booleans, 0/1 or yes/no/true/false text."""
    if "deleted" not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    out = np.zeros(table.num_rows, dtype=bool)
    for i, value in enumerate(table["deleted"].to_pylist()):
        if value is None or isinstance(value, bool):
            out[i] = bool(value)
            continue
        text = str(value).strip().lower()
        if text not in _TRUE | _FALSE:
            raise _refuse(source, f"column 'deleted' has the value {value!r} at row {i}; use true/false, yes/no "
                                  "or 1/0 (or leave it empty)")
        out[i] = text in _TRUE
    return out


def _to_text(value: object) -> str | None:
    # Quarantine keeps the raw value as text so even unparseable rows are preserved for a person.
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)
