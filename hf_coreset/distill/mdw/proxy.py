"""The proxy models MDW trains, and the flat-parameter view that trajectory matching needs.

Features space: :class:`~hf_coreset.proxies.DualEncoderHeads` on frozen encoder features. Pixel space: the
image side is a differentiable image network over pixel tensors followed by one linear layer, so that the
synthetic images receive gradients (and a Grad-CAM map can be read off its last feature map).

Trajectory matching runs the student as a pure function of one flat parameter vector
(:func:`functional_forward`), so that gradients flow through the student's own update steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ...proxies import DualEncoderHeads, make_head


class PixelDualEncoder(nn.Module):
    """Image network + linear layer on pixels, a head on text embeddings, L2-normalised, learnable temperature.

    Same interface as :class:`DualEncoderHeads` (``image``, ``text``, ``log_scale``, ``forward``).
    """

    def __init__(self, image_network: nn.Module, image_shape: tuple[int, ...], text_dim: int, kind: str = "mlp",
                 out_dim: int = 256):
        super().__init__()
        with torch.no_grad():  # one dummy forward tells how wide the network's output is
            width = image_network(torch.zeros(1, *image_shape)).flatten(1).shape[1]
        self.image = nn.Sequential(image_network, nn.Flatten(), nn.Linear(width, out_dim))
        self.text = make_head(text_dim, kind, out_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # as DualEncoderHeads

    def forward(self, images: torch.Tensor, texts: torch.Tensor):
        return (nn.functional.normalize(self.image(images), dim=-1),
                nn.functional.normalize(self.text(texts), dim=-1))


def build_proxy(image_shape: tuple[int, ...], text_dim: int, *, kind: str, seed: int,
                image_network: Callable[[], nn.Module] | None = None) -> nn.Module:
    """A freshly initialised proxy, seeded: heads on features when ``image_network`` is None (``image_shape``
    is then ``(image_dim,)``), else a :class:`PixelDualEncoder` around ``image_network()``."""
    torch.manual_seed(seed)
    if image_network is None:
        return DualEncoderHeads(image_shape[0], text_dim, kind)
    return PixelDualEncoder(image_network(), image_shape, text_dim, kind)


def flatten_parameters(model: nn.Module) -> torch.Tensor:
    """All trainable parameters of ``model`` as one detached 1-D tensor (a checkpoint of a trajectory)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def load_flat_parameters(model: nn.Module, flat: torch.Tensor) -> nn.Module:
    """Copy a flat parameter vector back into ``model`` (in place) and return it."""
    torch.nn.utils.vector_to_parameters(flat.detach().clone(), model.parameters())
    return model


def functional_forward(model: nn.Module, flat: torch.Tensor, images: torch.Tensor, texts: torch.Tensor):
    """``model(images, texts)`` evaluated with the parameters in ``flat`` (differentiable w.r.t. ``flat``)."""
    return torch.func.functional_call(model, _unflatten(model, flat), (images, texts))


def functional_log_scale(model: nn.Module, flat: torch.Tensor) -> torch.Tensor:
    """The temperature parameter inside ``flat`` (it is a parameter of its own, stored last or anywhere)."""
    return _unflatten(model, flat)["log_scale"]


def _unflatten(model: nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    views, position = {}, 0
    for name, parameter in model.named_parameters():
        views[name] = flat[position: position + parameter.numel()].view_as(parameter)
        position += parameter.numel()
    return views
