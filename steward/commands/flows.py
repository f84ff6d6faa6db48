"""``steward run`` (one maintenance cycle) and ``steward serve`` (scheduled and event-triggered)."""

from __future__ import annotations

import argparse
import json

from steward.cli import add_json_flag


def _run(args: argparse.Namespace, ctx) -> int:
    from steward.prefect_env import configure_prefect

    configure_prefect(ctx.settings)
    from flows.maintenance import maintenance_flow

    policy = "always" if args.force else args.retrain_on
    summary = maintenance_flow(collection=args.collection, files=[str(p) for p in args.files],
                               retrain_on=policy, html_report=args.html)
    ctx.emit(summary, f"{args.collection}: {summary.get('outcome')}")
    return 0


def _serve(args: argparse.Namespace, ctx) -> int:
    from steward.prefect_env import configure_prefect

    configure_prefect(ctx.settings)
    from flows.deployments import serve

    collections = args.collection or [c.name for c in ctx.workspace.registry.list_collections()]
    print(f"serving maintenance ({ctx.settings.maintenance_cron}), drift checks (every "
          f"{ctx.settings.drift_check_interval_seconds} s) for {collections or 'no collections'}, "
          "and retrain-on-drift; Ctrl-C stops")
    serve(collections, cron=ctx.settings.maintenance_cron, drift_interval_seconds=ctx.settings.drift_check_interval_seconds)
    return 0


def _demo(args: argparse.Namespace, ctx) -> int:
    from steward.demo import run_demo

    result = run_demo(ctx.settings.home / "demo", batches=args.batches)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser(
        "run", help="run one maintenance cycle for a collection",
        description="ingest FILES, check drift on the newest batch under the production model, retrain when "
        "the policy says so, gate, build the index and promote (or record the rejection). Only one run per "
        "collection at a time: a second one exits with code 5.",
    )
    r.add_argument("--collection", "-c", required=True)
    r.add_argument("files", nargs="*", help="batches to ingest first (Parquet, CSV, JSONL)")
    r.add_argument("--retrain-on", choices=["drift", "new-data", "always"], default="drift")
    r.add_argument("--force", action="store_true", help="retrain even without drift (same as --retrain-on always)")
    r.add_argument("--html", action="store_true", help="also write the Evidently HTML drift report")
    add_json_flag(r)
    r.set_defaults(func=_run)

    s = subparsers.add_parser("serve", help="serve the scheduled and drift-triggered deployments (Prefect)")
    s.add_argument("--collection", "-c", action="append", help="collection to schedule (repeatable; default all)")
    s.set_defaults(func=_serve)

    d = subparsers.add_parser("demo", help="play the demo story on scikit-learn's digits under <home>/demo")
    d.add_argument("--batches", type=int, default=5, help="number of arriving batches (at least 4)")
    add_json_flag(d)
    d.set_defaults(func=_demo)
