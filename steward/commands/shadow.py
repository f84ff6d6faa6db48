"""``steward shadow report``: how a shadow version answered mirrored live queries, against production."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from steward.cli import add_command, add_subcommand

    parser = add_subcommand(
        subparsers, "shadow", help="shadow A/B of the search service: compare a version on live queries",
        description=(
            "`steward api --shadow-fraction F [--shadow-version V]` answers a share F of live search requests "
            "also with model version V (default: the newest candidate) in the background, never serving its "
            "answers, and records overlap@k with production, latency, and hit rates for queries that carry a "
            "label or an expected item. These commands read those records."
        ),
    )
    sub = parser.add_subparsers(dest="shadow_command", metavar="SUBCOMMAND", required=True)
    report = add_command(
        sub, "report", run_report,
        help="overlap@k, hit rates and latency of a shadow version against production",
        description=(
            "The shadow A/B report of one (production, shadow) pair: overlap@k with production's answers, "
            "hit rates of both (queries with a label: the top neighbour carries it; with an expected item: it "
            "is among the k) with intervals that resample requests, and latency percentiles. Default: the "
            "pair recorded most recently."
        ),
    )
    report.add_argument("--version", type=int, default=None, dest="shadow_version",
                        help="shadow model version (default: the newest recorded)")
    report.add_argument("--production-version", type=int, default=None,
                        help="production version it was compared with (default: the newest recorded)")


def run_report(args: argparse.Namespace, ctx) -> int:
    report = ctx.api.shadow_report(args.collection, version=args.shadow_version,
                                   production_version=args.production_version)
    ctx.emit(report.to_dict(), "\n".join(report.lines()))
    return 0
