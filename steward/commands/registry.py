"""``steward models``, ``promote``, ``rollback``, ``gc``, ``db`` and ``status``."""

from __future__ import annotations

import argparse
import dataclasses
import json

from steward.cli import add_json_flag


def _model_line(m) -> str:
    metrics = m.metrics or {}
    shown = {f"MAP@R {part}": (metrics.get(part) or {}).get("map_at_r") for part in ("overall", "old", "new")}
    text = " ".join(f"{k}={v:.3f}" for k, v in shown.items() if isinstance(v, (int, float)))
    return f"v{m.version:<4} {m.status:<10} parent={m.parent_version!s:<5} {m.created_at:%Y-%m-%d %H:%M}Z {text}  {m.status_reason or ''}"


def _models_list(args, ctx) -> int:
    models = ctx.workspace.registry.list_models(args.collection)
    ctx.emit([dataclasses.asdict(m) for m in models], "\n".join(_model_line(m) for m in models) or "no model versions")
    return 0


def _models_show(args, ctx) -> int:
    reg = ctx.workspace.registry
    model = reg.get_model(args.collection, args.version)
    payload = {**dataclasses.asdict(model), "indexes": [dataclasses.asdict(i) for i in reg.list_indexes(args.collection, args.version)]}
    ctx.emit(payload, json.dumps(payload, indent=2, default=str))
    return 0


def _change_text(change) -> str:
    return (f"{change.collection}: production {change.from_model}/{change.from_index} -> "
            f"{change.to_model}/{change.to_index} (model/index) by {change.actor}: {change.reason}")


def _promote(args, ctx) -> int:
    from storage.lifecycle import promote

    ws = ctx.workspace
    change = promote(ws.registry, ws.artifacts, args.collection, args.model, args.index, reason=args.reason)
    ctx.emit(dataclasses.asdict(change), _change_text(change))
    return 0


def _rollback(args, ctx) -> int:
    from storage.lifecycle import rollback

    ws = ctx.workspace
    change = rollback(ws.registry, ws.artifacts, args.collection, args.to, reason=args.reason)
    ctx.emit(dataclasses.asdict(change), _change_text(change))
    return 0


def _gc(args, ctx) -> int:
    from storage.lifecycle import collect_garbage

    ws = ctx.workspace
    result = collect_garbage(ws.registry, ws.artifacts, args.collection, keep=args.keep, dry_run=args.dry_run)
    verb = "would delete" if result.dry_run else "deleted"
    ctx.emit(dataclasses.asdict(result), f"{verb}: model versions {list(result.model_versions)}, index versions "
             f"{list(result.index_versions)}, {len(result.artifacts_deleted)} artifacts")
    return 0


def _db_upgrade(args, ctx) -> int:
    from storage.registry.store import RegistryStore

    head = RegistryStore(ctx.settings.database_url).upgrade()
    ctx.emit({"revision": head}, f"registry schema at revision {head}")
    return 0


def collection_status(ws, collection: str) -> dict:
    reg = ws.registry
    alias = reg.get_alias(collection)
    reports = reg.list_drift_reports(collection, limit=1)
    from monitoring.open_alerts import open_alerts

    alerts = reg.list_alerts(collection)
    latest = reg.latest_batch(collection)
    return {
        "collection": collection,
        "production": dataclasses.asdict(alias) if alias else None,
        "latest_batch": latest.seq if latest else None,
        "last_drift_check": dataclasses.asdict(reports[0]) if reports else None,
        "open_alerts": [dataclasses.asdict(a) for a in open_alerts(alerts, alias.updated_at if alias else None)],
        "undelivered_alerts": [dataclasses.asdict(a) for a in alerts if a.delivered_at is None],
        "models": len(reg.list_models(collection)),
    }


def _status(args, ctx) -> int:
    ws = ctx.workspace
    names = [args.collection] if args.collection else [c.name for c in ws.registry.list_collections()]
    statuses = [collection_status(ws, n) for n in names]
    lines = []
    for s in statuses:
        prod = s["production"]
        prod_text = f"model v{prod['model_version']} + index {prod['index_version']} since {prod['updated_at']}" if prod else "none"
        drift = s["last_drift_check"]
        drift_text = (f"{'DRIFT' if drift['drifted'] else 'no drift'} on batch {drift['batch_seq']} at {drift['created_at']}"
                      if drift else "never")
        lines.append(f"{s['collection']}: production {prod_text}; latest batch {s['latest_batch']}; "
                     f"last drift check {drift_text}; {len(s['open_alerts'])} open alerts "
                     f"({len(s['undelivered_alerts'])} undelivered)")
    ctx.emit(statuses if not args.collection else statuses[0], "\n".join(lines) or "no collections yet")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    m = subparsers.add_parser("models", help="list or show model versions")
    msub = m.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="list model versions")
    ml.add_argument("--collection", "-c", required=True)
    add_json_flag(ml)
    ml.set_defaults(func=_models_list)
    ms = msub.add_parser("show", help="show one model version with its indexes")
    ms.add_argument("version", type=int)
    ms.add_argument("--collection", "-c", required=True)
    add_json_flag(ms)
    ms.set_defaults(func=_models_show)

    p = subparsers.add_parser("promote", help="point production at a model (+ index) version")
    p.add_argument("--collection", "-c", required=True)
    p.add_argument("--model", type=int, required=True, help="model version")
    p.add_argument("--index", type=int, help="index version id (belonging to that model)")
    p.add_argument("--reason", default="manual promotion")
    add_json_flag(p)
    p.set_defaults(func=_promote)

    r = subparsers.add_parser(
        "rollback", help="restore the previous production pair (or --to VERSION)",
        description="Without --to: restore the model+index pair production pointed to before its current "
        "pair (two rollbacks in a row swap back). With --to V: restore model version V with the index it "
        "last served with. Refuses when the target's artifacts are missing or fail their checksum.",
    )
    r.add_argument("--collection", "-c", required=True)
    r.add_argument("--to", type=int, metavar="VERSION")
    r.add_argument("--reason", default="manual rollback")
    add_json_flag(r)
    r.set_defaults(func=_rollback)

    g = subparsers.add_parser("gc", help="delete artifacts outside the retention window")
    g.add_argument("--collection", "-c", required=True)
    g.add_argument("--keep", type=int, default=5, help="keep the last N production pairs (default 5)")
    g.add_argument("--dry-run", action="store_true")
    add_json_flag(g)
    g.set_defaults(func=_gc)

    d = subparsers.add_parser("db", help="registry database maintenance")
    dsub = d.add_subparsers(dest="db_command", required=True)
    du = dsub.add_parser("upgrade", help="apply Alembic migrations to the registry database")
    add_json_flag(du)
    du.set_defaults(func=_db_upgrade)

    s = subparsers.add_parser("status", help="production pair, last drift check and open alerts")
    s.add_argument("--collection", "-c")
    add_json_flag(s)
    s.set_defaults(func=_status)
