"""``steward ingest`` and ``steward batches``."""

from __future__ import annotations

import argparse

from steward.cli import add_command, add_subcommand


def _ingest(args: argparse.Namespace, ctx) -> int:
    from steward import shapes

    results = []
    for path in args.paths:
        with ctx.stage(f"ingesting {path}"):
            results.append(ctx.api.ingest(args.collection, path))
    data_uri = ctx.settings.data_uri
    payload = [shapes.ingest_result(r, data_uri) for r in results]
    text = []
    for r, shaped in zip(results, payload, strict=True):
        line = r.describe()
        if r.quarantine_path:  # the same absolute path as the JSON
            line = line.replace(f" -> {r.quarantine_path}", f" -> {shaped['quarantine_path']}")
        text.append(line)
    ctx.emit(payload if len(payload) > 1 else payload[0], "\n".join(text))
    return 0


def _quality_text(b) -> str:
    if b.quality is None:
        return "unchecked"
    return "ok" if b.quality.get("passed") else "FAILED"


def _batches_list(args: argparse.Namespace, ctx) -> int:
    from steward import shapes

    batches = ctx.api.batches(args.collection)
    rows = [shapes.batch(b, ctx.settings.data_uri) for b in batches]
    lines = [(f"{'seq':>4}  {'rows':>7}  {'new':>6}  {'upd':>6}  {'quar':>5}  {'quality':<9} {'training':<9} "
             "created                source")]
    lines += [
        f"{b.seq:>4}  {b.rows:>7}  {b.new_items:>6}  {b.updated_items:>6}  {b.quarantined:>5}  "
        f"{_quality_text(b):<9} {'EXCLUDED' if b.excluded else 'used':<9} {b.created_at:%Y-%m-%d %H:%M:%S}Z  {b.source}"
        + (f"\n      excluded by {b.excluded_by}: {b.excluded_reason}" if b.excluded else "")
        for b in batches
    ]
    ctx.emit(rows, "\n".join(lines))
    return 0


def _batches_exclude(args: argparse.Namespace, ctx) -> int:
    from steward import shapes

    done = ctx.api.exclude_batches(args.collection, args.seqs, reason=args.reason)
    ctx.emit([shapes.batch(b, ctx.settings.data_uri) for b in done],
             f"{args.collection}: batches {args.seqs} excluded from training and drift references ({args.reason})")
    return 0


def _batches_include(args: argparse.Namespace, ctx) -> int:
    from steward import shapes

    done = ctx.api.include_batches(args.collection, args.seqs)
    ctx.emit([shapes.batch(b, ctx.settings.data_uri) for b in done],
             f"{args.collection}: batches {args.seqs} are used again")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "ingest", _ingest, help="validate and store a batch (Parquet, CSV or JSONL)",
        description="Validate files and add each as a new batch of the collection. Rows with problems "
        "(NaN/Inf, null or all-zero features, empty text, duplicate item_id) go to a quarantine Parquet with a "
        "reason; file-level problems refuse the file and write nothing. Re-ingesting identical content is a no-op.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")

    b = add_subcommand(subparsers, "batches", help="list the batches of a collection")
    bsub = b.add_subparsers(dest="batches_command", required=True)
    add_command(bsub, "list", _batches_list, help="list batches with their data quality and exclusion")
    ex = add_command(bsub, "exclude", _batches_exclude,
                     help="never train on these batches nor use them as drift reference (items stay searchable)")
    ex.add_argument("seqs", nargs="+", type=int, metavar="SEQ")
    ex.add_argument("--reason", required=True, help="why (recorded with the batch and shown by `batches list`)")
    inc = add_command(bsub, "include", _batches_include, help="take excluded batches back into training")
    inc.add_argument("seqs", nargs="+", type=int, metavar="SEQ")
