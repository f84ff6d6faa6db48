"""Human-readable HTML drift report with Evidently (optional; never on the decision path).

Evidently's ``EmbeddingsDrift`` renders a t-SNE plot (~30 s for 2k×64 here) and its default
thresholds are not calibrated p-values, so steward's decision comes from :mod:`monitoring.suite`;
this report is for a person to look at. Rows and dimensions are capped (a random row subsample
and a PCA to ``max_dims`` fitted on the reference) to keep its cost bounded.
"""

from __future__ import annotations

import html
import logging
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_SKIP_COLUMNS = {"item_id", "features", "text", "embedding"}


def _metadata_frame(table, idx: np.ndarray):
    """Scalar metadata columns (label and anything else that isn't the payload) as a DataFrame."""
    import pyarrow as pa

    cols = {}
    if table is None:
        return cols
    for name in table.column_names:
        if name in _SKIP_COLUMNS:
            continue
        col = table.column(name)
        if pa.types.is_nested(col.type) or pa.types.is_binary(col.type):
            continue
        values = col.to_pandas().to_numpy()[idx]
        if values.dtype == object:
            # Evidently embeds category values raw inside a <script> block: a label such as
            # "</script><script>..." would end it and run. Escaped, it is inert text in the charts.
            values = np.array([html.escape(v) if isinstance(v, str) else v for v in values], dtype=object)
        cols[f"meta_{name}"] = values
    return cols


def write_html_report(
    workspace,
    html_path: str | Path,
    *,
    reference: np.ndarray,
    current: np.ndarray,
    reference_table=None,
    current_table=None,
    max_rows: int = 1000,
    max_dims: int = 32,
    seed: int = 0,
) -> str:
    """Write the report to ``html_path`` and store it as an artifact; returns its sha256."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift
    from evidently.metrics.embeddings import MMDDriftMethod
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(seed)
    ri = np.sort(rng.choice(len(reference), min(max_rows, len(reference)), replace=False))
    ci = np.sort(rng.choice(len(current), min(max_rows, len(current)), replace=False))
    ref, cur = reference[ri], current[ci]
    k = min(max_dims, ref.shape[1])
    if ref.shape[1] > k:
        mean = ref.mean(0)
        _, _, vt = np.linalg.svd(ref - mean, full_matrices=False)
        ref, cur = (ref - mean) @ vt[:k].T, (cur - mean) @ vt[:k].T
    emb_cols = [f"emb_{j}" for j in range(k)]

    def frame(x, table, idx):
        df = pd.DataFrame(x, columns=emb_cols)
        for name, values in _metadata_frame(table, idx).items():
            df[name] = values
        return df

    ref_df, cur_df = frame(ref, reference_table, ri), frame(cur, current_table, ci)
    meta = [c for c in ref_df.columns if c.startswith("meta_") and c in cur_df.columns]
    numerical = [c for c in meta if pd.api.types.is_numeric_dtype(ref_df[c])]
    categorical = [c for c in meta if c not in numerical]
    definition = DataDefinition(
        numerical_columns=numerical, categorical_columns=categorical, embeddings={"emb": emb_cols}
    )
    metrics = [EmbeddingsDrift(embeddings_name="emb", drift_method=MMDDriftMethod(quantile_probability=0.95))]
    if meta:
        metrics.append(DataDriftPreset(columns=meta))
    with warnings.catch_warnings():
        # Evidently's column-drift chi-square divides by zero for categories absent from one side
        # (e.g. a metadata value only the new batch has); the report still renders, and decisions
        # never come from it, so the warning is noise for a person reading the terminal.
        warnings.filterwarnings("ignore", message="divide by zero", category=RuntimeWarning)
        snapshot = Report(metrics=metrics).run(
            Dataset.from_pandas(cur_df[emb_cols + meta], data_definition=definition),
            Dataset.from_pandas(ref_df[emb_cols + meta], data_definition=definition),
        )
    path = Path(html_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    sha = workspace.artifacts.put_file(path)
    log.info("Evidently drift report written to %s (artifact %s)", path, sha[:12])
    return sha
