"""Partitioning the rows of a sharded selection, and putting the partitions' picks back together.

Nothing here depends on the engine or on the number of workers: the sample is drawn from the seed, the
k-means runs in one process on that sample, each row goes to its nearest centre, and each partition gets a
seed of its own derived from ``(seed, partition)``. Any number of workers therefore computes the same
partitions, budgets and picks.

The vector that decides a row's partition is the ``concat`` aggregation (each modality block L2-normalised,
then concatenated), whatever the method's own aggregation: partitions follow where rows lie in every
modality.

Example:
    >>> rng = np.random.default_rng(0)
    >>> blocks = {"img": rng.normal(size=(300, 8)), "txt": rng.normal(size=(300, 4))}
    >>> vectors = partition_vectors(blocks)
    >>> centres = fit_partitions(vectors[sample_rows(300, 100, seed=0)], 3, seed=0)
    >>> np.bincount(assign_partitions(vectors, centres), minlength=3).sum()
    np.int64(300)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..selector import FeatureSet, PoolReference
from ..vectors import l2_normalize

# Rows of the k-means sample every partition task also gets, as the pool's reference (FeatureSet.reference):
# enough to stand for the pool, small enough to ship to every task (10,000 x 1,024 float16 = 20 MB).
REFERENCE_ROWS = 10_000
# Under budget_split="gain" a partition proposes this many times its proportional share (at least one row):
# room for the partitions whose picks gain more to take more than their size alone would give them.
GAIN_OVERSAMPLE = 2.0
# The second round (refine_features) is one task over at most this many rows: its own uniform sample of the pool
# (the round's reference, which stands for the pool there) and every partition's proposals. It is the largest
# task: on 1,000,000 CLIP-sized pairs with 10,000 picks (129,950 reference rows) CAST's round took 78 s and its
# worker peaked at 3.8 GiB (facility location: 49 s, 5.6 GiB), the whole run 695 s vs 632 s by merge by gain.
# A pool of at most this many rows is selected by those methods in one task, as in one process.
REFINE_ROWS = 150_000
# It runs when that reference has at least this many rows per pick: a sample much smaller
# than that cannot tell picks apart. Measured with CAST on 100,000 synthetic pairs, 4 partitions, its own
# objective on the one-process graph: 1,000 picks (10,000 reference rows, 10 per pick) second round 95.6 % of one
# process vs merge by gain 93.4 %; 5,000 picks (2 per pick) 96.5 % vs 98.0 %.
REFERENCE_ROWS_PER_PICK = 10


def sample_rows(n_rows: int, sample_size: int, seed: int) -> np.ndarray:
    """``min(sample_size, n_rows)`` distinct row indices, sorted, drawn uniformly from ``seed``."""
    if sample_size >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng([seed, 0x5A4D]).choice(n_rows, size=sample_size, replace=False))


@dataclass
class RowBlocks:
    """Rows of the pool with their embedding blocks, as they travel between stages (a partition's piece of a
    shard, the reference sample, a partition's proposals). The row numbers sit beside the blocks, not among
    them, so that an embedding column may have any name."""

    rows: np.ndarray
    blocks: dict[str, np.ndarray]


def reference_sample(rows: np.ndarray, blocks: dict[str, np.ndarray], seed: int,
                     size: int = REFERENCE_ROWS) -> RowBlocks:
    """At most ``size`` of the sampled ``rows`` (all of them when fewer), drawn from ``seed``, in row order.

    Example:
        >>> reference_sample(np.arange(10) * 3, {"img": np.arange(10.0)[:, None]}, seed=0, size=3).rows.shape
        (3,)
    """
    keep = sample_rows(len(rows), size, seed + 1)
    return RowBlocks(rows[keep], {name: block[keep] for name, block in blocks.items()})


def round_reference_size(n_rows: int, budget: int, num_partitions: int, refine_rows: int) -> int:
    """Rows of the second round's reference: as many as ``refine_rows`` leaves beside the most proposals the
    partitions can make (``ceil(GAIN_OVERSAMPLE * budget) + num_partitions``, see :func:`proposal_counts`), at
    most the pool; 0 (no second round) when that is fewer than ``REFERENCE_ROWS_PER_PICK`` rows per pick. (The
    engine does not partition a pool that fits ``refine_rows`` for the methods with a second round, unless told
    to with ``one_task_when_it_fits=False``.)

    The larger the reference, the closer the round's objective is to the pool's: CAST on 100,000 synthetic
    pairs, 4 partitions, 1,000 picks, its objective on the one-process graph: 93.4 % of one process with the
    merge by gain, 95.6 % with a 10,000-row reference, 97.3 % with 47,996 rows.

    Example:
        >>> round_reference_size(100_000, 1_000, 4, 50_000), round_reference_size(100_000, 5_000, 4, 50_000)
        (47996, 0)
    """
    room = refine_rows - (math.ceil(GAIN_OVERSAMPLE * budget) + num_partitions)
    size = max(0, min(n_rows, room))
    return size if size >= REFERENCE_ROWS_PER_PICK * budget else 0


def pool_reference(reference: RowBlocks, part_rows: np.ndarray, pool_rows: int) -> PoolReference | None:
    """The :class:`~hf_coreset.PoolReference` of a partition: the reference rows outside it (as float32), or
    None when there are none (one partition holds the pool).

    Example:
        >>> reference = RowBlocks(np.array([1, 4, 7]), {"img": np.array([[1.0], [4.0], [7.0]])})
        >>> pool_reference(reference, np.array([0, 1, 2, 3]), 10).blocks["img"].ravel().tolist()
        [4.0, 7.0]
    """
    outside = ~np.isin(reference.rows, part_rows)
    if not outside.any():
        return None
    blocks = {name: np.asarray(block[outside], dtype=np.float32) for name, block in reference.blocks.items()}
    return PoolReference(blocks=blocks, pool_rows=pool_rows)


def partition_vectors(blocks: dict[str, np.ndarray]) -> np.ndarray:
    """Float32 rows: each block L2-normalised, then concatenated (the ``concat`` aggregation)."""
    return np.concatenate([l2_normalize(np.asarray(b, dtype=np.float32)) for b in blocks.values()], axis=1)


def fit_partitions(sample: np.ndarray, num_partitions: int, seed: int) -> np.ndarray:
    """``(num_partitions, D)`` k-means centres of the sample (scikit-learn, k-means++ from ``seed``)."""
    from sklearn.cluster import KMeans

    num_partitions = min(num_partitions, len(sample))
    if num_partitions == 1:
        return sample.mean(axis=0, keepdims=True)
    kmeans = KMeans(n_clusters=num_partitions, n_init=3, random_state=seed).fit(sample)
    return kmeans.cluster_centers_.astype(np.float32)


def assign_partitions(vectors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (Euclidean) of every row."""
    half_norms = 0.5 * np.einsum("ij,ij->i", centres, centres)
    return np.argmax(vectors @ centres.T - half_norms, axis=1).astype(np.int32)


def partition_seed(seed: int, partition: int) -> int:
    """The seed the method gets in ``partition``: one stream per partition, fixed by ``(seed, partition)``."""
    return int(np.random.SeedSequence([seed, partition]).generate_state(1)[0])


def interleave(shares: list[int]) -> list[tuple[int, int]]:
    """``(partition, rank)`` of every pick in the merged pick order.

    Partitions take turns in proportion to their share (pick r of a partition with share s comes at
    ``(r + 0.5) / s``), so any prefix of the merged order is close to a proportional sample of the
    partitions' own pick orders.
    """
    keys = [((rank + 0.5) / share, partition, rank) for partition, share in enumerate(shares)
            for rank in range(share)]
    return [(partition, rank) for _, partition, rank in sorted(keys)]


def proposal_counts(sizes: np.ndarray, shares: np.ndarray, oversample: float = GAIN_OVERSAMPLE) -> np.ndarray:
    """Picks each partition proposes for a merge by gain: ``ceil(oversample * share)``, at least 1, at most
    the partition's rows. Their sum is at least ``sum(shares)``, so the budget can always be met.

    Example:
        >>> proposal_counts(np.array([100, 40, 3]), np.array([10, 4, 0])).tolist()
        [20, 8, 1]
    """
    return np.array([min(int(size), max(1, math.ceil(oversample * share))) for size, share in zip(sizes, shares)],
                    dtype=np.int64)


def merge_by_gain(gains: list[np.ndarray], budget: int) -> list[tuple[int, int]]:
    """``(partition, rank)`` of the ``budget`` proposals with the highest gains, highest first.

    Each partition's gains are first made non-increasing (running minimum), so a partition's share is always
    a prefix of its own pick order: pick ``r`` was chosen given picks ``0 .. r-1``. When no row is
    represented across partitions, this is the greedy on the whole pool: the next pick goes to the
    partition where it gains most. Ties go to the earlier partition, then the earlier rank.

    Example:
        >>> merge_by_gain([np.array([9.0, 5.0, 1.0]), np.array([7.0, 6.0])], 3)
        [(0, 0), (1, 0), (1, 1)]
    """
    keys = [(-float(gain), partition, rank) for partition, partition_gains in enumerate(gains)
            for rank, gain in enumerate(np.minimum.accumulate(np.asarray(partition_gains, dtype=np.float64)))]
    return [(partition, rank) for _, partition, rank in sorted(keys)[:budget]]


def refine_features(reference: RowBlocks, proposals: list[RowBlocks]) -> tuple[np.ndarray, FeatureSet]:
    """The second round's rows: the reference sample and every partition's proposals, once each, in row order,
    as ``(row numbers, FeatureSet)`` whose ``candidates`` are the proposals.

    The method then picks among all the partitions' proposals at once while representing the reference (a
    uniform sample of the pool) and the proposals: a row near a partition's border counts as represented by
    a pick on the other side, which no partition could see on its own (GreeDi's second round).

    Example:
        >>> reference = RowBlocks(np.array([0, 5]), {"img": np.array([[0.0], [5.0]])})
        >>> proposals = [RowBlocks(np.array([5, 7]), {"img": np.array([[5.0], [7.0]])})]
        >>> rows, features = refine_features(reference, proposals)
        >>> rows.tolist(), features.candidates.tolist(), features.blocks["img"].ravel().tolist()
        ([0, 5, 7], [1, 2], [0.0, 5.0, 7.0])
    """
    parts = [reference, *proposals]
    rows, first = np.unique(np.concatenate([part.rows for part in parts]), return_index=True)  # each row once
    blocks = {name: np.concatenate([np.asarray(part.blocks[name], dtype=np.float32) for part in parts])[first]
              for name in reference.blocks}
    candidates = np.unique(np.searchsorted(rows, np.concatenate([part.rows for part in proposals])))
    return rows, FeatureSet(n_rows=len(rows), blocks=blocks, candidates=candidates)
