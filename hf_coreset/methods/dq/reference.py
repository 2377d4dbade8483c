"""A naive GraphCut binning that recomputes every gain from the full similarity matrix at every step.

It is the reference the fast path in ``selector.py`` is tested against (same bins on small inputs) and
the baseline of ``benchmarks/dq_speed.py``. Quadratic memory and cubic time: small inputs only.
"""

from __future__ import annotations

import numpy as np

from ...vectors import l2_normalize
from .selector import bin_sizes


def naive_graphcut_bins(x: np.ndarray, num_bins: int, graphcut_lambda: float = 1.0):
    """Same contract as :func:`graphcut_bins`, computed the slow, obvious way."""
    xn = l2_normalize(np.asarray(x, dtype=np.float64))
    similarity = xn @ xn.T
    remaining = list(range(len(xn)))
    bins, gains = [], []
    for size in bin_sizes(len(xn), num_bins):
        pool, picked, picked_gains = list(remaining), [], []
        for _ in range(size):
            candidates = [i for i in pool if i not in picked]
            gain = graphcut_lambda * similarity[np.ix_(pool, candidates)].sum(axis=0)
            if picked:
                gain -= 2.0 * similarity[np.ix_(picked, candidates)].sum(axis=0)
            best = int(np.argmax(gain))
            picked.append(candidates[best])
            picked_gains.append(gain[best])
        bins.append(np.array(picked))
        gains.append(np.array(picked_gains))
        remaining = [i for i in remaining if i not in picked]
    return bins, gains


def matvec_graphcut_bins(x: np.ndarray, num_bins: int, graphcut_lambda: float = 1.0):
    """Same contract again, with one matrix-vector product per pick (O(N^2 d), memory-bound, no cache):
    the exact float64 greedy at sizes where :func:`naive_graphcut_bins` is too slow."""
    xn = l2_normalize(np.asarray(x, dtype=np.float64))
    remaining = np.arange(len(xn))
    bins, gains = [], []
    for size in bin_sizes(len(xn), num_bins):
        pool = xn[remaining]
        gain = graphcut_lambda * (pool @ pool.sum(axis=0))
        picks, picked_gains = np.empty(size, dtype=np.int64), np.empty(size)
        for step in range(size):
            pick = int(np.argmax(gain))
            picks[step], picked_gains[step] = pick, gain[pick]
            gain -= 2.0 * (pool @ pool[pick])
            gain[pick] = -np.inf  # picked rows stay at -inf: -inf minus a similarity is -inf
        bins.append(remaining[picks])
        gains.append(picked_gains)
        remaining = np.delete(remaining, picks)
    return bins, gains
