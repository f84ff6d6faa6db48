"""``steward retrain`` (train and gate a candidate) and ``steward embed`` (export embeddings)."""

from __future__ import annotations

import argparse

RETRAIN_EPILOG = """exit codes: 0 candidate registered and accepted by the gate; 7 registered as rejected
by the gate (the reasons are printed); others as for every steward command. retrain never promotes:
use `steward promote` (or the maintenance flow) for an accepted candidate."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from steward.cli import add_json_flag

    p = subparsers.add_parser(
        "retrain",
        help="train a candidate model (incremental by default), evaluate it, apply the promotion gate",
        description=(
            "Incremental update: warm start from the production model, train on the batches ingested since "
            "it was trained plus its rehearsal buffer, with distillation against forgetting. --full retrains "
            "from scratch on everything. Candidate and production are evaluated on the same held-out items; "
            "the gate accepts or rejects; the version is registered either way, with metrics and lineage."
        ),
        epilog=RETRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--collection", required=True)
    p.add_argument("--full", action="store_true", help="retrain from scratch on all data (the baseline/escape hatch)")
    p.add_argument("--loss", help="contrastive, triplet, multi_similarity, proxy_anchor, arcface, cosface or supcon")
    p.add_argument("--epochs", type=int, help="epoch bound (incremental_epochs for an update, epochs for --full)")
    p.add_argument("--buffer-budget", type=int, help="rehearsal buffer size in items")
    p.add_argument("--buffer-policy", choices=["balanced_reservoir", "reservoir", "herding"])
    p.add_argument("--bct-weight", type=float, help="weight of the backward-compatibility term (0 = off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--as-of", type=int, help="train on data as of this batch seq (default: latest)")
    p.add_argument("--device", help="cpu or cuda (default: the device setting)")
    p.add_argument("--max-old-drop", type=float, help="gate: largest allowed MAP@R drop on old classes (default 0.01)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_json_flag(p)
    p.set_defaults(func=run_retrain)

    e = subparsers.add_parser(
        "embed",
        help="write a collection's embeddings (item_id, label, embedding) under a model version to Parquet",
        description="Streams the collection in record batches (bounded memory) through the chosen model version.",
    )
    e.add_argument("--collection", required=True)
    e.add_argument("--model", type=int, help="model version (default: the production model)")
    e.add_argument("--out", required=True, help="output Parquet path")
    e.add_argument("--as-of", type=int, help="items as of this batch seq (default: latest)")
    e.add_argument("--batch-size", type=int, default=8192, help="rows per streamed batch (default 8192)")
    e.add_argument("--device", help="cpu or cuda (default: the device setting)")
    add_json_flag(e)
    e.set_defaults(func=run_embed)


def _config_from_args(args: argparse.Namespace, ctx):
    from embedding.config import TrainConfig

    registry = ctx.workspace.registry
    alias = registry.get_alias(args.collection)
    base = TrainConfig()
    if alias is not None:
        prod = registry.get_model(args.collection, alias.model_version)
        if "train_config" in prod.config:
            base = TrainConfig.from_dict(prod.config["train_config"])
    changes = {}
    if args.loss:
        changes["loss"] = args.loss
    if args.epochs:
        changes["epochs" if args.full or alias is None else "incremental_epochs"] = args.epochs
    if args.buffer_budget is not None:
        changes["buffer_budget"] = args.buffer_budget
    if args.buffer_policy:
        changes["buffer_policy"] = args.buffer_policy
    if args.bct_weight is not None:
        changes["bct_weight"] = args.bct_weight
    if args.seed is not None:
        changes["seed"] = args.seed
    changes["device"] = args.device or ctx.settings.device or "cpu"
    return base.replace(**changes)


def run_retrain(args: argparse.Namespace, ctx) -> int:
    from embedding.gate import GateThresholds
    from embedding.retrain import retrain

    config = _config_from_args(args, ctx)
    thresholds = GateThresholds() if args.max_old_drop is None else GateThresholds(max_old_map_drop=args.max_old_drop)
    out = retrain(ctx.workspace, args.collection, full=args.full, config=config, as_of=args.as_of,
                  thresholds=thresholds, progress=not args.no_progress and not args.json)
    mv, m = out.model, out.metrics
    overall = m.get("overall") or {}
    old = m.get("old") or {}
    lines = [
        (f"{args.collection} v{mv.version} ({m['training']['mode']}, parent v{mv.parent_version}, "
         f"trained on batch {mv.trained_on_batch}): "
         f"{'ACCEPTED as candidate' if out.decision.accepted else 'REJECTED'}"),
        f"  MAP@R {overall.get('map_at_r', float('nan')):.4f}  P@1 {overall.get('precision_at_1', float('nan')):.4f}"
        + (f"  old classes MAP@R {old['map_at_r']:.4f}" if old.get("map_at_r") is not None else ""),
        (f"  {m['training']['epochs_run']} epochs in {m['training']['seconds']:.1f}s on "
         f"{m['training']['train_items']} items ({m['training']['rehearsal_items']} from the rehearsal buffer)"),
        *(f"  - {r}" for r in out.decision.reasons),
    ]
    if out.decision.accepted:
        lines.append(f"  promote with: steward promote --collection {args.collection} --model {mv.version}")
    ctx.emit({"collection": args.collection, "model_version": mv.version, "status": mv.status,
              "parent_version": mv.parent_version, "decision": out.decision.to_dict(),
              "metrics": {k: v for k, v in m.items() if k != "per_class"}}, "\n".join(lines))
    return 0 if out.decision.accepted else 7


def run_embed(args: argparse.Namespace, ctx) -> int:
    from embedding.export import write_embeddings
    from embedding.inference import resolve_version
    from steward.errors import ConfigError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size={args.batch_size} must be >= 1")
    ws = ctx.workspace
    version = resolve_version(ws, args.collection, args.model).version
    rows = write_embeddings(ws, args.collection, version, args.out, as_of=args.as_of, batch_size=args.batch_size,
                            device=args.device or ctx.settings.device or "cpu", progress=not args.json)
    ctx.emit({"collection": args.collection, "model_version": version, "rows": rows, "out": args.out},
             f"wrote {rows} embeddings of {args.collection} (model v{version}) to {args.out}")
    return 0
