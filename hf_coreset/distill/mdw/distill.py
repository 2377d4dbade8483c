"""MDW distillation: learn a small synthetic image-text set by matching the dual-track experts' trajectories.

Each iteration picks a track and a start checkpoint ``t`` of its trajectory, runs a few differentiable SGD
steps of a student from ``theta_t`` on the synthetic set (contrastive loss with P's soft targets instead of
the identity), and measures how far the student lands from ``theta_{t+M}``, relative to how far the expert
travelled: ``||theta_student - theta_{t+M}||^2 / ||theta_t - theta_{t+M}||^2`` (MTT, Cazenavette et al. 2022).
The gradient of that objective updates the synthetic images (or image features), the text embeddings, P's
factors and the student's learning rate. In pixel space each image's gradient is first scaled by its Grad-CAM
map (:mod:`.gradcam`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from datasets.utils.tqdm import tqdm
from torch import nn

from ...proxies import info_nce
from ..result import DistillationResult, attach_distillation
from .config import MDWConfig
from .correspondence import DualTrackResult, fit_dual_track
from .gradcam import emphasis_weights, grad_cam_maps
from .low_rank import LowRankCorrespondence
from .proxy import functional_forward, functional_log_scale, load_flat_parameters

# Output columns: one row per synthetic pair.
IMAGE_FEATURES = "image_features"
PIXEL_VALUES = "pixel_values"
TEXT_EMBEDDING = "text_embedding"
DIAG, LEFT, RIGHT = "correspondence_diag", "correspondence_left", "correspondence_right"
SOURCE_ROW = "source_row"


@dataclass
class SyntheticSet:
    """The learnable synthetic pairs, their correspondence P and the student's log learning rate."""

    images: nn.Parameter
    texts: nn.Parameter
    correspondence: LowRankCorrespondence
    log_student_lr: nn.Parameter
    source_rows: np.ndarray

    @property
    def student_lr(self) -> torch.Tensor:
        return self.log_student_lr.exp()

    def __len__(self) -> int:
        return len(self.source_rows)


def initial_rows(tracks: DualTrackResult, num_pairs: int, threshold: float, seed: int) -> tuple[np.ndarray, int]:
    """``num_pairs`` real rows to start from: drawn at random among the rows BOTH tracks deem clean, topped up
    with the most confidently clean of the others if there are too few. Returns (rows, number deemed clean)."""
    clean = tracks.both_clean(threshold)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]).generate_state(1)[0])
    if len(clean) >= num_pairs:
        return np.sort(rng.choice(clean, size=num_pairs, replace=False)), len(clean)
    confidence = tracks.track_probabilities.min(axis=0)
    others = np.setdiff1d(np.arange(len(confidence)), clean)
    top_up = others[np.argsort(-confidence[others], kind="stable")[: num_pairs - len(clean)]]
    return np.sort(np.concatenate([clean, top_up])), len(clean)


def init_synthetic(images: torch.Tensor, texts: torch.Tensor, rows: np.ndarray, config: MDWConfig) -> SyntheticSet:
    index = torch.as_tensor(rows)
    student_lr = config.student_lr_init
    return SyntheticSet(
        images=nn.Parameter(images[index].clone()),
        texts=nn.Parameter(texts[index].clone()),
        correspondence=LowRankCorrespondence(len(rows), config.rank, config.diag_init, seed=config.seed),
        log_student_lr=nn.Parameter(torch.tensor(float(np.log(student_lr)))),
        source_rows=rows,
    )


def student_loss(proxy: nn.Module, flat: torch.Tensor, synthetic: SyntheticSet, rows: torch.Tensor) -> torch.Tensor:
    """Contrastive loss of the student ``flat`` on synthetic pairs ``rows``, P's block as soft targets."""
    image_to_text, text_to_image = synthetic.correspondence.targets(rows)
    image_out, text_out = functional_forward(proxy, flat, synthetic.images[rows], synthetic.texts[rows])
    return info_nce(image_out, text_out, functional_log_scale(proxy, flat),
                    targets=image_to_text, text_targets=text_to_image)


def match_trajectories(synthetic: SyntheticSet, tracks: DualTrackResult, config: MDWConfig, *,
                       pixels: bool, show_progress: bool = True) -> list[float]:
    """Optimise ``synthetic`` in place for ``config.iterations`` steps; returns the objective per iteration."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 3]).generate_state(1)[0])
    optimizer = torch.optim.Adam([
        {"params": [synthetic.images], "lr": config.lr_pixels if pixels else config.lr_features},
        {"params": [synthetic.texts], "lr": config.lr_text},
        {"params": list(synthetic.correspondence.parameters()), "lr": config.lr_correspondence},
        {"params": [synthetic.log_student_lr], "lr": config.lr_student_lr},
    ])
    scorer = copy.deepcopy(tracks.proxy) if pixels else None  # holds the start checkpoint for Grad-CAM
    objectives = []
    for _ in tqdm(range(config.iterations), desc="MDW trajectory matching", disable=not show_progress):
        track = int(rng.integers(len(tracks.trajectories)))
        start_epoch = int(rng.integers(config.last_start_epoch + 1))
        start = tracks.trajectories[track][start_epoch]
        target = tracks.trajectories[track][start_epoch + config.expert_epochs]
        moment = tracks.second_moments[track][start_epoch]
        objective = _matching_objective(synthetic, tracks.proxy, start, target, moment, config, rng)
        optimizer.zero_grad()
        objective.backward()
        if pixels:
            _emphasise_correspondence(synthetic, load_flat_parameters(scorer, start), config)
        optimizer.step()
        objectives.append(objective.item())
    return objectives


def _matching_objective(synthetic, proxy, start, target, moment, config, rng) -> torch.Tensor:
    """Normalised distance between the student after ``synthetic_steps`` steps from ``start`` and ``target``.

    Each student step is Adam-like, ``theta - lr * g / sqrt(max(v, g^2))``, with ``v`` the expert's second
    moment at the start checkpoint: no coordinate moves by more than ``lr``, as under Adam. Plain SGD steps
    could not follow the Adam-trained experts (objective stayed above 1 on Open Clip Art), and ``g / sqrt(v)``
    alone exploded where the synthetic gradient outgrew the expert's; the proxies need Adam because SGD on the
    raw image features stayed at chance level.
    """
    flat = start.clone().requires_grad_(True)
    batch = min(config.synthetic_batch_size or len(synthetic), len(synthetic))
    for _ in range(config.synthetic_steps):
        rows = torch.as_tensor(np.sort(rng.choice(len(synthetic), size=batch, replace=False)))
        grad, = torch.autograd.grad(student_loss(proxy, flat, synthetic, rows), flat, create_graph=True)
        flat = flat - synthetic.student_lr * adam_like_step(grad, moment)
    return (flat - target).pow(2).sum() / (start - target).pow(2).sum().clamp_min(1e-12)


def adam_like_step(grad: torch.Tensor, second_moment: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``grad / sqrt(max(second_moment, grad^2))``: each coordinate in [-1, 1], differentiable.

    Example:
        >>> adam_like_step(torch.tensor([2.0, 0.1, -0.5]), torch.tensor([1.0, 1.0, 0.0]))
        tensor([ 1.0000,  0.1000, -1.0000])
    """
    return grad / (torch.maximum(second_moment, grad * grad) + eps * eps).sqrt()


def _emphasise_correspondence(synthetic: SyntheticSet, scorer: nn.Module, config: MDWConfig) -> None:
    """Scale every synthetic image's gradient by its Grad-CAM map under the current P (in place)."""
    image_to_text, _ = synthetic.correspondence.targets()
    maps = grad_cam_maps(scorer, synthetic.images.detach(), synthetic.texts.detach(), image_to_text,
                         config.cam_top_k)
    synthetic.images.grad.mul_(emphasis_weights(maps, config.cam_floor))


def distill_pairs(images: torch.Tensor, texts: torch.Tensor, num_pairs: int, config: MDWConfig, *,
                  image_network=None, show_progress: bool = True):
    """The whole MDW pipeline on tensors: returns (synthetic set, dual-track result, objectives, timings)."""
    wall, cpu = time.perf_counter(), time.process_time()
    tracks = fit_dual_track(images, texts, config, image_network=image_network, show_progress=show_progress)
    estimated = time.perf_counter(), time.process_time()
    rows, n_clean = initial_rows(tracks, num_pairs, config.clean_threshold, config.seed)
    synthetic = init_synthetic(images, texts, rows, config)
    objectives = match_trajectories(synthetic, tracks, config, pixels=image_network is not None,
                                    show_progress=show_progress)
    timings = {"noise_estimation_s": estimated[0] - wall, "noise_estimation_cpu_s": estimated[1] - cpu,
               "distillation_s": time.perf_counter() - estimated[0],
               "distillation_cpu_s": time.process_time() - estimated[1],
               "total_s": time.perf_counter() - wall, "total_cpu_s": time.process_time() - cpu}
    return synthetic, tracks, objectives, {"both_tracks_clean": n_clean, "timings": timings}


def to_dataset(synthetic: SyntheticSet, *, pixels: bool, result: DistillationResult,
               source_description: str | None) -> datasets.Dataset:
    """The synthetic set as a Dataset (see ``hf_coreset.distill.distill`` for the columns)."""
    images = synthetic.images.detach().numpy().astype(np.float32)
    correspondence = synthetic.correspondence
    columns = {
        PIXEL_VALUES if pixels else IMAGE_FEATURES: images,
        TEXT_EMBEDDING: synthetic.texts.detach().numpy().astype(np.float32),
        DIAG: correspondence.diag.detach().numpy().astype(np.float32),
        LEFT: correspondence.left.detach().numpy().astype(np.float32),
        RIGHT: correspondence.right.detach().numpy().astype(np.float32),
        SOURCE_ROW: synthetic.source_rows.astype(np.int64),
    }
    features = datasets.Features({
        PIXEL_VALUES if pixels else IMAGE_FEATURES: (datasets.Array3D(images.shape[1:], "float32") if pixels
                                                     else datasets.Sequence(datasets.Value("float32"))),
        TEXT_EMBEDDING: datasets.Sequence(datasets.Value("float32")),
        DIAG: datasets.Value("float32"),
        LEFT: datasets.Sequence(datasets.Value("float32")),
        RIGHT: datasets.Sequence(datasets.Value("float32")),
        SOURCE_ROW: datasets.Value("int64"),
    })
    distilled = datasets.Dataset.from_dict(columns, features=features)
    distilled.info.description = attach_distillation(source_description, result)
    return distilled
