"""``steward models``, ``promote``, ``rollback``, ``pin``/``unpin``, ``gc``, ``alerts``, ``db`` and ``status``."""

from __future__ import annotations

import argparse

from steward.cli import add_command, add_subcommand


def _model_line(m) -> str:
    from embedding.report import ModelReport

    shown = ModelReport.from_dict(m.metrics or {}).headline()
    text = " ".join(f"MAP@R {part}={v:.3f}" for part, v in shown.items() if isinstance(v, (int, float)))
    return (f"v{m.version:<4} {m.status:<10} parent={m.parent_version!s:<5} {m.created_at:%Y-%m-%d %H:%M}Z {text}  "
            f"{m.status_reason or ''}")


def _models_list(args, ctx) -> int:
    from steward import shapes

    models = ctx.api.models(args.collection)
    ctx.emit([shapes.model_version(m) for m in models], "\n".join(_model_line(m) for m in models) or "no model versions")
    return 0


def _group_lines(ev, base) -> list[str]:
    """Per group (the collection's group column): MAP@R and P@1, production's beside, and the gap."""
    lines = [f"  groups ({ev.group_column}):"]
    for g, m in sorted(ev.per_group.items(), key=lambda kv: kv[1].map_at_r):
        was = base.per_group.get(g) if base is not None else None
        vs = f" (production {was.map_at_r:.4f})" if was is not None else ""
        lines.append(f"    {g:<16} MAP@R {m.map_at_r:.4f}{vs}   P@1 {m.precision_at_1:.4f}   {m.items} items")
    gap = ev.group_gap
    if gap is not None:
        was = base.group_gap if base is not None else None
        lines.append(f"    largest gap {gap:.4f}" + (f" (production {was:.4f})" if was is not None else ""))
    return lines


def _show_text(m, report, indexes) -> str:
    """A model version for a person: lineage, status, headline metrics, gate reasons, training, indexes."""
    ev, training = report.evaluation, report.training
    lines = [f"{m.collection} v{m.version}: {m.status}" + (f" ({m.status_reason})" if m.status_reason else ""),
             (f"  parent v{m.parent_version}, trained on batches up to {m.trained_on_batch}, created "
             f"{m.created_at:%Y-%m-%d %H:%M}Z ({training.mode}, {training.epochs_run} epochs, {training.seconds:.1f} s, "
             f"{training.train_items} items of which {training.rehearsal_items} rehearsal)")]
    if ev is not None:
        for part in ("overall", "old", "new"):
            metrics = getattr(ev, part)
            if metrics is not None:
                base = report.baselines.get("production")
                was = getattr(base, part, None) if base is not None else None
                vs = f" (production {was.map_at_r:.4f})" if was is not None else ""
                lines.append(f"  MAP@R {part:<8} {metrics.map_at_r:.4f}{vs}   P@1 {metrics.precision_at_1:.4f}")
    if ev is not None and ev.per_group:
        lines += _group_lines(ev, report.baselines.get("production"))
    if training.suspects_flagged is not None:
        lines.append(f"  suspect labels: {training.suspects_flagged} of the new items, trained with weight "
                     f"{training.suspect_weight:g}")
    lines.append(f"  gate: {'accepted' if report.gate.accepted else 'rejected'}")
    lines += [f"    - {r}" for r in report.gate.reasons]
    worst = sorted(report.forgetting.items(), key=lambda kv: -kv[1])[:3]
    if worst:
        lines.append("  most forgotten classes: " + ", ".join(f"{c} {v:+.3f}" for c, v in worst))
    lines += [f"  index {i.id}: {i.factory}, {i.num_vectors} vectors, recall@10 "
              f"{i.metrics.get('recall_at_10', float('nan')):.3f}" for i in indexes]
    return "\n".join(lines)


def _models_show(args, ctx) -> int:
    from steward import shapes

    api = ctx.api
    model = api.model(args.collection, args.version)
    indexes = api.indexes(args.collection, model.version)
    ctx.emit(shapes.model_version(model, indexes), _show_text(model, api.report(args.collection, model.version),
                                                              indexes))
    return 0


def _change_text(change) -> str:
    return (f"{change.collection}: production {change.from_model}/{change.from_index} -> "
            f"{change.to_model}/{change.to_index} (model/index) by {change.actor}: {change.reason}")


def _promote(args, ctx) -> int:
    from steward import shapes

    api = ctx.api
    change = api.promote(args.collection, args.model, args.index, reason=args.reason)
    target = api.production(args.collection)
    pinned = bool(target and target.pinned)
    note = f"\nproduction stays pinned ({target.pinned_reason}); `steward unpin` hands it back to automation" \
        if pinned else ""
    ctx.emit(shapes.alias_change(change, pinned=pinned), _change_text(change) + note)
    return 0


def _rollback(args, ctx) -> int:
    from steward import shapes

    api = ctx.api
    change = api.rollback(args.collection, args.to, reason=args.reason, pin=not args.no_pin)
    added = api.batches_added_by(args.collection, change.from_model, change.to_model) \
        if change.from_model is not None else []
    excluded = []
    if args.exclude_batches and added:
        excluded = [b.seq for b in api.exclude_batches(
            args.collection, added, reason=f"rolled back from v{change.from_model}: {args.reason}")]
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
    ctx.emit(shapes.alias_change(change, pinned=not args.no_pin, batches_added=added, batches_excluded=excluded),
             "\n".join(lines))
    return 0


def _pin(args, ctx) -> int:
    from steward import shapes

    target = ctx.api.pin(args.collection, reason=args.reason)
    ctx.emit(shapes.alias_target(target), f"{args.collection}: production v{target.model_version} pinned by "
             f"{target.pinned_by} ({target.pinned_reason}); automated runs will not move it")
    return 0


def _unpin(args, ctx) -> int:
    from steward import shapes

    target = ctx.api.unpin(args.collection)
    away = sorted(ctx.workspace.production.rolled_away(args.collection))
    note = f" (they still never re-promote {', '.join(f'v{v}' for v in away)}, rolled away from)" if away else ""
    ctx.emit(shapes.alias_target(target, rolled_away=away),
             f"{args.collection}: production v{target.model_version} released; automated runs may promote again{note}")
    return 0


def _gc(args, ctx) -> int:
    from steward import shapes

    result = ctx.api.gc(args.collection, keep=args.keep, dry_run=args.dry_run)
    ctx.emit(shapes.gc_result(result), result.describe())
    return 0


def _alert_line(record) -> str:
    a = record.alert
    state = "OPEN" if record.open else (f"answered by the {record.answered_by.kind} to v{record.answered_by.to_model} "
                                        f"at {record.answered_by.at:%Y-%m-%d %H:%M}Z")
    delivery = "" if record.undelivered is None else ("; undelivered" if record.undelivered else "; delivered")
    title = a.message.splitlines()[0] if a.message else ""
    return f"{a.id:>5}  {a.created_at:%Y-%m-%d %H:%M}Z  {a.kind:<12} {state}{delivery}\n       {title}"


def _alerts_list(args, ctx) -> int:
    from steward import shapes

    records = ctx.api.alerts(args.collection, open_only=args.open, limit=args.limit)
    text = "\n".join(_alert_line(r) for r in records) or f"no {'open ' if args.open else ''}alerts for {args.collection}"
    ctx.emit([shapes.alert(r) for r in records], text)
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
    verdict = "DRIFT" if drift and drift.drifted else "significant, small" if drift and drift.flagged else "no drift"
    drift_text = (f"{verdict} on batch {drift.batch_seq} at {drift.at}"
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
    api = ctx.api
    names = [args.collection] if args.collection else [c.name for c in api.collections()]
    statuses = [api.status(n) for n in names]
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

    g = add_command(subparsers, "gc", _gc, help="delete artifacts outside the retention window",
                    description="Delete the artifacts of model and index versions outside the retention window "
                    "and say why every version stays or goes. Kept: what production points to, the models of the "
                    "last N production pairs, and every version newer than the newest of those (candidates). Rows "
                    "stay as the audit trail; an artifact a kept version shares is never deleted.")
    g.add_argument("--keep", type=int, default=5, help="keep the last N production pairs (default 5)")
    g.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")

    al = add_subcommand(subparsers, "alerts", help="the alert history of a collection")
    alsub = al.add_subparsers(dest="alerts_command", required=True)
    ls = add_command(alsub, "list", _alerts_list, help="alerts, newest first: open, or answered by a production change",
                     description="Every alert stays in the history. An alert is open until production changes "
                     "after it (a promotion or rollback answers it); the list says which change answered each.")
    ls.add_argument("--open", action="store_true", help="only open alerts")
    ls.add_argument("--limit", type=int, default=50, help="newest N alerts (default 50)")

    d = add_subcommand(subparsers, "db", help="registry database maintenance")
    dsub = d.add_subparsers(dest="db_command", required=True)
    add_command(dsub, "upgrade", _db_upgrade, collection="none",
                help="apply Alembic migrations to the registry database")

    add_command(subparsers, "status", _status, collection="optional",
                help="production pair, last drift check and open alerts")
