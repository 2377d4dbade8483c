from __future__ import annotations

import numpy as np

from ...selector import EmbeddingSelector, FeatureSet


def _squared_distances_to(x: np.ndarray, sq_norms: np.ndarray, center: np.ndarray, chunk_size: int):
    """Squared Euclidean distance of every row of ``x`` to ``center``, computed chunk by chunk."""
    out = np.empty(len(x))
    center_sq = center @ center
    for start in range(0, len(x), chunk_size):
        block = x[start : start + chunk_size]
        out[start : start + chunk_size] = sq_norms[start : start + chunk_size] - 2.0 * (block @ center) + center_sq
    return np.maximum(out, 0.0)  # rounding can make a zero distance slightly negative


def farthest_point_greedy(x: np.ndarray, budget: int, first: int, chunk_size: int = 65536):
    """Greedy k-center: start at row ``first``, then repeatedly add the row farthest from the picked set.

    Returns ``(indices, radii)`` where ``radii[t]`` is the distance from pick ``t`` to the rows picked
    before it (infinite for the first pick). The running minimum distance is updated with one new center
    per step, so the cost is O(N d) per pick and memory O(N).
    """
    x = np.asarray(x, dtype=np.float64)
    sq_norms = np.einsum("ij,ij->i", x, x)
    min_sq = np.full(len(x), np.inf)
    indices = np.empty(budget, dtype=np.int64)
    radii = np.empty(budget)
    pick, radius_sq = first, np.inf
    for step in range(budget):
        indices[step], radii[step] = pick, np.sqrt(radius_sq)
        min_sq = np.minimum(min_sq, _squared_distances_to(x, sq_norms, x[pick], chunk_size))
        min_sq[pick] = -1.0  # never pick a row twice, even among exact duplicates
        pick = int(np.argmax(min_sq))
        radius_sq = min_sq[pick]
    return indices, radii


class KCenterSelector(EmbeddingSelector):
    """Covers the feature space: each pick is the row farthest from all rows picked so far.

    The first pick is drawn at random from the seed; the rest is deterministic.
    """

    scores_are_marginal_gains = True
    score_meaning = "distance to the previously picked rows when picked (covering radius; first pick: inf)"

    def _select(self, features: FeatureSet, budget: int):
        x = self.embed(features)
        first = int(self.make_rng().integers(len(x)))
        indices, radii = farthest_point_greedy(x, budget, first, self.config.chunk_size)
        return indices, radii, {"last_pick_radius": float(radii[-1]) if budget > 1 else None}
