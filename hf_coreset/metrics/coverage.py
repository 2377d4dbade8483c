"""Coverage: how far, on average, a row is from its nearest selected row (lower covers better)."""

from __future__ import annotations

import numpy as np


def mean_nearest_selected_distance(x: np.ndarray, selected: np.ndarray, chunk_size: int = 4096) -> float:
    """Mean over all rows of the Euclidean distance to the nearest selected row.

    Computed chunk by chunk (memory ``chunk_size x |selected|``), never as an N x N matrix.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0.0], [1.0], [3.0]])
        >>> mean_nearest_selected_distance(x, np.array([0]))
        1.3333333333333333
    """
    x = np.asarray(x, dtype=np.float64)
    centers = x[np.asarray(selected)]
    center_sq = np.einsum("ij,ij->i", centers, centers)
    total = 0.0
    for start in range(0, len(x), chunk_size):
        block = x[start : start + chunk_size]
        sq = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * block @ centers.T + center_sq[None, :]
        total += np.sqrt(np.maximum(sq.min(axis=1), 0.0)).sum()
    return float(total / len(x))
