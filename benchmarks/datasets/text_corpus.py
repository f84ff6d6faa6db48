"""A real, reusable text corpus for the benchmarks: docstrings of the installed Python packages,
labelled by top-level package, embedded with the repository's MiniLM text encoder.

    corpus = load_text_corpus()                  # 8k texts, 20 labels, (n, 384) float32 embeddings
    steps = class_incremental_steps(corpus, steps=5, seed=0)
    write_parquet(corpus, "docs.parquet")        # steward-ingestable: item_id, label, group, kind, features

Build and print the statistics and the raw-embedding retrieval figures:

    HF_HUB_OFFLINE=1 python -m benchmarks.datasets.text_corpus --build [--name docstrings] [--seed 0]

How the text is collected, cleaned and selected, and the caveats: ``benchmarks/datasets/README.md``.
Everything is cached under ``benchmarks/.cache/text_corpus/``; a second load neither re-imports
packages nor re-encodes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from benchmarks.datasets import cache
from benchmarks.datasets.cleaning import MAX_CHARS, MIN_CHARS
from benchmarks.datasets.collect import (
    REFERENCE_PACKAGES,
    CollectConfig,
    Collection,
    collect,
    environment_fingerprint,
    installed_packages,
    package_versions,
    stdlib_packages,
)
from benchmarks.datasets.metadata_topics import topic_census
from benchmarks.datasets.selection import CorpusRow, clean_rows, content_hash, select_rows
from core.errors import ConfigError, ValidationError
from embedding.model import TEXT_ENCODER_NAME

log = logging.getLogger("benchmarks.datasets.text_corpus")
NAMES = ("docstrings", "metadata")
DEFAULT_SEED = 0
DEFAULT_MIN_PER_LABEL = 150
DEFAULT_MAX_PER_LABEL = 400
DEFAULT_MAX_LABELS = 20
# The opening prose of a docstring (summary + extended summary, up to MAX_CHARS), not only its
# one-line summary: with the summary alone raw MAP@R was 0.083 (30 labels), with the opening
# prose 0.121; see README.md.
DEFAULT_MAX_PARAGRAPHS = 4
KINDS = ("module", "class", "function", "method")
ENCODE_CHUNK = 512
REFERENCE_MANIFEST = Path(__file__).with_name("docstrings.manifest.json")


class Encoder(Protocol):
    """What the loader needs from an encoder (``embedding.model.TextEncoder`` fits)."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class TextCorpus:
    """Rows in label, group, name order; ``embeddings`` row i belongs to ``texts[i]``."""

    item_ids: np.ndarray
    texts: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    kinds: np.ndarray
    names: np.ndarray
    embeddings: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels.tolist()))

    def subset(self, rows: np.ndarray | Sequence[int]) -> TextCorpus:
        """The rows given by an index array or a boolean mask, same meta."""
        idx = np.asarray(rows)
        return TextCorpus(self.item_ids[idx], self.texts[idx], self.labels[idx], self.groups[idx],
                          self.kinds[idx], self.names[idx], self.embeddings[idx], self.meta)


@dataclass(frozen=True, eq=False)
class IncrementalStep:
    """One arrival step: its classes, and the corpus rows of those classes split into train/test.

    ``x_*``/``y_*`` carry the same names as ``benchmarks.continual.Step``, so a step can stand in
    for one. Train and test indices are in corpus order (label, group, name)."""

    step: int
    classes: tuple[str, ...]
    train_idx: np.ndarray
    test_idx: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


# ----------------------------------------------------------------------------------------- loading

def _default_encoder() -> Encoder:
    from embedding.model import get_text_encoder

    return get_text_encoder("cpu")


def _collection(pkgs: list[str], key: str, config: CollectConfig, cache_dir: Path,
                refresh: bool) -> tuple[Collection, bool]:
    cached = None if refresh else cache.load_collection(cache_dir, key)
    if cached is not None:
        log.info("collection %s: %d docstrings from the cache", key, len(cached.docs))
        return cached, True
    log.info("collecting docstrings from %d packages (cache key %s)", len(pkgs), key)
    result = collect(pkgs, config)
    # An import that timed out (a heavy package on a loaded machine) drops that package, so the corpus
    # would depend on the load: refuse it (nothing cached) rather than benchmark on a different corpus.
    timed_out = sorted(st["label"] for st in result.stats if st.get("failures", {}).get("timeout"))
    if timed_out:
        raise ValidationError(f"importing {timed_out} timed out after {config.module_timeout_s:.0f} s (machine "
                              "under load?): the corpus would miss these packages; nothing was cached, rerun "
                              "the build on a quieter machine")
    cache.save_collection(cache_dir, key, result)
    return result, False


def encode_texts(texts: list[str], encoder: Encoder, chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """Encode in chunks of similar length (less padding), logging progress; rows in input order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    start = time.monotonic()
    for i in range(0, len(order), chunk):
        idx = order[i:i + chunk]
        emb = np.asarray(encoder.encode([texts[j] for j in idx]), dtype=np.float32)
        if out is None:
            out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
        out[idx] = emb
        done, elapsed = i + len(idx), time.monotonic() - start
        log.info("encoded %d/%d texts (%.0f/s, %.0fs left)", done, len(texts), done / max(elapsed, 1e-9),
                 (len(texts) - done) * elapsed / done)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def _summary(rows: Sequence[CorpusRow]) -> dict[str, Any]:
    counts = Counter(r.label for r in rows)
    groups: dict[str, set[str]] = {}
    for r in rows:
        groups.setdefault(r.label, set()).add(r.group)
    return {"n": len(rows), "labels": len(counts), "per_label": dict(sorted(counts.items())),
            "groups_per_label": {lb: len(g) for lb, g in sorted(groups.items())},
            "kinds": dict(sorted(Counter(r.kind for r in rows).items()))}


def _collection_summary(collection: Collection, labels: set[str]) -> dict[str, Any]:
    stats = collection.stats_by_label()
    chosen = {lb: stats[lb] for lb in sorted(labels) if lb in stats}
    return {"packages_walked": len(stats), "modules_imported": sum(s["modules"] or 0 for s in stats.values()),
            "import_failures": sum(sum(s["failures"].values()) for s in stats.values()),
            "truncated": {lb: s["truncated"] for lb, s in chosen.items() if s["truncated"]},
            "chosen_label_stats": chosen}


def _build_rows(name: str, seed: int, params: dict[str, Any], pkgs: list[str], collection_key: str,
                config: CollectConfig, cache_dir: Path, refresh: bool) -> tuple[list[CorpusRow], dict[str, Any]]:
    """Collect (or read the collection), clean and select; the rows and their build metadata."""
    collection, from_cache = _collection(pkgs, collection_key, config, cache_dir, refresh)
    t = time.monotonic()
    rows, cleaning = clean_rows(collection.docs, min_chars=params["min_chars"], max_chars=params["max_chars"],
                                max_paragraphs=params["max_paragraphs"])
    rows = [r for r in rows if r.kind in params["kinds"]]
    selected = select_rows(rows, seed=seed, min_per_label=params["min_per_label"],
                           max_per_label=params["max_per_label"], max_labels=params["max_labels"])
    log.info("cleaned and selected %d of %d docstrings in %.1fs", len(selected), len(collection.docs),
             time.monotonic() - t)
    labels = {r.label for r in selected}
    timed_out = sorted(lb for lb in labels if collection.stats_by_label()[lb]["truncated"] == "time_budget")
    if timed_out:
        log.warning("the walk of %s was cut by the time budget: this corpus may differ from another build "
                    "(raise CollectConfig.package_budget_s)", ", ".join(timed_out))
    meta = {"name": name, "seed": seed, "content_hash": content_hash(selected), "params": params,
            **_summary(selected), "cleaning": asdict(cleaning), "python": sys.version.split()[0],
            "package_versions": package_versions(labels), "collection": _collection_summary(collection, labels),
            "seconds_collect": round(collection.seconds, 1), "collection_from_cache": from_cache}
    return selected, meta


def cached_embeddings(texts: Sequence[str], path: Path, encoder: Encoder | None,
                      refresh: bool) -> tuple[np.ndarray, float | None]:
    """Cached embeddings of ``texts`` (at ``path``) or, failing that, freshly encoded ones (and their
    seconds; None when read from the cache). ``encoder`` None: the repository's MiniLM encoder."""
    if not refresh and path.exists():
        embeddings = np.load(path)
        if len(embeddings) == len(texts):
            return embeddings, None
        log.warning("cached embeddings %s have %d rows for %d texts: re-encoding", path, len(embeddings), len(texts))
    t = time.monotonic()
    embeddings = encode_texts(list(texts), encoder or _default_encoder())
    cache.write_npy(path, embeddings)
    return embeddings, round(time.monotonic() - t, 1)


def load_text_corpus(name: str = "docstrings", seed: int = DEFAULT_SEED, *,
                     min_per_label: int = DEFAULT_MIN_PER_LABEL, max_per_label: int = DEFAULT_MAX_PER_LABEL,
                     max_labels: int = DEFAULT_MAX_LABELS, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS,
                     max_paragraphs: int = DEFAULT_MAX_PARAGRAPHS, kinds: Sequence[str] = KINDS,
                     packages: Sequence[str] | None = REFERENCE_PACKAGES, collect_config: CollectConfig | None = None,
                     encoder: Encoder | None = None, cache_dir: Path | str | None = None,
                     refresh: bool = False) -> TextCorpus:
    """Collect (or read from the cache), clean, select and embed the corpus.

    ``seed`` picks the sample within each label (the labels do not depend on it). ``kinds``
    keeps only docstrings of those kinds (methods are the most generic texts). ``packages`` are
    the top-level packages walked (default: ``REFERENCE_PACKAGES``, the 20 labels of the reference
    build; ``None``: the public standard library and every installed package, whose largest
    labels change whenever someone installs something).
    ``encoder`` defaults to the repository's MiniLM encoder; any object with ``name`` and
    ``encode(texts) -> (n, d)`` works (its name keys the embedding cache). ``refresh`` ignores
    the caches and rebuilds everything.

    A load with parameters seen before, in an unchanged environment, reads the selected rows and
    their embeddings straight from the cache (no import, no cleaning, no encoding).
    """
    if name not in NAMES:
        raise ConfigError(f"unknown corpus {name!r}; choose one of {', '.join(NAMES)}")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ConfigError(f"kinds {unknown or list(kinds)!r} invalid; choose among {', '.join(KINDS)}")
    if name == "metadata":
        census = topic_census()
        raise ValidationError(f"the METADATA corpus is not built: {census.verdict()} "
                              f"(largest topics: {census.largest(6)}); use name='docstrings'")
    cache_dir = Path(cache_dir) if cache_dir is not None else cache.DEFAULT_CACHE_DIR
    config = collect_config or CollectConfig()
    pkgs = sorted(set(packages)) if packages is not None else stdlib_packages() + installed_packages()
    collection_key = cache.collection_key(pkgs, config, environment_fingerprint())
    params = {"min_per_label": min_per_label, "max_per_label": max_per_label, "max_labels": max_labels,
              "min_chars": min_chars, "max_chars": max_chars, "max_paragraphs": max_paragraphs,
              "kinds": sorted(kinds), "collect": asdict(config),
              "packages": pkgs if packages is not None else "all installed"}
    selection_key = cache.selection_key(collection_key, name, seed, params)
    found = None if refresh else cache.load_selection(cache_dir, name, selection_key)
    if found is not None:
        rows, meta = [CorpusRow(**r) for r in found[0]], found[1]
    else:
        rows, meta = _build_rows(name, seed, params, pkgs, collection_key, config, cache_dir, refresh)
        cache.save_selection(cache_dir, name, selection_key, [asdict(r) for r in rows], meta)
    encoder_name = encoder.name if encoder is not None else TEXT_ENCODER_NAME
    emb_path = cache.embeddings_path(cache_dir, name, meta["content_hash"], encoder_name)
    embeddings, seconds_encode = cached_embeddings([r.text for r in rows], emb_path, encoder, refresh)
    if seconds_encode is not None:  # keep the build's encoding time with the cached rows
        meta.setdefault("seconds_encode", {})[encoder_name] = seconds_encode
        cache.save_selection(cache_dir, name, selection_key, [asdict(r) for r in rows], meta)
    # What this load read from the cache (the rest of meta describes the build).
    meta = {**meta, "encoder": encoder_name, "embedding_dim": int(embeddings.shape[1]),
            "rows_from_cache": found is not None,
            "collection_from_cache": found is not None or meta["collection_from_cache"],
            "embeddings_from_cache": seconds_encode is None}
    return TextCorpus(
        item_ids=np.array([r.item_id for r in rows], dtype=str),
        texts=np.array([r.text for r in rows], dtype=str),
        labels=np.array([r.label for r in rows], dtype=str),
        groups=np.array([r.group for r in rows], dtype=str),
        kinds=np.array([r.kind for r in rows], dtype=str),
        names=np.array([r.name for r in rows], dtype=str),
        embeddings=np.ascontiguousarray(embeddings, dtype=np.float32),
        meta=meta,
    )


# ----------------------------------------------------------------------------------------- helpers

def class_incremental_steps(corpus: TextCorpus, steps: int, test_fraction: float = 0.25,
                            seed: int = 0) -> list[IncrementalStep]:
    """Classes shuffled by ``seed`` into ``steps`` groups (sizes differ by at most one); each class's
    items split into train/test with exactly round(test_fraction * n) test items per class."""
    classes = np.array(corpus.classes)
    if not 1 <= steps <= len(classes):
        raise ConfigError(f"steps={steps} must be between 1 and the number of classes ({len(classes)})")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction={test_fraction} must be strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    rng.shuffle(classes)
    is_test = np.zeros(len(corpus), dtype=bool)
    for c in corpus.classes:  # sorted, so each class's split does not depend on the shuffle
        idx = np.flatnonzero(corpus.labels == c)
        n_test = min(max(1, round(test_fraction * len(idx))), len(idx) - 1)
        is_test[rng.permutation(idx)[:n_test]] = True
    out = []
    for t, group in enumerate(np.array_split(classes, steps)):
        member = np.isin(corpus.labels, group)
        train_idx, test_idx = np.flatnonzero(member & ~is_test), np.flatnonzero(member & is_test)
        out.append(IncrementalStep(t, tuple(sorted(group.tolist())), train_idx, test_idx,
                                   corpus.embeddings[train_idx], corpus.labels[train_idx],
                                   corpus.embeddings[test_idx], corpus.labels[test_idx]))
    return out


def write_parquet(corpus: TextCorpus, path: str | Path, *, as_features: bool = True,
                  rows: np.ndarray | Sequence[int] | None = None) -> Path:
    """A steward-ingestable Parquet: ``item_id``, ``label``, ``group``, ``kind`` and either
    ``features`` (fixed-size list of float32) or ``text``; ``rows`` (indices or mask) selects rows."""
    part = corpus if rows is None else corpus.subset(rows)
    cols: dict[str, pa.Array] = {
        "item_id": pa.array(part.item_ids.tolist(), pa.string()),
        "label": pa.array(part.labels.tolist(), pa.string()),
        "group": pa.array(part.groups.tolist(), pa.string()),
        "kind": pa.array(part.kinds.tolist(), pa.string()),
    }
    if as_features:
        emb = np.ascontiguousarray(part.embeddings, dtype=np.float32)
        cols["features"] = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), emb.shape[1])
    else:
        cols["text"] = pa.array(part.texts.tolist(), pa.string())
    out = Path(path)
    cache.write_table(out, pa.table(cols))
    return out


# --------------------------------------------------------------------------------------------- CLI

def sanity_figures(corpus: TextCorpus) -> dict[str, Any]:
    """Raw-embedding retrieval over the whole corpus (leave-one-out), overall and per label."""
    from embedding.evaluation import per_class_metrics, retrieval_metrics

    t = time.monotonic()
    overall = retrieval_metrics(corpus.embeddings, corpus.labels)
    per_label = per_class_metrics(corpus.embeddings, corpus.labels)
    return {"overall": overall.to_dict(), "per_label": per_label, "seconds": round(time.monotonic() - t, 1)}


def _print_report(corpus: TextCorpus, figures: dict[str, Any]) -> None:
    m = corpus.meta
    print(f"corpus {m['name']}: {m['n']} texts, {m['labels']} labels, seed {m['seed']}, "
          f"content hash {m['content_hash'][:16]}")
    cached = [part for part in ("collection", "rows", "embeddings") if m[f"{part}_from_cache"]]
    enc = m.get("seconds_encode", {}).get(m["encoder"])
    print(f"build: collect {m['seconds_collect']}s, encode {'not recorded' if enc is None else f'{enc}s'} "
          f"({m['encoder']}); this load read {', '.join(cached) or 'nothing'} from the cache; kinds {m['kinds']}")
    print(f"cleaning: {m['cleaning']}")
    print(f"{'label':24s} {'texts':>5s} {'groups':>6s} {'MAP@R':>6s} {'P@1':>6s}  version")
    for lb, n in m["per_label"].items():
        pc = figures["per_label"].get(lb)
        map_r, p1 = (pc.map_at_r, pc.precision_at_1) if pc is not None else (float("nan"), float("nan"))
        print(f"{lb:24s} {n:5d} {m['groups_per_label'][lb]:6d} {map_r:6.3f} "
              f"{p1:6.3f}  {m['package_versions'].get(lb, '')}")
    o = figures["overall"]
    print(f"raw MiniLM, whole corpus, leave-one-out: MAP@R {o['map_at_r']:.3f}, P@1 {o['precision_at_1']:.3f}, "
          f"R-precision {o['r_precision']:.3f}, NMI {o['nmi']:.3f}, AMI {o['ami']:.3f} ({figures['seconds']}s)")
    if m["collection"]["truncated"]:
        print(f"walk cut by the module cap/time budget for: {m['collection']['truncated']}")


def _compare_with_reference(meta: dict[str, Any]) -> None:
    """Say whether this build equals the committed reference build with the same parameters."""
    if not REFERENCE_MANIFEST.exists():
        return
    ref = json.loads(REFERENCE_MANIFEST.read_text())["meta"]
    if (ref["name"], ref["seed"], ref["params"]) != (meta["name"], meta["seed"], meta["params"]):
        return
    if ref["content_hash"] == meta["content_hash"]:
        print(f"same corpus as the reference build ({REFERENCE_MANIFEST.name})")
        return
    versions = {**ref["package_versions"], **meta["package_versions"]}
    changed = {lb: (ref["package_versions"].get(lb), meta["package_versions"].get(lb)) for lb in sorted(versions)
               if ref["package_versions"].get(lb) != meta["package_versions"].get(lb)}
    why = (f"Python {ref['python']} -> {meta['python']}, labels or versions changed: {changed}"
           if changed or ref["python"] != meta["python"] else
           "same Python and package versions, so the collection code, the cleaning or other installed "
           "packages changed")
    print(f"DIFFERENT corpus from the reference build ({REFERENCE_MANIFEST.name}, content hash "
          f"{ref['content_hash'][:16]}): {why}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.datasets.text_corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--build", action="store_true", help="build (or load) the corpus and print its statistics")
    p.add_argument("--name", default="docstrings", choices=NAMES)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--min-per-label", type=int, default=DEFAULT_MIN_PER_LABEL)
    p.add_argument("--max-per-label", type=int, default=DEFAULT_MAX_PER_LABEL)
    p.add_argument("--max-labels", type=int, default=DEFAULT_MAX_LABELS)
    p.add_argument("--max-paragraphs", type=int, default=DEFAULT_MAX_PARAGRAPHS,
                   help="opening prose paragraphs kept per docstring (1 = the summary only)")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--packages", nargs="+", default=list(REFERENCE_PACKAGES),
                       help="top-level packages to walk (default: the 20 of the reference build)")
    which.add_argument("--all-packages", action="store_true",
                       help="walk the standard library and every installed package instead")
    p.add_argument("--refresh", action="store_true", help="ignore the caches: re-import and re-encode")
    p.add_argument("--manifest", type=Path, default=None,
                   help="also write the corpus metadata and the figures to this JSON file")
    args = p.parse_args(argv)
    if not args.build:
        p.error("nothing to do: pass --build")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    corpus = load_text_corpus(args.name, args.seed, min_per_label=args.min_per_label,
                              max_per_label=args.max_per_label, max_labels=args.max_labels,
                              max_paragraphs=args.max_paragraphs, kinds=args.kinds,
                              packages=None if args.all_packages else args.packages, refresh=args.refresh)
    figures = sanity_figures(corpus)
    _print_report(corpus, figures)
    _compare_with_reference(corpus.meta)
    result = {"meta": corpus.meta, "figures": figures}
    if args.manifest:
        cache.write_json(args.manifest, result)
    return result


def run_script(entry: Callable[[], Any]) -> None:
    """Run a corpus builder's ``main``: a bad setting or input ends in one line and its exit code,
    not a traceback (as ``steward`` does)."""
    try:
        entry()
    except (ConfigError, ValidationError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    run_script(main)
