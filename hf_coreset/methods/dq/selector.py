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
# graphcut_bins' speed settings (none of them changes the bins): picks per window, width of the subspace the
# bounds of untracked rows are computed in, and the first margin below the best gain that a row must reach
# to be tracked (it adapts: wider after a window had to be cut short, slowly narrower otherwise).
WINDOW_PICKS = 256
BOUND_RANK = 64
FIRST_MARGIN = 10.0
MIN_MARGIN = 1.0
# Every row is tracked (no bound needed) in pools under WINDOWED_MIN_ROWS rows, where bounds saved less than
# they cost (measured on benchmarks/scale_out.py's dq data: even at 40,000 rows), and in windows where more
# than ALL_TRACKED_SHARE of the rows is near the top.
WINDOWED_MIN_ROWS = 50_000
ALL_TRACKED_SHARE = 0.25
# The float32 updates' error grows with the picks since the gains were exact: every this many picks they are
# recomputed exactly (one float64 matrix-vector product).
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
    cache, so that a miss never throws away the rows that are about to be used. Where the gains are flat, the
    next picks are not the rows with the highest gains now and most of a block goes unused: each block is
    twice the hits since the previous miss (between ``MIN_BLOCK`` rows and ``block``).
    """

    MIN_BLOCK = 16

    def __init__(self, pool_rows: np.ndarray, block: int = 512, max_cached_floats: int = 128_000_000):
        self.pool_rows = np.asarray(pool_rows, dtype=np.float32)
        self.max_cached_floats = max_cached_floats
        self.max_block = max(1, min(block, self.max_rows // 4))
        self.hits = self.max_block  # the first block is a full one
        self.rows: dict[int, np.ndarray] = {}

    @property
    def max_rows(self) -> int:
        """How many rows of the pool's length fit the cache."""
        return max(4, self.max_cached_floats // max(1, len(self.pool_rows)))

    def pop(self, index: int, gain: np.ndarray, taken: np.ndarray) -> np.ndarray:
        """``2 s(index, pool)``; on a miss, also prefetch rows of the highest-gain untaken pool members."""
        if index in self.rows:
            self.hits += 1
        else:
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
        block = min(self.max_block, max(self.MIN_BLOCK, 2 * self.hits))
        self.hits = 0
        batch = [index, *uncached[: block - 1].tolist()]
        overflow = len(self.rows) + len(batch) - self.max_rows
        if overflow > 0:  # over the memory budget: the lowest-gain speculative rows make room
            cached = np.fromiter(self.rows, dtype=np.int64, count=len(self.rows))
            for i in cached[np.argsort(gain[cached], kind="stable")[:overflow]]:
                del self.rows[int(i)]
        similarities = (2.0 * self.pool_rows[batch]) @ self.pool_rows.T  # times 2 is exact in binary
        self.rows.update(zip(batch, similarities))


class UntrackedGainBound:
    """Upper bounds of the gains of the rows a window did not track, cheaper than the gains themselves.

    After the picks ``p_1 .. p_t`` of a window, a row's gain is its gain at the window's start plus
    ``<x_e, D_t>``, with ``D_t = -2 (x_p1 + .. + x_pt)``. Split along ``rank`` orthonormal directions ``B`` (the
    pool's leading ones): ``<x_e, D> = <B'x_e, B'D> + <r_e, r_D> <= <B'x_e, B'D> + |r_e| |r_D|`` (``r``: the
    parts outside them), an ``(N, rank + 1) x (rank + 1, t)`` product instead of ``(N, d) x (d, t)``. Rows that
    the bound cannot clear get their exact gains.
    """

    def __init__(self, pool: np.ndarray, rank: int, sample_rows: int = 20_000):
        # Any orthonormal directions give a valid bound; the leading ones of a sample give a tight one. Two
        # power iterations find them in O(sample x d x rank), whatever d (no d x d matrix).
        sample = pool[:: max(1, len(pool) // sample_rows)]
        directions = np.random.default_rng(0).normal(size=(pool.shape[1], min(rank, pool.shape[1])))
        for _ in range(2):
            directions = np.linalg.qr(sample.T @ (sample @ directions))[0]
        self.directions = directions
        projected = pool @ self.directions
        outside = np.einsum("ij,ij->i", pool, pool) - np.einsum("ij,ij->i", projected, projected)
        # coordinates along the directions, and the norm of the rest (+ 1e-6 covers rounding: unit rows)
        self.coordinates = np.hstack([projected, np.sqrt(np.maximum(outside, 0.0))[:, None] + 1e-6])

    def keep(self, kept: np.ndarray) -> None:
        """The pool lost the rows where ``kept`` is False."""
        self.coordinates = self.coordinates[kept]

    def first_step_beaten(self, pool: np.ndarray, start_gain: np.ndarray, picks: np.ndarray,
                          picked_gains: np.ndarray, targets: np.ndarray, start_target: np.ndarray) -> int | None:
        """The first step of the window at which an untracked row beats the window's pick, or None.

        ``start_gain``: exact gains at the window's start, -inf for tracked and taken rows; ``targets[t]``:
        the target before pick t (the gain of row e then is ``<x_e, targets[t]>``).
        """
        shifts = targets - start_target
        shift_norms = np.linalg.norm(shifts, axis=1)
        tolerance = 1e-9 * (np.abs(picked_gains).max() + np.abs(start_gain[np.isfinite(start_gain)]).max(initial=0.0)
                            + shift_norms.max())
        # Cauchy-Schwarz first (unit rows): gain <= start gain + |D_t|
        rows = np.flatnonzero(start_gain + shift_norms.max() >= picked_gains.min() - tolerance)
        if len(rows) == 0:
            return None
        projected_shifts = shifts @ self.directions
        outside_norms = np.linalg.norm(shifts - projected_shifts @ self.directions.T, axis=1)
        bounds = start_gain[rows, None] + self.coordinates[rows] @ np.vstack([projected_shifts.T, outside_norms])
        suspects = rows[np.unique(np.nonzero(bounds >= picked_gains - tolerance)[0])]
        if len(suspects) == 0:
            return None
        exact = pool[suspects] @ targets.T
        # the exact greedy breaks ties towards the smaller row
        beats = (exact > picked_gains) | ((exact == picked_gains) & (suspects[:, None] < picks))
        steps = np.nonzero(beats)[1]
        return int(steps.min()) if len(steps) else None


def greedy_among(pool: np.ndarray, tracked: np.ndarray, rows: SimilarityRows, gain: np.ndarray, target: np.ndarray,
                 count: int, *, record_targets: bool = False):
    """``count`` exact greedy picks among the ``tracked`` rows (sorted), from their exact gains ``gain`` (-inf:
    taken already); ``rows`` gives their similarity rows to the tracked rows.

    The gains are updated with float32 similarity rows (:class:`SimilarityRows`); an update errs by at most
    ``eps = 2 (d + 2) u`` in any row, so ``k`` updates into the window no gain is off by more than ``k eps``.
    Only a row whose gain is within ``2 k eps`` of the best-looking one can beat it; those few rows get their
    exact float64 gain ``<x_e, target>`` and the best of them is picked.

    Returns ``(picks, gains, targets, target)``: pool rows, their exact gains, the target before each pick
    (None unless ``record_targets``) and after the last.
    """
    error_per_update = 2.0 * (pool.shape[1] + 2) * FLOAT32_UNIT_ROUNDOFF
    gain = gain.copy()
    taken = np.isneginf(gain)
    picks, picked_gains = np.empty(count, dtype=np.int64), np.empty(count)
    targets = np.empty((count, pool.shape[1])) if record_targets else None
    updates, refresh = 0, False  # float32 updates since the gains were last exact
    for step in range(count):
        if refresh or updates == EXACT_REFRESH_PICKS:
            exact = (pool if len(tracked) == len(pool) else pool[tracked]) @ target  # no copy of a whole pool
            gain, updates, refresh = np.where(taken, -np.inf, exact), 0, False
        pick = int(np.argmax(gain))  # taken rows sit at -inf
        if updates:
            close = np.flatnonzero(gain >= gain[pick] - 2.0 * updates * error_per_update)
            gain[close] = pool[tracked[close]] @ target
            pick = int(close[np.argmax(gain[close])])  # close is sorted: ties go to the smaller index
            # Where the gains are flat (late in a bin, the picks' sum nearly cancels the pool's), many rows
            # stay close: then one exact pass over all rows is cheaper than arbitrating them pick after pick.
            refresh = len(close) > len(tracked) // 8
        picks[step], picked_gains[step], taken[pick] = tracked[pick], gain[pick], True
        if record_targets:
            targets[step] = target
        gain -= rows.pop(pick, gain, taken)
        gain[pick] = -np.inf
        target = target - 2.0 * pool[tracked[pick]]
        updates += 1
    return picks, picked_gains, targets, target


def graphcut_bin(pool: np.ndarray, all_rows: SimilarityRows, bound: UntrackedGainBound | None, target: np.ndarray,
                 size: int, *, window_picks: int = WINDOW_PICKS, margin: float = FIRST_MARGIN,
                 windowed_min_rows: int = WINDOWED_MIN_ROWS):
    """The exact GraphCut greedy's first ``size`` picks from ``pool`` (unit rows), gains ``<x_e, target>``;
    ``all_rows``: the pool's similarity rows (kept from bin to bin), ``bound``: the pool's.

    A pick changes every row's gain, but a window of picks is decided near the top of the gains: so each
    window of ``window_picks`` picks starts from exact gains (one float64 matrix-vector product), tracks only
    the rows within ``margin`` of the best (:func:`greedy_among`), then checks with
    :class:`UntrackedGainBound` that no untracked row would have beaten a pick. If one would have, the window
    keeps its picks before that step and the margin widens; the next window starts from there. So the picks
    are always the exact greedy's, and most similarity products involve only the tracked rows.

    Returns ``(picks, gains)``: pool rows in pick order and the gain each had when picked.
    """
    taken = np.zeros(len(pool), dtype=bool)
    picks, gains = [], []
    while len(picks) < size:
        gain = pool @ target
        untaken = np.flatnonzero(~taken)
        near_top = untaken[gain[untaken] >= gain[untaken].max() - margin]
        small_pool = bound is None or len(pool) < windowed_min_rows
        windowed = not small_pool and len(near_top) <= ALL_TRACKED_SHARE * len(untaken)
        if windowed:  # similarity rows against the tracked rows only, for this window
            tracked, count = near_top, min(window_picks, size - len(picks), len(near_top))
            rows = SimilarityRows(all_rows.pool_rows[tracked], block=128, max_cached_floats=all_rows.max_cached_floats)
        else:  # bounds would save too little: track every row (the whole bin at once in a small pool)
            tracked, rows = np.arange(len(pool)), all_rows
            count = size - len(picks) if small_pool else min(EXACT_REFRESH_PICKS, size - len(picks))
        gain[taken] = -np.inf
        window, window_gains, targets, end_target = greedy_among(pool, tracked, rows, gain[tracked], target, count,
                                                                 record_targets=windowed)
        beaten = None
        if windowed:
            untracked_gain = gain.copy()
            untracked_gain[tracked] = -np.inf
            beaten = bound.first_step_beaten(pool, untracked_gain, window, window_gains, targets, target)
            margin = max(MIN_MARGIN, 0.97 * margin) if beaten is None else 1.5 * margin
        kept = count if beaten is None else beaten
        picks.extend(window[:kept].tolist())
        gains.extend(window_gains[:kept].tolist())
        taken[window[:kept]] = True
        target = end_target if beaten is None else targets[kept]
    return np.array(picks, dtype=np.int64), np.array(gains)


def graphcut_bins(x: np.ndarray, num_bins: int, graphcut_lambda: float = 1.0, show_progress: bool = False,
                  max_cached_floats: int = 128_000_000, bound_rank: int = BOUND_RANK,
                  windowed_min_rows: int = WINDOWED_MIN_ROWS, **speed):
    """Split all rows into GraphCut bins, greedily, bin after bin from the shrinking pool.

    With cosine similarity, ``sum_{i in P} s(i, x) = <sum_{i in P} x_i, x>`` for unit rows, so the gain of row
    ``e`` given the bin's picks ``S`` is ``<x_e, lambda u - 2 s_S>`` (``u``: the pool's column sum, ``s_S``: the
    picks'). (The reference's kernel ``0.5 + 0.5 cos`` adds the same constant to every row's gain: same bins.)
    Each bin is :func:`graphcut_bin`: exact float64 greedy picks, with float32 similarity rows against the rows
    near the top of the gains only; O(N^2 d) time at worst, no N x N matrix.

    Returns ``(bins, gains)``: lists of index arrays, and of the gain each row had when it was picked.
    ``max_cached_floats`` bounds the similarity-row cache (4 bytes each; 512 MB by default). ``bound_rank``
    (:class:`UntrackedGainBound`), ``windowed_min_rows`` and ``speed`` (:func:`graphcut_bin`'s ``window_picks``
    and ``margin``) change the time, never the bins.
    """
    pool = l2_normalize(np.asarray(x, dtype=np.float64))  # the rows not yet in a bin
    rows = SimilarityRows(pool, max_cached_floats=max_cached_floats)
    bound = UntrackedGainBound(pool, bound_rank) if len(pool) >= windowed_min_rows else None
    remaining = np.arange(len(pool))
    bins, gains = [], []
    progress = tqdm(total=len(pool), desc="Building GraphCut bins", disable=not show_progress)
    for size in bin_sizes(len(pool), num_bins):
        picks, picked_gains = graphcut_bin(pool, rows, bound, graphcut_lambda * pool.sum(axis=0), int(size),
                                           windowed_min_rows=windowed_min_rows, **speed)
        bins.append(remaining[picks])
        gains.append(picked_gains)
        kept = np.ones(len(pool), dtype=bool)
        kept[picks] = False
        remaining, pool = remaining[kept], pool[kept]  # the next bin's pool is what this bin left over
        rows.shrink_pool(kept)
        if bound is not None:
            bound.keep(kept)
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
