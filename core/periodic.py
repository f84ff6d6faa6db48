"""A function called every few seconds from one daemon thread, until stopped (the serving watcher,
the query-sample writer)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Calls ``fn`` every ``interval`` seconds from a daemon thread named ``name``.

    The first call comes one interval after :meth:`start`; :meth:`stop` wakes the thread at once.
    ``fn`` must not raise: an exception ends the thread (callers log and carry on inside ``fn``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, fn: Callable[[], object], interval: float) -> None:
        """Start calling ``fn`` (a no-op while already running)."""
        if self.running:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                fn()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, waiting up to ``timeout`` seconds for a call in progress to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
