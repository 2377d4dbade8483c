"""Options of MDW: one plain dataclass, validated before any heavy work (like the selection methods' configs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ...config import check_positive
from ...errors import CoresetInputError

SPACES = ("features", "pixels")


@dataclass
class MDWConfig:
    """Options of ``distill(method="mdw")`` and of the clean-probability estimate.

    Dual-track correspondence estimation (two proxy models, co-teaching):
        proxy_epochs: epochs each track trains on the pool; one checkpoint is saved per epoch, so this is
            also the length of the expert trajectories.
        proxy_lr, proxy_batch_size: AdamW (weight decay 0.01, as the retrieval benchmark's heads) of the
            proxies. (SGD on the raw 1280-d image features stayed at chance level on Open Clip Art.)
        heads: ``"mlp"`` or ``"linear"`` heads on embedding features (the image side in pixel space is the
            given image network followed by one linear layer).
        warmup_epochs: epochs trained on uniform weights before the cross-track weights switch on.
        gmm_components, gmm_max_iter, gmm_reg_covar: the per-epoch Gaussian mixture on per-pair losses.
        loss_batch_size: batch within which per-pair losses are measured for the mixture (each pair is
            scored against the same number of negatives, whatever the pool size).
        clean_threshold: a pair is "clean" for a track when its clean probability reaches this.

    Distillation (trajectory matching):
        iterations: outer optimisation steps of the synthetic set.
        synthetic_steps: differentiable student steps per iteration.
        expert_epochs: the student starting at checkpoint t is matched to checkpoint t + expert_epochs.
        max_start_epoch: latest start checkpoint (default: proxy_epochs - expert_epochs).
        synthetic_batch_size: synthetic pairs per student step (None: all of them).
        rank: rank of the low-rank part of P = diag(a) + L R^T.
        diag_init: initial diagonal of P (P is turned into targets by a softmax, so a large diagonal starts
            close to the identity targets; 5 gave targets of only 0.6 on the diagonal at 100 pairs, and lower
            retrieval on Open Clip Art).
        The step sizes are Adam's, so they are per coordinate: the defaults move image features (std ~0.4 for
        EfficientNet) and text embeddings (unit norm, ~0.05 per coordinate) by a small fraction per step.
        lr_features, lr_pixels, lr_text, lr_correspondence, lr_student_lr: Adam step sizes of the synthetic
            image features (or pixels), text embeddings, P's factors and the log student learning rate.
        student_lr_init: initial learning rate of the student's steps (then learned). A
            student step is Adam-like: ``theta - lr * g / sqrt(max(v, g^2))`` with ``v`` the expert's AdamW
            second moment at the start checkpoint.
        cam_top_k, cam_floor: pixel space only; each synthetic image's gradient is scaled by
            ``cam_floor + (1 - cam_floor) * map`` where ``map`` in [0, 1] is a Grad-CAM map of its similarity
            to its top-k matched texts under P.
        seed: the same seed gives the same probabilities and the same distilled set.
    """

    proxy_epochs: int = 8
    proxy_lr: float = 1e-3
    proxy_batch_size: int = 128
    heads: str = "mlp"
    warmup_epochs: int = 1
    gmm_components: int = 2
    gmm_max_iter: int = 100
    gmm_reg_covar: float = 1e-4
    loss_batch_size: int = 512
    clean_threshold: float = 0.5

    iterations: int = 80
    synthetic_steps: int = 10
    expert_epochs: int = 2
    max_start_epoch: int | None = None
    synthetic_batch_size: int | None = None
    rank: int = 4
    diag_init: float = 10.0
    lr_features: float = 1e-3
    lr_pixels: float = 0.01
    lr_text: float = 1e-4
    lr_correspondence: float = 0.05
    lr_student_lr: float = 0.01
    student_lr_init: float = 1e-4
    cam_top_k: int = 3
    cam_floor: float = 0.2

    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("proxy_epochs", "proxy_batch_size", "loss_batch_size", "iterations", "synthetic_steps",
                     "expert_epochs", "rank", "cam_top_k"):
            check_positive(name, getattr(self, name))
        for name in ("warmup_epochs", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CoresetInputError(f"{name} must be a non-negative int, got {value!r}.")
        for name in ("proxy_lr", "student_lr_init", "lr_features", "lr_pixels", "lr_text", "lr_correspondence",
                     "lr_student_lr"):
            if not getattr(self, name) > 0:
                raise CoresetInputError(f"{name} must be > 0, got {getattr(self, name)!r}.")
        if self.heads not in ("mlp", "linear"):
            raise CoresetInputError(f"heads must be 'mlp' or 'linear', got {self.heads!r}.")
        if self.gmm_components != 2:
            raise CoresetInputError("gmm_components must be 2 (a clean and a noisy component).")
        if not 0.0 < self.clean_threshold < 1.0 or not 0.0 <= self.cam_floor <= 1.0:
            raise CoresetInputError("clean_threshold must be in (0, 1) and cam_floor in [0, 1].")
        if self.expert_epochs > self.proxy_epochs:
            raise CoresetInputError(
                f"expert_epochs={self.expert_epochs} exceeds proxy_epochs={self.proxy_epochs}: the target "
                "checkpoint would not exist; raise proxy_epochs or lower expert_epochs."
            )
        if self.max_start_epoch is not None and not 0 <= self.max_start_epoch <= self.last_start_epoch_possible:
            raise CoresetInputError(
                f"max_start_epoch must be in 0..{self.last_start_epoch_possible} "
                f"(proxy_epochs - expert_epochs), got {self.max_start_epoch!r}."
            )

    @property
    def last_start_epoch_possible(self) -> int:
        return self.proxy_epochs - self.expert_epochs

    @property
    def last_start_epoch(self) -> int:
        return self.last_start_epoch_possible if self.max_start_epoch is None else self.max_start_epoch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
