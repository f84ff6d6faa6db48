"""``steward drift``: check a batch for drift against the batches before it."""

from __future__ import annotations

import argparse

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 10

_EPILOG = f"""exit codes:
  {EXIT_NO_DRIFT}   no drift (the combined decision did not reject at alpha)
  {EXIT_DRIFT}  drift detected (a drift report and, outside the dedup window, an alert were recorded)
  1-7 error, as for every steward command: 1 error; 2 bad configuration; 3 invalid input;
      4 not found (collection, batch, model, or no earlier batch to compare with); 5 conflict;
      6 artifact failed its checksum
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from steward.cli import add_command, setting_flag

    parser = add_command(
        subparsers, "drift", run_drift,
        help="check a batch for drift (calibrated tests on embeddings); exit 10 on drift",
        description=(
            "Compare a batch's embeddings (production model; raw L2-normalised features when no model "
            "exists) with the preceding batches using calibrated two-sample tests (MMD, classifier, "
            "PCA-KS, novelty vs class prototypes, and label shift / prototype displacement when labelled). "
            "The family-wise false-alarm rate across detectors is held at alpha (Holm). The result is "
            "stored as a drift report; on drift an alert is stored, a Prefect event "
            "'steward.drift.detected' is emitted when a Prefect API is configured, and the webhook "
            "(webhook_url) is called with retries. Undelivered alerts are retried on every run."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batch", type=int, default=None, help="batch seq to check (default: the latest)")
    parser.add_argument("--model-version", type=int, default=None, help="embed with this model (default: production)")
    setting_flag(parser, "--alpha", setting="drift.alpha", type=float,
                 help="family-wise false-alarm rate (default: the drift.alpha setting, 0.05)")
    setting_flag(parser, "--reference-batches", setting="drift.reference_batches", type=int,
                 help="how many earlier batches form the reference (default: the drift.reference_batches setting, 3)")
    parser.add_argument("--html", default=None, metavar="PATH",
                        help="also write an Evidently HTML report (slow: its t-SNE plot takes 30 s to minutes)")
    parser.add_argument("--no-notify", action="store_true", help="store the report/alert but send nothing")


def run_drift(args: argparse.Namespace, ctx) -> int:
    which = f"batch {args.batch}" if args.batch is not None else "the latest batch"
    with ctx.stage(f"checking {which} of {args.collection} for drift"
                   + (" and writing the Evidently HTML report" if args.html else "")):
        res = ctx.api.drift(args.collection, args.batch, model_version=args.model_version, html=args.html,
                            notify=not args.no_notify)
    from monitoring.summary import decision_lines

    verdict = "DRIFT" if res.drifted else res.decision.status
    lines = [(f"{args.collection} batch {res.batch_seq} vs {list(res.reference_batches)} "
             f"({res.embedding}): {verdict}"),
             *(f"  {line}" for line in decision_lines(res))]
    adjusted = res.decision.adjusted_p_values
    for name, det in res.detectors.items():
        # "!" acts, "*" significant but small, " " not significant
        mark = "!" if name in res.decision.acting else "*" if name in res.decision.flagged else " "
        adj = adjusted.get(name, float("nan"))
        lines.append(f" {mark} {name:<23} p={det.p_value:<9.3g} adj={adj:<9.3g} {det.effect_description}")
    if res.alert_id is not None:
        alert = ctx.workspace.registry.monitoring.get_alert(res.alert_id)
        delivery = ("delivered" if alert.delivered_at else "pending delivery") if ctx.settings.webhook_url \
            else "recorded (no webhook configured)"
        lines.append(f"alert {alert.id} {delivery}" + (f" ({res.notice})" if res.notice else ""))
    if args.html:
        lines.append(f"HTML report: {args.html}")
    ctx.emit(res.to_dict(), "\n".join(lines))
    return EXIT_DRIFT if res.drifted else EXIT_NO_DRIFT
