"""The one minibatch training loop of the proxies (dual-encoder heads, linear probe, heads on a distilled set).

A proxy run is ``steps`` AdamW steps (weight decay 0.01) whatever the subset size, each on a batch of rows;
:func:`epoch_batches` gives the usual epoch order (a seeded permutation, reshuffled when the next batch would
not fit), :func:`optimise` takes the steps. ``torch_threads`` pins the intra-op thread count for the duration
of a run: these models are small, and on a busy machine a second thread mostly spins (see
``benchmarks/proxy_training_speed.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def epoch_batches(n_rows: int, batch_size: int, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """``steps`` batches of row positions in epoch order; an epoch's tail shorter than a batch is skipped.

    Example:
        >>> [b.tolist() for b in epoch_batches(5, 2, 3, seed=0)]
        [[2, 4], [3, 0], [4, 1]]
    """
    generator = np.random.default_rng(seed)
    batch_size = min(batch_size, n_rows)
    order, position = generator.permutation(n_rows), 0
    for _ in range(steps):
        if position + batch_size > len(order):  # a new epoch: reshuffle
            order, position = generator.permutation(n_rows), 0
        yield torch.as_tensor(order[position: position + batch_size])
        position += batch_size


def optimise(model: nn.Module, batches: Iterable[torch.Tensor], batch_loss: Callable[[torch.Tensor], torch.Tensor],
             lr: float = 1e-3) -> nn.Module:
    """One AdamW step (weight decay 0.01) per batch on ``batch_loss(batch)``; returns ``model``, trained."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    for batch in batches:
        loss = batch_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(count)``, then restore the previous count (None: unchanged)."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
