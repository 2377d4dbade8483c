"""ScalSelect stage B: leverage of each row in the dominant subspace, in time and memory linear in N.

The leverage of row i in the top-k principal subspace of the centred matrix X - mu is the squared norm of
row i of U_k (the top-k left singular vectors). Two exact routes lead there; :func:`leverage_scores` takes
the one whose matrix is smaller:

* N >= d, :func:`covariance_leverage`: with C = (X - mu)^T (X - mu) = V diag(l) V^T, row i of U_k is
  (r_i - mu)^T V_k diag(l_k)^(-1/2), so the scores need only the d x d covariance, never U (N x k). The
  covariance is summed in float64 chunk by chunk; under ``accelerate launch`` each process sums its own rows
  and ``reduce`` adds the partial sums across processes (the sums are all that is shared).
* N < d, :func:`gram_leverage`: G = (X - mu)(X - mu)^T = U diag(l) U^T has the same non-zero eigenvalues, and
  its eigenvectors are U itself, so the scores are row norms of U_k. At d = 20,000 and N = 200 this is a
  200 x 200 matrix instead of 20,000 x 20,000 (3.2 GB).

The eigendecomposition of the smaller matrix (side m = min(N, d), or d when distributed) is the memory peak,
about ``EIGH_COPIES * 8 * m^2`` bytes; above ``MAX_DECOMPOSITION_BYTES`` the scores are refused with a message
naming the fix (``reduce="pca:K"``, or a lower d) rather than left to exhaust the memory.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 16))
    >>> result = leverage_scores(x, rho=0.9)
    >>> bool(np.isclose(result.scores.sum(), result.k)), bool(result.scores.max() <= 1 + 1e-9)
    (True, True)
    >>> indices, scores = top_m(result.scores, 5)
    >>> indices.shape
    (5,)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...errors import CoresetInputError

DEFAULT_CHUNK_SIZE = 16384
# The eigendecomposition of an m x m float64 matrix holds the matrix, its eigenvectors and LAPACK's workspace
# (about two more copies); above this many bytes the scores are refused.
EIGH_COPIES = 4
MAX_DECOMPOSITION_BYTES = 8 * 2**30

# A reduction adds a float64 array across processes (identity when running alone).
Reduce = Callable[[np.ndarray], np.ndarray]


@dataclass
class LeverageResult:
    """Leverage scores of the rows given, and the subspace they were measured in.

    Attributes:
        scores: (n,) float64 leverage of each row, in [0, 1]; over all rows (all processes) they sum to k.
        k: dimension of the dominant subspace (smallest k whose eigenvalues hold a fraction rho of the trace).
        eigenvalues: all eigenvalues of the centred covariance sum, descending.
        mean: (d,) column mean over all rows.
        energy: fraction of the trace held by the top-k eigenvalues (>= rho unless the rank capped k).
        n_total: rows over all processes.
    """

    scores: np.ndarray
    k: int
    eigenvalues: np.ndarray
    mean: np.ndarray
    energy: float
    n_total: int


def _identity(array: np.ndarray) -> np.ndarray:
    return array


def check_representations(x: np.ndarray) -> np.ndarray:
    """Validate an (n, d) matrix of representations; return it as a float array (no copy if already float)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise CoresetInputError(f"Representations must be a 2-D (rows, dim) array, got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise CoresetInputError(
            f"Representation row {int(np.argmax(bad))} holds NaN or inf ({int(bad.sum())} such rows); "
            "drop or recompute those rows before scoring."
        )
    return x


def streamed_mean(x: np.ndarray, chunk_size: int = DEFAULT_CHUNK_SIZE, reduce: Reduce = _identity):
    """Column mean over all rows (all processes), summed in float64 chunks. Returns (mean, n_total)."""
    total = np.zeros(x.shape[1], dtype=np.float64)
    for start in range(0, len(x), chunk_size):
        total += x[start : start + chunk_size].sum(axis=0, dtype=np.float64)
    counts = reduce(np.concatenate([total, [float(len(x))]]))
    n_total = int(round(counts[-1]))
    if n_total < 2:
        raise CoresetInputError(
            f"Leverage scoring needs at least 2 rows, got {n_total}: one row has no spread to measure."
        )
    return counts[:-1] / n_total, n_total


def streamed_covariance(
    x: np.ndarray, mean: np.ndarray, chunk_size: int = DEFAULT_CHUNK_SIZE, reduce: Reduce = _identity
) -> np.ndarray:
    """C = sum_i (r_i - mean)(r_i - mean)^T over all rows, a (d, d) float64 matrix built chunk by chunk.

    Centring inside each chunk (a second pass rather than sum r r^T - n mu mu^T) avoids the cancellation
    that loses precision when the mean is large compared to the spread.
    """
    cov = np.zeros((x.shape[1], x.shape[1]), dtype=np.float64)
    for start in range(0, len(x), chunk_size):
        block = x[start : start + chunk_size].astype(np.float64) - mean
        cov += block.T @ block
    return reduce(cov)


def energy_rank(eigenvalues: np.ndarray, rho: float, n_total: int) -> tuple[int, float]:
    """Smallest k with sum_{j<=k} l_j >= rho * trace, capped at the numerical rank. Returns (k, energy)."""
    trace = float(eigenvalues.sum())
    if trace <= 0.0:
        raise CoresetInputError(
            "All representations are identical (zero variance): leverage cannot rank them. "
            "Check the representations, or use method='random'."
        )
    # Eigenvalues below this are rounding noise of the float64 covariance; dividing by them would
    # turn noise into huge scores, so the subspace never includes them (rank-deficient inputs).
    tolerance = eigenvalues[0] * max(n_total, len(eigenvalues)) * np.finfo(np.float64).eps
    rank = max(1, int((eigenvalues > tolerance).sum()))
    cumulative = np.cumsum(eigenvalues) / trace
    # The small slack keeps rho=1.0 reachable despite rounding in the cumulative sum.
    k = int(np.searchsorted(cumulative, rho - 1e-12, side="left")) + 1
    k = min(k, rank)
    return k, float(cumulative[k - 1])


def leverage_scores(
    x: np.ndarray,
    rho: float = 0.9,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    reduce: Reduce | None = None,
) -> LeverageResult:
    """Leverage of every row of ``x`` in the dominant (energy ``rho``) principal subspace.

    Uses the N x N Gram matrix when there are fewer rows than dimensions (one process), else the d x d
    covariance; both give the same scores (see the module docstring).

    Args:
        x: (n, d) representations (this process's rows when distributed).
        rho: fraction of the total variance the subspace must hold, in (0, 1].
        chunk_size: rows per float64 block; bounds temporary memory to chunk_size x d.
        reduce: adds a float64 array across processes (see :func:`accelerate_reduce`); None when alone.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(1).normal(size=(200, 8))
        >>> res = leverage_scores(x, rho=1.0)
        >>> res.k, round(float(res.scores.sum()), 6)
        (8, 8.0)
    """
    x = np.asarray(x)
    if reduce is None and x.ndim == 2 and x.shape[0] < x.shape[1]:
        return gram_leverage(x, rho, chunk_size=chunk_size)
    return covariance_leverage(x, rho, chunk_size=chunk_size, reduce=reduce)


def covariance_leverage(
    x: np.ndarray,
    rho: float = 0.9,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    reduce: Reduce | None = None,
) -> LeverageResult:
    """:func:`leverage_scores` through the d x d covariance (any N; the route when distributed).

    Example:
        >>> x = np.random.default_rng(2).normal(size=(30, 4))
        >>> bool(np.allclose(covariance_leverage(x).scores, gram_leverage(x).scores))
        True
    """
    x = _check_inputs(x, rho, chunk_size)
    reduce = reduce or _identity
    check_decomposition_size(x.shape[1], len(x), x.shape[1], distributed=reduce is not _identity)
    mean, n_total = streamed_mean(x, chunk_size, reduce)
    cov = streamed_covariance(x, mean, chunk_size, reduce)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]  # eigh sorts ascending
    k, energy = energy_rank(eigenvalues, rho, n_total)
    whitening = eigenvectors[:, :k] / np.sqrt(eigenvalues[:k])
    scores = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), chunk_size):
        projected = (x[start : start + chunk_size].astype(np.float64) - mean) @ whitening
        scores[start : start + chunk_size] = np.einsum("ij,ij->i", projected, projected)
    return LeverageResult(
        scores=scores, k=k, eigenvalues=eigenvalues, mean=mean, energy=energy, n_total=n_total
    )


def gram_leverage(x: np.ndarray, rho: float = 0.9, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> LeverageResult:
    """:func:`leverage_scores` through the N x N Gram matrix of the centred rows (one process; the cheaper
    route when N < d). ``eigenvalues`` has length d, as the covariance's: the Gram matrix's, then zeros.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(5, 1000))   # 5 rows, 1000 dims: centred, they span 4
        >>> result = gram_leverage(x, rho=1.0)
        >>> result.k, result.scores.round(6).tolist(), result.eigenvalues.shape
        (4, [0.8, 0.8, 0.8, 0.8, 0.8], (1000,))
    """
    x = _check_inputs(x, rho, chunk_size)
    n, d = x.shape
    check_decomposition_size(n, n, d, distributed=False)
    mean, n_total = streamed_mean(x, chunk_size)
    gram = np.zeros((n, n), dtype=np.float64)
    columns = max(1, chunk_size * d // n)  # n x columns temporaries: at most chunk_size x d, as the other route
    for start in range(0, d, columns):
        block = x[:, start : start + columns].astype(np.float64) - mean[start : start + columns]
        gram += block @ block.T
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    # The covariance's eigenvalues are the Gram matrix's first min(n, d), then zeros: the same length keeps
    # energy_rank's tolerance the same on both routes.
    eigenvalues = np.concatenate([np.clip(eigenvalues[:d], 0.0, None), np.zeros(max(0, d - n))])
    k, energy = energy_rank(eigenvalues, rho, n_total)
    scores = np.einsum("ij,ij->i", eigenvectors[:, :k], eigenvectors[:, :k])
    return LeverageResult(
        scores=scores, k=k, eigenvalues=eigenvalues, mean=mean, energy=energy, n_total=n_total
    )


def check_decomposition_size(side: int, n_rows: int, dim: int, *, distributed: bool) -> None:
    """Refuse an eigendecomposition of a ``side`` x ``side`` matrix above ``MAX_DECOMPOSITION_BYTES``.

    Example:
        >>> check_decomposition_size(4096, 100_000, 4096, distributed=False)   # 0.5 GB: fine
    """
    needed = EIGH_COPIES * 8 * side**2
    if needed <= MAX_DECOMPOSITION_BYTES:
        return
    route = ("under accelerate the d x d covariance is used" if distributed
             else "the smaller of N and d sets the matrix size")
    raise CoresetInputError(
        f"Leverage scores of N={n_rows} rows of d={dim} dims need the eigendecomposition of a {side} x {side} "
        f"float64 matrix ({route}), about {needed / 2**30:.1f} GB, above the {MAX_DECOMPOSITION_BYTES / 2**30:.0f} "
        "GB bound. Lower d first: scalselect's reduce='pca:K' (e.g. reduce='pca:4096'), or smaller "
        "representations."
    )


def _check_inputs(x: np.ndarray, rho: float, chunk_size: int) -> np.ndarray:
    if not 0.0 < rho <= 1.0:
        raise CoresetInputError(f"rho must be in (0, 1], got {rho}.")
    if chunk_size < 1:
        raise CoresetInputError(f"chunk_size must be >= 1, got {chunk_size}.")
    return check_representations(x)


def top_m(scores: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` highest scores in O(N): indices ordered by score descending, ties broken by lower index.

    Example:
        >>> top_m(np.array([0.1, 0.5, 0.5, 0.9]), 2)
        (array([3, 1]), array([0.9, 0.5]))
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not 0 < m <= len(scores):
        raise CoresetInputError(f"Cannot pick {m} of {len(scores)} rows.")
    threshold = np.partition(scores, len(scores) - m)[len(scores) - m]  # the m-th largest value
    above = np.flatnonzero(scores > threshold)
    # argpartition alone would pick among tied rows arbitrarily; taking the lowest indices is deterministic.
    tied = np.flatnonzero(scores == threshold)[: m - len(above)]
    chosen = np.concatenate([above, tied])
    order = np.lexsort((chosen, -scores[chosen]))  # sort only the m picks: score desc, then index
    chosen = chosen[order]
    return chosen, scores[chosen]


def accelerate_reduce(accelerator) -> Reduce:
    """A ``reduce`` for :func:`leverage_scores` that sums arrays over the processes of ``accelerator``.

    Sums travel as float64 tensors on the accelerator's device (gloo on CPU, nccl on GPU).

    Example:
        >>> from accelerate import Accelerator
        >>> reduce = accelerate_reduce(Accelerator(cpu=True))
        >>> reduce(np.array([1.0, 2.0])).tolist()   # one process: the sum is the input
        [1.0, 2.0]
    """
    import torch

    def reduce(array: np.ndarray) -> np.ndarray:
        if accelerator.num_processes == 1:
            return array
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64)).to(accelerator.device)
        return accelerator.reduce(tensor, reduction="sum").cpu().numpy()

    return reduce
