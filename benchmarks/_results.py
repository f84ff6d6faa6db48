"""Shared output for every benchmark: a JSON file plus one section of ``benchmarks/RESULTS.md``.

Each benchmark owns one section, delimited by HTML comment markers, so benchmarks can be rerun
independently without clobbering each other's tables.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_DIR = HERE / "results"
_HEADER = "# Benchmark results\n\nEach section is written by the benchmark it names; rerun it to refresh.\n"


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_results(name: str, data: dict[str, Any], markdown: str) -> Path:
    """Write ``results/<name>.json`` and replace the ``<name>`` section of RESULTS.md."""
    payload = {"benchmark": name, "written_at": datetime.now(UTC).isoformat(), "machine": machine(), **data}
    json_path = RESULTS_DIR / f"{name}.json"
    _atomic_write(json_path, json.dumps(payload, indent=2, default=str) + "\n")
    write_section(name, markdown, raw=json_path.name)
    return json_path


def merge_results(name: str, key: str, data: dict[str, Any]) -> Path:
    """Set ``key`` of ``results/<name>.json`` to ``data``, keeping every other key (a second measurement
    of the same benchmark that runs on its own)."""
    json_path = RESULTS_DIR / f"{name}.json"
    payload = json.loads(json_path.read_text()) if json_path.exists() else {"benchmark": name}
    payload[key] = {"written_at": datetime.now(UTC).isoformat(), "machine": machine(), **data}
    _atomic_write(json_path, json.dumps(payload, indent=2, default=str) + "\n")
    return json_path


def write_section(name: str, markdown: str, *, raw: str | None = None) -> None:
    """Replace (or append) the ``<name>`` section of RESULTS.md; ``raw`` names its JSON file."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{markdown.strip()}\n\n_Raw numbers: `benchmarks/results/{raw or name + '.json'}`._\n{end}"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else _HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    _atomic_write(RESULTS_MD, text)


def verdict(ok: bool) -> str:
    """How a target line reads: "met" or "MISSED" (capitals, so a miss stands out in RESULTS.md)."""
    return "met" if ok else "MISSED"


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """Render rows as a GitHub table; floats get 3-4 significant digits."""
    if not rows:
        return "_no rows_"
    columns = columns or list(rows[0])

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
