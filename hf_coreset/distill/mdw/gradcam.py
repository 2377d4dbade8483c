"""Correspondence-emphasised image updates (pixel space): a Grad-CAM map per synthetic image.

For synthetic image ``i`` the map shows where the image network's last spatial feature map supports the
image's similarity to its top-k matched texts under the learned correspondence P. The image's gradient in
the distillation is then scaled by ``floor + (1 - floor) * map``, so its updates concentrate on the regions
that make it discriminable from other texts, and the rest of the image changes less.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ...errors import CoresetInputError


def grad_cam_maps(model: nn.Module, images: torch.Tensor, texts: torch.Tensor, image_to_text: torch.Tensor,
                  top_k: int) -> torch.Tensor:
    """``(B, H, W)`` maps in [0, 1], one per image of ``images`` ``(B, C, H, W)``.

    ``model`` is a pixel proxy (``model.image`` starts with the image network); ``image_to_text`` ``(B, B)`` is
    P's row-normalised target matrix. The score of image ``i`` is ``sum_j w_ij <f(x_i), g(t_j)>`` over its
    ``top_k`` matched texts (weights renormalised), and Grad-CAM weighs each channel of the last feature map
    with spatial size > 1 by its mean gradient: ``relu(sum_c mean(dS/dA_c) A_c)``, upsampled and scaled so
    each map's maximum is 1 (an all-zero map stays zero).

    Example:
        >>> from hf_coreset.distill.mdw.proxy import PixelDualEncoder
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        >>> model = PixelDualEncoder(net, (3, 8, 8), text_dim=5, kind="linear")
        >>> maps = grad_cam_maps(model, torch.rand(2, 3, 8, 8), torch.rand(2, 5), torch.eye(2), top_k=1)
        >>> tuple(maps.shape), bool(maps.min() >= 0 and maps.max() <= 1)
        ((2, 8, 8), True)
    """
    with _last_spatial_activation(model.image) as captured:
        image_out = nn.functional.normalize(model.image(images), dim=-1)
    features = captured[-1]
    text_out = nn.functional.normalize(model.text(texts), dim=-1)
    weights = _top_k_weights(image_to_text.detach(), top_k)
    score = (weights * (image_out @ text_out.T)).sum()
    gradients, = torch.autograd.grad(score, features)
    channel_weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((channel_weights * features).sum(dim=1, keepdim=True))
    cam = nn.functional.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)
    return (cam / peak[:, None, None]).detach()


def emphasis_weights(maps: torch.Tensor, floor: float) -> torch.Tensor:
    """``(B, 1, H, W)`` gradient multipliers ``floor + (1 - floor) * map`` (broadcast over channels)."""
    return (floor + (1.0 - floor) * maps)[:, None]


def _top_k_weights(image_to_text: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep each row's ``top_k`` largest targets, renormalised to sum to 1; zero elsewhere."""
    k = min(top_k, image_to_text.shape[1])
    values, columns = image_to_text.topk(k, dim=1)
    kept = torch.zeros_like(image_to_text).scatter(1, columns, values)
    return kept / kept.sum(dim=1, keepdim=True)


@contextlib.contextmanager
def _last_spatial_activation(image_branch: nn.Module):
    """Collect, while the block runs, every 4-D activation with spatial size > 1 that the branch's layers
    produce (in execution order, still in the autograd graph); Grad-CAM uses the last one."""
    captured = []

    def remember(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-2:].numel() > 1:
            captured.append(output)

    leaves = [m for m in image_branch.modules() if not list(m.children())]
    handles = [m.register_forward_hook(remember) for m in leaves]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()
    if not captured:
        raise CoresetInputError(
            "The image network produces no 4-D feature map with spatial size > 1, which Grad-CAM needs: give it "
            "at least one convolutional layer before any global pooling."
        )
