"""End-to-end wall time of steward's commands, as a person runs them: real subprocesses on the demo
collection, plus the in-process drift check at 10k x 384 vs 2k x 384 and where `steward drift`'s
import time goes.

    python -m benchmarks.commands            # ~5-10 min on 2 cores (most of it building the demo home)
    python -m benchmarks.commands --quick    # 3 runs per command instead of 5

The demo collection is built in a temporary STEWARD_HOME with the demo's own data functions
(``steward.demo.digits_stream`` / ``write_batch``: scikit-learn digits, 5 batches, ~1,800 rows) and
the in-process maintenance cycle (``Steward.run``, what ``steward run`` does without a Prefect
server). Each command is then run as ``python -m steward.cli ...`` in a fresh process: one warm-up
run (not counted), then N timed runs; the median is reported against the target. No Prefect server
is configured (PREFECT_API_URL unset, PREFECT_HOME in the temporary folder).

Targets (issue 13, on an idle 2-core machine): ``steward drift -c digits`` <= 1.5 s, ``steward run
-c digits`` with nothing new <= 3 s, the in-process check at 10k x 384 vs 2k x 384 <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._results import markdown_table, write_results

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"drift": 1.5, "run (nothing new)": 3.0, "in-process check 10k x 384 vs 2k x 384": 1.0}
HEAVY = ("torch", "prefect", "evidently", "faiss", "pandas", "sklearn", "scipy", "sqlalchemy", "pyarrow",
         "sentence_transformers", "transformers")
# Timed where first imported (at any depth): the heavy packages and the scipy/sklearn parts the detectors use.
COSTLY = (*HEAVY, "scipy.stats", "scipy.optimize", "scipy.special", "sklearn.covariance", "alembic")


def build_demo_home(home: Path, batches: int = 5, seed: int = 0) -> dict[str, Any]:
    """The demo collection ``digits`` in ``home``: the demo's batches through the in-process cycle."""
    import steward
    from steward.demo import digits_stream, write_batch

    x, y, stream = digits_stream(batches, seed)
    inputs = home / "incoming"
    inputs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    outcomes = []
    with steward.open(home=home) as st:
        for i, batch in enumerate(stream, start=1):
            path = write_batch(inputs / f"{batch.name}.parquet", x, y, batch, seed + i)
            outcomes.append(st.run("digits", [path]).outcome)
        rows = sum(b.rows for b in st.batches("digits"))
    return {"rows": rows, "batches": len(stream), "outcomes": outcomes, "seconds": time.perf_counter() - started}


def command_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STEWARD_", "PREFECT_")) and k not in ("PYTHONSTARTUP",)}
    env.update({"STEWARD_HOME": str(home), "PREFECT_HOME": str(home / "prefect"), "HF_HUB_OFFLINE": "1",
                "PYTHONPATH": str(REPO), "STEWARD_PREFECT_EVENTS": "off"})
    return env


def time_command(args: list[str], env: dict[str, str], cwd: Path, runs: int) -> dict[str, Any]:
    """Wall seconds of ``python -m steward.cli *args`` in fresh processes: 1 warm-up, then ``runs``."""
    cmd = [sys.executable, "-m", "steward.cli", *args]
    times, cpus, codes = [], [], []
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
        dt = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds (user + system) of the child: much less sensitive to other people's load than wall time.
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if proc.returncode not in (0, 10):  # 10: drift found (an answer, not a failure)
            raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
        if i:
            times.append(dt)
            cpus.append(cpu)
            codes.append(proc.returncode)
    return {"command": "steward " + " ".join(args), "runs": runs, "median_s": statistics.median(times),
            "median_cpu_s": statistics.median(cpus), "cpu_s": cpus,
            "min_s": min(times), "max_s": max(times), "times_s": times, "exit_codes": sorted(set(codes)),
            "stdout_tail": proc.stdout[-600:]}


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_breakdown(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """``python -X importtime`` of one command: top-level imports by cumulative time, and the heavy ones."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "steward.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, check=False)
    top: dict[str, float] = {}
    first: dict[str, float] = {}
    seen: set[str] = set()
    for line in proc.stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if not m:
            continue
        name = m.group(4)
        seen.add(name.split(".")[0])
        if name in COSTLY:  # where it is first imported, at whatever depth: its whole cost
            first.setdefault(name, int(m.group(2)) / 1e6)
        if len(m.group(3)) <= 1:  # a top-level import (one space after the bar): its cumulative time counts once
            root = name.split(".")[0]
            top[root] = top.get(root, 0.0) + int(m.group(2)) / 1e6
    ranked = sorted(top.items(), key=lambda kv: -kv[1])
    return {"command": "steward " + " ".join(args), "exit_code": proc.returncode,
            "total_import_s": sum(top.values()),
            "top_level_s": dict(ranked[:15]),
            "heavy_imported": {h: h in seen for h in HEAVY}, "heavy_s": first,
            "torch_imported": "torch" in seen, "torch_s": first.get("torch")}


def _mixture(rng: np.random.Generator, n: int, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows around ``centres`` (one class each): a stream with no drift between its batches."""
    y = rng.integers(0, len(centres), n)
    x = centres[y] + rng.standard_normal((n, centres.shape[1]))
    return x.astype(np.float32), np.array([f"c{k}" for k in y], dtype=object)


def _table(x: np.ndarray, y: np.ndarray, start: int):
    import pyarrow as pa

    return pa.table({"item_id": [f"i{start + i}" for i in range(len(x))], "label": list(y),
                     "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), x.shape[1])})


LIBRARY_SETS = ("numpy", "sqlalchemy, pyarrow.parquet, alembic", "torch", "scipy.special", "scipy.stats",
                "scipy.optimize", "sklearn.covariance", "scipy.stats, scipy.optimize, sklearn.covariance", "pandas")


def library_import_cpu(runs: int) -> dict[str, float]:
    """CPU seconds (user + system, median of ``runs`` fresh processes) to import each library set beyond
    ``import numpy``: what a command pays for its dependencies, fairly independent of others' load."""
    def cpu(stmt: str) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", stmt], check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    base = statistics.median(cpu("import numpy") for _ in range(runs))
    out = {"python + numpy": base}
    for libs in LIBRARY_SETS[1:]:
        out[libs] = max(0.0, statistics.median(cpu(f"import numpy; import {libs}") for _ in range(runs)) - base)
    return out


def inprocess_check(n_ref: int, n_cur: int, dim: int, runs: int, seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """The drift check in this process at ``n_ref`` x ``dim`` vs ``n_cur`` x ``dim``: the detectors and the
    decision (``run_suite``), and the whole ``check_drift`` on a raw-feature collection (read, embed,
    test, record)."""
    from core.settings import load_settings
    from monitoring.check import check_drift
    from monitoring.config import DriftConfig
    from monitoring.suite import run_suite
    from storage.workspace import open_workspace

    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        c = rng.standard_normal((8, dim))
        ref, ref_y = _mixture(rng, n_ref, c)
        cur, cur_y = _mixture(rng, n_cur, c)
        ref_n = (ref / np.linalg.norm(ref, axis=1, keepdims=True)).astype(np.float32)
        cur_n = (cur / np.linalg.norm(cur, axis=1, keepdims=True)).astype(np.float32)
        run_suite(ref_n[:500], cur_n[:100], reference_labels=ref_y[:500], current_labels=cur_y[:100],
                  config=DriftConfig(seed=seed))  # warm-up: first-call imports are not the check's cost
        suite_t, suite_cpu = [], []
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            res = run_suite(ref_n, cur_n, reference_labels=ref_y, current_labels=cur_y, config=DriftConfig(seed=seed))
            suite_t.append(time.perf_counter() - t0)
            suite_cpu.append(time.process_time() - c0)
        with tempfile.TemporaryDirectory(prefix="steward-bench-check-") as tmp:
            settings = load_settings(env={"STEWARD_HOME": str(Path(tmp) / "home")}, config_path=None)
            ws = open_workspace(settings)
            try:
                ws.store.ingest_table(_table(ref, ref_y, 0), "big")
                ws.store.ingest_table(_table(cur, cur_y, 10 * n_ref), "big")
                check_t, check_cpu, seconds = [], [], {}
                for _ in range(runs):
                    t0, c0 = time.perf_counter(), time.process_time()
                    summary = check_drift(ws, "big", notify=False, reference_batches=1)
                    check_t.append(time.perf_counter() - t0)
                    check_cpu.append(time.process_time() - c0)
                    seconds = summary.seconds
            finally:
                ws.close()
        rows.append({"seed": seed, "n_reference": n_ref, "n_current": n_cur, "dim": dim,
                     "run_suite_median_s": statistics.median(suite_t), "run_suite_times_s": suite_t,
                     "run_suite_median_cpu_s": statistics.median(suite_cpu),
                     "check_drift_median_s": statistics.median(check_t), "check_drift_times_s": check_t,
                     "check_drift_median_cpu_s": statistics.median(check_cpu),
                     "check_drift_phases_s": seconds, "status": res.decision.status})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 timed runs per command instead of 5")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the in-process check's data")
    ap.add_argument("--results-name", default="commands")
    ap.add_argument("--size", type=int, nargs=2, default=[10_000, 2_000], metavar=("REF", "CUR"),
                    help="rows of the in-process check's reference and current batch (default 10000 2000)")
    args = ap.parse_args(argv)
    runs = args.runs or (3 if args.quick else 5)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="steward-bench-commands-") as tmp:
        root = Path(tmp)
        home = root / "home"
        print(f"building the demo collection in {home} ...", flush=True)
        demo = build_demo_home(home)
        print(f"  {demo['rows']} rows in {demo['batches']} batches, {demo['seconds']:.0f} s: {demo['outcomes']}")
        env = command_env(home)
        cwd = root  # no steward.toml here
        commands = {
            "--help": ["--help"],
            "status": ["status"],
            "drift": ["drift", "-c", "digits"],
            "run (nothing new)": ["run", "-c", "digits"],
        }
        timed = {}
        for name, cmd in commands.items():
            print(f"timing steward {' '.join(cmd)} ({runs} runs) ...", flush=True)
            timed[name] = time_command(cmd, env, cwd, runs)
            print(f"  median {timed[name]['median_s']:.2f} s")
        drift_json = json.loads(subprocess.run(
            [sys.executable, "-m", "steward.cli", *commands["drift"], "--json"], env=env, cwd=cwd,
            capture_output=True, text=True, check=False).stdout)
        drift_phases = {"seconds": drift_json.get("seconds"), "reference_items": drift_json.get("reference_items"),
                        "status": drift_json.get("status"), "batch_seq": drift_json.get("batch_seq")}
        imports = {name: import_breakdown(cmd, env, cwd) for name, cmd in
                   (("drift", commands["drift"]), ("--help", commands["--help"]))}
    print("timing library imports ...", flush=True)
    libs = library_import_cpu(runs)
    print("timing the in-process check ...", flush=True)
    check = inprocess_check(args.size[0], args.size[1], 384, runs, tuple(args.seeds))
    load_after = os.getloadavg()

    rows = []
    for name, t in timed.items():
        rows.append({"command": t["command"], "median s": t["median_s"], "min s": t["min_s"], "max s": t["max_s"],
                     "median CPU s": t["median_cpu_s"],
                     "target s": TARGETS.get(name), "meets": None if name not in TARGETS else t["median_s"] <= TARGETS[name]})
    check_name = "in-process check 10k x 384 vs 2k x 384"
    for r in check:
        for what, key in (("run_suite (detectors + decision)", "run_suite_median_s"),
                          ("check_drift (read, embed, test, record)", "check_drift_median_s")):
            rows.append({"command": f"{what}, seed {r['seed']}", "median s": r[key],
                         "median CPU s": r[key.replace("median_s", "median_cpu_s")],
                         "min s": min(r[key.replace("median_s", "times_s")]),
                         "max s": max(r[key.replace("median_s", "times_s")]),
                         "target s": TARGETS[check_name], "meets": r[key] <= TARGETS[check_name]})
    imp = imports["drift"]
    top = ", ".join(f"{k} {v:.2f}" for k, v in list(imp["top_level_s"].items())[:8])
    heavy = ", ".join(h for h, on in imp["heavy_imported"].items() if on) or "none"
    help_heavy = ", ".join(h for h, on in imports["--help"]["heavy_imported"].items() if on) or "none"
    md = [
        "## Command wall time (`benchmarks/commands.py`)",
        "",
        (f"Real subprocesses (`python -m steward.cli ...`, fresh process each, 1 warm-up then median of {runs}) on "
        f"the demo collection (`digits`, {demo['rows']} rows in {demo['batches']} batches, built with the demo's "
        "data functions and the in-process cycle in a temporary STEWARD_HOME); no Prefect server configured. "
        f"**Taken on the shared 2-core development machine** (load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after): the targets are for an idle machine, so read the figures as upper bounds."),
        "",
        markdown_table(rows, ["command", "median s", "min s", "max s", "median CPU s", "target s", "meets"]),
        "",
        ("`meets` compares the median wall time with the target. CPU s is the process's user + system time "
        "(in-process: `time.process_time`, all threads): less sensitive to others' load than wall time, and "
        "on an idle machine the wall time of a single-threaded command is close to it."),
        "",
        f"Import time of `steward drift -c digits` (`python -X importtime`): {imp['total_import_s']:.2f} s in all; "
        f"top-level: {top}. Heavy packages imported: {heavy}. torch imported: **{imp['torch_imported']}**"
        + (f" ({imp['torch_s']:.2f} s)" if imp["torch_s"] else "")
        + f". `steward --help` imports: {help_heavy}. Heavy imports of `steward drift` (cumulative s where first "
        "imported): " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(imp["heavy_s"].items(), key=lambda kv: -kv[1]))
        + ".",
        "",
        f"One `steward drift -c digits --json` (batch {drift_phases['batch_seq']}, {drift_phases['status']}): "
        + ", ".join(f"{k} {v:.3f}" for k, v in (drift_phases["seconds"] or {}).items())
        + f" s; reference: {drift_phases['reference_items']}.",
        "",
        "CPU seconds to import the libraries on the drift path, beyond `import numpy` (median of fresh processes; "
        "sets overlap): " + ", ".join(f"{k} {v:.2f}" for k, v in libs.items()) + " (what the drift path would "
        "pay for each if it imported it; see the heavy imports above for what it does import).",
        "",
        "Per-phase seconds of one in-process check_drift (seed "
        f"{check[0]['seed']}): " + ", ".join(f"{k} {v:.3f}" for k, v in check[0]["check_drift_phases_s"].items()) + ".",
    ]
    data = {"runs": runs, "load_average_before": load_before, "load_average_after": load_after, "demo": demo,
            "commands": timed, "drift_phases": drift_phases, "library_import_cpu_s": libs, "imports": imports, "inprocess_check": check, "targets": TARGETS,
            "note": "shared, loaded 2-core machine: timings are upper bounds of an idle machine's"}
    path = write_results(args.results_name, data, "\n".join(md))
    print("\n".join(md))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
