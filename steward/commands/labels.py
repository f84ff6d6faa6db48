"""``steward labels suspect``: items whose label disagrees with most of their nearest neighbours."""

from __future__ import annotations

import argparse

from steward.cli import add_command, add_subcommand, setting_flag


def _suspect_text(report) -> str:
    where = f"batch {report.batch}" if report.batch is not None else "all batches"
    under = f"model v{report.model_version}" if report.model_version is not None else "the raw input features"
    lines = [(f"{report.collection} ({where}): {len(report.suspects)} of {report.checked} labels suspect "
             f"({100 * report.rate:.1f}%), {report.k} nearest of {report.reference} labelled items under {under}, "
             f"flagged below {report.min_agreement:g} agreement")]
    if report.suspects:
        lines.append(f"  {'batch':>5}  {'item_id':<24} {'label':<20} {'neighbours say':<20} agreement")
        lines += [f"  {s.batch_seq if s.batch_seq is not None else '-':>5}  {s.item_id:<24} {s.label:<20} "
                  f"{s.majority_label:<20} {s.agreement:.2f}" for s in report.suspects]
    return "\n".join(lines)


def _suspect(args: argparse.Namespace, ctx) -> int:
    with ctx.stage(f"checking the labels of {args.collection}"):
        report = ctx.api.suspect_labels(args.collection, batch=args.batch, model=args.model)
    ctx.emit(report.to_dict(), _suspect_text(report))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_subcommand(subparsers, "labels", help="check labels: suspects whose neighbours disagree")
    sub = p.add_subparsers(dest="labels_command", required=True)
    s = add_command(
        sub, "suspect", _suspect,
        help="list items whose label disagrees with most of their k nearest neighbours under production",
        description=(
            "Embeds every labelled item (excluded batches left out) with the production model (or --model; "
            "the raw input features before there is one) and flags the items of --batch (default: every "
            "batch) whose label fewer than labels.min_agreement of their labels.k nearest neighbours share, "
            "with the label most of them carry. Nothing is changed: fix the labels and re-ingest, exclude the "
            "batch, or train with a smaller suspect weight (`steward retrain --suspect-weight 0.2`)."
        ),
    )
    s.add_argument("--batch", type=int, help="only the items this batch brought (default: every batch)")
    s.add_argument("--model", type=int, help="model version whose embeddings are used (default: production)")
    setting_flag(s, "--k", setting="labels.k", type=int, help="neighbours per item (default: the labels.k setting)")
    setting_flag(s, "--min-agreement", setting="labels.min_agreement", type=float,
                 help="flag below this share of agreeing neighbours (default: the labels.min_agreement setting)")
