"""The Debian-description corpus on a fake ``apt-cache dumpavail`` listing and a fake encoder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from benchmarks.datasets.debian_packages import load_debian_corpus, parse_dumpavail, select_packages
from core.errors import ConfigError, ValidationError


class FakeEncoder:
    name = "fake-hash-8"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.array([np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], dtype=np.uint8) for t in texts],
                       dtype=np.float32) - 127.5
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _stanza(name: str, section: str, desc: str, source: str | None = None) -> str:
    lines = [f"Package: {name}", "Version: 1.0-1"]
    if source:
        lines.append(f"Source: {source}")
    lines += [f"Description: {desc}", "Tag: role::program, interface::x11,", " use::gameplaying",
              f"Section: {section}", "Priority: optional"]
    return "\n".join(lines)


def _listing() -> str:
    stanzas = []
    for i in range(12):
        stanzas.append(_stanza(f"game{i:02d}", "games", f"Puzzle game number {i} with colourful tiles",
                               source=f"gamesrc{i // 4} (1.0-2)"))
        stanzas.append(_stanza(f"font{i:02d}", "contrib/fonts", f"Serif typeface family {i} for documents"))
        stanzas.append(_stanza(f"ham{i:02d}", "hamradio", f"Amateur radio logging tool {i}"))
    stanzas += [
        _stanza("game00", "games", "A second listing of game00 (another architecture)"),
        _stanza("dupgame", "games", "Puzzle game number 3 with colourful tiles"),  # repeated within games
        _stanza("both-a", "games", "Shared text in two sections here"),
        _stanza("both-b", "fonts", "Shared text in two sections here"),  # ambiguous: dropped from both
        _stanza("old-game", "games", "transitional package for puzzle games"),
        _stanza("libfoo1", "libs", "Library for foo (shared object)"),  # section not chosen
        _stanza("math1", "math", "Computer algebra system for symbolic maths"),  # too few in math
        "Package: nosection\nDescription: No section at all",
    ]
    return "\n\n".join(stanzas) + "\n"


SMALL = {"sections": ("fonts", "games", "hamradio", "math"), "min_per_label": 5, "max_per_label": 8}


def test_parse_reads_fields_strips_area_prefix_and_source_version() -> None:
    pkgs = {p.name: p for p in parse_dumpavail(_listing())}
    assert pkgs["font03"].section == "fonts"
    assert pkgs["game05"].source == "gamesrc1" and pkgs["font03"].source == "font03"
    assert pkgs["game05"].description == "Puzzle game number 5 with colourful tiles"
    assert "nosection" not in pkgs


def test_selection_filters_dedupes_and_caps() -> None:
    rows, stats = select_packages(list(parse_dumpavail(_listing())), seed=0, **SMALL)
    names = {p.name for p in rows}
    assert {p.section for p in rows} == {"fonts", "games", "hamradio"}  # math has 1 < min_per_label
    assert stats["sections_too_small"] == {"math": 1}
    assert not names & {"both-a", "both-b", "dupgame", "old-game", "libfoo1"}
    assert stats["ambiguous_across_sections"] == 2 and stats["generic_or_short"] == 1
    assert all(sum(p.section == s for p in rows) == 8 for s in ("fonts", "games", "hamradio"))
    assert len({p.description.casefold() for p in rows}) == len(rows)
    # the first listing of a repeated package name wins
    assert all(p.description.startswith("Puzzle") for p in rows if p.name == "game00")
    assert rows == sorted(rows, key=lambda p: (p.section, p.source, p.name))


def test_selection_is_deterministic_per_seed() -> None:
    pkgs = list(parse_dumpavail(_listing()))
    a, _ = select_packages(pkgs, seed=1, **SMALL)
    b, _ = select_packages(list(reversed(pkgs)), seed=1, **SMALL)
    c, _ = select_packages(pkgs, seed=2, **SMALL)
    assert a == b
    assert {p.name for p in a} != {p.name for p in c}
    with pytest.raises(ConfigError):
        select_packages(pkgs, min_per_label=9, max_per_label=8)


def test_corpus_embeds_once_and_keeps_label_out_of_text(tmp_path: Path) -> None:
    enc = FakeEncoder()
    corpus = load_debian_corpus(0, listing=_listing(), encoder=enc, cache_dir=tmp_path, **SMALL)
    assert len(corpus) == 24 and corpus.embeddings.shape == (24, 8) and enc.calls == 1
    assert not any(lb in t.lower() or n in t for t, lb, n in
                   zip(corpus.texts.tolist(), corpus.labels.tolist(), corpus.names.tolist(), strict=True))
    again = load_debian_corpus(0, listing=_listing(), encoder=enc, cache_dir=tmp_path, **SMALL)
    assert enc.calls == 1 and again.meta["embeddings_from_cache"]
    assert again.meta["content_hash"] == corpus.meta["content_hash"]
    np.testing.assert_array_equal(again.embeddings, corpus.embeddings)
    assert load_debian_corpus(3, listing=_listing(), encoder=enc, cache_dir=tmp_path,
                              **SMALL).meta["content_hash"] != corpus.meta["content_hash"]


def test_no_usable_section_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="min_per_label"):
        load_debian_corpus(0, listing=_listing(), encoder=FakeEncoder(), cache_dir=tmp_path, sections=("math",),
                           min_per_label=5, max_per_label=8)


def test_missing_apt_cache_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.datasets.debian_packages as mod

    monkeypatch.setattr(mod.shutil, "which", lambda _: None)
    with pytest.raises(ValidationError, match="apt-cache"):
        mod.dumpavail()
