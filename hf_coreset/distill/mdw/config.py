"""Options of MDW: one plain dataclass, validated before any heavy work (like the selection methods' configs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ...config import check_choice, check_non_negative, check_positive
from ...errors import CoresetInputError

SPACES = ("features", "pixels")


@dataclass
class MDWConfig:
    """Options of ``distill(method="mdw")`` and of the clean-probability estimate.

    Clean probability (kNN agreement, then dual-track co-teaching; see :mod:`.correspondence`):
        agreement_k: neighbours of the cross-modal kNN agreement the estimate starts from (and of the
            hubness correction of the held-out scores).
        proxy_rounds: co-teaching rounds; in each, both tracks train a fresh proxy on their half of the pool.
        proxy_epochs: epochs each proxy trains per round.
        proxy_lr, proxy_batch_size: AdamW (weight decay 0.01, as the retrieval benchmark's heads) of the
            proxies and of the experts. (SGD on the raw 1280-d image features stayed at chance level on Open
            Clip Art.)
        heads: ``"mlp"`` or ``"linear"`` heads on embedding features (the image side in pixel space is the
            given image network followed by one linear layer).
        score_batch_size: a held-out half is scored in chunks of at most this many pairs (each pair against
            the others of its chunk), which keeps the scoring linear in the pool size.
        two_groups_max_iter: EM iterations of the two-groups model that turns the clean score into a
            probability (only the matched component is fitted: the mismatched one is measured).
        clean_threshold: a pair is "clean" when its clean probability reaches this.
        clean_probability_column: distillation only: read the clean probabilities from this column of the
            dataset (e.g. one added by ``add_clean_probability``) instead of estimating them again.

    Distillation (see :mod:`.distill`):
        expert_tracks: experts trained on the likely-clean pairs (clean probability >= ``clean_threshold``,
            drawn in proportion to it), each from its own seed; their trajectories are what the student matches.
        expert_steps, checkpoint_every: optimisation steps of each expert and the spacing of the saved
            checkpoints (parameters and AdamW moments). 250 steps of 128 pairs: the student then starts
            anywhere in the first 200 steps (``max_start_epoch``), where the heads move most; the final
            (averaged) expert also gives P its starting point.
        iterations: outer optimisation steps of the synthetic set (0: return the starting set, blended).
        matching: what each iteration lowers after the student's steps on the synthetic set from an expert
            checkpoint t: ``"trajectory"``, the distance to the expert's checkpoint t + ``expert_epochs`` (MTT, as
            LoRS and RepBlend); ``"performance"``, the student's contrastive loss on ``real_batch_size`` real pairs
            drawn in proportion to their clean probability, relative to checkpoint t's loss on them (performance
            matching, as the first dataset distillation, from MTT's expert starts). Measured on the whole grid (3
            seeds, N = 100 / 200 / 500, r_mean against the default): Open Clip Art (tuning) +0.45 / +0.08 / -0.25
            clean, +0.37 / +0.16 / +0.49 at 20 % noise, +0.22 / +0.94 / +0.19 at 50 %, all within the seeds'
            spread; Fashion-MNIST (held out) -0.24 / -0.11 / -1.10, +0.37 / +0.25 / +0.03, -1.51 / -0.68 / -1.18;
            7 of the 18 cells pass both of the grid's margins, as with the default. So not the default.
        real_batch_size: real pairs per iteration of ``matching="performance"``.
        expert_epochs: the student starting at checkpoint t is matched to checkpoint t + expert_epochs (in
            checkpoints, i.e. ``expert_epochs * checkpoint_every`` expert steps).
        synthetic_steps: differentiable student steps per matching iteration (None: as many as the expert took,
            ``expert_epochs * checkpoint_every``); fewer steps than the expert's, with the learned student
            learning rate, cover a long stretch of the trajectory at a fraction of the cost.
        max_start_epoch: latest start checkpoint (default: the last one that has a target).
        synthetic_batch_size: synthetic pairs per student step (None: min(128, num_pairs), as the
            benchmark's training).
        mix_alpha: RepBlend's representation blending inside the matching: at every student step each synthetic
            pair of the minibatch is replaced by ``lam`` times itself plus ``1 - lam`` times another pair of the
            minibatch (images and texts with the same partner and ``lam ~ Beta(mix_alpha, mix_alpha)``; P's block
            stays the targets, as in RepBlend's code). 0 (the default) does not mix. Measured on Open Clip Art
            with RepBlend's 1.0 (3 seeds, N = 100 / 200 / 500): clean +0.61 / -0.16 / -0.70, 20 % noise +0.78 /
            -0.45 / -0.19, 50 % +0.02 / -0.05 / -0.49 r_mean against the default, all within the seeds' spread.
        starting_pairs: how the real pairs the synthetic ones start from are chosen among the likely-clean pairs:
            ``"kmeans"`` (the medoids of a clean-probability-weighted k-means) or ``"cast"`` (CAST's picks; each
            likely-clean pair joins the pick it is most similar to). Measured on the whole distillation grid
            (``benchmarks/results/distill_cast_start/summary.md``): level on Open Clip Art clean and at 20 %
            noise, lower at 50 % noise (N = 200: 16.93 vs 17.72 with k-means starts, same code), Fashion-MNIST
            about level; so not the default.
        blend: start each synthetic pair at the clean-probability-weighted mean of its cluster of pairs
            (False: at the cluster's starting pair, a real pair).
        rank: width of the factors ``L``, ``R`` of ``P = diag(a) + L R^T``. 128 keeps the experts' P (their
            heads are 256 wide) nearly exact up to 500 pairs: with 32, P's off-diagonal logits were off by
            0.16 / 0.23 / 0.30 rms (spread 1.2-1.3) at N = 100 / 200 / 500 on Open Clip Art with 50 % noise,
            with 128 by 0.00 / 0.01 / 0.03. On the distillation grid (3 seeds) 128 raised Open Clip Art's
            means in 7 of 9 cells, most at N = 500 (+0.39 / +0.33 / +0.75 clean / 20 % / 50 % noise);
            Fashion-MNIST (held out) -0.56 .. +0.72.
        correspondence_scale: P starts as this times the experts' cosine similarity of the synthetic images
            and texts (rank-``rank`` approximation, exact diagonal); 0 starts it at ``diag_init`` times the
            identity.
        correspondence_std: if set, the scale is instead this divided by the standard deviation of the experts'
            off-diagonal cosines, so that P starts with this spread whatever the encoders' similarity spread
            (the scale used is in the diagnostics). A fixed scale gives class-level data, whose cosines spread
            twice as wide as Open Clip Art's (0.24 vs 0.12 on Fashion-MNIST), twice as sharp targets.
        diag_init: initial diagonal of P when ``correspondence_scale`` is 0 (P is turned into targets by a
            softmax, so a large diagonal starts close to the identity targets).
        lr_features, lr_pixels, lr_text, lr_correspondence, lr_student_lr: Adam step sizes of the synthetic
            image features (or pixels), text embeddings, P's factors and the log student learning rate.
        cam_top_k, cam_floor: pixel space only; each synthetic image's gradient is scaled by
            ``cam_floor + (1 - cam_floor) * map`` where ``map`` in [0, 1] is a Grad-CAM map of its similarity
            to its top-k matched texts under P.
        seed: the same seed gives the same probabilities and the same distilled set.
    """

    agreement_k: int = 10
    proxy_rounds: int = 6
    proxy_epochs: int = 4
    proxy_lr: float = 1e-3
    proxy_batch_size: int = 128
    heads: str = "mlp"
    score_batch_size: int = 4096
    two_groups_max_iter: int = 100
    clean_threshold: float = 0.5
    clean_probability_column: str | None = None

    expert_tracks: int = 2
    expert_steps: int = 250
    checkpoint_every: int = 10
    iterations: int = 60
    matching: str = "trajectory"
    real_batch_size: int = 256
    expert_epochs: int = 5
    synthetic_steps: int | None = 10
    max_start_epoch: int | None = None
    synthetic_batch_size: int | None = None
    mix_alpha: float = 0.0
    starting_pairs: str = "kmeans"
    blend: bool = True
    rank: int = 128
    correspondence_scale: float = 10.0
    correspondence_std: float | None = None
    diag_init: float = 10.0
    lr_features: float = 1e-3
    lr_pixels: float = 0.01
    lr_text: float = 1e-4
    lr_correspondence: float = 0.01
    lr_student_lr: float = 0.05
    cam_top_k: int = 3
    cam_floor: float = 0.2

    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("agreement_k", "proxy_epochs", "proxy_batch_size", "score_batch_size", "expert_tracks",
                     "expert_steps", "checkpoint_every", "expert_epochs", "rank", "cam_top_k", "real_batch_size"):
            check_positive(name, getattr(self, name))
        for name in ("proxy_rounds", "iterations", "seed", "two_groups_max_iter"):
            check_non_negative(name, getattr(self, name))
            setattr(self, name, int(getattr(self, name)))  # numpy integers become plain ints, as SelectionConfig's seed
        for name in ("proxy_lr", "lr_features", "lr_pixels", "lr_text", "lr_correspondence", "lr_student_lr"):
            check_positive(name, getattr(self, name), float)
        if isinstance(self.correspondence_scale, bool) or not self.correspondence_scale >= 0:
            raise CoresetInputError(f"correspondence_scale must be >= 0, got {self.correspondence_scale!r}.")
        if self.correspondence_std is not None:
            check_positive("correspondence_std", self.correspondence_std, float)
        if isinstance(self.mix_alpha, bool) or not self.mix_alpha >= 0:
            raise CoresetInputError(f"mix_alpha must be >= 0 (0: no mixing), got {self.mix_alpha!r}.")
        for name in ("synthetic_batch_size", "synthetic_steps"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        check_choice("heads", self.heads, ("mlp", "linear"))
        check_choice("starting_pairs", self.starting_pairs, ("cast", "kmeans"))
        check_choice("matching", self.matching, ("trajectory", "performance"))
        if not 0.0 < self.clean_threshold < 1.0 or not 0.0 <= self.cam_floor <= 1.0:
            raise CoresetInputError("clean_threshold must be in (0, 1) and cam_floor in [0, 1].")
        if self.expert_epochs > self.checkpoints - 1:
            raise CoresetInputError(
                f"expert_epochs={self.expert_epochs} checkpoints is beyond the experts' {self.checkpoints - 1} "
                f"(expert_steps={self.expert_steps} // checkpoint_every={self.checkpoint_every}): the target "
                "would not exist; raise expert_steps or lower expert_epochs."
            )
        if self.max_start_epoch is not None and not 0 <= self.max_start_epoch <= self.last_start_epoch_possible:
            raise CoresetInputError(
                f"max_start_epoch must be in 0..{self.last_start_epoch_possible} "
                f"(checkpoints - 1 - expert_epochs), got {self.max_start_epoch!r}."
            )

    @property
    def uses_expert_correspondence(self) -> bool:
        """Whether P starts from the experts' similarity (else from ``diag_init`` times the identity)."""
        return self.correspondence_std is not None or self.correspondence_scale > 0

    @property
    def checkpoints(self) -> int:
        """Saved checkpoints per expert, the initialisation included."""
        return self.expert_steps // self.checkpoint_every + 1

    @property
    def last_start_epoch_possible(self) -> int:
        return self.checkpoints - 1 - self.expert_epochs

    @property
    def last_start_epoch(self) -> int:
        return self.last_start_epoch_possible if self.max_start_epoch is None else self.max_start_epoch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
