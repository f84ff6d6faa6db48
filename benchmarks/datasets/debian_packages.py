"""A second real text corpus with semantically distinct classes: the one-line descriptions of the
Debian packages this machine's apt knows about, labelled by archive section, MiniLM-embedded.

    corpus = load_debian_corpus()      # ~20 sections x <= 400 descriptions, (n, 384) float32

Build and print the statistics and the raw-embedding retrieval figures:

    HF_HUB_OFFLINE=1 python -m benchmarks.datasets.debian_packages --build [--seed 0]

Why it exists: the docstring corpus (``text_corpus.py``) has heavily overlapping classes (raw
MAP@R 0.11), so a new class hides among the known ones. Debian sections such as ``games``,
``fonts``, ``hamradio`` or ``database`` are topics a one-line description usually names.

- text: the ``Description:`` line only (no package name, no section: either would leak the label);
- label: ``Section:`` without its archive-area prefix (``contrib/games`` -> ``games``), restricted
  to ``SECTIONS``: topical sections. Left out are catch-alls (libs, libdevel, devel, utils, misc,
  doc, x11, metapackages, tasks, oldlibs, localization, otherosfs, debug, introspection) and
  "a library/tool of language X" sections (perl, python, haskell, rust, golang, javascript, java,
  ruby, gnu-r, php, ocaml, lisp, cli-mono, interpreters), whose texts are about anything; and the
  desktop-environment sections (gnome, kde, xfce), which cut across topics;
- group: the ``Source:`` package (the package itself when absent), the sub-population that
  contiguous streams slice by (a source's binaries tend to arrive together);
- a description found under two sections is dropped from both; within a section only the first
  package (in name order) keeps a repeated description; then at most ``max_per_label`` per section,
  sampled with ``seed``; sections with fewer than ``min_per_label`` descriptions are left out.

The package list is whatever ``apt-cache dumpavail`` prints on this machine (it changes when the
apt lists are updated), so the corpus's content hash is recorded in its metadata and keys the
embedding cache under ``benchmarks/.cache/debian_packages/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datasets import cache
from benchmarks.datasets.text_corpus import Encoder, TextCorpus, cached_embeddings, run_script, sanity_figures
from core.errors import ConfigError, ValidationError
from embedding.model import TEXT_ENCODER_NAME

log = logging.getLogger("benchmarks.datasets.debian_packages")
NAME = "debian"
DEFAULT_CACHE_DIR = cache.DEFAULT_CACHE_DIR.parent / "debian_packages"
DEFAULT_SEED = 0
DEFAULT_MIN_PER_LABEL = 120
DEFAULT_MAX_PER_LABEL = 400
MIN_CHARS = 12  # shorter descriptions ("Transitional package") say nothing about the topic
SECTIONS = ("admin", "database", "editors", "electronics", "fonts", "games", "graphics", "hamradio", "httpd",
            "kernel", "mail", "math", "net", "science", "sound", "tex", "text", "vcs", "video", "web")
# Descriptions that name a packaging role, not a topic, whatever the section.
_GENERIC = ("transitional", "dummy package", "debug symbols", "documentation for", "metapackage")


@dataclass(frozen=True)
class Package:
    name: str
    section: str  # without the archive-area prefix
    source: str
    description: str


def parse_dumpavail(text: str) -> Iterator[Package]:
    """Packages of an ``apt-cache dumpavail`` listing (RFC 822 stanzas), in listing order; stanzas
    without a description or section are skipped."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if not line or line[0] in " \t":  # continuation lines (long Tag:, Depends:) are not needed
                continue
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key, value.strip())
        name, section, desc = fields.get("Package"), fields.get("Section"), fields.get("Description")
        if not (name and section and desc):
            continue
        # "Source: foo (1.2-3)" names the source with a version when it differs from the binary's
        source = fields.get("Source", name).split()[0] or name
        yield Package(name, section.rsplit("/", 1)[-1], source, desc)


def select_packages(packages: Sequence[Package], *, sections: Sequence[str] = SECTIONS, seed: int = DEFAULT_SEED,
                    min_per_label: int = DEFAULT_MIN_PER_LABEL,
                    max_per_label: int = DEFAULT_MAX_PER_LABEL) -> tuple[list[Package], dict[str, Any]]:
    """Filter, dedupe and sample (see the module docstring); rows in (section, source, name) order,
    and counts of what was dropped."""
    if not 1 <= min_per_label <= max_per_label:
        raise ConfigError(f"need 1 <= min_per_label ({min_per_label}) <= max_per_label ({max_per_label})")
    wanted = set(sections)
    # One row per package name: dumpavail lists some packages once per architecture or version.
    by_name: dict[str, Package] = {}
    for p in packages:
        by_name.setdefault(p.name, p)
    pool = [p for _, p in sorted(by_name.items()) if p.section in wanted]
    short = [p for p in pool if len(p.description) < MIN_CHARS or any(g in p.description.lower() for g in _GENERIC)]
    dropped = set(short)
    pool = [p for p in pool if p not in dropped]
    sections_of: dict[str, set[str]] = defaultdict(set)
    for p in pool:
        sections_of[p.description.casefold()].add(p.section)
    ambiguous = [p for p in pool if len(sections_of[p.description.casefold()]) > 1]
    seen: set[str] = set()
    kept: list[Package] = []
    for p in pool:
        key = p.description.casefold()
        if len(sections_of[key]) == 1 and key not in seen:
            seen.add(key)
            kept.append(p)
    per_section: dict[str, list[Package]] = defaultdict(list)
    for p in kept:
        per_section[p.section].append(p)
    rng = np.random.default_rng(seed)
    rows: list[Package] = []
    too_small = {}
    for section in sorted(per_section):
        items = per_section[section]
        if len(items) < min_per_label:
            too_small[section] = len(items)
            continue
        pick = sorted(rng.choice(len(items), min(max_per_label, len(items)), replace=False).tolist())
        rows += [items[i] for i in pick]
    rows.sort(key=lambda p: (p.section, p.source, p.name))
    stats = {"packages_listed": len(by_name), "in_sections": len(pool) + len(short),
             "generic_or_short": len(short), "ambiguous_across_sections": len(ambiguous),
             "duplicate_within_section": len(pool) - len(ambiguous) - len(kept),
             "available_per_section": {s: len(v) for s, v in sorted(per_section.items())},
             "sections_too_small": too_small,
             "sections_absent": sorted(wanted - set(per_section))}
    return rows, stats


def content_hash(rows: Sequence[Package]) -> str:
    """sha256 over every field of every row, in order: equal hash, equal corpus."""
    h = hashlib.sha256()
    for p in rows:
        h.update(json.dumps([p.name, p.section, p.source, p.description]).encode())
        h.update(b"\n")
    return h.hexdigest()


def dumpavail() -> str:
    """``apt-cache dumpavail``'s output, or a clear error saying what to install."""
    exe = shutil.which("apt-cache")
    if exe is None:
        raise ValidationError("the Debian corpus needs `apt-cache` (package `apt`, on a Debian/Ubuntu machine with "
                              "its package lists: `apt-get update`); it was not found on PATH")
    try:
        out = subprocess.run([exe, "dumpavail"], capture_output=True, text=True, check=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raise ValidationError(f"`apt-cache dumpavail` failed ({e}); run `apt-get update` and retry") from e
    if "Package:" not in out.stdout:
        raise ValidationError("`apt-cache dumpavail` listed no package: run `apt-get update` first")
    return out.stdout


def load_debian_corpus(seed: int = DEFAULT_SEED, *, sections: Sequence[str] = SECTIONS,
                       min_per_label: int = DEFAULT_MIN_PER_LABEL, max_per_label: int = DEFAULT_MAX_PER_LABEL,
                       listing: str | None = None, encoder: Encoder | None = None,
                       cache_dir: Path | str | None = None, refresh: bool = False) -> TextCorpus:
    """Parse the apt listing (``listing``: its text, default ``apt-cache dumpavail``), select, and
    embed (cached by content hash and encoder name; ``refresh`` re-encodes)."""
    t = time.monotonic()
    text = listing if listing is not None else dumpavail()
    rows, stats = select_packages(list(parse_dumpavail(text)), sections=sections, seed=seed,
                                  min_per_label=min_per_label, max_per_label=max_per_label)
    if not rows:
        raise ValidationError(f"no section of {list(sections)} has {min_per_label} usable descriptions "
                              f"({stats['available_per_section']}); lower min_per_label")
    digest = content_hash(rows)
    log.info("selected %d descriptions in %.1fs (content hash %s)", len(rows), time.monotonic() - t, digest[:16])
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    encoder_name = encoder.name if encoder is not None else TEXT_ENCODER_NAME
    emb_path = cache.embeddings_path(cache_dir, NAME, digest, encoder_name)
    embeddings, seconds_encode = cached_embeddings([p.description for p in rows], emb_path, encoder, refresh)
    counts = Counter(p.section for p in rows)
    groups: dict[str, set[str]] = defaultdict(set)
    for p in rows:
        groups[p.section].add(p.source)
    meta = {"name": NAME, "seed": seed, "content_hash": digest, "n": len(rows), "labels": len(counts),
            "per_label": dict(sorted(counts.items())), "groups_per_label": {s: len(g) for s, g in sorted(groups.items())},
            "params": {"sections": list(sections), "min_per_label": min_per_label, "max_per_label": max_per_label,
                       "min_chars": MIN_CHARS, "generic_markers": list(_GENERIC)},
            "selection": stats, "encoder": encoder_name, "embedding_dim": int(embeddings.shape[1]),
            "embeddings_from_cache": seconds_encode is None, "seconds_encode": seconds_encode,
            "listing": "given" if listing is not None else "apt-cache dumpavail"}
    cache.write_json(cache.corpus_paths(cache_dir, NAME, digest)[1], meta)
    return TextCorpus(
        item_ids=np.array([f"deb:{p.name}" for p in rows], dtype=str),
        texts=np.array([p.description for p in rows], dtype=str),
        labels=np.array([p.section for p in rows], dtype=str),
        groups=np.array([p.source for p in rows], dtype=str),
        kinds=np.full(len(rows), "description", dtype=str),
        names=np.array([p.name for p in rows], dtype=str),
        embeddings=np.ascontiguousarray(embeddings, dtype=np.float32),
        meta=meta,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.datasets.debian_packages",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--build", action="store_true", help="build (or load) the corpus and print its statistics")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--refresh", action="store_true", help="re-encode even if cached")
    p.add_argument("--manifest", type=Path, default=None, help="also write the metadata and figures to this JSON")
    args = p.parse_args(argv)
    if not args.build:
        p.error("nothing to do: pass --build")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    corpus = load_debian_corpus(args.seed, refresh=args.refresh)
    figures = sanity_figures(corpus)
    m = corpus.meta
    print(f"corpus {NAME}: {m['n']} descriptions, {m['labels']} sections, seed {m['seed']}, "
          f"content hash {m['content_hash'][:16]}; selection {m['selection']}")
    print(f"{'section':12s} {'texts':>5s} {'groups':>6s} {'MAP@R':>6s} {'P@1':>6s}")
    for lb, n in m["per_label"].items():
        pc = figures["per_label"][lb]
        print(f"{lb:12s} {n:5d} {m['groups_per_label'][lb]:6d} {pc.map_at_r:6.3f} {pc.precision_at_1:6.3f}")
    o = figures["overall"]
    print(f"raw MiniLM, leave-one-out: MAP@R {o['map_at_r']:.3f}, P@1 {o['precision_at_1']:.3f}, "
          f"NMI {o['nmi']:.3f} ({figures['seconds']}s)")
    result = {"meta": m, "figures": {"overall": o}}
    if args.manifest:
        cache.write_json(args.manifest, result)
    return result


if __name__ == "__main__":
    run_script(main)
