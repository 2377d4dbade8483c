from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ...features.aggregate import l2_normalize
from ...selector import EmbeddingSelector, FeatureSet


def bin_sizes(n_rows: int, num_bins: int) -> np.ndarray:
    """Sizes of ``num_bins`` bins covering ``n_rows`` rows, as equal as possible (larger bins first)."""
    num_bins = min(num_bins, n_rows)
    sizes = np.full(num_bins, n_rows // num_bins)
    sizes[: n_rows % num_bins] += 1
    return sizes


def graphcut_bins(x: np.ndarray, num_bins: int, graphcut_lambda: float = 1.0, show_progress: bool = False):
    """Split all rows into GraphCut bins, greedily, bin after bin from the shrinking pool.

    With cosine similarity, ``sum_{i in P} s(i, x) = <sum_{i in P} x_i, x>`` for unit rows, so the pool's
    column sums are one matrix-vector product per bin, and the bin's column sums are updated by one
    matrix-vector product per pick: no N x N matrix is ever built (O(N^2 d) time, O(N d) memory).

    Returns ``(bins, gains)``: lists of index arrays, and of the gain each row had when it was picked.
    """
    xn = l2_normalize(np.asarray(x, dtype=np.float64))
    remaining = np.arange(len(xn))
    bins, gains = [], []
    progress = tqdm(total=len(xn), desc="Building GraphCut bins", disable=not show_progress)
    for size in bin_sizes(len(xn), num_bins):
        pool = xn[remaining]
        gain = graphcut_lambda * (pool @ pool.sum(axis=0))
        taken = np.zeros(len(pool), dtype=bool)
        picks, picked_gains = np.empty(size, dtype=np.int64), np.empty(size)
        for step in range(size):
            pick = int(np.argmax(np.where(taken, -np.inf, gain)))
            picks[step], picked_gains[step], taken[pick] = pick, gain[pick], True
            gain -= 2.0 * (pool @ pool[pick])
        bins.append(remaining[picks])
        gains.append(picked_gains)
        remaining = remaining[~taken]
        progress.update(int(size))
    progress.close()
    return bins, gains


def per_bin_counts(sizes: np.ndarray, budget: int) -> np.ndarray:
    """How many rows to draw from each bin: ``budget / N`` of each, rounded by largest remainder."""
    exact = sizes * (budget / sizes.sum())
    counts = np.floor(exact).astype(np.int64)
    shortfall = budget - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:shortfall]] += 1
    return counts


class DQSelector(EmbeddingSelector):
    """Dataset Quantization: GraphCut bins over the whole pool, then a uniform draw inside every bin.

    The draw takes row indices from the bin itself (the study's public script drew positions inside the
    bin and used them as dataset indices: that bug is avoided here and covered by a test).
    """

    score_meaning = "GraphCut gain of the row when it was placed in its bin"

    def _select(self, features: FeatureSet, budget: int):
        x = self.embed(features)
        bins, gains = graphcut_bins(x, self.config.num_bins, self.config.graphcut_lambda,
                                    show_progress=len(x) > 5000)
        sizes = np.array([len(b) for b in bins])
        counts = per_bin_counts(sizes, budget)
        rng = self.make_rng()
        indices, scores, bin_of = [], [], []
        for bin_id, (members, member_gains, count) in enumerate(zip(bins, gains, counts)):
            chosen = rng.choice(len(members), size=count, replace=False)
            indices.append(members[chosen])
            scores.append(member_gains[chosen])
            bin_of.append(np.full(count, bin_id))
        diagnostics = {"bin_sizes": sizes, "picked_per_bin": counts, "bin_of_pick": np.concatenate(bin_of)}
        return np.concatenate(indices), np.concatenate(scores), diagnostics
