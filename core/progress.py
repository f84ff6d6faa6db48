"""Progress for long work: a bar or a live stage line on a terminal, log lines elsewhere.

Library code wraps long loops in :func:`progress` and long single steps in :func:`stage`; whether a
person sees a bar depends on where the output goes, not on the caller: on a terminal (stderr is a
tty) a tqdm bar, or a spinner with the elapsed seconds once a step has run ~2 s; otherwise INFO log
lines on the ``steward.progress`` logger (a bar in a log file is a wall of carriage returns and
``0item [00:00, ?item/s]`` lines). Inside a Prefect run those log lines reach the run's logs.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("steward.progress")

_SPINNER = "|/-\\"
_lock = threading.Lock()
_stages: list[str] = []  # the stages running now, innermost last: only the innermost draws
_bars = 0  # progress bars drawing now: a stage line waits while one is on screen


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress(items: Iterable[T], desc: str, *, total: int | None = None, unit: str = "item",
             enabled: bool = True, log_every: float = 10.0, weight: Callable[[T], int] | None = None,
             status: Callable[[], str] | None = None) -> Iterator[T]:
    """Yield ``items`` while reporting progress (see module doc). ``weight(item)`` counts units per item;
    ``status()`` is shown beside the count (e.g. the last epoch's loss)."""
    global _bars
    if not enabled:
        yield from items
        return
    if on_terminal():
        from tqdm.auto import tqdm

        with _lock:
            _bars += 1
        try:
            with tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr) as bar:
                for item in items:
                    yield item
                    bar.update(weight(item) if weight else 1)
                    if status is not None:
                        bar.set_postfix_str(status(), refresh=False)
        finally:
            with _lock:
                _bars -= 1
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
            extra = f"; {status()}" if status is not None else ""
            log.info("%s: %d%s %s (%.0f s%s)", desc, done, of, unit, now - started, extra)
    if time.monotonic() - started >= log_every:
        extra = f"; {status()}" if status is not None else ""
        log.info("%s: done, %d %s in %.0f s%s", desc, done, unit, time.monotonic() - started, extra)


@contextmanager
def stage(desc: str, *, enabled: bool = True, after: float = 2.0) -> Iterator[None]:
    """One step of unknown length. On a terminal: nothing for ``after`` seconds (quick steps stay
    silent), then ``desc`` with a spinner and the elapsed seconds, and a ``desc: done in N s`` line
    at the end. Elsewhere: an INFO line when it starts and one when it ends, with its duration."""
    if not enabled:
        yield
        return
    started = time.monotonic()
    if not on_terminal():
        log.info("%s ...", desc)
        try:
            yield
        except BaseException:
            log.info("%s: stopped by an error after %.1f s", desc, time.monotonic() - started)
            raise
        log.info("%s: done in %.1f s", desc, time.monotonic() - started)
        return
    stop = threading.Event()
    shown = threading.Event()
    with _lock:
        _stages.append(desc)
    thread = threading.Thread(target=_spin, args=(desc, started, after, stop, shown), daemon=True,
                              name=f"stage: {desc[:30]}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with _lock:
            _stages.remove(desc)
        if shown.is_set():
            sys.stderr.write(f"\r\033[K{desc}: done in {time.monotonic() - started:.0f} s\n")
            sys.stderr.flush()


def _spin(desc: str, started: float, after: float, stop: threading.Event, shown: threading.Event) -> None:
    if stop.wait(after):
        return
    shown.set()
    i = 0
    while not stop.wait(0.25):
        with _lock:
            mine = bool(_stages) and _stages[-1] == desc and _bars == 0
        if mine:
            sys.stderr.write(f"\r\033[K{_SPINNER[i % 4]} {desc} ({time.monotonic() - started:.0f} s)")
            sys.stderr.flush()
            i += 1
