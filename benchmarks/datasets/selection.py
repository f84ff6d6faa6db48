"""From raw docstrings to the labelled rows of a corpus: clean, de-duplicate, choose labels, sample.

Pure logic, no I/O. Every step is deterministic: inputs are sorted before anything is kept
"first", and sampling uses a generator seeded by (seed, label), so one label's sample does not
depend on which other labels were chosen.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.datasets.cleaning import MAX_CHARS, MIN_CHARS, clean_docstring, dedup_key, template_key
from benchmarks.datasets.collect import RawDoc
from core.errors import ConfigError, ValidationError


@dataclass(frozen=True)
class CorpusRow:
    item_id: str
    text: str
    label: str
    group: str
    kind: str
    name: str


@dataclass(frozen=True)
class CleaningStats:
    raw: int
    no_prose: int  # no first paragraph of prose within the length bounds
    cross_label: int  # same text under two or more labels: dropped everywhere (label noise)
    duplicate: int  # same text again within one label: one copy kept
    template: int  # same text up to the names it mentions, within one label: one copy kept
    kept: int


def item_id(label: str, name: str) -> str:
    """Stable id: does not depend on the text, the seed or the other items."""
    return hashlib.sha1(f"{label}\0{name}".encode()).hexdigest()[:16]


def clean_rows(docs: Iterable[RawDoc], *, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS,
               max_paragraphs: int = 1) -> tuple[list[CorpusRow], CleaningStats]:
    """Clean every docstring and drop duplicates.

    A text found under two labels is dropped under all of them (pandas, dask and scipy copy numpy's
    docstrings: keeping one copy would label it arbitrarily). Within a label only the first copy
    of a text (in name order) is kept, and likewise for texts equal up to the identifiers they
    mention (generated docstrings, one per model class), which would otherwise make a label
    trivially recognisable.
    """
    docs = sorted(docs, key=lambda d: (d.label, d.name, d.kind, d.module))
    cleaned: list[tuple[RawDoc, str]] = []
    labels_of: dict[str, set[str]] = defaultdict(set)
    for d in docs:
        text = clean_docstring(d.doc, min_chars=min_chars, max_chars=max_chars, max_paragraphs=max_paragraphs)
        if text is not None:
            cleaned.append((d, text))
            labels_of[dedup_key(text)].add(d.label)
    rows: list[CorpusRow] = []
    seen_text: set[tuple[str, str]] = set()
    seen_template: set[tuple[str, str]] = set()
    seen_id: set[str] = set()
    counts: Counter = Counter()
    for d, text in cleaned:
        key = dedup_key(text)
        tkey = (d.label, template_key(text))
        rid = item_id(d.label, d.name)
        if len(labels_of[key]) > 1:
            counts["cross_label"] += 1
        elif (d.label, key) in seen_text or rid in seen_id:
            counts["duplicate"] += 1
        elif tkey in seen_template:
            counts["template"] += 1
        else:
            rows.append(CorpusRow(rid, text, d.label, d.group, d.kind, d.name))
            seen_id.add(rid)
            seen_text.add((d.label, key))
            seen_template.add(tkey)
    stats = CleaningStats(raw=len(docs), no_prose=len(docs) - len(cleaned), cross_label=counts["cross_label"],
                          duplicate=counts["duplicate"], template=counts["template"], kept=len(rows))
    return rows, stats


def choose_labels(counts: dict[str, int], *, min_per_label: int, max_labels: int) -> list[str]:
    """Labels with at least ``min_per_label`` texts; if more than ``max_labels``, the largest
    (ties by name). Independent of the seed, so every seed sees the same classes."""
    eligible = sorted((lb for lb, n in counts.items() if n >= min_per_label), key=lambda lb: (-counts[lb], lb))
    return sorted(eligible[:max_labels])


def _label_rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(label.encode())])


def select_rows(rows: Sequence[CorpusRow], *, seed: int, min_per_label: int, max_per_label: int,
                max_labels: int, min_labels: int = 2) -> list[CorpusRow]:
    """Choose labels (:func:`choose_labels`), then a seeded sample of at most ``max_per_label`` rows
    of each; the result is ordered by label, group and name."""
    if min_per_label < 1 or max_per_label < min_per_label or max_labels < 1:
        raise ConfigError(f"need 1 <= min_per_label ({min_per_label}) <= max_per_label ({max_per_label}) "
                          f"and max_labels ({max_labels}) >= 1")
    by_label: dict[str, list[CorpusRow]] = defaultdict(list)
    for r in rows:
        by_label[r.label].append(r)
    labels = choose_labels({lb: len(rs) for lb, rs in by_label.items()}, min_per_label=min_per_label,
                           max_labels=max_labels)
    if len(labels) < min_labels:
        sizes = dict(Counter(r.label for r in rows).most_common(5))
        raise ValidationError(f"only {len(labels)} labels have >= {min_per_label} texts (largest: {sizes}); "
                              f"lower min_per_label or collect more packages")
    out: list[CorpusRow] = []
    for lb in labels:
        members = sorted(by_label[lb], key=lambda r: r.item_id)
        if len(members) > max_per_label:
            pick = _label_rng(seed, lb).choice(len(members), size=max_per_label, replace=False)
            members = [members[i] for i in sorted(pick)]
        out += members
    return sorted(out, key=lambda r: (r.label, r.group, r.name))


def content_hash(rows: Iterable[CorpusRow]) -> str:
    """sha256 over every field of every row, in order: equal hash, equal corpus."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r.item_id, r.text, r.label, r.group, r.kind, r.name]).encode())
        h.update(b"\n")
    return h.hexdigest()
