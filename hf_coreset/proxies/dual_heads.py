"""Light image-text proxy models: two heads on frozen features, symmetric InfoNCE, learnable temperature.

The retrieval benchmark trains these on a coreset (image head 1280 -> 512 -> 256 and text head 384 -> 512 -> 256
with ``kind="mlp"``, one linear layer each with ``kind="linear"``; outputs L2-normalised; AdamW; the same number
of steps whatever the subset size). OST and MDW use them as the proxy when the data are embedding columns.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .training import epoch_batches, optimise


def make_head(in_dim: int, kind: str, out_dim: int = 256, hidden: int = 512) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    raise ValueError(f"heads must be 'mlp' or 'linear', got {kind!r}")


class DualEncoderHeads(nn.Module):
    def __init__(self, image_dim: int, text_dim: int, kind: str = "mlp"):
        super().__init__()
        self.image = make_head(image_dim, kind)
        self.text = make_head(text_dim, kind)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, images: torch.Tensor, texts: torch.Tensor):
        return (nn.functional.normalize(self.image(images), dim=-1),
                nn.functional.normalize(self.text(texts), dim=-1))


def info_nce(image_out: torch.Tensor, text_out: torch.Tensor, log_scale: torch.Tensor,
             reduction: str = "mean", targets: torch.Tensor | None = None,
             text_targets: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE of matched rows ``image_out[i] <-> text_out[i]`` against the other rows of the batch.

    ``reduction="none"`` gives one loss per pair (image-to-text and text-to-image averaged), the per-pair
    signal that MDW's co-teaching weights and OST's per-sample gradients need.

    ``targets`` (optional, ``(B, B)``, rows summing to 1) replaces the identity as the image-to-text target
    distribution (soft correspondence, as MDW's learned matrix P); ``text_targets`` does the same for
    text-to-image and defaults to ``targets`` transposed and renormalised. Without them the loss is the usual
    one-hot InfoNCE.
    """
    logits = log_scale.clamp(max=math.log(100)).exp() * image_out @ text_out.T
    target = torch.arange(len(logits))
    image_target, text_target = target, target
    if targets is not None:
        image_target = targets
        text_target = text_targets if text_targets is not None else targets.T / targets.T.sum(1, keepdim=True)
    per_pair = (nn.functional.cross_entropy(logits, image_target, reduction="none")
                + nn.functional.cross_entropy(logits.T, text_target, reduction="none")) / 2
    return per_pair if reduction == "none" else per_pair.mean()


def train_heads(images: np.ndarray, texts: np.ndarray, *, kind: str = "mlp", steps: int = 500,
                batch_size: int = 128, lr: float = 1e-3, seed: int = 0) -> DualEncoderHeads:
    """Train heads on the (selected) pairs ``images[i] <-> texts[i]`` for exactly ``steps`` steps.

    ``steps=0`` gives the untrained heads of ``seed`` (the chance-level reference).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> heads = train_heads(rng.normal(size=(20, 6)), rng.normal(size=(20, 4)), kind="linear", steps=3)
        >>> heads.image.weight.shape
        torch.Size([256, 6])
    """
    torch.manual_seed(seed)
    model = DualEncoderHeads(images.shape[1], texts.shape[1], kind)
    images_t, texts_t = torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(texts, dtype=torch.float32)

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        return info_nce(*model(images_t[batch], texts_t[batch]), model.log_scale)

    return optimise(model, epoch_batches(len(images), batch_size, steps, seed), batch_loss, lr)
