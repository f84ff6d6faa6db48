"""Promotion gate under noise: does the gate accept the better of candidate and production, with and
without the paired bootstrap, on a real class-incremental stream?

    python -m benchmarks.gate [--quick] [--seeds 0 1]

Stream: the real text corpus (docstrings of installed packages, MiniLM 384-d; benchmarks/datasets),
its packages arriving in 4 steps. Every item is in one of three parts, by a stable hash of its id:
training (60%), the **stable evaluation set** the gate sees (picked per class with the shipped
``embedding.holdout.evaluation_picks``, ``--per-class`` items per class: a handful, as in production),
and a large **truth** set the gate never sees, which says which model really is better.

At every step, production is the model steward's own updates produced so far, and several
candidates are trained from the same data through the shipped ``embedding.continual.continual_step``:
steward's update, naive fine-tuning (forgets), a short update, another seed, and a full retrain.
Each (candidate, production) pair goes through the shipped ``embedding.gate.decide`` twice: with the
bootstrap (default settings) and without it (point values: the old threshold gate).

Scored against the truth set:
- **wrongly kept**: the candidate is better overall by more than the tolerance on the evaluation set,
  no old class really lost more than the tolerance (truth: lower bound of its drop <= limit), and the
  gate rejected it anyway: production kept although worse. Target: 0 with the bootstrap.
- **wrongly promoted**: the gate accepted a candidate that is really worse overall (truth) by more
  than the tolerance, or really lost an old class by more than the class limit.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from typing import Any

import numpy as np

from benchmarks._results import markdown_table, write_results
from core.settings import GateSettings
from embedding.config import TrainConfig
from embedding.continual import LabelledData, ModelState, continual_step
from embedding.evaluation import EvaluationReport, evaluate_embeddings
from embedding.gate import decide, paired_drop
from embedding.holdout import evaluation_picks, hash_bucket
from embedding.model import embed_array

log = logging.getLogger("benchmarks.gate")


@dataclasses.dataclass(frozen=True)
class Split:
    train: LabelledData
    evaluation: LabelledData
    truth: LabelledData


def _split(ids: np.ndarray, labels: np.ndarray, x: np.ndarray, per_class: int) -> Split:
    buckets = hash_bucket(ids)
    train = buckets >= 4000  # 60% trains
    held = ~train
    picks = {i for i, _ in evaluation_picks(ids[held], labels[held], {}, per_class=per_class, percent=40)}
    in_eval = np.isin(ids, sorted(picks))
    truth = held & ~in_eval

    def part(mask: np.ndarray) -> LabelledData:
        return LabelledData(ids[mask], labels[mask], x[mask])

    return Split(part(train), part(in_eval), part(truth))


def _stream(seed: int, steps: int, per_class: int) -> list[tuple[Split, list[str]]]:
    from benchmarks.datasets.text_corpus import load_text_corpus

    corpus = load_text_corpus()
    ids = np.array(corpus.item_ids, dtype=str)
    labels = np.array(corpus.labels, dtype=str)
    classes = np.array(sorted(set(labels.tolist())))
    np.random.default_rng(seed).shuffle(classes)
    groups = np.array_split(classes, steps)
    split = _split(ids, labels, corpus.embeddings.astype(np.float32), per_class)
    return [(split, [str(c) for c in g]) for g in groups]


def _only(data: LabelledData, classes: list[str]) -> LabelledData:
    return data.select(np.isin(data.labels, classes))


def _evaluate(state: ModelState, data: LabelledData, old: tuple[str, ...]) -> EvaluationReport:
    return evaluate_embeddings(embed_array(state.model, data.features), data.labels, old_classes=old)


def _candidates(cfg: TrainConfig, new: LabelledData, seen: LabelledData, production: ModelState
                ) -> dict[str, ModelState]:
    naive = cfg.replace(buffer_budget=0, buffer_min_quota=0, distill_feature=0.0, distill_relational=0.0)
    return {
        "steward": continual_step(new, cfg, previous=production).candidate,
        "naive": continual_step(new, naive, previous=production).candidate,
        "short": continual_step(new, cfg.replace(incremental_epochs=2), previous=production).candidate,
        "other_seed": continual_step(new, cfg.replace(seed=cfg.seed + 101), previous=production).candidate,
        "full": continual_step(seen, cfg, full=True).candidate,
    }


def _truth(cand: EvaluationReport, prod: EvaluationReport, settings: GateSettings, rng) -> dict[str, Any]:
    """What the big truth set says: overall gain, and whether some old class really lost too much."""
    gain = cand.map_at_r("overall") - prod.map_at_r("overall")
    labels = cand.queries.labels
    old = [c for c in prod.old_classes if c in cand.per_class]
    real_losses = []
    for c in old:
        mask = labels == c
        d = paired_drop(prod.queries.map_at_r[mask], cand.queries.map_at_r[mask], samples=1000,
                        confidence=1 - 0.05 / max(len(old), 1), rng=rng)
        if d.low is not None and d.low > settings.max_class_map_drop:
            real_losses.append(c)
    old_mask = np.isin(labels, old)
    old_drop = paired_drop(prod.queries.map_at_r[old_mask], cand.queries.map_at_r[old_mask], samples=1000,
                           confidence=0.95, rng=rng) if old_mask.any() else None
    old_lost = old_drop is not None and old_drop.low is not None and old_drop.low > settings.max_old_map_drop
    return {"gain": gain, "real_class_losses": real_losses, "old_really_lost": old_lost}


def run(seed: int, steps: int, per_class: int, cfg: TrainConfig) -> list[dict[str, Any]]:
    stream = _stream(seed, steps, per_class)
    settings = GateSettings()
    point = dataclasses.replace(settings, bootstrap_samples=0)
    rng = np.random.default_rng(seed)
    split, first = stream[0]
    seen_classes = list(first)
    production = continual_step(_only(split.train, seen_classes), cfg, full=True).candidate
    rows = []
    for t in range(1, steps):
        split, arriving = stream[t]
        seen_classes += arriving
        new, seen = _only(split.train, arriving), _only(split.train, seen_classes)
        evaluation, truth = _only(split.evaluation, seen_classes), _only(split.truth, seen_classes)
        old = production.classes
        prod_eval, prod_truth = _evaluate(production, evaluation, old), _evaluate(production, truth, old)
        raw = evaluate_embeddings(evaluation.features / np.linalg.norm(evaluation.features, axis=1, keepdims=True),
                                  evaluation.labels, old_classes=old, per_class=False)
        candidates = _candidates(cfg, new, seen, production)
        for name, state in candidates.items():
            cand_eval, cand_truth = _evaluate(state, evaluation, old), _evaluate(state, truth, old)
            real = _truth(cand_truth, prod_truth, settings, rng)
            with_boot = decide(cand_eval, prod_eval, settings, raw=raw, seed=seed)
            without = decide(cand_eval, prod_eval, point, raw=raw, seed=seed)
            eval_gain = cand_eval.map_at_r("overall") - prod_eval.map_at_r("overall")
            acceptable = (eval_gain > settings.max_overall_map_drop and not real["real_class_losses"]
                          and not real["old_really_lost"])
            truly_worse = (real["gain"] < -settings.max_overall_map_drop or bool(real["real_class_losses"])
                           or real["old_really_lost"])
            rows.append({
                "seed": seed, "step": t, "candidate": name, "eval_items": len(evaluation),
                "eval_gain": eval_gain, "truth_gain": real["gain"],
                "truth_class_losses": ", ".join(real["real_class_losses"]) or "—",
                "acceptable": acceptable, "truly_worse": truly_worse,
                "accepted_bootstrap": with_boot.accepted, "accepted_point": without.accepted,
                "failed_checks_point": ", ".join(c.name for c in without.checks if not c.passed) or "—",
                "failed_checks_bootstrap": ", ".join(c.name for c in with_boot.checks if not c.passed) or "—",
            })
            log.info("seed %d step %d %-10s eval gain %+.3f truth gain %+.3f boot %s point %s", seed, t, name,
                     eval_gain, real["gain"], with_boot.accepted, without.accepted)
        production = candidates["steward"]  # the chain continues with steward's own update
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for gate in ("bootstrap", "point"):
        accepted = [r[f"accepted_{gate}"] for r in rows]
        wrongly_kept = sum(1 for r, a in zip(rows, accepted, strict=True) if r["acceptable"] and not a)
        wrongly_promoted = sum(1 for r, a in zip(rows, accepted, strict=True) if r["truly_worse"] and a)
        better = [r for r in rows if r["truth_gain"] > 0 and not r["truly_worse"]]
        out.append({
            "gate": gate, "pairs": len(rows), "acceptable_pairs": sum(r["acceptable"] for r in rows),
            "truly_worse_pairs": sum(r["truly_worse"] for r in rows),
            "accepted": sum(accepted), "wrongly_kept": wrongly_kept, "wrongly_promoted": wrongly_promoted,
            "better_candidate_accepted": (sum(r[f"accepted_{gate}"] for r in better) / len(better)) if better else None,
        })
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--per-class", type=int, default=15, help="evaluation items per class the gate sees")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("PML", "pytorch_metric_learning", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=20 if args.quick else 30, incremental_epochs=6 if args.quick else 10, buffer_budget=300)
    seeds = args.seeds[:1] if args.quick else args.seeds
    t0 = time.perf_counter()
    rows = [r for seed in seeds for r in run(seed, 3 if args.quick else args.steps, args.per_class, cfg)]
    summary = summarise(rows)
    boot = next(s for s in summary if s["gate"] == "bootstrap")
    md = ["## Promotion gate under noise (`python -m benchmarks.gate`)", "",
          (f"Real text stream (docstring packages arriving in {args.steps} steps), seeds {seeds}; the gate sees "
           f"{args.per_class} evaluation items per class, a separate truth set (the rest of 40% held out) judges. "
           "Candidates per step: steward's update, naive fine-tuning, a 2-epoch update, another seed, a full "
           "retrain; production is steward's chain. 'wrongly kept': better overall on the evaluation set, no old "
           "class really lost (truth, bootstrap bound), yet rejected. 'wrongly promoted': accepted although really "
           "worse (truth)."), "",
          markdown_table(summary, ["gate", "pairs", "acceptable_pairs", "truly_worse_pairs", "accepted",
                                   "wrongly_kept", "wrongly_promoted", "better_candidate_accepted"]), "",
          (f"Target: the bootstrap gate never keeps a worse production when the candidate is better overall and its "
           f"per-class losses are noise: wrongly kept = {boot['wrongly_kept']} "
           f"({'met' if boot['wrongly_kept'] == 0 else 'MISSED'})."), "",
          "<details><summary>every pair</summary>", "",
          markdown_table(rows, ["seed", "step", "candidate", "eval_items", "eval_gain", "truth_gain",
                                "truth_class_losses", "acceptable", "truly_worse", "accepted_bootstrap",
                                "accepted_point", "failed_checks_point", "failed_checks_bootstrap"]), "", "</details>"]
    data = {"rows": rows, "summary": summary, "seeds": seeds, "seconds": time.perf_counter() - t0,
            "config": cfg.to_dict(), "per_class": args.per_class}
    if not args.no_write:
        write_results("gate", data, "\n".join(md))
    print("\n".join(md[:8]))
    return data


if __name__ == "__main__":
    main()
