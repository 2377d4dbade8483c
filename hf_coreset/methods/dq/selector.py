from __future__ import annotations

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


# |fl32(2 x.y) - 2 x.y| for unit float64 rows x, y rounded to float32 and multiplied in float32 is at most
# 2 (d + 2) u, with u = 2^-24 the unit roundoff (the classical bound for a dot product of length d, plus the
# rounding of the inputs); graphcut_bins keeps the greedy exact with such rows.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
# Every this many picks the gains are recomputed exactly (one float64 matrix-vector product).
EXACT_REFRESH_PICKS = 1024


class SimilarityRows:
    """Rows ``2 s(i, pool)`` of pool rows (cosine similarities, float32), computed in blocks on demand, each
    used once.

    Each greedy pick needs the similarities of the picked row to the pool. One matrix-vector product per
    pick re-reads the whole feature matrix and is memory-bound. Instead, on a miss, the rows of the
    ``block`` most promising candidates (highest current gain) are computed with one matrix-matrix product
    in float32, which runs at full BLAS speed (about twice float64's), and kept until their row is picked (a
    row is needed exactly once, when its row joins a bin). The cache never holds more than
    ``max_cached_floats`` numbers: for small N that amounts to computing the similarity matrix lazily, for
    large N memory stays bounded (no N x N matrix). When it is full, the rows of the candidates with the
    lowest gains (the least likely to be picked soon) make room, and a block is at most a quarter of the
    cache, so that a miss never throws away the rows that are about to be used.
    """

    def __init__(self, pool_rows: np.ndarray, block: int = 512, max_cached_floats: int = 128_000_000):
        self.pool_rows = np.asarray(pool_rows, dtype=np.float32)
        self.max_cached_floats = max_cached_floats
        self.block = max(1, min(block, self.max_rows // 4))
        self.rows: dict[int, np.ndarray] = {}

    @property
    def max_rows(self) -> int:
        """How many rows of the current pool's length fit the cache (it grows as the pool shrinks)."""
        return max(4, self.max_cached_floats // max(1, len(self.pool_rows)))

    def pop(self, index: int, gain: np.ndarray, taken: np.ndarray) -> np.ndarray:
        """``2 s(index, pool)``; on a miss, also prefetch rows of the highest-gain untaken pool members."""
        if index not in self.rows:
            self._prefetch(index, gain, taken)
        return self.rows.pop(index)

    def shrink_pool(self, kept: np.ndarray) -> None:
        """The pool lost the rows where ``kept`` is False: drop them from the rows and the cache."""
        positions = np.cumsum(kept) - 1
        self.pool_rows = self.pool_rows[kept]
        self.rows = {int(positions[i]): row[kept] for i, row in self.rows.items() if kept[i]}

    def _prefetch(self, index: int, gain: np.ndarray, taken: np.ndarray) -> None:
        free = np.flatnonzero(~taken)
        by_gain = free[np.argsort(-gain[free], kind="stable")]
        uncached = by_gain[~np.isin(by_gain, [index, *self.rows])]
        # A full block each time: small blocks would re-read the whole matrix for a few rows.
        batch = [index, *uncached[: self.block - 1].tolist()]
        overflow = len(self.rows) + len(batch) - self.max_rows
        if overflow > 0:  # over the memory budget: the lowest-gain speculative rows make room
            cached = np.fromiter(self.rows, dtype=np.int64, count=len(self.rows))
            for i in cached[np.argsort(gain[cached], kind="stable")[:overflow]]:
                del self.rows[int(i)]
        similarities = (2.0 * self.pool_rows[batch]) @ self.pool_rows.T  # times 2 is exact in binary
        self.rows.update(zip(batch, similarities))


def graphcut_bins(x: np.ndarray, num_bins: int, graphcut_lambda: float = 1.0, show_progress: bool = False,
                  max_cached_floats: int = 128_000_000):
    """Split all rows into GraphCut bins, greedily, bin after bin from the shrinking pool.

    With cosine similarity, ``sum_{i in P} s(i, x) = <sum_{i in P} x_i, x>`` for unit rows, so the gain of row
    ``e`` given the bin's picks ``S`` is ``<x_e, lambda u - 2 s_S>`` (``u``: the pool's column sum, ``s_S``: the
    picks'): one matrix-vector product per bin, then updated incrementally with the picked row's similarities
    (see :class:`SimilarityRows`): O(N^2 d) time in all, no N x N matrix. (The reference's kernel
    ``0.5 + 0.5 cos`` adds the same constant to every row's gain: same bins.)

    The picks are those of the exact float64 greedy although the similarity rows are float32: an update errs
    by at most ``eps = 2 (d + 2) u`` in any row, so ``k`` updates after the gains were last exact no gain is off
    by more than ``k eps``. Only a row whose gain is within ``2 k eps`` of the best-looking one can beat it;
    those few rows get their exact float64 gain ``<x_e, lambda u - 2 s_S>`` and the best of them is picked.
    Every ``EXACT_REFRESH_PICKS`` picks all gains are recomputed exactly, so ``k`` stays small.

    Returns ``(bins, gains)``: lists of index arrays, and of the gain each row had when it was picked.
    ``max_cached_floats`` bounds the similarity-row cache (4 bytes each; 512 MB by default).
    """
    pool = l2_normalize(np.asarray(x, dtype=np.float64))  # the rows not yet in a bin
    rows = SimilarityRows(pool, max_cached_floats=max_cached_floats)
    error_per_update = 2.0 * (pool.shape[1] + 2) * FLOAT32_UNIT_ROUNDOFF
    remaining = np.arange(len(pool))
    bins, gains = [], []
    progress = tqdm(total=len(pool), desc="Building GraphCut bins", disable=not show_progress)
    for size in bin_sizes(len(pool), num_bins):
        target = graphcut_lambda * pool.sum(axis=0)  # lambda u - 2 s_S, with S still empty
        gain = pool @ target
        taken = np.zeros(len(remaining), dtype=bool)
        picks, picked_gains = np.empty(size, dtype=np.int64), np.empty(size)
        updates = 0  # float32 updates since the gains were last exact
        for step in range(size):
            pick = int(np.argmax(gain))  # taken rows sit at -inf
            if updates:
                close = np.flatnonzero(gain >= gain[pick] - 2.0 * updates * error_per_update)
                gain[close] = pool[close] @ target
                pick = int(close[np.argmax(gain[close])])  # close is sorted: ties go to the smaller index
            picks[step], picked_gains[step], taken[pick] = pick, gain[pick], True
            gain -= rows.pop(pick, gain, taken)
            gain[pick] = -np.inf
            target -= 2.0 * pool[pick]
            updates += 1
            if updates == EXACT_REFRESH_PICKS:
                gain = np.where(taken, -np.inf, pool @ target)
                updates = 0
        bins.append(remaining[picks])
        gains.append(picked_gains)
        remaining, pool = remaining[~taken], pool[~taken]  # the next bin's pool is what this bin left over
        rows.shrink_pool(~taken)
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
