"""Input checks that run before any heavy work: budget, columns and embedding columns."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import BadFeaturesError, CoresetInputError, MissingColumnError


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

    Raises :class:`BadFeaturesError` naming the first bad row for a wrong type, a missing vector, ragged
    lengths, NaN or inf.
    """
    check_columns_exist(dataset, [column])
    return embedding_matrix(dataset.with_format("arrow", columns=[column])[:][column], column)


def embedding_matrix(values: pa.Array | pa.ChunkedArray, column: str, first_row: int = 0,
                     dtype: type | None = np.float32) -> np.ndarray:
    """The ``(n, d)`` matrix of a column of equal-length numeric vectors (an Arrow list array).

    ``first_row`` is the dataset row of ``values[0]``, so that errors name the row of the whole dataset when
    ``values`` is one shard of it. ``dtype=None`` keeps a floating type as stored (float16 stays float16).
    Raises :class:`BadFeaturesError` as :func:`read_embedding_column`.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    value_type = getattr(values.type, "value_type", None)
    if value_type is None or not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
        raise BadFeaturesError(
            f"Embedding column {column!r} has type {values.type}, expected one list of numbers per row "
            "(e.g. datasets.Sequence(datasets.Value('float32')))."
        )
    if values.null_count:
        row = first_row + int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise BadFeaturesError(f"Embedding column {column!r} has no vector in row {row}; fill or drop that row.")
    lengths = pc.list_value_length(values).to_numpy()
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise BadFeaturesError(
            f"Embedding column {column!r} is ragged: row {first_row + row} has {lengths[row]} values, row "
            f"{first_row} has {lengths[0]}. Every row needs a vector of the same length."
        )
    matrix = values.flatten().to_numpy(zero_copy_only=False)
    if dtype is not None or not np.issubdtype(matrix.dtype, np.floating):
        matrix = matrix.astype(dtype or np.float32)
    matrix = matrix.reshape(len(values), -1)
    check_finite(matrix, f"Embedding column {column!r}", first_row)
    return matrix


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
