"""Progress for long work: a bar on a terminal, periodic log lines elsewhere.

Library code wraps long loops in :func:`progress`; whether a person sees a bar depends on where
the output goes, not on the caller: a tqdm bar when stderr is a terminal, otherwise an INFO log
line at most every ``log_every`` seconds (a bar in a log file is a wall of carriage returns).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("steward.progress")


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress(items: Iterable[T], desc: str, *, total: int | None = None, unit: str = "item",
             enabled: bool = True, log_every: float = 10.0, weight=None) -> Iterator[T]:
    """Yield ``items`` while reporting progress (see module doc). ``weight(item)`` counts units per item."""
    if not enabled:
        yield from items
        return
    if on_terminal():
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=desc, unit=unit, leave=False) as bar:
            for item in items:
                yield item
                bar.update(weight(item) if weight else 1)
        return
    started = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += weight(item) if weight else 1
        now = time.monotonic()
        if now - last >= log_every:
            last = now
            of = f"/{total}" if total else ""
            log.info("%s: %d%s %s (%.0f s)", desc, done, of, unit, now - started)
    if time.monotonic() - started >= log_every:
        log.info("%s: done, %d %s in %.0f s", desc, done, unit, time.monotonic() - started)
