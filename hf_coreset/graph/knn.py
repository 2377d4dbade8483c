"""k-nearest-neighbour search on L2-normalised rows (cosine similarity), exact or approximate.

Exact search computes similarities block by block (``block x N`` at a time, never ``N x N``), which is
fine up to 20k rows. Past that, an HNSW index (hnswlib) searches a 128-d PCA projection and the
candidates are re-scored exactly in the original space. Why hnswlib (``benchmarks/knn_index_comparison.py``,
N = 50k, 2 shared cores): at full width pynndescent was the fastest (14.5 s at 384-d, 33.7 s at 1280-d,
recall@10 0.999, against 76 / 268 s for hnswlib and 86 / 200 s for faiss HNSW, recall 1.000), but it
compiles with numba for 90-120 s in every new process and pulls numba + llvmlite. On the 128-d
projection used here the gap closes (25k rows: pynndescent 10.1 s, hnswlib 11.5 s with M=16 and
ef_construction=100, and hnswlib 3x faster again with the M=12 / 48 kept below at the same recall), so
the light, compile-free hnswlib is the default; faiss and pynndescent remain available with ``index=``.
The hnswlib graph is built in one thread, so its neighbours are the same on every machine for a seed; faiss
and pynndescent build with every core and may differ between runs.
"""

from __future__ import annotations

import os

import numpy as np

from ..vectors import l2_normalize

# Past this many rows, index="auto" switches from exact blocked search to the approximate index.
EXACT_MAX_ROWS = 20_000
DEFAULT_INDEX = "hnswlib"
HNSW_M, HNSW_EF_CONSTRUCTION = 12, 48
# Exact search shortlists this many rows beyond k by float32 products before ranking them in float64: rows
# whose float32 similarities differ only by rounding (about 1e-7) all make the shortlist.
RESCORE_MARGIN = 8
INDEXES = ("auto", "exact", "hnswlib", "faiss", "pynndescent")


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def exact_knn(x: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar other rows of every row of unit-norm ``x``, by blocked matrix products.

    Returns ``(indices, similarities)``, both ``(N, k)``, sorted by decreasing similarity, self excluded. Equal
    similarities (duplicate rows, e.g. captions from one template) go to the rows that follow row ``i`` in
    index order, wrapping around: each duplicate then points at the next ones, and no duplicate becomes every
    other's neighbour (a hub), as "lower index first" would make the first of them (on Fashion-MNIST, whose
    captions come from 50 templates, that cost CAST 0.8-1.7 points at 5 %).

    The float32 products only shortlist ``k + RESCORE_MARGIN`` rows: BLAS sums a product in an order that depends
    on its thread count, so near-equal neighbours would swap between machines, or between a Ray worker (one
    thread) and the driver. The shortlist is ranked by ``similarities_to(..., exact=True)`` instead.

    Example:
        >>> import numpy as np
        >>> x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
        >>> exact_knn(x, 1)[0].ravel().tolist()
        [1, 0, 1]
    """
    n = len(x)
    k = min(k, n - 1)
    shortlist = min(k + RESCORE_MARGIN, n - 1)
    indices = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        s = x[start : start + block] @ x.T
        rows = np.arange(len(s))
        s[rows, start + rows] = -np.inf  # a row is not its own neighbour
        part = np.argpartition(-s, shortlist - 1, axis=1)[:, :shortlist]
        part_s = similarities_to(x, part, rows=start + rows, exact=True)
        after = (part - (start + rows)[:, None]) % n  # ties: the rows after this one first (see above)
        order = np.lexsort((after, -part_s))[:, :k]
        indices[start : start + block] = np.take_along_axis(part, order, axis=1)
        sims[start : start + block] = np.take_along_axis(part_s, order, axis=1)
    return indices, sims


def approximate_knn(x: np.ndarray, k: int, index: str = DEFAULT_INDEX, seed: int = 0,
                    ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Approximate :func:`exact_knn` with ``hnswlib``, ``faiss`` (HNSW, inner product) or ``pynndescent``.

    ``ef`` is the search breadth of the HNSW backends (default ``max(k + 1, 40)``); larger is slower and
    more accurate. HNSW graphs use ``M = 12`` links and ``ef_construction = 48``: at N = 50k (1280-d
    features projected to 128-d) that is 3x faster to build than ``M = 16, ef_construction = 100`` with
    the same recall@10 (1.000, ``benchmarks/knn_index_comparison.py`` data). Returns the same
    ``(indices, similarities)`` layout as :func:`exact_knn`.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    ef = ef or max(k + 1, 40)
    if index == "hnswlib":
        idx, sims = _hnswlib(x, k + 1, ef, seed)
    elif index == "faiss":
        idx, sims = _faiss(x, k + 1, ef)
    elif index == "pynndescent":
        idx, sims = _pynndescent(x, k + 1, seed)
    else:
        raise ValueError(f"Unknown approximate index {index!r}; use one of {INDEXES[2:]}.")
    return _drop_self(idx, sims, k)


def _drop_self(idx: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index from its list (an index usually, not always, returns it first)."""
    rows = np.arange(len(idx))[:, None]
    is_self = idx == rows
    # Push self (or, when self is missing, the last neighbour) to the end, then cut to k.
    drop = np.where(is_self.any(axis=1, keepdims=True), is_self, np.arange(idx.shape[1]) == idx.shape[1] - 1)
    order = np.argsort(drop, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)[:, :k]
    sims = np.take_along_axis(sims, order, axis=1)[:, :k]
    return idx.astype(np.int64), sims.astype(np.float32)


def _hnswlib(x: np.ndarray, k: int, ef: int, seed: int):
    try:
        import hnswlib
    except ImportError as err:
        raise ImportError("index='hnswlib' needs hnswlib: pip install hnswlib") from err
    index = hnswlib.Index(space="ip", dim=x.shape[1])
    index.init_index(max_elements=len(x), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M, random_seed=seed)
    # Built in one thread: parallel insertion links rows in an order that depends on the threads' timing, so
    # the graph (and the neighbours) would differ between runs and machines. Queries do not change the
    # graph and use every core. (200,000 rows of 128-d: build 22 s in one thread, 12 s in two.)
    index.set_num_threads(1)
    index.add_items(x, np.arange(len(x)))
    index.set_num_threads(_threads())
    index.set_ef(max(ef, k))
    labels, distances = index.knn_query(x, k=k)
    return labels, 1.0 - distances  # hnswlib's "ip" space returns 1 - <x, y>


def _faiss(x: np.ndarray, k: int, ef: int):
    try:
        import faiss
    except ImportError as err:
        raise ImportError("index='faiss' needs faiss-cpu: pip install faiss-cpu") from err
    faiss.omp_set_num_threads(_threads())
    index = faiss.IndexHNSWFlat(x.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(x)
    index.hnsw.efSearch = max(ef, k)
    sims, labels = index.search(x, k)
    return labels, sims


def _pynndescent(x: np.ndarray, k: int, seed: int):
    try:
        import pynndescent
    except ImportError as err:
        raise ImportError("index='pynndescent' needs pynndescent: pip install pynndescent") from err
    graph = pynndescent.NNDescent(x, metric="cosine", n_neighbors=max(k, 15), random_state=seed,
                                  n_jobs=_threads(), low_memory=True)
    labels, distances = graph.neighbor_graph
    return labels[:, :k], 1.0 - distances[:, :k]


def project(x: np.ndarray, dims: int, seed: int = 0, sample: int = 10_000, chunk: int = 65_536) -> np.ndarray:
    """PCA of ``x`` to ``dims`` dimensions (fitted on a random sample of rows), L2-normalised, float32.

    The principal axes are the top eigenvectors of the sample's ``d x d`` covariance (cheap for the
    ``d <= 2048`` of encoder features, and no scikit-learn import on this path).

    Example:
        >>> import numpy as np
        >>> project(np.random.default_rng(0).normal(size=(100, 16)), 4).shape
        (100, 4)
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(x), size=min(sample, len(x)), replace=False))
    fit = np.asarray(x[rows], dtype=np.float64)
    mean = fit.mean(axis=0)
    fit -= mean
    _, vectors = np.linalg.eigh(fit.T @ fit)
    axes = vectors[:, ::-1][:, :dims].astype(np.float32)
    mean = mean.astype(np.float32)
    out = np.concatenate([(x[i : i + chunk] - mean) @ axes for i in range(0, len(x), chunk)])
    return l2_normalize(out.astype(np.float32))


def similarities_to(x: np.ndarray, idx: np.ndarray, start: int = 0, max_floats: int = 2**25,
                    rows: np.ndarray | None = None, exact: bool = False) -> np.ndarray:
    """``sims[r, c] = <x[start + r], x[idx[r, c]]>`` (float32) for the rows ``start .. start + len(idx)``.

    ``rows`` (optional) names the row vectors instead: ``sims[r, c] = <x[rows[r]], x[idx[r, c]]>``. The
    candidate rows are gathered a few rows at a time (at most ``max_floats`` gathered floats: 128 MB of
    float32), so memory stays bounded however wide ``x`` and ``idx`` are.

    ``exact=True`` returns float64 sums made by numpy's own loop instead of BLAS: the same values whatever
    BLAS's thread count (slower; :func:`exact_knn` ranks its shortlist by them).

    Example:
        >>> import numpy as np
        >>> similarities_to(np.eye(3), np.array([[0, 1], [1, 2], [2, 0]])).tolist()
        [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
        >>> similarities_to(np.eye(3), np.array([[1, 0], [2, 1]]), rows=np.array([0, 2]), exact=True).tolist()
        [[0.0, 1.0], [1.0, 0.0]]
    """
    if not exact:
        x = np.asarray(x, dtype=np.float32)
    rows = np.arange(start, start + len(idx)) if rows is None else np.asarray(rows)
    sims = np.empty(idx.shape, dtype=np.float64 if exact else np.float32)
    step = max(1, max_floats // max(1, idx.shape[1] * x.shape[1]))
    for first in range(0, len(idx), step):
        block, candidates = x[rows[first : first + step]], x[idx[first : first + step]]
        if exact:
            # einsum casts each element as it multiplies: no float64 copy of the gathered rows.
            sims[first : first + step] = np.einsum("rd,rcd->rc", block, candidates, dtype=np.float64)
        else:
            # Batched mat-vec (BLAS) on the gathered candidate rows; einsum would not use BLAS here.
            sims[first : first + step] = np.matmul(candidates, block[:, :, None])[:, :, 0]
    return sims


def rescore(x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact similarities of each row to its candidate neighbours, candidates re-sorted by them."""
    sims = similarities_to(x, idx)
    order = np.argsort(-sims, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(sims, order, axis=1)


def knn(x: np.ndarray, k: int, index: str = "auto", seed: int = 0,
        search_dims: int | None = 128) -> tuple[np.ndarray, np.ndarray, str]:
    """kNN of unit-norm rows: exact for ``N <= EXACT_MAX_ROWS`` under ``index="auto"``, approximate above.

    The approximate path searches in a ``search_dims``-dimensional PCA projection when the rows are
    wider (an HNSW graph costs O(d) per distance: 1280-d image features would make it ten times slower),
    then re-scores the candidates with exact similarities in the original space. Returns
    ``(indices, similarities, index_used)``.

    Example:
        >>> import numpy as np
        >>> x = np.eye(3)[[0, 0, 1, 2]] + 0.01 * np.arange(4)[:, None]
        >>> idx, sims, used = knn(x / np.linalg.norm(x, axis=1, keepdims=True), 1)
        >>> idx[0, 0], used
        (np.int64(1), 'exact')
    """
    if index not in INDEXES:
        raise ValueError(f"index must be one of {list(INDEXES)}, got {index!r}.")
    if index == "auto":
        index = "exact" if len(x) <= EXACT_MAX_ROWS else DEFAULT_INDEX
    if index == "exact":
        return (*exact_knn(x, k), "exact")
    if search_dims is None or x.shape[1] <= search_dims:
        return (*approximate_knn(x, k, index, seed), index)
    # The projection blurs fine distances: find extra candidates, keep the k best after exact re-scoring.
    idx, _ = approximate_knn(project(x, search_dims, seed), k + max(10, k // 2), index, seed)
    idx, sims = rescore(np.asarray(x, dtype=np.float32), idx)
    return idx[:, :k], sims[:, :k], f"{index}+pca{search_dims}"


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each row's exact neighbours that the approximate list also holds."""
    hits = [len(np.intersect1d(a, e)) for a, e in zip(approx, exact)]
    return float(np.mean(hits) / exact.shape[1])
