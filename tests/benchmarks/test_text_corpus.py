"""The docstring corpus builder on a tiny budget: a few standard-library packages, a fake encoder."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks.datasets.cleaning import MAX_CHARS, MIN_CHARS, clean_docstring, dedup_key, template_key
from benchmarks.datasets.collect import CollectConfig, RawDoc, collect
from benchmarks.datasets.selection import clean_rows, content_hash, select_rows
from benchmarks.datasets.text_corpus import class_incremental_steps, load_text_corpus, write_parquet
from core.errors import ConfigError, ValidationError

PACKAGES = ("email", "json", "logging", "unittest")
SMALL = {"min_per_label": 15, "max_per_label": 40, "max_labels": 10}
CONFIG = CollectConfig(max_modules=40, package_budget_s=30.0)


class FakeEncoder:
    """Deterministic 16-d unit vectors from a hash of the text; counts its calls."""

    name = "fake-hash-16"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.array([np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], dtype=np.uint8) for t in texts],
                       dtype=np.float32) - 127.5
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def collection():
    return collect(PACKAGES, CONFIG)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus-cache")


def _load(cache_dir: Path, encoder: FakeEncoder, seed: int = 0):
    return load_text_corpus(seed=seed, packages=PACKAGES, collect_config=CONFIG, encoder=encoder,
                            cache_dir=cache_dir, **SMALL)


def test_collection_walks_each_package_and_labels_by_top_level_name(collection) -> None:
    by_label = {s["label"]: s for s in collection.stats}
    assert set(by_label) == set(PACKAGES)
    assert all(s["modules"] >= 1 for s in by_label.values())
    assert {d.label for d in collection.docs} == set(PACKAGES)
    assert all(d.name.startswith(d.label) or d.kind == "function" for d in collection.docs)
    assert all(d.group == d.label or d.group.startswith(d.label + ".") for d in collection.docs)
    assert any(d.kind == "module" for d in collection.docs) and any(d.kind == "method" for d in collection.docs)
    # Test modules are never imported.
    assert not any(".test" in d.module for d in collection.docs)


def test_corpus_invariants(cache_dir: Path) -> None:
    corpus = _load(cache_dir, FakeEncoder())
    assert len(set(corpus.item_ids.tolist())) == len(corpus)
    labels_of_text = defaultdict(set)
    for text, label in zip(corpus.texts.tolist(), corpus.labels.tolist(), strict=True):
        labels_of_text[dedup_key(text)].add(label)
    assert all(len(v) == 1 for v in labels_of_text.values())
    assert len(labels_of_text) == len(corpus)  # no duplicate text at all
    lengths = np.char.str_len(corpus.texts)
    assert lengths.min() >= MIN_CHARS and lengths.max() <= MAX_CHARS
    counts = dict(zip(*np.unique(corpus.labels, return_counts=True), strict=True))
    assert all(SMALL["min_per_label"] <= n <= SMALL["max_per_label"] for n in counts.values())
    assert corpus.embeddings.shape == (len(corpus), 16) and corpus.embeddings.dtype == np.float32
    assert corpus.meta["content_hash"] and set(corpus.meta["package_versions"]) == set(counts)


def test_same_seed_same_corpus_and_second_load_does_not_re_encode(cache_dir: Path) -> None:
    first = _load(cache_dir, FakeEncoder())
    encoder = FakeEncoder()
    again = _load(cache_dir, encoder)
    assert encoder.calls == 0 and again.meta["embeddings_from_cache"]
    assert again.meta["collection_from_cache"]
    assert again.item_ids.tolist() == first.item_ids.tolist()
    assert np.array_equal(again.embeddings, first.embeddings)
    other = _load(cache_dir, FakeEncoder(), seed=1)
    assert other.classes == first.classes  # the seed changes the sample, not the labels
    assert other.meta["content_hash"] != first.meta["content_hash"]


def test_clean_rows_drops_text_shared_by_two_labels_and_generated_templates() -> None:
    shared = "Compute the arithmetic mean along the specified axis of the array."
    docs = [
        RawDoc("numpy", "numpy", "numpy.mean", "function", "numpy", shared),
        RawDoc("dask", "dask.array", "dask.array.mean", "function", "dask.array", shared),
        RawDoc("numpy", "numpy", "numpy.median", "function", "numpy", "Compute the median along the axis of an array."),
        RawDoc("numpy", "numpy", "numpy.median2", "function", "numpy", "compute the median, along the axis of an array"),
        RawDoc("tf", "tf.models", "tf.A.forward", "method", "tf.models",
               "The [BertModel] forward method, overrides the __call__ special method."),
        RawDoc("tf", "tf.models", "tf.B.forward", "method", "tf.models",
               "The [GPT2Model] forward method, overrides the __call__ special method."),
        RawDoc("tf", "tf", "tf.short", "function", "tf", "Too short."),
    ]
    rows, stats = clean_rows(docs)
    assert [r.name for r in rows] == ["numpy.median", "tf.A.forward"]
    assert (stats.cross_label, stats.duplicate, stats.template, stats.no_prose) == (2, 1, 1, 1)


def test_select_rows_is_seeded_capped_and_refuses_too_few_labels() -> None:
    def word(i: int) -> str:  # distinct words: numbered texts would be one template
        return chr(97 + i // 26) + chr(97 + i % 26) + "x"

    docs = [RawDoc(lb, lb, f"{lb}.f{i}", "function", lb, f"Function {word(i)} of the {lb} package does things.")
            for lb, n in (("a", 30), ("b", 12), ("c", 5)) for i in range(n)]
    rows, _ = clean_rows(docs)
    one = select_rows(rows, seed=0, min_per_label=10, max_per_label=20, max_labels=5)
    assert content_hash(one) == content_hash(select_rows(rows, seed=0, min_per_label=10, max_per_label=20,
                                                         max_labels=5))
    assert {r.label for r in one} == {"a", "b"} and sum(r.label == "a" for r in one) == 20
    assert content_hash(one) != content_hash(select_rows(rows, seed=1, min_per_label=10, max_per_label=20,
                                                         max_labels=5))
    with pytest.raises(ValidationError, match="min_per_label"):
        select_rows(rows, seed=0, min_per_label=25, max_per_label=30, max_labels=5)


@pytest.mark.parametrize(("doc", "expected"), [
    (("add(x1, x2, /, out=None, *, where=True)\n\nAdd arguments element-wise, as :func:`numpy.add` does.\n\n"
      "Parameters\n----------\nx1 : array"), "Add arguments element-wise, as numpy.add does."),
    ("Return the ``sum`` of   the\nelements over the `axis`.", "Return the sum of the elements over the axis."),
    ("Short.\n\nA longer second paragraph is not used instead of the first.", None),
    ("Format with %(klass)s the object into a string for printing.", None),
    (">>> import os\n>>> os.getcwd()", None),
])
def test_clean_docstring(doc: str, expected: str | None) -> None:
    assert clean_docstring(doc) == expected


def test_opening_prose_stops_at_the_first_section() -> None:
    doc = ("Sum of array elements.\n\nThe sum is taken over the given axis, in the given dtype.\n\n"
           "Parameters\n----------\na : array_like\n\nMore prose after the section is not the opening.")
    assert clean_docstring(doc, max_paragraphs=4) == (
        "Sum of array elements. The sum is taken over the given axis, in the given dtype.")
    assert clean_docstring(doc, max_paragraphs=1) is None  # the summary alone is under MIN_CHARS


def test_clean_docstring_cuts_long_text_at_a_boundary() -> None:
    text = clean_docstring("Word " * 200)
    assert text is not None and len(text) <= MAX_CHARS and text.endswith("Word")
    assert template_key("The [BertModel] forward.") == template_key("The [T5Model] forward.")
    assert template_key("Return the array.") != template_key("Return the matrix.")
    assert template_key("Lexer for Haskell source code.") == template_key("Lexer for Elm source code.")


def test_class_incremental_steps_partition_classes_and_items(cache_dir: Path) -> None:
    corpus = _load(cache_dir, FakeEncoder())
    steps = class_incremental_steps(corpus, steps=2, test_fraction=0.25, seed=3)
    assert sorted(c for s in steps for c in s.classes) == corpus.classes
    all_idx = np.concatenate([np.concatenate([s.train_idx, s.test_idx]) for s in steps])
    assert sorted(all_idx.tolist()) == list(range(len(corpus)))
    for s in steps:
        assert set(s.y_train.tolist()) == set(s.y_test.tolist()) == set(s.classes)
        assert np.array_equal(s.x_test, corpus.embeddings[s.test_idx])
        for c in s.classes:
            n = int((corpus.labels == c).sum())
            assert int((s.y_test == c).sum()) == round(0.25 * n)
    again = class_incremental_steps(corpus, steps=2, test_fraction=0.25, seed=3)
    assert all(np.array_equal(a.test_idx, b.test_idx) for a, b in zip(steps, again, strict=True))
    with pytest.raises(ConfigError, match="steps"):
        class_incremental_steps(corpus, steps=len(corpus.classes) + 1)


@pytest.mark.parametrize("as_features", [True, False])
def test_write_parquet_is_ingestable(cache_dir: Path, tmp_path: Path, workspace, as_features: bool) -> None:
    corpus = _load(cache_dir, FakeEncoder())
    rows = np.arange(0, len(corpus), 3)
    path = write_parquet(corpus, tmp_path / "docs.parquet", as_features=as_features, rows=rows)
    table = pq.read_table(path)
    assert table.column("item_id").to_pylist() == corpus.item_ids[rows].tolist()
    assert {"label", "group", "kind"} <= set(table.column_names)
    result = workspace.store.ingest(path, "docs")
    assert result.quarantined == 0 and result.new_items == len(rows)
    back = workspace.store.read("docs")
    assert back.num_rows == len(rows)
    if as_features:
        assert back.schema.field("features").type.list_size == 16
    else:
        assert back.column("text").to_pylist() == corpus.texts[rows].tolist()


def test_kinds_filter_and_bad_arguments(cache_dir: Path) -> None:
    only = load_text_corpus(packages=PACKAGES, collect_config=CONFIG, encoder=FakeEncoder(), cache_dir=cache_dir,
                            kinds=("class", "function", "module"), min_per_label=5, max_per_label=40, max_labels=10)
    assert set(only.kinds.tolist()) <= {"class", "function", "module"} and len(only) > 0
    with pytest.raises(ConfigError, match="kinds"):
        load_text_corpus(kinds=("property",), cache_dir=cache_dir)
    with pytest.raises(ConfigError, match="never imported"):
        collect(["antigravity", "json"])
    with pytest.raises(ConfigError, match="unknown corpus"):
        load_text_corpus("wikipedia", cache_dir=cache_dir)
