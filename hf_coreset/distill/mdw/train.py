"""Train retrieval heads on a distilled set, with its learned correspondence P as soft targets."""

from __future__ import annotations

import numpy as np
import torch

from ...errors import CoresetInputError
from ...proxies import info_nce, optimise
from ...validation import check_columns_exist, read_embedding_column
from .distill import DIAG, IMAGE_FEATURES, LEFT, PIXEL_VALUES, RIGHT, TEXT_EMBEDDING
from .inputs import read_pixels
from .low_rank import correspondence_targets, rebuild_correspondence
from .proxy import build_proxy


def read_distilled(distilled) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(images, texts, P)`` tensors of a distilled dataset (image features or pixels)."""
    pixels = PIXEL_VALUES in distilled.column_names
    check_columns_exist(distilled, [PIXEL_VALUES if pixels else IMAGE_FEATURES, TEXT_EMBEDDING, DIAG, LEFT, RIGHT])
    images = read_pixels(distilled, PIXEL_VALUES) if pixels else read_embedding_column(distilled, IMAGE_FEATURES)
    texts = read_embedding_column(distilled, TEXT_EMBEDDING)
    matrix = rebuild_correspondence(list(distilled[DIAG]), read_embedding_column(distilled, LEFT),
                                    read_embedding_column(distilled, RIGHT))
    return torch.from_numpy(images), torch.from_numpy(texts), torch.as_tensor(matrix, dtype=torch.float32)


def train_on_distilled(distilled, *, steps: int = 500, batch_size: int = 128, lr: float = 1e-3, kind: str = "mlp",
                       image_network=None, seed: int = 0):
    """Train fresh heads (for pixel sets: ``image_network()`` + heads) on a distilled set.

    The protocol of the retrieval benchmark (AdamW, weight decay 0.01, ``steps`` steps of ``batch_size``
    pairs), except that each step's contrastive targets are the block of P on its pairs (row / column
    softmax) instead of the identity. (The learned student learning rate belongs to the Adam-like student steps
    taken from expert checkpoints, not to training from scratch; it is kept in the provenance.)

    Returns:
        The trained model (``model(images, texts)`` gives L2-normalised embeddings).
    """
    images, texts, matrix = read_distilled(distilled)
    if images.dim() == 4 and image_network is None:
        raise CoresetInputError("This distilled set holds pixels: pass image_network=... (the same factory).")
    model = build_proxy(tuple(images.shape[1:]), texts.shape[1], kind=kind, seed=seed, image_network=image_network)
    rng = np.random.default_rng(seed)
    batch_size = min(batch_size, len(images))
    # Each step draws its own batch (no epochs): the soft targets are P's block on exactly those pairs.
    batches = (torch.as_tensor(np.sort(rng.choice(len(images), size=batch_size, replace=False)))
               for _ in range(steps))

    def batch_loss(rows: torch.Tensor) -> torch.Tensor:
        image_to_text, text_to_image = correspondence_targets(matrix[rows][:, rows])
        image_out, text_out = model(images[rows], texts[rows])
        return info_nce(image_out, text_out, model.log_scale, targets=image_to_text, text_targets=text_to_image)

    return optimise(model, batches, batch_loss, lr)
