"""Progress: log lines (never bar junk) off a terminal; a live stage line and a bar on one."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from core.progress import progress, stage

REPO = Path(__file__).resolve().parents[2]


def test_off_a_terminal_progress_and_stages_are_log_lines(capsys, caplog) -> None:
    caplog.set_level(logging.INFO, logger="steward.progress")
    items = list(progress(range(5), "counting", total=5, log_every=0.0, status=lambda: "loss 0.5"))
    assert items == [0, 1, 2, 3, 4]
    with stage("checking drift"):
        time.sleep(0.01)
    assert "counting: 5/5 item" in caplog.text and "loss 0.5" in caplog.text
    assert "checking drift ..." in caplog.text and "checking drift: done in" in caplog.text
    err = capsys.readouterr().err
    assert "item/s" not in err and "\r" not in err  # no bar in a log


def test_a_failing_stage_says_so(caplog) -> None:
    caplog.set_level(logging.INFO, logger="steward.progress")
    try:
        with stage("training"):
            raise ValueError("boom")
    except ValueError:
        pass
    assert "training: stopped by an error" in caplog.text


_ON_TTY = """
import time
from core.progress import progress, stage
with stage("quick step"):
    pass
with stage("slow step", after=0.2):
    time.sleep(0.9)
    for _ in progress(range(3), "inner loop", total=3):
        time.sleep(0.05)
print("end", flush=True)
"""


def test_on_a_terminal_slow_stages_show_and_quick_ones_stay_silent() -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _ON_TTY], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=follower, text=True)
    os.close(follower)
    out, _ = proc.communicate(timeout=60)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and out.strip() == "end"
    assert "quick step" not in screen
    # live line, then the summary (its seconds depend on the machine's load)
    assert "slow step (" in screen and re.search(r"slow step: done in \d+ s", screen)
    assert "inner loop" in screen  # the bar of the loop inside it
