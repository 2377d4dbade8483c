from __future__ import annotations

import itertools

import numpy as np
from tqdm.auto import tqdm

from ...budget import proportional_counts
from ...selector import EmbeddingSelector, FeatureSet
from ...vectors import l2_normalize


def bin_sizes(n_rows: int, num_bins: int) -> np.ndarray:
    """Sizes of ``num_bins`` bins covering ``n_rows`` rows, as equal as possible (larger bins first)."""
    num_bins = min(num_bins, n_rows)
    sizes = np.full(num_bins, n_rows // num_bins)
    sizes[: n_rows % num_bins] += 1
    return sizes


class SimilarityRows:
    """Cosine-similarity rows ``s(i, .)`` over all rows, computed in blocks on demand, each used once.

    Each greedy pick needs the similarities of the picked row to the pool. One matrix-vector product per
    pick re-reads the whole feature matrix and is memory-bound. Instead, on a miss, the rows of the
    ``block`` most promising candidates (highest current gain) are computed with one matrix-matrix product,
    which runs at full BLAS speed, and kept until their row is picked (a row is needed exactly once, when
    its row joins a bin). The cache never holds more than ``max_cached_floats`` numbers: for small N that
    amounts to computing the similarity matrix lazily, for large N memory stays bounded (no N x N matrix).
    """

    def __init__(self, xn: np.ndarray, block: int = 512, max_cached_floats: int = 64_000_000):
        self.xn = xn
        self.max_rows = max(1, max_cached_floats // len(xn))
        self.block = max(1, min(block, self.max_rows))
        self.rows: dict[int, np.ndarray] = {}

    def pop(self, index: int, gain: np.ndarray, pool: np.ndarray, taken: np.ndarray) -> np.ndarray:
        """``s(index, pool)``; on a miss, also prefetch rows of the highest-gain untaken pool members."""
        if index not in self.rows:
            self._prefetch(index, gain, pool, taken)
        return self.rows.pop(index)[pool]

    def _prefetch(self, index: int, gain: np.ndarray, pool: np.ndarray, taken: np.ndarray) -> None:
        free = np.flatnonzero(~taken)
        by_gain = (int(i) for i in pool[free[np.argsort(-gain[free], kind="stable")]])
        uncached = (i for i in by_gain if i != index and i not in self.rows)
        # A full block each time: small blocks would re-read the whole matrix for a few rows.
        batch = [index, *itertools.islice(uncached, self.block - 1)]
        if len(self.rows) + len(batch) > self.max_rows:
            self.rows.clear()  # over the memory budget: drop the speculative rows, recompute on demand
        similarities = self.xn[batch] @ self.xn.T
        self.rows.update(zip(batch, similarities))


def graphcut_bins(x: np.ndarray, num_bins: int, graphcut_lambda: float = 1.0, show_progress: bool = False):
    """Split all rows into GraphCut bins, greedily, bin after bin from the shrinking pool.

    With cosine similarity, ``sum_{i in P} s(i, x) = <sum_{i in P} x_i, x>`` for unit rows, so the pool's
    column sums are one matrix-vector product per bin, and the bin's column sums are updated incrementally
    with the picked row's similarities (see :class:`SimilarityRows`): O(N^2 d) time in all, no N x N matrix.

    Returns ``(bins, gains)``: lists of index arrays, and of the gain each row had when it was picked.
    """
    xn = l2_normalize(np.asarray(x, dtype=np.float64))
    rows = SimilarityRows(xn)
    remaining = np.arange(len(xn))
    pool_sum = xn.sum(axis=0)
    bins, gains = [], []
    progress = tqdm(total=len(xn), desc="Building GraphCut bins", disable=not show_progress)
    for size in bin_sizes(len(xn), num_bins):
        gain = graphcut_lambda * (xn @ pool_sum)[remaining]
        taken = np.zeros(len(remaining), dtype=bool)
        picks, picked_gains = np.empty(size, dtype=np.int64), np.empty(size)
        for step in range(size):
            pick = int(np.argmax(np.where(taken, -np.inf, gain)))
            picks[step], picked_gains[step], taken[pick] = pick, gain[pick], True
            gain -= 2.0 * rows.pop(int(remaining[pick]), gain, remaining, taken)
        bins.append(remaining[picks])
        gains.append(picked_gains)
        pool_sum -= xn[bins[-1]].sum(axis=0)  # the next bin's pool is what this bin left over
        remaining = remaining[~taken]
        progress.update(int(size))
    progress.close()
    return bins, gains


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
        counts = proportional_counts(sizes, budget)
        rng = self.make_rng()
        indices, scores, bin_of = [], [], []
        for bin_id, (members, member_gains, count) in enumerate(zip(bins, gains, counts)):
            chosen = rng.choice(len(members), size=count, replace=False)
            indices.append(members[chosen])
            scores.append(member_gains[chosen])
            bin_of.append(np.full(count, bin_id))
        diagnostics = {"bin_sizes": sizes, "picked_per_bin": counts, "bin_of_pick": np.concatenate(bin_of)}
        return np.concatenate(indices), np.concatenate(scores), diagnostics
