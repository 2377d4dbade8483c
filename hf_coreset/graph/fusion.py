"""Per-modality kNN graphs, local-collapse scores, and their trust-weighted fusion into one graph.

Part of CAST (a reconstruction of the published abstract, arXiv 2605.11705; see ``METHODS.md`` §3).
Every graph is a symmetric ``scipy.sparse.csr_matrix`` with O(N k) entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..vectors import l2_normalize
from .knn import knn

SIGMA_NEIGHBOUR = 7  # self-tuning bandwidth: sigma_i = distance to the 7th nearest neighbour


@dataclass
class ModalityGraph:
    """One modality's graph.

    Attributes:
        weights: symmetric sparse ``(N, N)`` Gaussian edge weights.
        neighbours: ``(N, k)`` kNN lists after hubness reduction (directed, before symmetrisation).
        collapse: ``(N,)`` local-collapse score in [0, 1] (1 = the neighbourhood is degenerate).
        index_used: ``"exact"`` or the approximate backend that found the neighbours.
        candidates: ``(N, c)`` raw nearest-neighbour lists from the index, by decreasing cosine
            similarity (before CSLS re-ranking); kept to measure the index's recall.
    """

    weights: sp.csr_matrix
    neighbours: np.ndarray
    collapse: np.ndarray
    index_used: str
    candidates: np.ndarray


def prepare_features(x: np.ndarray) -> np.ndarray:
    """Centre, then L2-normalise (float32): cosine similarity of centred features is the graph's affinity."""
    x = np.asarray(x, dtype=np.float32)
    return l2_normalize(x - x.mean(axis=0, dtype=np.float64).astype(np.float32))


def csls_rerank(idx: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep, of each row's candidates, the ``k`` best by CSLS ``2 s_ij - r_i - r_j``.

    ``r_i`` is the mean similarity of row ``i`` to its ``k`` nearest candidates: a hub (close to many
    rows) has a large ``r`` and so is demoted in everyone's list, which reduces hubness.

    Example:
        >>> import numpy as np
        >>> idx = np.array([[1, 2], [0, 2], [0, 1]]); sims = np.array([[.9, .8], [.9, .5], [.8, .5]])
        >>> csls_rerank(idx, sims, 1)[0].ravel().tolist()
        [1, 0, 0]
    """
    r = sims[:, :k].mean(axis=1)
    csls = 2.0 * sims - r[:, None] - r[idx]
    order = np.argsort(-csls, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(sims, order, axis=1)


def self_tuning_weights(idx: np.ndarray, sims: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Gaussian weights ``exp(-d_ij^2 / (sigma_i sigma_j))`` with ``d_ij^2 = 2 - 2 s_ij`` on unit vectors."""
    d2 = np.maximum(2.0 - 2.0 * sims.astype(np.float64), 0.0)
    return np.exp(-d2 / (sigma[:, None] * sigma[idx]))


def collapse_scores(sorted_sims: np.ndarray, neighbours: np.ndarray, n_rows: int) -> np.ndarray:
    """Local-collapse score in [0, 1]: degenerate neighbour contrast, or hubness (soft OR of the two).

    Contrast is ``s_(1) - s_(k)`` (nearest minus k-th similarity); a row whose contrast is below half the
    median contrast gets a degeneracy score growing linearly to 1 at zero contrast (its neighbours are all
    equally close: near-duplicates, or an encoder that maps different things to one point). Hubness is the
    k-occurrence over ``k`` in excess of 1, capped at 1 (a row in twice as many lists as average scores 1).

    Example:
        >>> import numpy as np
        >>> sims = np.array([[1.0, 1.0], [0.9, 0.5], [0.9, 0.5]])
        >>> collapse_scores(sims, np.array([[1, 2], [0, 2], [0, 1]]), 3).round(2).tolist()
        [1.0, 0.0, 0.0]
    """
    k = sorted_sims.shape[1]
    contrast = sorted_sims[:, 0].astype(np.float64) - sorted_sims[:, -1]
    reference = max(float(np.median(contrast)), 1e-12)
    degenerate = np.clip(1.0 - 2.0 * contrast / reference, 0.0, 1.0)
    k_occurrence = np.bincount(neighbours.ravel(), minlength=n_rows) / k
    hubness = np.clip(k_occurrence - 1.0, 0.0, 1.0)
    return 1.0 - (1.0 - degenerate) * (1.0 - hubness)


def directed_to_symmetric(idx: np.ndarray, weights: np.ndarray, n_rows: int) -> sp.csr_matrix:
    """Sparse matrix of the kNN edges, symmetrised by the larger weight of ``(i, j)`` and ``(j, i)``."""
    rows = np.repeat(np.arange(n_rows), idx.shape[1])
    w = sp.csr_matrix((weights.ravel(), (rows, idx.ravel())), shape=(n_rows, n_rows))
    return w.maximum(w.T).tocsr()


def modality_graph(x: np.ndarray, k: int = 10, index: str = "auto", seed: int = 0,
                   hubness_reduction: bool = True, search_dims: int | None = 128) -> ModalityGraph:
    """kNN graph of one modality: centred cosine kNN, CSLS re-ranking, self-tuning Gaussian weights.

    Example:
        >>> import numpy as np
        >>> g = modality_graph(np.random.default_rng(0).normal(size=(50, 4)), k=5)
        >>> g.weights.shape, g.neighbours.shape, g.index_used
        ((50, 50), (50, 5), 'exact')
    """
    xn = prepare_features(x)
    n = len(xn)
    k = min(k, n - 1)
    # CSLS re-ranks a wider candidate list, so find 2k candidates (and at least the 7th for sigma).
    n_candidates = min(n - 1, max(2 * k if hubness_reduction else k, SIGMA_NEIGHBOUR))
    cand_idx, cand_sims, index_used = knn(xn, n_candidates, index=index, seed=seed, search_dims=search_dims)
    sigma = np.sqrt(np.maximum(2.0 - 2.0 * cand_sims[:, min(SIGMA_NEIGHBOUR, n_candidates) - 1], 0.0))
    # Exact duplicates give sigma = 0; a floor keeps exp(-0/0) out while their weight stays exp(0) = 1.
    sigma = np.maximum(sigma, max(1e-3 * float(np.median(sigma)), 1e-6))
    if hubness_reduction:
        idx, sims = csls_rerank(cand_idx, cand_sims, k)
    else:
        idx, sims = cand_idx[:, :k], cand_sims[:, :k]
    weights = self_tuning_weights(idx, sims, sigma)
    collapse = collapse_scores(cand_sims[:, :k], idx, n)
    return ModalityGraph(directed_to_symmetric(idx, weights, n), idx, collapse, index_used, cand_idx)


def trust_weights(collapse: np.ndarray, beta: float = 5.0) -> np.ndarray:
    """``alpha[i, m] = softmax_m(-beta * collapse[i, m])``: a row collapsed in one modality trusts the others.

    Example:
        >>> import numpy as np
        >>> trust_weights(np.array([[1.0, 0.0]]), beta=5.0).round(3).tolist()
        [[0.007, 0.993]]
    """
    logits = -beta * np.asarray(collapse, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def top_k_per_row(w: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of every row of ``w`` (ties broken by column index)."""
    coo = w.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))
    rows, cols, data = coo.row[order], coo.col[order], coo.data[order]
    starts = np.searchsorted(rows, rows, side="left")
    keep = (np.arange(len(rows)) - starts) < k
    return sp.csr_matrix((data[keep], (rows[keep], cols[keep])), shape=w.shape)


def fuse_graphs(graphs: list[sp.csr_matrix], alpha: np.ndarray, k: int, consensus_boost: float = 2.0,
                self_loop: float = 1e-3) -> sp.csr_matrix:
    """Trust-weighted sum of modality graphs, consensus edges boosted, top-k per row, symmetric.

    ``W_ij = sum_m mean(alpha_i^m, alpha_j^m) W^m_ij``; an edge present in every modality's graph is
    multiplied by ``consensus_boost``; then each row keeps its ``k`` strongest edges, the result is
    symmetrised (max) and gets ``self_loop`` on the diagonal so that no row has zero degree.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> a = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0.0]]))
        >>> fuse_graphs([a, a], np.full((3, 2), 0.5), k=2).toarray().round(3)[0].tolist()
        [0.001, 2.0, 0.0]
    """
    n = graphs[0].shape[0]
    fused = sp.csr_matrix((n, n))
    present = sp.csr_matrix((n, n))
    for m, w in enumerate(graphs):
        coo = w.tocoo()
        coefficient = 0.5 * (alpha[coo.row, m] + alpha[coo.col, m])
        fused = fused + sp.csr_matrix((coo.data * coefficient, (coo.row, coo.col)), shape=(n, n))
        present = present + sp.csr_matrix((np.ones_like(coo.data), (coo.row, coo.col)), shape=(n, n))
    if len(graphs) > 1 and consensus_boost != 1.0:
        in_all = (present >= len(graphs)).astype(np.float64)
        fused = fused + (consensus_boost - 1.0) * fused.multiply(in_all)
    fused = top_k_per_row(fused.tocsr(), k)
    fused = fused.maximum(fused.T)
    return (fused + self_loop * sp.identity(n, format="csr")).tocsr()
