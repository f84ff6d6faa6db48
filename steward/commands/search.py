"""``steward search`` and ``steward index build|update|list``: nearest neighbours and index versions.

Module-level imports stay light (numpy/faiss load inside the handlers) so ``steward --help`` is fast.
"""

from __future__ import annotations

import argparse
import logging
import sys

from steward.cli import add_command, add_subcommand, setting_flag

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    s = add_command(
        subparsers, "search", run_search,
        help="nearest items by item id or by query vectors from a file",
        description=(
            "Search a collection's index (default: the production pair's index, else the newest index "
            "of the production model). Queries are item ids already in the index (each is left out of "
            "its own answer), embedding vectors in a .npy file (n, dim), or raw features in a .npy file "
            "that are embedded with the index's model version first."
        ),
    )
    q = s.add_mutually_exclusive_group(required=True)
    q.add_argument("--item-id", nargs="+", metavar="ID", help="query by items in the index")
    q.add_argument("--vectors", metavar="FILE.npy", help="query embeddings, float (n, dim) or (dim,)")
    q.add_argument("--features", metavar="FILE.npy", help="raw features (n, in_dim), embedded with the index's model")
    s.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    s.add_argument("--index-version", type=int, help="index version id (default: production)")
    s.add_argument("--model", type=int, help="use the newest index of this model version")

    ix = add_subcommand(subparsers, "index", help="build, update and list ANN index versions")
    isub = ix.add_subparsers(dest="index_command", metavar="ACTION", required=True)

    b = add_command(
        isub, "build", run_build,
        help="embed the gallery with a model version, build, tune and register an index",
        description="Choose the index type from size and budgets, tune it to the recall target, register it.",
    )
    b.add_argument("--model", type=int, help="model version (default: the production model)")
    b.add_argument("--as-of", type=int, help="gallery as of this batch seq (default: newest)")
    setting_flag(b, "--target-recall", setting="index.target_recall", type=float,
                 help="recall@10 to reach (default: the index.target_recall setting, 0.95)")
    setting_flag(b, "--memory-budget-mb", setting="index.memory_budget_mb", type=float,
                 help="cap on the index size in RAM (MiB)")
    setting_flag(b, "--latency-ms", setting="index.latency_target_ms", type=float,
                 help="single-query latency at which exact search is good enough")
    b.add_argument("--factory", metavar="SPEC",
                   help="faiss index_factory string (e.g. 'HNSW48,Flat', 'IVF4096,Flat', 'IVF1024,PQ32x4fs') "
                        "instead of the measured choice; tuned to the recall target all the same")

    u = add_command(
        isub, "update", run_update,
        help="add new/updated and remove deleted items since an index version (same model)",
        description="Apply the batches after the index's as-of batch; says when a rebuild is proposed.",
    )
    u.add_argument("--index-version", type=int, help="index to update (default: production)")
    u.add_argument("--batch", type=int, help="apply batches up to this seq (default: newest)")

    li = add_command(isub, "list", run_list, help="list index versions of a collection")
    li.add_argument("--model", type=int, help="only indexes of this model version")


def _load_queries(path: str):
    import numpy as np

    from core.errors import NotFoundError, ValidationError

    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError as e:
        raise NotFoundError(f"query file {path} does not exist") from e
    except ValueError as e:
        raise ValidationError(f"{path} is not a numeric .npy array: {e}") from e
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise ValidationError(f"{path} must hold a numeric (n, dim) array, got {arr.dtype} {arr.shape}")
    return arr.astype(np.float32)


def run_search(args: argparse.Namespace, ctx) -> int:
    from core.errors import ValidationError

    if args.k < 1:
        raise ValidationError(f"--k={args.k} must be at least 1")
    kind = {"item_ids": args.item_id} if args.item_id else (
        {"vectors": _load_queries(args.vectors)} if args.vectors else {"features": _load_queries(args.features)})
    with ctx.stage(f"searching {args.collection}"):
        found = ctx.api.search(args.collection, k=args.k, index_version=args.index_version, model=args.model, **kind)
    iv = ctx.workspace.registry.models.get_index(found.index_version)
    payload = found.to_dict()
    lines = [f"index v{iv.id} ({iv.factory}, model v{iv.model_version})"]
    for row in payload["results"]:
        lines.append(f"{row['query_item_id'] or 'query ' + str(row['query'])}:")
        lines += [f"  {i}\t{s:.4f}" for i, s in zip(row["item_ids"], row["scores"], strict=True)]
    short = [row for row in payload["results"] if len(row["item_ids"]) < args.k]
    if short:
        # Only an index holding fewer than k qualifying items answers short; say so, never silently.
        note = (f"note: {len(short)} of {len(payload['results'])} queries got fewer than k={args.k} neighbours "
                f"(fewest: {min(len(r['item_ids']) for r in short)}): index v{iv.id} holds only "
                f"{iv.num_vectors} items")
        lines.append(note)
        print(note, file=sys.stderr)
    ctx.emit(payload, "\n".join(lines))
    return 0


def _summary(iv) -> dict:
    m = iv.metrics
    return {
        "id": iv.id, "model_version": iv.model_version, "factory": iv.factory,
        "search": iv.params.get("search"), "num_vectors": iv.num_vectors, "as_of_batch": iv.as_of_batch,
        "recall_at_1": m.get("recall_at_1"), "recall_at_10": m.get("recall_at_10"),
        "query_source": m.get("query_source"), "measured_after": m.get("measured_after"),
        "p50_ms": m.get("latency_p50_ms"), "p99_ms": m.get("latency_p99_ms"),
        "batch_qps": m.get("latency_batch_qps"), "build_seconds": m.get("build_seconds"),
        "bytes": m.get("bytes"), "threads": m.get("threads"),
        "rebuild_proposed": m.get("rebuild_proposed", False), "created_at": iv.created_at,
    }


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _line(s: dict) -> str:
    return (f"{s['id']}\tv{s['model_version']}\t{s['factory']}\t{s['search']}\tn={s['num_vectors']}\t"
            f"batch={s['as_of_batch']}\tR@10={_fmt(s['recall_at_10'], '.3f')}\tp50={_fmt(s['p50_ms'], '.3f')}ms\t"
            f"p99={_fmt(s['p99_ms'], '.3f')}ms\tqueries={s['query_source'] or '-'}"
            + ("\tREBUILD PROPOSED" if s["rebuild_proposed"] else ""))


def run_build(args: argparse.Namespace, ctx) -> int:
    from steward import shapes

    model = ctx.api.model(args.collection, args.model).version
    with ctx.stage(f"embedding, building and tuning an index of {args.collection} model v{model}"):
        iv = ctx.api.build_index(args.collection, model, as_of=args.as_of, progress=not args.json,
                                 factory=args.factory)
    ctx.emit(shapes.index_version(iv), "built index " + _line(_summary(iv)))
    return 0


def run_update(args: argparse.Namespace, ctx) -> int:
    from steward import shapes

    with ctx.stage(f"updating index {args.index_version or 'of production'} of {args.collection}"):
        new = ctx.api.update_index(args.collection, args.index_version, batch=args.batch)
    s = _summary(new)
    text = f"updated index {new.params.get('parent_index')} -> " + _line(s)
    if s["rebuild_proposed"]:
        text += f"\nrebuild proposed: {new.metrics.get('rebuild_reason')}"
    ctx.emit(shapes.index_version(new), text)
    return 0


def run_list(args: argparse.Namespace, ctx) -> int:
    from steward import shapes

    indexes = ctx.api.indexes(args.collection, args.model)
    text = "\n".join(_line(_summary(iv)) for iv in indexes) if indexes else f"no index versions for {args.collection!r}"
    ctx.emit([shapes.index_version(iv) for iv in indexes], text)
    return 0
