"""core.periodic: calls repeat until stopped, a second start is a no-op, stop wakes the thread."""

from __future__ import annotations

import threading
import time

from core.periodic import Periodic


def test_calls_repeat_until_stop_and_a_second_start_adds_no_thread():
    calls: list[float] = []
    three = threading.Event()

    def tick() -> None:
        calls.append(time.monotonic())
        if len(calls) >= 3:
            three.set()

    loop = Periodic("test-periodic")
    loop.start(tick, 0.01)
    loop.start(tick, 0.01)  # already running: ignored
    assert three.wait(5.0)
    assert [t.name for t in threading.enumerate()].count("test-periodic") == 1
    loop.stop()
    assert not loop.running
    after = len(calls)
    time.sleep(0.05)
    assert len(calls) == after  # nothing runs after stop


def test_stop_does_not_wait_for_the_interval():
    loop = Periodic("test-periodic-long")
    loop.start(lambda: None, 3600.0)
    started = time.monotonic()
    loop.stop(timeout=5.0)
    assert not loop.running and time.monotonic() - started < 5.0
