"""Drift benchmark: calibration (false alarms), power (detection) and latency, side by side with
Evidently's four embedding drift methods called directly with their default thresholds.

    python -m benchmarks.drift            # default run (~10 min on 2 idle cores)
    python -m benchmarks.drift --quick    # smoke run (~1 min)

Datasets (both 384-d, L2-normalised):
- ``synthetic``: a 10-class Gaussian mixture with low-rank within-class structure;
- ``digits``: scikit-learn's handwritten digits (real images) with pixel jitter, through a fixed
  random ReLU projection 64→384 (a stand-in for an embedding network, no training needed).

Classes 0–7 are "known"; 8–9 are held out for new-class injection. Per trial the reference and the
current sample are drawn fresh. Scenarios: ``null`` (no drift), ``mean_shift``, ``cov_change``,
``new_class_2/5/10`` (that % of the current batch from unseen classes), ``prior_shift``.

Steward runs its whole suite with labels (6 detectors, Holm at α) and we also report the decision
over the 4 embedding-only detectors. Evidently's scores are compared twice: at its default
thresholds, and at a threshold set to the null-trial quantile giving the same false-alarm rate as
steward's combined decision (the "equal false-alarm rate" comparison; this uses the null trials
themselves, which favours Evidently).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
from tqdm import tqdm

from benchmarks._results import markdown_table, write_results

log = logging.getLogger("benchmarks.drift")
DIM = 384
KNOWN = np.arange(8)
NEW = np.array([8, 9])
SCENARIOS = ("null", "mean_shift", "cov_change", "new_class_2", "new_class_5", "new_class_10", "prior_shift")
EMBEDDING_DETECTORS = ("mmd", "classifier", "ks", "novelty")


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Synthetic:
    name = "synthetic"

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.centres = rng.standard_normal((10, DIM))
        self.centres /= np.linalg.norm(self.centres, axis=1, keepdims=True)
        self.mix = rng.standard_normal((10, DIM, 16)) / np.sqrt(16)  # per-class low-rank structure

    def sample(self, rng, n: int, classes: np.ndarray, weights=None) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(classes, size=n, p=weights)
        z = rng.standard_normal((n, 16))
        low_rank = np.einsum("ndk,nk->nd", self.mix[y], z) / np.sqrt(DIM)  # norm ≈ 1
        iso = rng.standard_normal((n, DIM)) / np.sqrt(DIM)  # norm ≈ 1
        # within-class spread: cosine to the class centre ≈ 0.8, classes distinct but overlapping
        return _normalise(self.centres[y] + 0.55 * low_rank + 0.45 * iso), y


class Digits:
    """Real images through a trained model: an MLP (one 384-unit ReLU layer) fitted on the known
    digits 0–7 only; its hidden layer is the embedding, as a production model's would be."""

    name = "digits"

    def __init__(self, seed: int = 0) -> None:
        from sklearn.datasets import load_digits
        from sklearn.neural_network import MLPClassifier

        d = load_digits()
        self.images, self.labels = d.data.astype(np.float32) / 16.0, d.target
        self.by_class = {c: np.flatnonzero(self.labels == c) for c in range(10)}
        known = np.isin(self.labels, KNOWN)
        mlp = MLPClassifier(hidden_layer_sizes=(DIM,), max_iter=300, random_state=seed)
        mlp.fit(self.images[known], self.labels[known])
        self.w, self.b = mlp.coefs_[0].astype(np.float32), mlp.intercepts_[0].astype(np.float32)

    def sample(self, rng, n: int, classes: np.ndarray, weights=None) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(classes, size=n, p=weights)
        idx = np.array([rng.choice(self.by_class[c]) for c in y], dtype=int)
        # pixel jitter makes every draw a new image (no exact duplicates between samples)
        img = self.images[idx] + rng.normal(0.0, 0.05, size=(len(idx), 64)).astype(np.float32)
        return _normalise(np.maximum(img @ self.w + self.b, 0.0) + 1e-6), y


@dataclass(frozen=True)
class Shifts:
    mean_shift_sd: float = 1.0  # along one random direction, in reference standard deviations
    cov_scale: float = 1.6  # std multiplier along cov_dims random directions
    cov_dims: int = 16
    prior_boost: float = 2.0  # classes 0-3 twice as frequent


def make_trial(ds, scenario: str, rng, n_ref: int, n_cur: int, shifts: Shifts):
    ref, ry = ds.sample(rng, n_ref, KNOWN)
    if scenario.startswith("new_class_"):
        frac = int(scenario.rsplit("_", 1)[1]) / 100
        k_new = round(frac * n_cur)
        a, ay = ds.sample(rng, n_cur - k_new, KNOWN)
        b, by = ds.sample(rng, k_new, NEW)
        return ref, ry, np.concatenate([a, b]), np.concatenate([ay, by])
    if scenario == "prior_shift":
        w = np.where(KNOWN < 4, shifts.prior_boost, 1.0)
        cur, cy = ds.sample(rng, n_cur, KNOWN, w / w.sum())
        return ref, ry, cur, cy
    cur, cy = ds.sample(rng, n_cur, KNOWN)
    if scenario == "mean_shift":
        u = rng.standard_normal(DIM)
        u /= np.linalg.norm(u)
        sd = float((ref @ u).std())
        cur = _normalise(cur + shifts.mean_shift_sd * sd * u)
    elif scenario == "cov_change":
        q, _ = np.linalg.qr(rng.standard_normal((DIM, shifts.cov_dims)))
        mu = ref.mean(0)
        proj = (cur - mu) @ q
        cur = _normalise(cur + (shifts.cov_scale - 1.0) * proj @ q.T)
    elif scenario != "null":
        raise ValueError(scenario)
    return ref, ry, cur, cy


def evidently_methods():
    from evidently.metrics.embeddings import (
        DistanceDriftMethod,
        MMDDriftMethod,
        ModelDriftMethod,
        RatioDriftMethod,
    )

    return {
        "evidently_distance": DistanceDriftMethod(),
        "evidently_model": ModelDriftMethod(),
        "evidently_ratio": RatioDriftMethod(),
        "evidently_mmd": MMDDriftMethod(),
    }


def run_evidently(methods, ref, cur, seed: int) -> dict[str, tuple[float, bool, float]]:
    import pandas as pd

    cols = [f"e{j}" for j in range(ref.shape[1])]
    out = {}
    for name, m in methods.items():
        np.random.seed(seed)  # the methods draw from numpy's global generator
        t0 = time.perf_counter()
        # fresh frames each call: ModelDriftMethod adds a "target" column to what it is given
        score, drifted, _ = m(pd.DataFrame(cur, columns=cols), pd.DataFrame(ref, columns=cols))
        out[name] = (float(score), bool(drifted), time.perf_counter() - t0)
    return out


def rate_ci(k: int, n: int) -> tuple[float, float]:
    """Clopper–Pearson 95% interval for a rate k/n."""
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return lo, hi


def run_trials(ds, scenario, trials, args, config, methods, shifts, seed0):
    from monitoring.decision import decide
    from monitoring.suite import run_suite

    rows = []
    for t in tqdm(range(trials), desc=f"{ds.name}/{scenario}", leave=False):
        rng = np.random.default_rng([seed0, SCENARIOS.index(scenario), t])
        ref, ry, cur, cy = make_trial(ds, scenario, rng, args.n_ref, args.n_cur, shifts)
        t0 = time.perf_counter()
        res = run_suite(
            ref, cur, reference_labels=ry.astype(str), current_labels=cy.astype(str), config=replace(config, seed=t)
        )
        secs = time.perf_counter() - t0
        emb_only = decide({k: v for k, v in res.detectors.items() if k in EMBEDDING_DETECTORS}, config.alpha)
        row = {
            "p": {k: v.p_value for k, v in res.detectors.items()},
            "combined": res.decision.drifted,
            "combined_embeddings_only": emb_only.drifted,
            "steward_seconds": secs,
        }
        if methods:
            row["evidently"] = run_evidently(methods, ref, cur, seed=t)
        rows.append(row)
    return rows


def summarise(all_rows: dict, alpha: float, methods) -> tuple[list[dict], list[dict]]:
    detectors = ["mmd", "classifier", "ks", "novelty", "label_shift", "prototype_displacement"]
    table = []
    calib = []
    for ds_name, by_scen in all_rows.items():
        null = by_scen["null"]
        far_combined = np.mean([r["combined"] for r in null])
        thresholds = {}
        if methods:
            for m in methods:
                scores = np.array([r["evidently"][m][0] for r in null])
                # equal false-alarm rate: exceed-quantile matching steward's combined FAR (at least 1 trial)
                q = 1.0 - max(far_combined, 1.0 / len(null))
                thresholds[m] = float(np.quantile(scores, q))
        for scen, rows in by_scen.items():
            n = len(rows)
            rec = {"dataset": ds_name, "scenario": scen, "trials": n}
            for d in detectors:
                ps = [r["p"][d] for r in rows if d in r["p"]]
                rec[d] = float(np.mean(np.array(ps) <= alpha)) if ps else None
            rec["steward_combined"] = float(np.mean([r["combined"] for r in rows]))
            rec["steward_embeddings_only"] = float(np.mean([r["combined_embeddings_only"] for r in rows]))
            for m in methods or {}:
                rec[f"{m}_default"] = float(np.mean([r["evidently"][m][1] for r in rows]))
                rec[f"{m}_equal_far"] = float(np.mean([r["evidently"][m][0] > thresholds[m] for r in rows]))
            rec["steward_seconds"] = float(np.median([r["steward_seconds"] for r in rows]))
            table.append(rec)
        # calibration rows: every steward detector and the decisions on null trials
        n = len(null)
        for d in detectors + ["steward_combined", "steward_embeddings_only"] + [f"{m}_default" for m in methods or {}]:
            if d == "steward_combined":
                k = int(sum(r["combined"] for r in null))
            elif d == "steward_embeddings_only":
                k = int(sum(r["combined_embeddings_only"] for r in null))
            elif d.endswith("_default"):
                k = int(sum(r["evidently"][d[: -len("_default")]][1] for r in null))
            else:
                k = int(sum(r["p"][d] <= alpha for r in null if d in r["p"]))
            lo, hi = rate_ci(k, n)
            from scipy.stats import binom

            upper_ok = float(binom.ppf(0.975, n, alpha)) / n  # the binomial 95% interval around α
            calib.append({
                "dataset": ds_name, "test": d, "false_alarms": k, "trials": n, "rate": k / n,
                "ci95_low": lo, "ci95_high": hi, "alpha_interval_high": upper_ok,
                "within_target": bool(k / n <= upper_ok),
            })
    return table, calib


def novelty_null(ds, trials: int, args, config) -> dict:
    """Many more null trials for the novelty detector alone (it is cheap), to tell a miscalibrated
    test from a 200-trial fluctuation."""
    from scipy.stats import binom

    from monitoring.detectors.novelty import novelty_test

    k = 0
    for t in tqdm(range(trials), desc=f"{ds.name}/novelty-null", leave=False):
        rng = np.random.default_rng([7, t])
        ref, ry, cur, _ = make_trial(ds, "null", rng, args.n_ref, args.n_cur, Shifts())
        r = novelty_test(ref, cur, reference_labels=ry.astype(str), config=config.novelty, seed=t)
        k += r.p_value <= config.alpha
    lo, hi = rate_ci(k, trials)
    return {"dataset": ds.name, "test": "novelty", "false_alarms": k, "trials": trials, "rate": k / trials,
            "ci95_low": lo, "ci95_high": hi,
            "alpha_interval_high": float(binom.ppf(0.975, trials, config.alpha)) / trials,
            "within_target": bool(k / trials <= float(binom.ppf(0.975, trials, config.alpha)) / trials)}


def latency(config, repeats: int) -> dict:
    """One full check (all six detectors and the decision, no HTML) at 10,000×384 vs 2,000×384."""
    import torch

    from monitoring.suite import run_suite

    ds = Synthetic(seed=1)
    rng = np.random.default_rng(99)
    ref, ry = ds.sample(rng, 10_000, KNOWN)
    cur, cy = ds.sample(rng, 2_000, KNOWN)
    ry, cy = ry.astype(str), cy.astype(str)
    run_suite(ref, cur, reference_labels=ry, current_labels=cy, config=config)  # warm-up (imports)
    times, parts = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        res = run_suite(ref, cur, reference_labels=ry, current_labels=cy, config=replace(config, seed=i))
        times.append(time.perf_counter() - t0)
        parts.append(res.seconds)
    per = {k: float(np.median([p[k] for p in parts])) for k in parts[0]}
    return {
        "shape": "10000x384 vs 2000x384",
        "torch_threads": torch.get_num_threads(),
        "seconds_median": float(np.median(times)),
        "seconds_min": float(np.min(times)),
        "seconds_all": times,
        "per_detector_median": per,
    }


def _cli_suffix(argv) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return (" " + " ".join(args)) if args else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--null-trials", type=int, default=200)
    ap.add_argument("--shift-trials", type=int, default=20)
    ap.add_argument("--n-ref", type=int, default=1000, help="reference rows per trial")
    ap.add_argument("--n-cur", type=int, default=200, help="current rows per trial")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--n-permutations", type=int, default=200)
    ap.add_argument("--datasets", default="synthetic,digits")
    ap.add_argument("--no-evidently", action="store_true")
    ap.add_argument("--results-name", default="drift",
                    help="name of the results (JSON file and RESULTS.md section); lets a full-size run sit beside the default one")
    ap.add_argument("--latency-repeats", type=int, default=5)
    ap.add_argument("--novelty-null-trials", type=int, default=1000,
                    help="extra null trials for the (cheap) novelty detector alone")
    ap.add_argument(
        "--trial-threads", type=int, default=1,
        help="torch threads during the small trials (default 1: on shared cores more threads only contend); "
        "the latency figure uses torch's default",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.null_trials, args.shift_trials, args.latency_repeats, args.novelty_null_trials = 10, 3, 1, 50
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import torch
    from threadpoolctl import threadpool_limits

    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.trial_threads)
    blas_limit = threadpool_limits(args.trial_threads)  # numpy/scipy BLAS: same reason

    from monitoring.config import DriftConfig
    from monitoring.detectors.mmd import MMDConfig

    config = DriftConfig(alpha=args.alpha, mmd=MMDConfig(n_permutations=args.n_permutations))
    methods = None if args.no_evidently else evidently_methods()
    shifts = Shifts()
    makers = {"synthetic": Synthetic, "digits": Digits}
    all_rows: dict = {}
    t_start = time.perf_counter()
    for i, name in enumerate(args.datasets.split(",")):
        ds = makers[name](seed=0)
        all_rows[name] = {}
        for scen in SCENARIOS:
            trials = args.null_trials if scen == "null" else args.shift_trials
            all_rows[name][scen] = run_trials(ds, scen, trials, args, config, methods, shifts, seed0=100 + i)
            log.info("%s/%s done (%.0fs elapsed)", name, scen, time.perf_counter() - t_start)

    table, calib = summarise(all_rows, args.alpha, methods)
    extra_null = {ds_name: novelty_null(makers[ds_name](seed=0), args.novelty_null_trials, args, config)
                  for ds_name in all_rows} if args.novelty_null_trials else {}
    blas_limit.restore_original_limits()
    torch.set_num_threads(default_threads)  # after the restore: threadpoolctl also resets OpenMP
    lat_rows = []
    for threads in (1, default_threads):
        # both settings: on a loaded shared machine one thread is often faster than two
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            lat_rows.append({**latency(DriftConfig(alpha=args.alpha), args.latency_repeats), "torch_threads": threads})
        log.info("latency: %s", lat_rows[-1])
    torch.set_num_threads(default_threads)
    lat = min(lat_rows, key=lambda r: r["seconds_median"])

    det_cols = ["dataset", "scenario", "trials", "mmd", "classifier", "ks", "novelty", "label_shift",
                "prototype_displacement", "steward_combined", "steward_embeddings_only"]
    ev_default = [f"{m}_default" for m in methods or {}]
    ev_equal = [f"{m}_equal_far" for m in methods or {}]
    short = {c: c.replace("evidently_", "ev_") for c in ev_default + ev_equal}
    ev_rows = [{"dataset": r["dataset"], "scenario": r["scenario"], "steward_combined": r["steward_combined"],
                **{short[c]: r[c] for c in ev_default + ev_equal}} for r in table]
    best_ok = []
    for r in table:
        if r["scenario"] == "null" or not methods:
            continue
        best = max(r[c] for c in ev_equal)
        best_ok.append({"dataset": r["dataset"], "scenario": r["scenario"], "steward_combined": r["steward_combined"],
                        "best_evidently_equal_far": best, "meets_target": r["steward_combined"] >= best})
    md = [
        f"## Drift detection (`python -m benchmarks.drift{_cli_suffix(argv)}`)",
        "",
        (
            f"Trials: reference {args.n_ref}×{DIM}, current {args.n_cur}×{DIM} per trial"
            + (" (reduced from 10,000/2,000 to keep the run bounded on 2 shared cores)"
               if (args.n_ref, args.n_cur) < (10_000, 2_000) else " (the issue's full size)")
            + f"; {args.null_trials} null trials and "
            f"{args.shift_trials} trials per shift per dataset; α = {args.alpha}; MMD with {args.n_permutations} "
            "permutations. Rates are the share of trials flagged (at the detector's own p ≤ α for single "
            "detectors; the steward decision is Holm-corrected across detectors). Evidently's `_equal_far` "
            "columns use a threshold set on its own null-trial scores to match steward's combined false-alarm "
            "rate (in-sample, so it flatters Evidently)."
            + ("" if methods else " Evidently was not run in this configuration (--no-evidently).")
            + " Timings were taken while other work shared the CPU."
        ),
        "",
        "### False alarms on no-drift data (target: at or below the binomial 95% interval around α)",
        "",
        markdown_table(calib, ["dataset", "test", "false_alarms", "trials", "rate", "ci95_low", "ci95_high",
                               "alpha_interval_high", "within_target"]),
        "",
        f"Novelty alone, {args.novelty_null_trials} further null trials per dataset:",
        "",
        markdown_table(list(extra_null.values()), ["dataset", "test", "false_alarms", "trials", "rate", "ci95_low",
                                                   "ci95_high", "alpha_interval_high", "within_target"]),
        "",
        "### Detection rate per scenario (steward detectors)",
        "",
        markdown_table(table, det_cols),
        "",
    ]
    if methods:
        md += [
            "### Side by side with Evidently (default thresholds, and at steward's false-alarm rate)",
            "",
            markdown_table(ev_rows, ["dataset", "scenario", "steward_combined"] + [short[c] for c in ev_default + ev_equal]),
            "",
            markdown_table(best_ok, ["dataset", "scenario", "steward_combined", "best_evidently_equal_far", "meets_target"]),
            "",
        ]
    md += [
        "### Latency of one full check (all 6 detectors + decision, no HTML), 10,000×384 vs 2,000×384",
        "",
        markdown_table([{"threads": r["torch_threads"], "median_s": r["seconds_median"], "min_s": r["seconds_min"],
                         **{f"{k}_s": v for k, v in r["per_detector_median"].items()}} for r in lat_rows]),
    ]
    write_results(args.results_name, {"args": vars(args), "shifts": shifts.__dict__, "detection": table,
                            "calibration": calib, "novelty_null": extra_null, "vs_evidently": best_ok, "latency": lat, "latency_by_threads": lat_rows}, "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
