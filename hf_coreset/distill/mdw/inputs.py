"""Reading and checking MDW's input columns, before any training starts."""

from __future__ import annotations

import datasets
import numpy as np
import torch

from ...errors import BadFeaturesError, CoresetInputError
from ...validation import check_columns_exist, check_finite, read_embedding_column
from .config import SPACES


def check_pool(dataset, what: str = "MDW") -> None:
    """A non-empty ``datasets.Dataset`` with at least two pairs (a contrastive loss needs a negative)."""
    if not isinstance(dataset, datasets.Dataset):
        raise CoresetInputError(
            f"{what} needs a datasets.Dataset, got {type(dataset).__name__}; for a DatasetDict pass one split."
        )
    if dataset.num_rows < 2:
        raise CoresetInputError(
            f"The dataset has {dataset.num_rows} rows; {what} needs at least 2 image-text pairs "
            "(each pair's loss is measured against the other pairs)."
        )


def check_space(space: str) -> None:
    if space not in SPACES:
        raise CoresetInputError(f"space must be one of {list(SPACES)}, got {space!r}.")


def check_image_network(space: str, image_network) -> None:
    if space == "pixels" and image_network is None:
        raise CoresetInputError(
            "space='pixels' needs image_network=..., a zero-argument callable that builds the differentiable "
            "image network over (B, C, H, W) pixel tensors (e.g. a small CNN)."
        )


def read_pairs(dataset, image_column: str, text_column: str, space: str = "features"):
    """``(images, texts)`` as float32 tensors: image vectors ``(N, d)`` or pixels ``(N, C, H, W)``, and text
    vectors ``(N, d)``. Bad columns raise :class:`MissingColumnError` / :class:`BadFeaturesError`."""
    check_space(space)
    check_columns_exist(dataset, [image_column, text_column])
    images = read_embedding_column(dataset, image_column) if space == "features" else read_pixels(dataset,
                                                                                                   image_column)
    texts = read_embedding_column(dataset, text_column)
    return torch.from_numpy(images), torch.from_numpy(texts)


def read_pixels(dataset, column: str) -> np.ndarray:
    """A column of equal-shape ``(C, H, W)`` numeric arrays as float32 ``(N, C, H, W)``."""
    check_columns_exist(dataset, [column])
    try:
        pixels = np.asarray(dataset.with_format("numpy", columns=[column])[column], dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise BadFeaturesError(
            f"Pixel column {column!r} does not hold equal-shape numeric (C, H, W) arrays ({err}); store it as "
            "datasets.Array3D or nested lists of numbers, e.g. from a torchvision transform."
        ) from None
    if pixels.ndim != 4:
        raise BadFeaturesError(
            f"Pixel column {column!r} has rows of shape {pixels.shape[1:]}, expected (C, H, W) per row."
        )
    check_finite(pixels.reshape(len(pixels), -1), f"Pixel column {column!r}")
    return pixels
