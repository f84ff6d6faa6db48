"""Embedding a gallery, fanned out over partitions (one per stored batch file) as Prefect tasks.

(Not named embedding.py: Prefect puts this folder on sys.path when it loads a deployment by
file path, and a module of that name would shadow the top-level ``embedding`` package.)

Locally the partitions run on a thread pool; ``STEWARD_TASK_RUNNER=dask`` runs them on a Dask
cluster through prefect-dask (``DASK_SCHEDULER_ADDRESS`` for an existing cluster, otherwise a
local one with ``STEWARD_DASK_WORKERS`` workers). Each partition writes its embeddings as one
Parquet file (item_id, label, embedding), so memory stays bounded by the largest batch and the
results can be streamed into an index or exported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.context import resolve_settings, workspace
from flows.run_logs import collection_run, run_name


@task(name="embed-partition", log_prints=True)
def embed_partition(settings: dict[str, Any], collection: str, model_version: int, as_of: int, seq: int,
                    out_dir: str) -> dict[str, Any]:
    from embedding.streaming import write_embeddings

    ws = workspace(settings)
    path = Path(out_dir) / f"part-{seq:06d}.parquet"
    rows = write_embeddings(ws, collection, model_version, path, as_of=as_of, partition=[seq])
    return {"seq": seq, "path": str(path), "rows": rows}


def task_runner_from_env() -> Any:
    kind = os.environ.get("STEWARD_TASK_RUNNER", "threads")
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        address = os.environ.get("DASK_SCHEDULER_ADDRESS")
        if address:
            return DaskTaskRunner(address=address)
        workers = int(os.environ.get("STEWARD_DASK_WORKERS", "2"))
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=int(os.environ.get("STEWARD_EMBED_WORKERS", "2")))


@flow(name="embed_gallery", log_prints=True, flow_run_name=run_name(
    lambda p: f"embed/{p['collection']}/model-{p['model_version']}", "embed"))
def embed_gallery_flow(collection: str, model_version: int, as_of: int | None = None,
                       out_dir: str | None = None, settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Embed every item as of ``as_of`` under ``model_version``; one task per batch partition."""
    from flows.report import artifact_key, publish, record_markdown

    s = resolve_settings(settings)
    ws = workspace(s)
    with collection_run(collection):
        batches = ws.registry.catalog.list_batches(collection)
        as_of = as_of or batches[-1].seq
        out = Path(out_dir or ws.settings.home / "work" / "embeddings" / collection
                   / f"model-{model_version}-asof-{as_of}")
        out.mkdir(parents=True, exist_ok=True)
        futures = [embed_partition.submit(s, collection, model_version, as_of, b.seq, str(out))
                   for b in batches if b.seq <= as_of]
        parts = [f.result() for f in futures]
        publish(artifact_key(collection, "embed"), record_markdown(
            f"Embeddings of `{collection}` under model v{model_version}",
            [(f"batch {p['seq']}", f"{p['rows']} rows -> {p['path']}") for p in parts]), f"embeddings of {collection}")
    return parts


def embed_gallery(collection: str, model_version: int, as_of: int | None = None, out_dir: str | None = None,
                  settings: dict[str, Any] | None = None):
    """Run :func:`embed_gallery_flow` on the task runner chosen by the environment."""
    return embed_gallery_flow.with_options(task_runner=task_runner_from_env())(
        collection, model_version, as_of, out_dir, settings)
