"""``steward run`` (one maintenance cycle) and ``steward serve`` (scheduled and event-triggered)."""

from __future__ import annotations

import argparse
import json

from steward.cli import add_command, setting_flag


def _run(args: argparse.Namespace, ctx) -> int:
    from maintenance.summary import MaintenanceSummary
    from monitoring.alerts import prefect_api_configured

    files = [str(p) for p in args.files]
    retrain_on = "always" if args.force else None
    if args.prefect or (not args.no_prefect and prefect_api_configured()):
        from steward.prefect_env import (
            configure_prefect,
            quiet_flow_run_logs,
            start_temporary_server_if_needed,
        )

        configure_prefect(ctx.settings)
        start_temporary_server_if_needed()
        from flows.maintenance_flows import maintenance_flow

        quiet_flow_run_logs(verbose=bool(args.verbose))
        with ctx.stage(f"maintenance flow run for {args.collection} (task logs in the Prefect UI)"):
            summary = MaintenanceSummary.from_dict(maintenance_flow(
                collection=args.collection, files=files, retrain_on=retrain_on, html_report=args.html,
                settings=ctx.settings.to_dict()))
    else:  # no Prefect server to report to: the same cycle, its steps called in this process
        summary = ctx.api.run(args.collection, files, retrain_on=retrain_on, html=args.html)
    text = [f"{args.collection}: {summary.outcome}"] + [f"  {item:<16} {value}" for item, value in summary.rows()]
    ctx.emit(summary.to_dict(), "\n".join(text))
    return 0


def _serve(args: argparse.Namespace, ctx) -> int:
    from steward.prefect_env import configure_prefect

    configure_prefect(ctx.settings)
    from flows.deployments import serve

    settings = ctx.settings
    collections = args.collection or [c.name for c in ctx.workspace.registry.catalog.list_collections()]
    print(f"serving maintenance ({settings.maintenance.cron}), drift checks (every "
          f"{settings.drift.check_interval_seconds} s) for {collections or 'no collections'}, "
          "and retrain-on-drift; Ctrl-C or SIGTERM stops", flush=True)
    return serve(collections, settings, grace_seconds=args.shutdown_grace)


def _demo(args: argparse.Namespace, ctx) -> int:
    from steward.demo import run_demo

    result = run_demo(ctx.settings.home / "demo", batches=args.batches)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from core.settings import RETRAIN_POLICIES

    r = add_command(
        subparsers, "run", _run, help="run one maintenance cycle for a collection",
        description="ingest FILES, check the new batches' data quality, check drift on the newest batch under "
        "the production model, retrain when the policy says so, gate, build the index and promote (or record "
        "why not). Runs as a Prefect flow when a Prefect API is configured (PREFECT_API_URL), else in this "
        "process. Only one run per collection at a time: a second one exits with code 5.",
    )
    r.add_argument("files", nargs="*", help="batches to ingest first (Parquet, CSV, JSONL)")
    setting_flag(r, "--retrain-on", setting="maintenance.retrain_policy", choices=RETRAIN_POLICIES,
                 help="when to retrain (default: the maintenance.retrain_policy setting, 'drift')")
    r.add_argument("--force", action="store_true", help="retrain even without drift (same as --retrain-on always)")
    r.add_argument("--html", action="store_true", help="also write the Evidently HTML drift report")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--prefect", action="store_true",
                       help="run as a Prefect flow even without a configured server (starts a temporary one)")
    where.add_argument("--no-prefect", action="store_true",
                       help="run the steps in this process even when a Prefect API is configured")

    s = add_command(subparsers, "serve", _serve, collection="none", json=False,
                    help="serve the scheduled and drift-triggered deployments (Prefect)")
    s.add_argument("--collection", "-c", action="append", help="collection to schedule (repeatable; default all)")
    s.add_argument("--shutdown-grace", type=float, default=20.0, metavar="SECONDS",
                   help="on SIGTERM/SIGINT, how long Prefect may take to stop cleanly (pause schedules, cancel "
                   "runs) before steward exits anyway, e.g. when the server is gone (default 20)")

    d = add_command(subparsers, "demo", _demo, collection="none",
                    help="play the demo story on scikit-learn's digits under <home>/demo")
    d.add_argument("--batches", type=int, default=5, help="number of arriving batches (at least 4)")
