"""Two-hop soft relational coverage, CAST's redundancy penalty.

Part of CAST (a reconstruction of the published abstract, arXiv 2605.11705; see ``METHODS.md`` §3).
``A`` is the two-hop relation ``T^2`` normalised column by column; a selected row ``j`` covers row ``i``
with probability ``a_ij`` and ``C(S) = sum_i [1 - prod_{j in S} (1 - a_ij)]``. The marginal gain of a
row inside a cluster that is already covered vanishes, which is what penalises redundant picks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .fusion import top_k_per_row

MIN_REFERENCE = 0.05


def relation_matrix(t: sp.csr_matrix, k: int, keep: int | None = None, chunk: int = 8192) -> sp.csr_matrix:
    """``A^T`` (row ``j`` = what row ``j`` covers): column-normalised two-hop relations, pruned, in [0, 1].

    Column ``j`` of ``T^2`` is divided by its ``k``-th largest entry (at least 5 % of its largest) and
    clipped at 1: a pick fully covers its ``k`` strongest two-hop relations (geometric kNN coverage) and
    partly covers the weaker, indirect ones. Each column keeps its ``keep`` (default ``4 k``) strongest
    entries; ``T^2`` is formed ``chunk`` rows at a time, so memory stays O(N keep). ``T`` is symmetric,
    so rows of ``T^2`` are its columns.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> from hf_coreset.graph.wavelets import diffusion_operator
        >>> t = diffusion_operator(sp.csr_matrix(np.ones((3, 3)) - np.eye(3)))
        >>> relation_matrix(t, k=3).toarray().round(2).tolist()[0]
        [1.0, 1.0, 1.0]
    """
    keep = keep or 4 * k
    n = t.shape[0]
    pieces = []
    for start in range(0, n, chunk):
        two_hop = top_k_per_row((t[start : start + chunk] @ t).tocsr(), keep)
        pieces.append(_normalise_rows(two_hop, k))
    return sp.vstack(pieces, format="csr")


def _normalise_rows(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Divide each row by its k-th largest entry (floored at 5 % of its largest), clip at 1."""
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    order = np.lexsort((-m.data, rows))  # within each row, largest first
    rank = np.arange(len(rows)) - m.indptr[rows[order]]
    is_reference = rank == np.minimum(k, counts[rows[order]]) - 1
    reference = np.ones(m.shape[0])
    reference[rows[order][is_reference]] = m.data[order][is_reference]
    # A row with fewer than k real relations (a small isolated clique) has a near-zero k-th entry;
    # without a floor its negligible relations would be blown up to full coverage.
    largest = np.maximum.reduceat(m.data, m.indptr[:-1]) if m.nnz else np.ones(m.shape[0])
    reference = np.maximum(reference, MIN_REFERENCE * np.where(counts > 0, largest, 1.0))
    out = m.copy()
    out.data = np.minimum(m.data / reference[rows], 1.0)
    return out


class SoftCoverage:
    """Greedy state of ``C(S)``: ``uncovered[i] = prod_{j in S} (1 - a_ij)``.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> cov = SoftCoverage(sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])))
        >>> cov.gains(np.arange(3)).tolist(); cov.add(0); cov.gains(np.arange(3)).tolist()
        [2.0, 2.0, 1.0]
        [0.0, 0.0, 1.0]
    """

    def __init__(self, relations_t: sp.csr_matrix):
        self.relations_t = relations_t
        self.uncovered = np.ones(relations_t.shape[1])

    def gains(self, candidates: np.ndarray) -> np.ndarray:
        """``C(S + j) - C(S) = sum_i uncovered_i a_ij`` for each candidate ``j``."""
        return self.relations_t[candidates] @ self.uncovered

    def add(self, j: int) -> None:
        row = self.relations_t[j]
        self.uncovered[row.indices] *= 1.0 - row.data

    def value(self) -> float:
        """``C(S)``: the covered mass (between 0 and N)."""
        return float(len(self.uncovered) - self.uncovered.sum())
