"""Where OST's batches come from: dataset rows through a collate function, or two embedding blocks feeding
the built-in contrastive proxy."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ...proxies import DualEncoderHeads


class ContrastivePairProxy(nn.Module):
    """Two heads on frozen image / text features whose loss contrasts each pair with a fixed bank of pool pairs.

    In-batch InfoNCE gives a lone pair no negatives (its loss is 0), so every pair here is scored against
    the same ``bank_size`` pairs: the loss of pair (x, y) is the symmetric cross-entropy of its own similarity
    against its similarities to the bank's texts (and images). A batch's loss is the mean over its pairs,
    so the loss of a batch of one is that pair's loss, as OST's per-sample gradients need.
    """

    def __init__(self, heads: DualEncoderHeads, bank_images: torch.Tensor, bank_texts: torch.Tensor):
        super().__init__()
        self.heads = heads
        self.register_buffer("bank_images", bank_images)
        self.register_buffer("bank_texts", bank_texts)

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        image_out, text_out = self.heads(images, texts)
        bank_image_out, bank_text_out = self.heads(self.bank_images, self.bank_texts)
        scale = self.heads.log_scale.clamp(max=math.log(100)).exp()
        positive = scale * (image_out * text_out).sum(-1, keepdim=True)
        image_to_text = torch.cat([positive, scale * image_out @ bank_text_out.T], dim=1)
        text_to_image = torch.cat([positive, scale * text_out @ bank_image_out.T], dim=1)
        per_pair = (torch.logsumexp(image_to_text, 1) + torch.logsumexp(text_to_image, 1)) / 2 - positive[:, 0]
        return per_pair.mean()


def build_pair_proxy(images: np.ndarray, texts: np.ndarray, *, heads: str, bank_size: int,
                     seed: int) -> ContrastivePairProxy:
    """Randomly initialised heads (seeded) and a bank of ``bank_size`` pool pairs drawn with the same seed."""
    torch.manual_seed(seed)
    bank = np.sort(np.random.default_rng(seed).permutation(len(images))[:bank_size])
    return ContrastivePairProxy(DualEncoderHeads(images.shape[1], texts.shape[1], heads),
                                torch.as_tensor(images[bank]), torch.as_tensor(texts[bank]))


def feature_batches(images: np.ndarray, texts: np.ndarray) -> Callable[[np.ndarray], dict[str, torch.Tensor]]:
    """``load_batch(rows)`` for the built-in proxy: the rows' image and text features."""
    images_t, texts_t = torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(texts, dtype=torch.float32)
    return lambda rows: {"images": images_t[torch.as_tensor(rows)], "texts": texts_t[torch.as_tensor(rows)]}


def dataset_batches(dataset, collate_fn: Callable) -> Callable[[np.ndarray], dict]:
    """``load_batch(rows)`` for a user's proxy: the dataset's rows as a list of dicts through ``collate_fn``."""

    def load(rows: np.ndarray) -> dict:
        columns = dataset[[int(r) for r in rows]]
        examples = [dict(zip(columns, values)) for values in zip(*columns.values())]
        return collate_fn(examples)

    return load
