"""What docs/JSON.md documents: the field names of each shape (the shape tests compare output with it)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def documented_fields() -> dict[str, set[str]]:
    """docs/JSON.md: `## name` headings, then a table whose first column is `field`."""
    out: dict[str, set[str]] = {}
    current = None
    for line in (REPO / "docs" / "JSON.md").read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip().strip("`")
            out[current] = set()
        elif current and line.startswith("| `"):
            out[current].add(line.split("`")[1])
    return out
