"""``steward models``, ``promote``, ``rollback``, ``gc``, ``db`` and ``status``."""

from __future__ import annotations

import argparse
import dataclasses

from steward.cli import add_command, add_subcommand


def _model_line(m) -> str:
    from embedding.report import ModelReport

    shown = ModelReport.from_dict(m.metrics or {}).headline()
    text = " ".join(f"MAP@R {part}={v:.3f}" for part, v in shown.items() if isinstance(v, (int, float)))
    return (f"v{m.version:<4} {m.status:<10} parent={m.parent_version!s:<5} {m.created_at:%Y-%m-%d %H:%M}Z {text}  "
            f"{m.status_reason or ''}")


def _models_list(args, ctx) -> int:
    models = ctx.workspace.registry.models.list_models(args.collection)
    ctx.emit([dataclasses.asdict(m) for m in models], "\n".join(_model_line(m) for m in models) or "no model versions")
    return 0


def _models_show(args, ctx) -> int:
    import json

    models = ctx.workspace.registry.models
    model = models.get_model(args.collection, args.version)
    payload = {**dataclasses.asdict(model),
               "indexes": [dataclasses.asdict(i) for i in models.list_indexes(args.collection, args.version)]}
    ctx.emit(payload, json.dumps(payload, indent=2, default=str))
    return 0


def _change_text(change) -> str:
    return (f"{change.collection}: production {change.from_model}/{change.from_index} -> "
            f"{change.to_model}/{change.to_index} (model/index) by {change.actor}: {change.reason}")


def _promote(args, ctx) -> int:
    production = ctx.workspace.production
    index = args.index
    if index is None and ctx.workspace.registry.models.list_indexes(args.collection, args.model):
        index = production.index(args.collection, model_version=args.model).id  # its newest index
    change = production.promote(args.collection, args.model, index, reason=args.reason)
    target = production.target(args.collection)
    pinned = f"\nproduction stays pinned ({target.pinned_reason}); `steward unpin` hands it back to automation" \
        if target and target.pinned else ""
    ctx.emit({**dataclasses.asdict(change), "pinned": bool(target and target.pinned)}, _change_text(change) + pinned)
    return 0


def _rollback(args, ctx) -> int:
    from storage.production import batches_added_by

    ws = ctx.workspace
    change = ws.production.rollback(args.collection, args.to, reason=args.reason, pin=not args.no_pin)
    added = batches_added_by(ws.registry, args.collection, change.from_model, change.to_model) \
        if change.from_model is not None else []
    excluded = []
    if args.exclude_batches:
        for seq in added:
            ws.registry.catalog.exclude_batch(args.collection, seq, reason=f"rolled back from v{change.from_model}: "
                                              f"{args.reason}")
            excluded.append(seq)
    lines = [_change_text(change)]
    if not args.no_pin:
        lines.append(f"production is pinned: automated runs keep training candidates but will not promote them "
                     f"(and never re-promote v{change.from_model}); `steward unpin -c {args.collection}` releases it")
    if added and not excluded:
        lines.append(f"v{change.from_model} learnt from batches {added}; if they are faulty, exclude them from "
                     f"training: `steward batches exclude -c {args.collection} {' '.join(map(str, added))} "
                     f"--reason ...` (or roll back with --exclude-batches)")
    if excluded:
        lines.append(f"excluded batches {excluded} from training")
    ctx.emit({**dataclasses.asdict(change), "pinned": not args.no_pin, "batches_added": added,
              "batches_excluded": excluded}, "\n".join(lines))
    return 0


def _pin(args, ctx) -> int:
    target = ctx.workspace.production.pin(args.collection, reason=args.reason)
    ctx.emit(dataclasses.asdict(target), f"{args.collection}: production v{target.model_version} pinned by "
             f"{target.pinned_by} ({target.pinned_reason}); automated runs will not move it")
    return 0


def _unpin(args, ctx) -> int:
    production = ctx.workspace.production
    target = production.unpin(args.collection)
    away = sorted(production.rolled_away(args.collection))
    note = f" (they still never re-promote {', '.join(f'v{v}' for v in away)}, rolled away from)" if away else ""
    ctx.emit({**dataclasses.asdict(target), "rolled_away": away},
             f"{args.collection}: production v{target.model_version} released; automated runs may promote again{note}")
    return 0


def _gc(args, ctx) -> int:
    from storage.retention import collect_garbage

    ws = ctx.workspace
    result = collect_garbage(ws.registry, ws.artifacts, args.collection, keep=args.keep, dry_run=args.dry_run)
    verb = "would delete" if result.dry_run else "deleted"
    ctx.emit(dataclasses.asdict(result), f"{verb}: model versions {list(result.model_versions)}, index versions "
             f"{list(result.index_versions)}, {len(result.artifacts_deleted)} artifacts")
    return 0


def _db_upgrade(args, ctx) -> int:
    from storage.registry.database import Database

    db = Database(ctx.settings.database_url, upgrade=False)
    head = db.upgrade()
    db.dispose()
    ctx.emit({"revision": head}, f"registry schema at revision {head}")
    return 0


def _status_line(s) -> str:
    prod = s.production
    prod_text = f"model v{prod['model_version']} + index {prod['index_version']} since {prod['since']}" if prod else "none"
    drift = s.last_drift_check
    drift_text = (f"{'DRIFT' if drift.drifted else 'no drift'} on batch {drift.batch_seq} at {drift.at}"
                  if drift else "never")
    undelivered = "" if s.undelivered_alerts is None else f" ({s.undelivered_alerts} undelivered)"
    lines = [(f"{s.collection}: production {prod_text}; latest batch {s.latest_batch}; last drift check "
             f"{drift_text}; {len(s.open_alerts)} open alerts{undelivered}")]
    if s.pinned:
        lines.append(f"  pinned by {s.pinned['by']} since {s.pinned['since']}: {s.pinned['reason']} "
                     f"(`steward unpin -c {s.collection}` hands production back to automation)")
    if s.awaiting_promotion:
        lines.append(f"  approved, waiting for `steward promote`: "
                     f"{', '.join(f'v{v}' for v in s.awaiting_promotion)}")
    for b in s.excluded_batches:
        lines.append(f"  batch {b['seq']} excluded from training: {b['reason']}")
    return "\n".join(lines)


def _status(args, ctx) -> int:
    from monitoring.status import collection_status

    ws = ctx.workspace
    names = [args.collection] if args.collection else [c.name for c in ws.registry.catalog.list_collections()]
    statuses = [collection_status(ws, n) for n in names]
    payload = [s.to_dict() for s in statuses]
    ctx.emit(payload if not args.collection else payload[0],
             "\n".join(_status_line(s) for s in statuses) or "no collections yet")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    m = add_subcommand(subparsers, "models", help="list or show model versions")
    msub = m.add_subparsers(dest="models_command", required=True)
    add_command(msub, "list", _models_list, help="list model versions")
    add_command(msub, "show", _models_show, help="show one model version with its indexes").add_argument(
        "version", type=int)

    p = add_command(subparsers, "promote", _promote, help="point production at a model (+ index) version")
    p.add_argument("--model", type=int, required=True, help="model version")
    p.add_argument("--index", type=int, help="index version id (belonging to that model)")
    p.add_argument("--reason", default="manual promotion")

    r = add_command(
        subparsers, "rollback", _rollback, help="restore the previous production pair (or --to VERSION)",
        description="Without --to: restore the model+index pair production pointed to before its current "
        "pair (two rollbacks in a row swap back). With --to V: restore model version V with the index it "
        "last served with. Refuses when the target's artifacts are missing or fail their checksum.",
    )
    r.add_argument("--to", type=int, metavar="VERSION")
    r.add_argument("--reason", default="manual rollback")
    r.add_argument("--no-pin", action="store_true",
                   help="do not pin production (by default automated runs leave a rolled-back pair alone)")
    r.add_argument("--exclude-batches", action="store_true",
                   help="also exclude from training the batches the rolled-away version learnt from")

    pn = add_command(subparsers, "pin", _pin, help="stop automated runs from moving production")
    pn.add_argument("--reason", required=True)
    add_command(subparsers, "unpin", _unpin, help="let automated runs promote again after a rollback or pin")

    g = add_command(subparsers, "gc", _gc, help="delete artifacts outside the retention window")
    g.add_argument("--keep", type=int, default=5, help="keep the last N production pairs (default 5)")
    g.add_argument("--dry-run", action="store_true")

    d = add_subcommand(subparsers, "db", help="registry database maintenance")
    dsub = d.add_subparsers(dest="db_command", required=True)
    add_command(dsub, "upgrade", _db_upgrade, collection="none",
                help="apply Alembic migrations to the registry database")

    add_command(subparsers, "status", _status, collection="optional",
                help="production pair, last drift check and open alerts")
