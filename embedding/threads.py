"""CPU thread limits for the small heads' work: torch's intra-op pool and numpy's BLAS pool.

At these sizes a step or an embedding pass is a few small matrix products: extra threads add no
speed, and on a shared CPU their spinning costs CPU time (an embedding pass of ~1,300 digits items
took ~40 ms of CPU on two torch threads against ~3 ms on one, measured here).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from threadpoolctl import ThreadpoolController


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The process's thread pools, found at the first use: threadpoolctl's lookup reads every
    loaded library, milliseconds per training otherwise (a BLAS loaded later is left as it is)."""
    from threadpoolctl import ThreadpoolController  # installed with scikit-learn

    return ThreadpoolController()


@contextlib.contextmanager
def limited_threads(n: int | None) -> Iterator[None]:
    """torch's threads, and numpy's BLAS pool (validation runs through numpy), limited to ``n`` inside
    the block and restored after it; ``None`` leaves both as they are."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with _thread_pools().limit(limits=n, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)
