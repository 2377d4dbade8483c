"""Linear probe: one linear layer from frozen features to class logits, cross-entropy, the proxies' AdamW loop.

The classification counterpart of the dual-encoder heads, for class-labelled data: a coreset that keeps the
classes separable trains a probe that scores well on held-out rows.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .training import epoch_batches, optimise


def train_linear_probe(vectors: np.ndarray, classes: np.ndarray, n_classes: int, *, steps: int = 500,
                       batch_size: int = 128, lr: float = 1e-2, seed: int = 0) -> nn.Linear:
    """Train ``nn.Linear(d, n_classes)`` on rows ``vectors[i]`` with class ids ``classes[i]`` (0..n_classes-1).

    Example:
        >>> import numpy as np, torch
        >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> probe = train_linear_probe(x, np.array([0, 0, 1, 1]), 2, steps=50)
        >>> probe(torch.tensor([[1.0, 0.0], [0.0, 1.0]])).argmax(1).tolist()
        [0, 1]
    """
    torch.manual_seed(seed)
    model = nn.Linear(vectors.shape[1], n_classes)
    inputs = torch.as_tensor(vectors, dtype=torch.float32)
    targets = torch.as_tensor(classes, dtype=torch.int64)

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(model(inputs[batch]), targets[batch])

    return optimise(model, epoch_batches(len(vectors), batch_size, steps, seed), batch_loss, lr)
