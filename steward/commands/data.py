"""``steward ingest`` and ``steward batches``."""

from __future__ import annotations

import argparse
import dataclasses

from steward.cli import add_command, add_subcommand


def _ingest(args: argparse.Namespace, ctx) -> int:
    results = [ctx.workspace.store.ingest(path, args.collection) for path in args.paths]
    payload = [dataclasses.asdict(r) for r in results]
    ctx.emit(payload if len(payload) > 1 else payload[0], "\n".join(r.describe() for r in results))
    return 0


def _batches_list(args: argparse.Namespace, ctx) -> int:
    batches = ctx.workspace.registry.catalog.list_batches(args.collection)
    rows = [dataclasses.asdict(b) for b in batches]
    lines = [f"{'seq':>4}  {'rows':>7}  {'new':>6}  {'upd':>6}  {'quar':>5}  created                    source"]
    lines += [
        f"{b.seq:>4}  {b.rows:>7}  {b.new_items:>6}  {b.updated_items:>6}  {b.quarantined:>5}  "
        f"{b.created_at:%Y-%m-%d %H:%M:%S}Z       {b.source}"
        for b in batches
    ]
    ctx.emit(rows, "\n".join(lines))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "ingest", _ingest, help="validate and store a batch (Parquet, CSV or JSONL)",
        description="Validate files and add each as a new batch of the collection. Rows with problems "
        "(NaN/Inf or null features, empty text, duplicate item_id) go to a quarantine Parquet with a "
        "reason; file-level problems refuse the file and write nothing. Re-ingesting identical content is a no-op.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")

    b = add_subcommand(subparsers, "batches", help="list the batches of a collection")
    bsub = b.add_subparsers(dest="batches_command", required=True)
    add_command(bsub, "list", _batches_list, help="list batches")
