"""Splitting a method's per-row work across ``accelerate`` processes, and switching that off.

A method that scores rows independently (OST) asks :func:`process_share` for its contiguous share of the
rows and gathers the per-share results with the returned function (process order == row order). With one
process, or inside :func:`single_process_selection`, the share is every row and the gather is trivial.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np

_LOCAL_ONLY = False


@contextmanager
def single_process_selection():
    """Inside, every selection runs whole on the calling process. The Trainer callback selects on the main
    process alone (the others wait for its broadcast), so a sharded method must not wait for them."""
    global _LOCAL_ONLY
    previous, _LOCAL_ONLY = _LOCAL_ONLY, True
    try:
        yield
    finally:
        _LOCAL_ONLY = previous


def process_share(rows: np.ndarray) -> tuple[np.ndarray, Callable[[Any], list[Any]], int]:
    """``(this process's rows, gather, number of processes)``; ``gather(local)`` returns every process's
    ``local`` in process order."""
    from accelerate import PartialState

    state = PartialState()
    if _LOCAL_ONLY or state.num_processes == 1:
        return rows, lambda local: [local], 1
    from accelerate.utils import gather_object

    with state.split_between_processes(rows.tolist()) as mine:
        mine = np.asarray(mine, dtype=np.int64)
    return mine, lambda local: gather_object([local]), state.num_processes
