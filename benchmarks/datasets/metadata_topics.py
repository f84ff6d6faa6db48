"""Is there enough distribution METADATA for a second corpus labelled by ``Topic ::`` classifier?

A distribution carries one Summary/Description and zero or more topics, so the items are the
distributions themselves. The corpus is worth building only with at least ``min_topics`` topics of
at least ``min_items`` single-topic distributions each (a distribution under two topics would be
label noise); :func:`topic_census` counts, at the second classifier level
("Topic :: Software Development") and at the full one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class TopicCensus:
    distributions: int
    with_description: int
    single_topic: dict[str, int]  # level-2 topic -> distributions with that topic and no other
    any_topic: dict[str, int]  # full classifier -> distributions carrying it
    min_topics: int
    min_items: int

    @property
    def usable_topics(self) -> list[str]:
        return sorted(t for t, n in self.single_topic.items() if n >= self.min_items)

    @property
    def enough(self) -> bool:
        return len(self.usable_topics) >= self.min_topics

    def largest(self, k: int) -> dict[str, int]:
        return dict(Counter(self.single_topic).most_common(k))

    def verdict(self) -> str:
        return (f"{len(self.usable_topics)} topics have >= {self.min_items} single-topic distributions, "
                f"{self.min_topics} are needed ({self.distributions} distributions installed, "
                f"{self.with_description} with a description)")


def _level2(classifier: str) -> str:
    return " :: ".join(classifier.split(" :: ")[:2])


def topic_census(min_topics: int = 8, min_items: int = 40) -> TopicCensus:
    single: Counter = Counter()
    full: Counter = Counter()
    total = described = 0
    for dist in metadata.distributions():
        meta = dist.metadata
        total += 1
        described += bool((meta.get_payload() or meta.get("Description") or meta.get("Summary") or "").strip())
        topics = [c for c in (meta.get_all("Classifier") or []) if c.startswith("Topic ::")]
        full.update(set(topics))
        level2 = {_level2(c) for c in topics}
        if len(level2) == 1:
            single[level2.pop()] += 1
    return TopicCensus(total, described, dict(single), dict(full), min_topics, min_items)
