"""Facility location on a sparse similarity: ``f(S) = sum_i w_i max_{j in S} s_ij``, maximised by lazy greedy.

Every row ``i`` is represented by its most similar selected row; the objective is the total (weighted)
similarity of the pool to its representatives. It favours typical rows first (a row in a dense region
represents many others) and diversity afterwards (a second pick in a covered region gains little).

- :func:`knn_similarity` builds the similarity of ``method="facility_location"``: ``s_ij = cos(x_i, x_j)^2``
  for ``j`` among the ``k`` nearest neighbours of ``i`` (the kernel of apricot-select's ``metric="cosine"``),
  so memory is O(N k) instead of O(N^2).
- :func:`facility_location_greedy` maximises ``f`` for any non-negative sparse similarity, with optional
  per-row weights (how much a row counts as something to represent) and per-candidate weights (how much a
  row is worth picking); CAST runs it on its fused multimodal similarity.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from ..errors import CoresetInputError
from .knn import knn

# Above this many entries (N^2) the all-pairs similarity (n_neighbors=None) is refused: 1e8 float64 = 800 MB.
MAX_DENSE_ENTRIES = 100_000_000


def knn_similarity(x: np.ndarray, n_neighbors: int | None, index: str = "auto", seed: int = 0,
                   search_dims: int | None = 128) -> sp.csc_matrix:
    """Squared cosine similarity of each row to its ``n_neighbors`` nearest rows and to itself, ``(N, N)``.

    Row ``i`` holds ``s_ij = cos(x_i, x_j)^2`` for ``j = i`` and ``j`` among the ``n_neighbors`` nearest
    neighbours of ``i`` by cosine; ``n_neighbors=None`` keeps every pair (exact, O(N^2) memory). Returned
    column-compressed: column ``j`` lists the rows that candidate ``j`` can represent.

    Example:
        >>> import numpy as np
        >>> x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
        >>> knn_similarity(x, 1).toarray().round(2).tolist()
        [[1.0, 0.64, 0.0], [0.64, 1.0, 0.0], [0.0, 0.36, 1.0]]
    """
    from ..vectors import l2_normalize

    xn = l2_normalize(np.asarray(x, dtype=np.float32))
    n = len(xn)
    if n_neighbors is None or n_neighbors >= n - 1:
        if n * n > MAX_DENSE_ENTRIES:
            raise CoresetInputError(
                f"n_neighbors=None keeps all {n}^2 pairs, more than {MAX_DENSE_ENTRIES:,} entries: "
                "pass n_neighbors=K (e.g. 100) for a sparse kNN similarity."
            )
        dense = np.square(xn.astype(np.float64) @ xn.T.astype(np.float64))
        np.fill_diagonal(dense, 1.0)
        return sp.csc_matrix(dense)
    idx, sims, _ = knn(xn, n_neighbors, index=index, seed=seed, search_dims=search_dims)
    rows = np.repeat(np.arange(n), idx.shape[1] + 1)
    cols = np.concatenate([np.arange(n)[:, None], idx], axis=1).ravel()
    data = np.concatenate([np.ones((n, 1)), np.square(sims.astype(np.float64))], axis=1).ravel()
    return sp.csc_matrix((data, (rows, cols)), shape=(n, n))


def facility_location_greedy(similarity: sp.spmatrix, budget: int, row_weights: np.ndarray | None = None,
                             candidate_weights: np.ndarray | None = None, row_blocks: np.ndarray | None = None,
                             block_weights: Callable[[int], np.ndarray] | None = None,
                             candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy maximisation of ``f(S) = sum_i w_i max_{j in S} s_ij`` with lazy (Minoux) evaluation.

    ``similarity[i, j] >= 0`` is how well candidate ``j`` represents row ``i`` (missing entries are 0; rows
    may outnumber candidates, e.g. one block of rows per scale). The gain of ``j`` is
    ``c_j sum_i w_i b_{block(i)}(t) max(0, s_ij - best_i)`` with ``best_i`` the current representative's
    similarity and ``b(t) = block_weights(t)`` the weight of each block of rows at pick ``t`` (``row_blocks``
    gives every row's block; default: one block of weight 1). Gains only shrink as ``S`` grows and block
    weights may only fall, so a stale gain is an upper bound and only the top of the heap is recomputed.
    ``candidates`` (column indices, default all) restricts the picks; every row still counts as one to
    represent. Ties go to the earlier candidate (the smaller index). Returns ``(indices, gains)`` in pick order,
    indices being columns of ``similarity``.

    Example:
        >>> import numpy as np
        >>> s = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.1], [0.0, 0.1, 1.0]])
        >>> facility_location_greedy(s, 2)[0].tolist()
        [1, 2]
    """
    s = sp.csc_matrix(similarity, dtype=np.float64)
    c = np.ones(s.shape[1]) if candidate_weights is None else np.asarray(candidate_weights, dtype=np.float64)
    if candidates is not None:
        s, c = s[:, candidates], c[candidates]
    n_rows, n = s.shape
    if s.nnz and s.data.min() < 0:
        raise CoresetInputError("facility location needs a non-negative similarity.")
    w = np.ones(n_rows) if row_weights is None else np.asarray(row_weights, dtype=np.float64)
    blocks = np.zeros(n_rows, dtype=np.int64) if row_blocks is None else np.asarray(row_blocks)
    weights_at = block_weights or (lambda step: np.ones(int(blocks.max()) + 1))
    best = np.zeros(n_rows)
    indptr, rows_of, values = s.indptr, s.indices, s.data

    def gain(j: int, block_weight: np.ndarray) -> float:
        rows = rows_of[indptr[j] : indptr[j + 1]]
        improvement = np.maximum(values[indptr[j] : indptr[j + 1]] - best[rows], 0.0)
        return float(c[j] * (w[rows] * block_weight[blocks[rows]] * improvement).sum())

    block_weight = np.asarray(weights_at(0), dtype=np.float64)
    # With nothing selected, gain_j = c_j sum_i w_i b_i s_ij.
    heap = [(-g, j) for j, g in enumerate(c * (s.T @ (w * block_weight[blocks])))]
    heapq.heapify(heap)
    indices, gains = np.empty(budget, dtype=np.int64), np.empty(budget)
    for step in range(budget):
        now = np.asarray(weights_at(step), dtype=np.float64)
        if np.any(now > block_weight):
            raise ValueError("block_weights must never increase from one pick to the next (lazy greedy bounds).")
        block_weight = now
        while True:
            _, j = heapq.heappop(heap)
            fresh = gain(j, block_weight)
            if not heap or (-fresh, j) <= heap[0]:  # still the best: every other gain is at most its bound
                break
            heapq.heappush(heap, (-fresh, j))
        indices[step], gains[step] = j, fresh
        rows = rows_of[indptr[j] : indptr[j + 1]]
        best[rows] = np.maximum(best[rows], values[indptr[j] : indptr[j + 1]])
    return (indices if candidates is None else np.asarray(candidates)[indices]), gains
