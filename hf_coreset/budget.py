"""How a budget is shared among groups of rows (DQ's bins, the partitions of a sharded selection).

Example:
    >>> proportional_counts(np.array([50, 30, 20]), 7).tolist()
    [4, 2, 1]
    >>> equal_counts(np.array([50, 30, 1]), 9).tolist()   # the 1-row group gives what it has
    [4, 4, 1]
"""

from __future__ import annotations

import numpy as np

BUDGET_SPLITS = ("proportional", "equal")


def proportional_counts(sizes: np.ndarray, budget: int) -> np.ndarray:
    """``budget / sum(sizes)`` of each group, rounded by largest remainder (ties to the earlier group).

    No group gets more than its size, since ``budget <= sum(sizes)``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    exact = sizes * (budget / sizes.sum())
    counts = np.floor(exact).astype(np.int64)
    shortfall = budget - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:shortfall]] += 1
    return counts


def equal_counts(sizes: np.ndarray, budget: int) -> np.ndarray:
    """The same count for every group (earlier groups take the remainder); a group smaller than its share
    gives all its rows and the shortfall goes, again in equal parts, to the groups that still have rows."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if budget > sizes.sum():
        raise ValueError(f"Cannot take {budget} rows from groups holding {int(sizes.sum())}.")
    counts = np.zeros_like(sizes)
    while counts.sum() < budget:
        open_groups = np.flatnonzero(counts < sizes)
        left = budget - counts.sum()
        share = np.full(len(open_groups), left // len(open_groups))
        share[: left % len(open_groups)] += 1
        counts[open_groups] = np.minimum(sizes[open_groups], counts[open_groups] + share)
    return counts


def split_budget(sizes: np.ndarray, budget: int, rule: str = "proportional") -> np.ndarray:
    """``proportional_counts`` or ``equal_counts`` by name."""
    if rule not in BUDGET_SPLITS:
        from .errors import CoresetInputError

        raise CoresetInputError(f"budget_split must be one of {list(BUDGET_SPLITS)}, got {rule!r}.")
    return proportional_counts(sizes, budget) if rule == "proportional" else equal_counts(sizes, budget)
