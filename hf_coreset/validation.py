"""Input checks that run before any heavy work: budget, columns and embedding columns."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import BadFeaturesError, CoresetInputError, MissingColumnError

# What to do with a row whose image cannot be read: drop it and report it, or stop.
ON_ERROR_VALUES = ("report", "raise")


def resolve_budget(budget: int | float, n_rows: int) -> int:
    """Turn a count (int) or a fraction in (0, 1] (float) into a number of rows, at least 1.

    Example:
        >>> resolve_budget(0.1, 2000), resolve_budget(500, 2000)
        (200, 500)
    """
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise CoresetInputError(f"budget must be an int (rows) or a float in (0, 1] (fraction), got {budget!r}.")
    if isinstance(budget, numbers.Integral):
        count = int(budget)
        if not 1 <= count <= n_rows:
            raise CoresetInputError(
                f"budget={count} rows is out of range: the dataset has {n_rows} rows, so pass 1..{n_rows} "
                "or a fraction in (0, 1]."
            )
        return count
    fraction = float(budget)
    if not 0.0 < fraction <= 1.0:
        raise CoresetInputError(
            f"budget={budget!r} is not a fraction in (0, 1]; pass e.g. 0.1 for 10 %, or an int for a row count."
        )
    return max(1, int(round(fraction * n_rows)))


def check_columns_exist(dataset, columns: Sequence[str]) -> None:
    """Raise :class:`MissingColumnError` naming the first missing column and listing the dataset's columns."""
    for column in columns:
        if column not in dataset.column_names:
            raise MissingColumnError(
                f"Column {column!r} is not in the dataset. Its columns are: {dataset.column_names}."
            )


def read_embedding_column(dataset, column: str) -> np.ndarray:
    """Read a column of equal-length numeric vectors as a float32 ``(N, d)`` array.

    A column of nested lists or arrays (``datasets.Array2D``, e.g. one ``(1, d)`` model output per row) is
    flattened per row. Raises :class:`BadFeaturesError` naming the first bad row for a wrong type, a missing
    vector, ragged lengths, NaN or inf, or a value beyond float32's range.

    Example:
        >>> import datasets
        >>> ds = datasets.Dataset.from_dict({"emb": [[[1.0, 2.0]], [[3.0, 4.0]]]})
        >>> read_embedding_column(ds, "emb").tolist()
        [[1.0, 2.0], [3.0, 4.0]]
    """
    check_columns_exist(dataset, [column])
    return embedding_matrix(dataset.with_format("arrow", columns=[column])[:][column], column)


def embedding_matrix(values: pa.Array | pa.ChunkedArray, column: str, first_row: int = 0,
                     dtype: type | None = np.float32) -> np.ndarray:
    """The ``(n, d)`` matrix of a column of equal-length numeric vectors (an Arrow list array, nested lists
    flattened per row).

    ``first_row`` is the dataset row of ``values[0]``, so that errors name the row of the whole dataset when
    ``values`` is one shard of it. ``dtype=None`` keeps a floating type as stored (float16 stays float16).
    Raises :class:`BadFeaturesError` as :func:`read_embedding_column`.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values.type, pa.ExtensionType):  # datasets' Array2D ... Array5D keep nested lists inside
        values = values.storage
    if not _is_list(values.type) or not _has_numeric_leaves(values.type):
        raise BadFeaturesError(
            f"Embedding column {column!r} has type {values.type}, expected one list of numbers per row "
            "(e.g. datasets.Sequence(datasets.Value('float32')))."
        )
    if values.null_count:
        row = first_row + int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise BadFeaturesError(f"Embedding column {column!r} has no vector in row {row}; fill or drop that row.")
    leaves, lengths = _flatten_rows(values)
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise BadFeaturesError(
            f"Embedding column {column!r} is ragged: row {first_row + row} has {lengths[row]} values, row "
            f"{first_row} has {lengths[0]}. Every row needs a vector of the same length."
        )
    if len(lengths) and lengths[0] == 0:
        raise BadFeaturesError(f"Embedding column {column!r} holds empty vectors; every row needs values.")
    raw = leaves.to_numpy(zero_copy_only=False).reshape(len(values), -1)
    check_finite(raw, f"Embedding column {column!r}", first_row)
    if dtype is None and np.issubdtype(raw.dtype, np.floating):
        return raw
    with np.errstate(over="ignore"):  # an overflow is reported just below, naming the row
        matrix = raw.astype(dtype or np.float32)
    _check_no_overflow(raw, matrix, column, first_row)
    return matrix


def _is_list(arrow_type: pa.DataType) -> bool:
    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(
        arrow_type)


def _has_numeric_leaves(arrow_type: pa.DataType) -> bool:
    while _is_list(arrow_type):
        arrow_type = arrow_type.value_type
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)


def _flatten_rows(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """All numbers of a (nested) list array in row order, and how many each row holds."""
    n_rows = len(values)
    row_of = np.arange(n_rows)
    while _is_list(values.type):
        row_of = row_of[pc.list_parent_indices(values).to_numpy()]
        values = pc.list_flatten(values)
    return values, np.bincount(row_of, minlength=n_rows)


def _check_no_overflow(raw: np.ndarray, matrix: np.ndarray, column: str, first_row: int = 0) -> None:
    """A finite value that became inf in float32 was beyond its range (about 3.4e38)."""
    overflowed = ~np.isfinite(matrix).all(axis=1)
    if overflowed.any():
        row = int(np.flatnonzero(overflowed)[0])
        value = raw[row][~np.isfinite(matrix[row])][0]
        raise BadFeaturesError(
            f"Embedding column {column!r} row {first_row + row} holds {value:g}, beyond float32's range (about "
            f"3.4e38): it would overflow to inf ({int(overflowed.sum())} such rows). Rescale the vectors (e.g. "
            "L2-normalise them) before selecting."
        )


def check_finite(matrix: np.ndarray, what: str, first_row: int = 0) -> None:
    """Raise :class:`BadFeaturesError` naming the first row holding NaN or inf (``first_row``: the row number
    of ``matrix[0]``)."""
    bad_rows = ~np.isfinite(matrix).all(axis=1)
    if bad_rows.any():
        row = first_row + int(np.flatnonzero(bad_rows)[0])
        raise BadFeaturesError(
            f"{what} holds NaN or inf in row {row} ({int(bad_rows.sum())} bad rows in all); "
            "fix or drop those rows before selecting."
        )
