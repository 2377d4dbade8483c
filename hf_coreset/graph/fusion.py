"""Per-modality kNN graphs, local-collapse scores, and their trust-weighted fusion into one graph.

Part of CAST (a reconstruction of the published abstract, arXiv 2605.11705; see ``METHODS.md`` §3).
Every graph is a symmetric ``scipy.sparse.csr_matrix`` with O(N k) entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..vectors import l2_normalize
from .knn import knn, similarities_to

SIGMA_NEIGHBOUR = 7  # self-tuning bandwidth: sigma_i = distance to the 7th nearest neighbour
# Cosines are float32 sums: a neighbour contrast below this is rounding, not a difference (exact duplicates
# leave 0 to 1e-6 depending on the summation order). Treated as 0, and the least median contrast that counts.
CONTRAST_RESOLUTION = 1e-5


@dataclass
class ModalityGraph:
    """One modality's graph.

    Attributes:
        weights: symmetric sparse ``(N, N)`` Gaussian edge weights.
        neighbours: ``(N, k)`` kNN lists after hubness reduction (directed, before symmetrisation).
        collapse: ``(N,)`` local-collapse score in [0, 1] (1 = the neighbourhood is degenerate).
        index_used: ``"exact"`` or the approximate backend that found the neighbours.
        candidates: ``(N, c)`` raw nearest-neighbour lists from the index, by decreasing cosine
            similarity (before CSLS re-ranking): CAST's similarity support, and the index's recall.
        candidate_similarities: ``(N, c)`` cosines of the prepared (centred) rows to those candidates.
    """

    weights: sp.csr_matrix
    neighbours: np.ndarray
    collapse: np.ndarray
    index_used: str
    candidates: np.ndarray
    candidate_similarities: np.ndarray


def unit_mean(x: np.ndarray) -> np.ndarray:
    """The mean of the L2-normalised rows (float64): the centre :func:`prepare_features` removes."""
    return l2_normalize(np.asarray(x, dtype=np.float32)).mean(axis=0, dtype=np.float64)


def prepare_features(x: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """L2-normalise, centre, L2-normalise again (float32): the graph's affinity is the cosine of centred features.

    The first normalisation makes everything downstream blind to how each row's vector is scaled (CLIP-style
    encoders emit unit rows, others do not); centring then removes the direction all rows share, which
    otherwise dominates every cosine. ``centre`` (default: ``unit_mean(x)``) is the centre of the pool when
    ``x`` is only a part of it, so that the part's rows and the pool's are centred alike.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(5, 3))
        >>> bool(np.allclose(prepare_features(x), prepare_features(x * np.arange(1, 6)[:, None])))
        True
    """
    x = l2_normalize(np.asarray(x, dtype=np.float32))
    centre = x.mean(axis=0, dtype=np.float64) if centre is None else np.asarray(centre, dtype=np.float64)
    return l2_normalize(x - centre.astype(np.float32))


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
    equally close: near-duplicates, or an encoder that maps different things to one point). A contrast below
    ``CONTRAST_RESOLUTION`` is float32 rounding and counts as 0, so rows of exact duplicates are degenerate
    whatever their rounding (before, where most rows were duplicates, the median was rounding too and a row
    was judged by whether its rounding left 0 or 1e-7: on Fashion-MNIST's template captions, 7-20 % of them
    looked uncollapsed, a share that moved with the rows in the graph). Hubness is the
    k-occurrence over ``k`` in excess of 1, capped at 1 (a row in twice as many lists as average scores 1).

    Example:
        >>> import numpy as np
        >>> sims = np.array([[1.0, 1.0], [0.9, 0.5], [0.9, 0.5]])
        >>> collapse_scores(sims, np.array([[1, 2], [0, 2], [0, 1]]), 3).round(2).tolist()
        [1.0, 0.0, 0.0]
    """
    k = sorted_sims.shape[1]
    contrast = sorted_sims[:, 0].astype(np.float64) - sorted_sims[:, -1]
    contrast[contrast < CONTRAST_RESOLUTION] = 0.0
    reference = max(float(np.median(contrast)), CONTRAST_RESOLUTION)
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
                   hubness_reduction: bool = True, search_dims: int | None = 128,
                   n_candidates: int | None = None) -> ModalityGraph:
    """kNN graph of one modality: centred cosine kNN, CSLS re-ranking, self-tuning Gaussian weights.

    ``n_candidates`` widens the candidate lists kept in :attr:`ModalityGraph.candidates` (CAST's similarity
    support); the graph itself always uses the ``k`` best (of ``2k`` with CSLS).

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
    n_candidates = min(n - 1, max(2 * k if hubness_reduction else k, SIGMA_NEIGHBOUR, n_candidates or 0))
    cand_idx, cand_sims, index_used = knn(xn, n_candidates, index=index, seed=seed, search_dims=search_dims)
    sigma = np.sqrt(np.maximum(2.0 - 2.0 * cand_sims[:, min(SIGMA_NEIGHBOUR, n_candidates) - 1], 0.0))
    # Exact duplicates give sigma = 0; a floor keeps exp(-0/0) out while their weight stays exp(0) = 1.
    sigma = np.maximum(sigma, max(1e-3 * float(np.median(sigma)), 1e-6))
    if hubness_reduction:
        idx, sims = csls_rerank(cand_idx[:, : 2 * k], cand_sims[:, : 2 * k], k)
    else:
        idx, sims = cand_idx[:, :k], cand_sims[:, :k]
    weights = self_tuning_weights(idx, sims, sigma)
    collapse = collapse_scores(cand_sims[:, :k], idx, n)
    return ModalityGraph(directed_to_symmetric(idx, weights, n), idx, collapse, index_used, cand_idx, cand_sims)


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


def top_k_per_row(w: sp.csr_matrix, k: int, max_cells: int = 2**24) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of every row of ``w`` (ties broken by column index).

    Rows are laid out as a padded ``rows x longest row`` array a block at a time (at most ``max_cells``
    cells) and cut at their ``k``-th largest value with ``np.partition``: linear in the entries, where
    sorting them all was not.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> top_k_per_row(sp.csr_matrix(np.array([[3.0, 1.0, 2.0], [1.0, 1.0, 1.0]])), 2).toarray().tolist()
        [[3.0, 0.0, 2.0], [1.0, 1.0, 0.0]]
    """
    w = sp.csr_matrix(w)
    w.sum_duplicates()  # also sorts the column indices of every row
    counts = np.diff(w.indptr)
    keep = np.ones(w.nnz, dtype=bool)
    long_rows = np.flatnonzero(counts > k)
    start = 0
    while start < len(long_rows):
        width = int(counts[long_rows[start:]].max())  # a bound for this block's rows
        rows = long_rows[start : start + max(1, max_cells // width)]
        start += len(rows)
        width = int(counts[rows].max())
        position = w.indptr[rows][:, None] + np.arange(width)  # entry index of each cell
        valid = np.arange(width) < counts[rows][:, None]
        values = np.where(valid, w.data[np.minimum(position, w.nnz - 1)], -np.inf)
        kth = -np.partition(-values, k - 1, axis=1)[:, k - 1 : k]
        above = values > kth
        # Of the entries equal to the k-th value, keep the first ones (lowest columns) until k are kept.
        tied = values == kth
        wanted = k - above.sum(axis=1, keepdims=True)
        keep_cell = above | (tied & (np.cumsum(tied, axis=1) <= wanted))
        keep[position[valid & ~keep_cell]] = False
    row_of = np.repeat(np.arange(w.shape[0]), counts)
    return sp.csr_matrix((w.data[keep], (row_of[keep], w.indices[keep])), shape=w.shape)


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


FUSIONS = ("product", "sum")


def union_support(candidates: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each row, then the union of its candidate lists across modalities: ``(support, keep)``, both ``(N, L)``.

    ``support[i]`` starts with ``i`` itself; ``keep`` is False where an entry repeats an earlier one.

    Example:
        >>> import numpy as np
        >>> support, keep = union_support([np.array([[1], [0]]), np.array([[1], [1]])])
        >>> support.tolist(), keep.tolist()
        ([[0, 1, 1], [1, 0, 1]], [[True, True, False], [True, True, False]])
    """
    n = len(candidates[0])
    support = np.concatenate([np.arange(n)[:, None], *candidates], axis=1).astype(np.int64)
    order = np.argsort(support, axis=1, kind="stable")  # stable: the first occurrence comes first
    ranked = np.take_along_axis(support, order, axis=1)
    repeat = np.zeros(support.shape, dtype=bool)
    repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
    keep = np.empty_like(repeat)
    np.put_along_axis(keep, order, ~repeat, axis=1)
    return support, keep


def fused_similarity(blocks: list[np.ndarray], candidates: list[np.ndarray], trust: np.ndarray,
                     fusion: str = "product", candidate_similarities: list[np.ndarray] | None = None,
                     ) -> sp.csc_matrix:
    """How well row ``j`` represents row ``i`` in every modality at once, on the union of the candidate lists.

    With ``c_m = cos_m(i, j)`` the cosine of the two rows of modality ``m`` (``M`` modalities) and ``a_m`` the
    mean trust of ``i`` and ``j`` in that modality:

    - ``fusion="product"``: ``s_ij = prod_m max(c_m, 0) ** (2 M a_m)``. With equal trust this is
      ``(c_image c_text)^2``: two pairs stand for each other only when both their images and their captions
      are alike; a modality whose neighbourhood collapsed (low trust) counts less.
    - ``fusion="sum"``: ``s_ij = (sum_m a_m c_m)^2``, the squared cosine of the per-block-normalised
      concatenation (the kernel of plain facility location) when trust is equal.

    Entries outside ``i``'s candidate lists are 0; ``s_ii = 1``. ``candidate_similarities[m]`` (optional) are
    the cosines of :func:`prepare_features` rows to modality ``m``'s own candidates, as the kNN search returns
    them: the uncentred cosines of those pairs then follow in closed form, and only the other modalities' lists
    are gathered. Returned column-compressed (column ``j``: the rows ``j`` can represent), shape ``(N, N)``.

    Example:
        >>> import numpy as np
        >>> image = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
        >>> text = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> neighbours = np.array([[1], [0], [1]])
        >>> s = fused_similarity([image, text], [neighbours, neighbours], np.full((3, 2), 0.5))
        >>> s.toarray().round(2).tolist()
        [[1.0, 0.36, 0.0], [0.36, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {list(FUSIONS)}, got {fusion!r}.")
    support, keep = union_support(candidates)
    modalities = [_UncentredCosines(x) for x in blocks]
    # Column range of each modality's own list inside the support (column 0 is the row itself).
    bounds = np.cumsum([1] + [c.shape[1] for c in candidates])
    n = len(support)
    rows, cols, values = [], [], []
    for start in range(0, n, ROW_CHUNK):  # row chunks keep the (rows x support) temporaries small
        stop = min(n, start + ROW_CHUNK)
        cosines = []
        for m, modality in enumerate(modalities):
            cosine = np.ones((stop - start, support.shape[1]), dtype=np.float32)
            for b in range(len(candidates)):
                lists = slice(bounds[b], bounds[b + 1])
                if b == m and candidate_similarities is not None:
                    cosine[:, lists] = modality.from_centred(start, stop, support[start:stop, lists],
                                                             candidate_similarities[m][start:stop])
                else:
                    cosine[:, lists] = similarities_to(modality.unit, support[start:stop, lists], start)
            cosines.append(cosine)
        chunk_values = _combine(cosines, support[start:stop], trust[start:stop], trust, fusion)
        chunk_keep = keep[start:stop] & (chunk_values > 0)
        rows.append(np.nonzero(chunk_keep)[0] + start)
        cols.append(support[start:stop][chunk_keep])
        values.append(chunk_values[chunk_keep])
    return sp.csc_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


ROW_CHUNK = 16_384


class _UncentredCosines:
    """A modality's L2-normalised rows, and what turns a cosine of prepared rows back into theirs.

    With unit rows ``u``, their mean ``mu`` and prepared rows ``p_i = (u_i - mu) / |u_i - mu|``:
    ``<u_i, u_j> = |u_i - mu| |u_j - mu| <p_i, p_j> + <u_i, mu> + <u_j, mu> - |mu|^2``.
    """

    def __init__(self, x: np.ndarray):
        self.unit = l2_normalize(np.asarray(x, dtype=np.float32))
        mean = self.unit.mean(axis=0, dtype=np.float64)
        self.norms = np.linalg.norm(self.unit - mean.astype(np.float32), axis=1).astype(np.float64)
        self.dots = self.unit @ mean
        self.mean_sq = float(mean @ mean)

    def from_centred(self, start: int, stop: int, columns: np.ndarray, centred: np.ndarray) -> np.ndarray:
        rows = slice(start, stop)
        return (self.norms[rows, None] * self.norms[columns] * centred
                + self.dots[rows, None] + self.dots[columns] - self.mean_sq)


def _combine(cosines: list[np.ndarray], columns: np.ndarray, row_trust: np.ndarray, trust: np.ndarray,
             fusion: str) -> np.ndarray:
    """:func:`fused_similarity`'s ``s_ij`` from each modality's cosines of the rows to their support columns."""
    n_modalities = len(cosines)
    mean_trust = [0.5 * (row_trust[:, m][:, None] + trust[columns, m]) for m in range(n_modalities)]
    if fusion == "product":
        log_s = sum(2.0 * n_modalities * a * np.log(np.maximum(c, 1e-30)) for a, c in zip(mean_trust, cosines))
        values = np.where(np.all([c > 0 for c in cosines], axis=0), np.exp(log_s), 0.0)
    else:
        values = np.square(sum(a * c for a, c in zip(mean_trust, cosines)))
    values[:, 0] = 1.0  # a row represents itself perfectly
    return values
