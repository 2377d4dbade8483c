"""Methods whose sharded form is exact: the same picks as one process, computed shard by shard.

ScalSelect (``method="scalselect"`` on precomputed representations) is sums and a top-M: the column sum and
the centred covariance are sums over shards (the functions of
:mod:`hf_coreset.methods.scalselect.leverage`, applied to each shard), the eigen-decomposition runs once on
the d x d sum, each shard scores its own rows and keeps its local top M, and the global top M is among
those candidates (ties go to the lower row index, as in :func:`~hf_coreset.methods.scalselect.leverage.top_m`).
Only d-sized sums and ``M`` candidates per shard travel, never the vectors.

Example:
    >>> x = np.random.default_rng(0).normal(size=(300, 6))
    >>> shards = [x[:100], x[100:250], x[250:]]
    >>> mean = merge_means([column_sum(s) for s in shards])
    >>> subspace = dominant_subspace(sum(centred_covariance(s, mean) for s in shards), mean, len(x), rho=0.9)
    >>> picks = [top_leverage(s, subspace, 5, first_row) for s, first_row in zip(shards, (0, 100, 250))]
    >>> rows, scores = merge_top(picks, 5)
    >>> from hf_coreset.methods.scalselect.leverage import leverage_scores, top_m
    >>> bool((rows == top_m(leverage_scores(x, rho=0.9).scores, 5)[0]).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CoresetInputError
from ..methods.scalselect.leverage import DEFAULT_CHUNK_SIZE, energy_rank, streamed_covariance, top_m


@dataclass
class Subspace:
    """The dominant subspace of the centred covariance: scores are ``||(r - mean) @ whitening||^2``."""

    mean: np.ndarray
    whitening: np.ndarray
    k: int
    energy: float


def representations(blocks: dict[str, np.ndarray]) -> np.ndarray:
    """ScalSelect's input: the embedding columns concatenated as they are (no rescaling)."""
    blocks = list(blocks.values())
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def column_sum(x: np.ndarray) -> tuple[np.ndarray, int]:
    """``(float64 column sum, rows)`` of one shard."""
    return np.asarray(x).sum(axis=0, dtype=np.float64), len(x)


def merge_means(sums: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """The column mean over all shards from their :func:`column_sum`."""
    n_total = sum(n for _, n in sums)
    if n_total < 2:
        raise CoresetInputError(
            f"Leverage scoring needs at least 2 rows, got {n_total}: one row has no spread to measure."
        )
    return sum(s for s, _ in sums) / n_total


def centred_covariance(x: np.ndarray, mean: np.ndarray, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """One shard's share of ``sum_i (r_i - mean)(r_i - mean)^T`` (the global mean, float64)."""
    return streamed_covariance(np.asarray(x), mean, chunk_size)


def dominant_subspace(covariance: np.ndarray, mean: np.ndarray, n_total: int, rho: float) -> Subspace:
    """Eigen-decomposition of the summed covariance, cut at the energy rank of ``rho``."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]  # eigh sorts ascending
    k, energy = energy_rank(eigenvalues, rho, n_total)
    return Subspace(mean=mean, whitening=eigenvectors[:, :k] / np.sqrt(eigenvalues[:k]), k=k, energy=energy)


def top_leverage(x: np.ndarray, subspace: Subspace, m: int, first_row: int,
                 chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The shard's ``min(m, rows)`` highest leverage scores: ``(dataset rows, scores)``."""
    scores = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), chunk_size):
        projected = (np.asarray(x[start : start + chunk_size], dtype=np.float64) - subspace.mean) @ subspace.whitening
        scores[start : start + chunk_size] = np.einsum("ij,ij->i", projected, projected)
    local, local_scores = top_m(scores, min(m, len(x)))
    return first_row + local, local_scores


def merge_top(candidates: list[tuple[np.ndarray, np.ndarray]], m: int) -> tuple[np.ndarray, np.ndarray]:
    """The global top ``m`` from the shards' candidates (given in row order)."""
    rows = np.concatenate([r for r, _ in candidates])
    scores = np.concatenate([s for _, s in candidates])
    order = np.argsort(rows, kind="stable")  # row order, so that top_m breaks ties by the lower row
    picks, picked = top_m(scores[order], m)
    return rows[order][picks], picked
