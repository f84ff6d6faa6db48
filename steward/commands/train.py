"""``steward retrain`` (train and gate a candidate) and ``steward embed`` (export embeddings)."""

from __future__ import annotations

import argparse

RETRAIN_EPILOG = """exit codes: 0 candidate registered and accepted by the gate; 7 registered as rejected
by the gate (the reasons are printed); others as for every steward command. retrain never promotes:
use `steward promote` (or the maintenance flow) for an accepted candidate."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from embedding.config import BUFFER_POLICIES, LOSSES
    from steward.cli import add_command, add_subcommand, setting_flag

    p = add_command(
        subparsers, "retrain", run_retrain,
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
    p.add_argument("--full", action="store_true", help="retrain from scratch on all data (the baseline/escape hatch)")
    p.add_argument("--loss", choices=LOSSES, help="metric-learning loss (default: production's, else multi_similarity)")
    p.add_argument("--epochs", type=int, help="epoch bound (incremental_epochs for an update, epochs for --full)")
    p.add_argument("--buffer-budget", type=int, help="rehearsal buffer size in items")
    p.add_argument("--buffer-policy", choices=BUFFER_POLICIES)
    p.add_argument("--bct-weight", type=float, help="weight of the backward-compatibility term (0 = off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--suspect-weight", type=float,
                   help="weight of new items whose label disagrees with their neighbours (1 = off; see "
                        "`steward labels suspect`)")
    p.add_argument("--from-run", type=int, metavar="RUN_ID",
                   help="reproduce training run RUN_ID (its config, seed, data as of, parent version and gate "
                        "settings; refused with other training options); see `steward runs list`")
    p.add_argument("--as-of", type=int, help="train on data as of this batch seq (default: latest)")
    p.add_argument("--device", help="cpu or cuda (default: the device setting)")
    setting_flag(p, "--max-old-drop", setting="gate.max_old_map_drop", type=float,
                 help="gate: largest allowed MAP@R drop on old classes (default: the gate.max_old_map_drop setting)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    r = add_subcommand(subparsers, "runs", help="training runs and their experiment records")
    rsub = r.add_subparsers(dest="runs_command", required=True)
    add_command(rsub, "list", run_runs_list, help="a collection's training runs, oldest first")
    show = add_command(rsub, "show", run_runs_show, collection="none",
                       help="one training run: config, seed, data, parent, gate settings, library versions")
    show.add_argument("run_id", type=int, metavar="RUN_ID")

    e = add_command(
        subparsers, "embed", run_embed,
        help="embed a collection, or a file of rows in no collection (--input), under a model version",
        description=(
            "Streams rows in record batches (bounded memory) through the chosen model version of the "
            "collection. Without --input: the collection's items, to Parquet at --out. With --input FILE "
            "(Parquet, CSV or JSONL with item_id and features or text, as ingest reads them): the file's rows, "
            "validated as ingest validates them (bad rows are counted and reported, never embedded), to "
            "Parquet at --out (item_id, label, embedding; written atomically) or, without --out, as JSON "
            "lines {\"item_id\", \"embedding\"} on stdout."
        ),
    )
    e.add_argument("--model", type=int, help="model version (default: the production model)")
    e.add_argument("--input", metavar="FILE", help="embed this file's rows (in no collection) instead of the collection")
    e.add_argument("--out", help="output Parquet path (required without --input; with --input, default: JSON lines on stdout)")
    e.add_argument("--as-of", type=int, help="items as of this batch seq (default: latest)")
    e.add_argument("--batch-size", type=int, default=8192, help="rows per streamed batch (default 8192)")
    e.add_argument("--device", help="cpu or cuda (default: the device setting)")


def run_retrain(args: argparse.Namespace, ctx) -> int:
    from steward import shapes

    changes = {"loss": args.loss, "epochs": args.epochs, "buffer_budget": args.buffer_budget,
               "buffer_policy": args.buffer_policy, "bct_weight": args.bct_weight, "seed": args.seed,
               "suspect_weight": args.suspect_weight, "device": args.device or ctx.settings.device or "cpu"}
    what = f"reproducing training run {args.from_run}" if args.from_run is not None else (
        f"training a {'full' if args.full else 'candidate'} model")
    with ctx.stage(f"{what} of {args.collection}"):
        out = ctx.api.retrain(args.collection, full=args.full, as_of=args.as_of, from_run=args.from_run,
                              progress=not args.no_progress and not args.json, **changes)
    mv, report = out.model, out.report
    ev, training = report.evaluation, report.training
    overall = ev.overall if ev else None
    old = ev.old if ev else None
    lines = [
        (f"{args.collection} v{mv.version} ({training.mode}, parent v{mv.parent_version}, "
         f"trained on batch {mv.trained_on_batch}): "
         f"{'ACCEPTED as candidate' if out.decision.accepted else 'REJECTED'}"),
        (f"  MAP@R {overall.map_at_r if overall else float('nan'):.4f}  "
         f"P@1 {overall.precision_at_1 if overall else float('nan'):.4f}")
        + (f"  old classes MAP@R {old.map_at_r:.4f}" if old is not None else ""),
        (f"  {training.epochs_run} epochs in {training.seconds:.1f}s on "
         f"{training.train_items} items ({training.rehearsal_items} from the rehearsal buffer)"),
        *(f"  - {r}" for r in out.decision.reasons),
    ]
    if training.suspects_flagged is not None:
        lines.insert(3, f"  {training.suspects_flagged} suspect labels among the new items, weighted "
                        f"{training.suspect_weight:g}")
    if out.training_run is not None:
        lines.append(f"  training run {out.training_run.id} (reproduce: steward retrain -c {args.collection} "
                     f"--from-run {out.training_run.id})")
    if out.decision.accepted:
        lines.append(f"  promote with: steward promote --collection {args.collection} --model {mv.version}")
    ctx.emit(shapes.retrain_outcome(args.collection, out), "\n".join(lines))
    return 0 if out.decision.accepted else 7


def _run_line(run) -> str:
    d = run.details or {}
    cfg = d.get("train_config") or {}
    return (f"run {run.id:<4} {run.status:<8} {run.kind:<11} model v{run.model_version!s:<4} as of batch "
            f"{d.get('as_of', '?')!s:<4} seed {d.get('seed', cfg.get('seed', '?'))!s:<4} parent "
            f"v{d.get('parent_version')!s:<4} {run.started_at:%Y-%m-%d %H:%M}Z"
            + (f"  (reproduces run {d['from_run']})" if d.get("from_run") is not None else ""))


def run_runs_list(args: argparse.Namespace, ctx) -> int:
    from steward import shapes

    runs = ctx.api.training_runs(args.collection)
    ctx.emit([shapes.training_run(r) for r in runs], "\n".join(_run_line(r) for r in runs) or "no training runs")
    return 0


def run_runs_show(args: argparse.Namespace, ctx) -> int:
    import json

    from steward import shapes

    run = ctx.api.training_run(args.run_id)
    payload = shapes.training_run(run)
    text = "\n".join([f"{run.collection}: " + _run_line(run), f"  batches trained on: {run.batches}",
                      json.dumps(payload["details"], indent=2, default=str)])
    ctx.emit(payload, text)
    return 0


def run_embed(args: argparse.Namespace, ctx) -> int:
    from core.errors import ConfigError
    from steward import shapes

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size={args.batch_size} must be >= 1")
    if args.input is not None:
        return _embed_file(args, ctx)
    if args.out is None:
        raise ConfigError("--out is required to embed a collection (or give --input FILE to embed a file's rows)")
    version = ctx.api.model(args.collection, args.model).version
    with ctx.stage(f"embedding {args.collection} with model v{version}"):
        rows = ctx.api.embed(args.collection, out=args.out, model=version, as_of=args.as_of,
                             batch_size=args.batch_size, progress=not args.json, device=args.device)
    payload = shapes.embed_result(args.collection, version, rows, args.out)
    ctx.emit(payload, f"wrote {rows} embeddings of {args.collection} (model v{version}) to {payload['out']}")
    return 0


def _embed_file(args: argparse.Namespace, ctx) -> int:
    import json
    import sys

    from core.errors import ConfigError

    if args.out is None and args.json:
        raise ConfigError("--json with --input needs --out: without it the embeddings themselves go to stdout")
    sink = None
    if args.out is None:
        def sink(eb) -> None:
            lines = [json.dumps({"item_id": i, "embedding": [round(float(v), 7) for v in vec]})
                     for i, vec in zip(eb.item_ids.to_pylist(), eb.embeddings, strict=True)]
            sys.stdout.write("\n".join(lines) + "\n")

    with ctx.stage(f"embedding {args.input} with a model of {args.collection}"):
        res = ctx.api.embed(args.collection, input=args.input, out=args.out, model=args.model,
                            batch_size=args.batch_size, progress=not args.json, device=args.device, sink=sink)
    lines = [f"embedded {res.rows} of {res.rows_read} rows of {res.input} with {args.collection} model "
             f"v{res.model_version}" + (f" to {res.out}" if res.out else "")]
    if res.rejected:
        lines.append(f"{res.rejected} rows rejected, not embedded: "
                     + "; ".join(f"{n} x {reason}" for reason, n in res.reject_reasons.items()))
        lines += [f"  row {e['row']} item_id {e['item_id']!r}: {e['reason']}" for e in res.rejected_examples]
    text = "\n".join(lines)
    if args.out is None:
        print(text, file=sys.stderr)  # stdout carries the embeddings
    else:
        ctx.emit(res.to_dict(), text)
    return 0
