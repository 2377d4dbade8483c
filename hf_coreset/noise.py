"""Noisy correspondence for experiments: swap captions among a fraction of image-text pairs.

This is the protocol of the noisy-correspondence literature (and of MDW): a chosen fraction of pairs get
the caption of another chosen pair, the rest keep theirs. Every chosen pair ends up mismatched (the
captions are moved along a random cycle, so no chosen pair gets its own caption back).
"""

from __future__ import annotations

import numpy as np

from .errors import CoresetInputError


def caption_permutation(n_rows: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Return ``source`` with ``caption[i] := caption[source[i]]`` mismatching ``round(fraction * n)`` rows.

    Example:
        >>> source = caption_permutation(10, 0.3, seed=0)
        >>> int((source != range(10)).sum())
        3
    """
    if not 0.0 <= fraction <= 1.0:
        raise CoresetInputError(f"fraction must be in [0, 1], got {fraction}.")
    n_noisy = int(round(fraction * n_rows))
    if n_noisy == 1:
        raise CoresetInputError("One pair cannot swap its caption with another: use a larger fraction or n_rows.")
    source = np.arange(n_rows)
    chosen = np.random.default_rng(seed).permutation(n_rows)[:n_noisy]
    source[chosen] = np.roll(chosen, 1)  # a cycle through the chosen rows: nobody keeps their own caption
    return source


def add_caption_noise(dataset, fraction: float, *, caption_columns, seed: int = 0,
                      flag_column: str = "is_mismatched"):
    """A copy of ``dataset`` whose ``caption_columns`` (e.g. the caption and its embedding) are permuted among
    ``fraction`` of the rows, with a boolean ``flag_column`` saying which rows are now mismatched."""
    source = caption_permutation(dataset.num_rows, fraction, seed)
    missing = [c for c in caption_columns if c not in dataset.column_names]
    if missing:
        raise CoresetInputError(f"Columns {missing} are not in the dataset; its columns are {dataset.column_names}.")
    import datasets

    moved = dataset.select_columns(list(caption_columns)).select(source).flatten_indices()
    kept = dataset.remove_columns(list(caption_columns)).flatten_indices()
    noisy = datasets.concatenate_datasets([kept, moved], axis=1)
    return noisy.add_column(flag_column, (source != np.arange(dataset.num_rows)).tolist())
