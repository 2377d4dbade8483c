"""MDW distillation: learn a small synthetic image-text set from the pairs the noise estimate deems clean.

Steps (each one measured on Open Clip Art, ``benchmarks/results/distill_*``):

1. **Starting pairs.** The likely-clean pairs (clean probability >= ``clean_threshold``) are clustered into
   ``num_pairs`` groups by k-means on the concatenated, per-modality L2-normalised image and text vectors, each
   pair weighted by its clean probability. Each cluster's medoid (the member closest to its centre) is a real
   starting pair (``source_row``). ``starting_pairs="cast"``: CAST picks the starting pairs among the
   likely-clean ones instead (representing every pair of the pool) and each likely-clean pair joins the pick it
   is most similar to (measured, not better: see ``MDWConfig.starting_pairs``).
2. **Blended starts.** Each synthetic pair starts at its cluster's clean-probability-weighted mean
   image vector and mean text embedding (``blend=False`` keeps the starting pair). A mean over a group of
   matched pairs keeps what the group's pairs share and averages out what only one of them has, so a model
   trained on the means learns the cross-modal map rather than N particular pairs. (RepBlend's representation
   blending is something else: mixup of the synthetic pairs inside the student's steps, ``mix_alpha`` in 4.)
3. **Experts and the learned correspondence.** ``expert_tracks`` proxies start from ONE shared initialisation
   and train on the likely-clean pairs (AdamW, as the benchmark's heads; pairs drawn in proportion to their clean
   probability, :func:`expert_draw`), each in its own data order. Their checkpoints are averaged: the tracks stay
   in the same basin, so the average keeps the common drift and cancels most of the minibatch noise (on Open Clip
   Art the averaged final expert retrieves better than each track). The soft correspondence
   ``P = diag(a) + L R^T`` starts as ``correspondence_scale`` times the averaged expert's cosine similarity
   between the synthetic images and texts (rank-``rank`` SVD, exact diagonal): neighbouring clusters then teach
   each other, as LoRS's learned similarity does.
4. **Trajectory matching** (``iterations > 0``). From a checkpoint ``t`` of the averaged trajectory, a student
   takes ``synthetic_steps`` differentiable AdamW steps on the synthetic set (P's row / column softmax as
   contrastive targets), starting from the expert's AdamW moments, with a learned learning rate; the objective
   is the distance to checkpoint ``t + expert_epochs`` relative to the expert's own move, for the image head and
   the text head each (symmetric, as RepBlend's projection matching), averaged; with ``mix_alpha > 0`` each
   student step trains on mixed pairs (RepBlend's blending). Its gradient updates the
   synthetic images (or image features), the text embeddings, P's factors and the student learning rate. In
   pixel space each image's gradient is first scaled by its Grad-CAM map (:mod:`.gradcam`). The student
   covers ``expert_epochs * checkpoint_every`` = 50 expert steps in 10 of its own (as MTT's student, fewer and
   larger steps): a target one checkpoint (10 steps) ahead is mostly the expert's minibatch noise, which no
   synthetic set reproduces. ``matching="performance"`` keeps the same student steps but lowers the student's
   contrastive loss on a batch of real pairs (drawn in proportion to their clean probability) relative to that of
   checkpoint ``t``: the synthetic set is moved towards what makes a student better on the pool itself, not
   towards the expert's next checkpoint (performance matching, as the first dataset distillation, Wang et al.
   2018, here from MTT's expert starts).

Where a distillation's time goes and what each step adds (Open Clip Art, 1,971 pairs, 50 % caption noise, N =
200, seed 0, one thread; ``benchmarks/mdw_distill_profile.py``): see ``benchmarks/results/mdw_distill_profile.md``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from datasets.utils.tqdm import tqdm
from sklearn.cluster import KMeans
from torch import nn

from ...methods.cast import CASTConfig, CASTSelector
from ...proxies import info_nce
from ...selector import FeatureSet
from ...vectors import l2_normalize
from ..result import DistillationResult, attach_distillation
from .config import MDWConfig
from .correspondence import fit_dual_track
from .gradcam import emphasis_weights, grad_cam_maps
from .low_rank import LowRankCorrespondence
from .proxy import build_proxy, flatten_parameters, functional_forward, functional_log_scale, load_flat_parameters

# Output columns: one row per synthetic pair.
IMAGE_FEATURES = "image_features"
PIXEL_VALUES = "pixel_values"
TEXT_EMBEDDING = "text_embedding"
DIAG, LEFT, RIGHT = "correspondence_diag", "correspondence_left", "correspondence_right"
SOURCE_ROW = "source_row"
CLUSTER_SIZE = "cluster_size"

ADAM_BETAS, ADAM_EPS, WEIGHT_DECAY = (0.9, 0.999), 1e-8, 0.01  # torch.optim.AdamW defaults, weight decay as the heads


@dataclass
class SyntheticSet:
    """The learnable synthetic pairs, their correspondence P, and where each started."""

    images: nn.Parameter
    texts: nn.Parameter
    correspondence: LowRankCorrespondence
    source_rows: np.ndarray
    cluster_sizes: np.ndarray
    log_student_lr: nn.Parameter

    @property
    def student_lr(self) -> float:
        return float(self.log_student_lr.detach().exp())

    def __len__(self) -> int:
        return len(self.source_rows)


@dataclass
class Checkpoint:
    """A point of the (averaged) expert trajectory: flat parameters, AdamW's two moment estimates (not bias
    corrected) and the number of steps taken."""

    parameters: torch.Tensor
    first_moment: torch.Tensor
    second_moment: torch.Tensor
    step: int


@dataclass
class RealPairs:
    """The pool as performance matching reads it: image and text vectors, and each pair's chance of being drawn
    into a real batch (its clean probability, normalised to sum to 1)."""

    images: torch.Tensor
    texts: torch.Tensor
    draw: np.ndarray


def likely_clean_rows(probability: np.ndarray, threshold: float, at_least: int) -> np.ndarray:
    """The rows deemed clean (probability >= ``threshold``), in order; when fewer than ``at_least`` are, the most
    probable others join until there are ``at_least`` (ties by row order).

    Example:
        >>> likely_clean_rows(np.array([0.2, 0.9, 0.1, 0.3]), threshold=0.5, at_least=3).tolist()
        [0, 1, 3]
    """
    clean = np.flatnonzero(probability >= threshold)
    if len(clean) >= at_least:
        return clean
    return np.sort(np.argsort(-probability, kind="stable")[:at_least])


def starting_clusters(images: torch.Tensor, texts: torch.Tensor, probability: np.ndarray, num_pairs: int,
                      threshold: float, seed: int, method: str = "kmeans") -> tuple[np.ndarray, np.ndarray, int]:
    """Group the likely-clean pairs into ``num_pairs`` clusters around real starting pairs (``method``
    "kmeans" or "cast", see the module docstring).

    Rows below ``threshold`` stay out (label -1) unless fewer than ``num_pairs`` rows reach it; then the most
    probable of the others join. Returns ``(labels, starting rows, number of rows deemed clean)``; starting row
    ``c`` is a member of cluster ``c``.
    """
    n_clean = int(np.count_nonzero(probability >= threshold))
    members = likely_clean_rows(probability, threshold, num_pairs)
    flat_images = images.reshape(len(images), -1).numpy()
    joint = np.hstack([l2_normalize(flat_images[members].astype(np.float64)),
                       l2_normalize(texts.numpy()[members].astype(np.float64))])  # the members' rows only
    labels = np.full(len(probability), -1)
    if method == "cast":
        starts = _cast_picks(flat_images, texts.numpy(), members, num_pairs, seed)
        labels[members] = _most_similar(joint, joint[np.searchsorted(members, starts)])
        labels[starts] = np.arange(num_pairs)  # a duplicate of a start may claim it first: each start leads its own
        return labels, starts, n_clean
    kmeans = KMeans(n_clusters=num_pairs, n_init=1, random_state=seed).fit(joint, sample_weight=probability[members])
    labels[members] = kmeans.labels_
    closeness = np.einsum("nd,nd->n", joint, kmeans.cluster_centers_[kmeans.labels_])
    medoids = np.array([members[kmeans.labels_ == c][np.argmax(closeness[kmeans.labels_ == c])]
                        for c in range(num_pairs)])
    return labels, medoids, n_clean


def _cast_picks(images: np.ndarray, texts: np.ndarray, candidates: np.ndarray, num_pairs: int,
                seed: int) -> np.ndarray:
    """CAST's ``num_pairs`` picks among ``candidates``, every row of the pool counted as one to represent."""
    blocks = {"image": images.astype(np.float32, copy=False), "text": texts.astype(np.float32, copy=False)}
    features = FeatureSet(len(images), blocks, candidates=candidates)
    return np.asarray(CASTSelector(CASTConfig(seed=seed)).fit(features, num_pairs).indices_)


def _most_similar(rows: np.ndarray, starts: np.ndarray, block: int = 4096) -> np.ndarray:
    """For each row (unit vectors), the position of its most similar start; ``block`` rows at a time."""
    return np.concatenate([np.argmax(rows[i : i + block] @ starts.T, axis=1) for i in range(0, len(rows), block)])


def blended_pairs(images: torch.Tensor, texts: torch.Tensor, probability: np.ndarray,
                  labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Each cluster's clean-probability-weighted mean image (vector or pixels) and text embedding."""
    n_clusters = labels.max() + 1
    rows = np.flatnonzero(labels >= 0)
    assignment = torch.zeros(n_clusters, len(images), dtype=torch.float64)
    assignment[torch.as_tensor(labels[rows]), torch.as_tensor(rows)] = torch.as_tensor(probability[rows])
    assignment /= assignment.sum(dim=1, keepdim=True).clamp_min(1e-12)
    flat_images = images.reshape(len(images), -1).double()
    blended = (assignment @ flat_images).float().reshape(n_clusters, *images.shape[1:])
    return blended, (assignment @ texts.double()).float()


def expert_draw(probability: np.ndarray, threshold: float, at_least: int) -> np.ndarray:
    """How often the experts draw each pair: in proportion to its clean probability, among the pairs deemed clean
    (:func:`likely_clean_rows`, the pairs the synthetic set is made from). Sums to 1.

    Drawing every pair in proportion to its probability still draws the unlikely ones: with half of Open Clip
    Art's captions permuted, the expert trained that way retrieved worse (18.35-19.08 r_mean, seeds 0-2) than
    heads trained on the deemed-clean pairs alone (19.77-20.78); drawn from those pairs it reaches 20.23-21.55
    (``benchmarks/results/mdw_ceiling.md``).

    Example:
        >>> expert_draw(np.array([0.9, 0.1, 0.6, 0.4]), threshold=0.5, at_least=2)
        array([0.6, 0. , 0.4, 0. ])
    """
    rows = likely_clean_rows(probability, threshold, at_least)
    weights = np.zeros(len(probability))
    weights[rows] = np.maximum(probability[rows], 1e-12)  # a joining row of probability 0 is still drawn
    return weights / weights.sum()


def train_experts(images: torch.Tensor, texts: torch.Tensor, probability: np.ndarray, config: MDWConfig, *,
                  image_network=None, keep_trajectory: bool = True) -> tuple[nn.Module, list[Checkpoint]]:
    """Train ``config.expert_tracks`` experts from one shared initialisation, each in its own data order, and
    average their checkpoints (every ``checkpoint_every`` steps). Returns a model holding the averaged final
    parameters and the averaged trajectory (only its last checkpoint when ``keep_trajectory`` is False)."""
    init_seed, *track_seeds = np.random.SeedSequence([config.seed, 4]).generate_state(1 + config.expert_tracks)
    shared = build_proxy(tuple(images.shape[1:]), texts.shape[1], kind=config.heads, seed=int(init_seed),
                         image_network=image_network)
    start = flatten_parameters(shared)
    draw = expert_draw(probability, config.clean_threshold, min(config.proxy_batch_size, len(probability)))
    batch_size = min(config.proxy_batch_size, int((draw > 0).sum()))
    average: list[Checkpoint] = []
    for track_seed in track_seeds:
        model = load_flat_parameters(shared, start)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.proxy_lr, betas=ADAM_BETAS, eps=ADAM_EPS,
                                      weight_decay=WEIGHT_DECAY)
        rng = np.random.default_rng(int(track_seed))
        trajectory = [Checkpoint(start, torch.zeros_like(start), torch.zeros_like(start), 0)] if keep_trajectory else []
        model.train()
        for step in range(1, config.expert_steps + 1):
            batch = torch.as_tensor(np.sort(rng.choice(len(images), size=batch_size, replace=False, p=draw)))
            image_out, text_out = model(images[batch], texts[batch])
            loss = info_nce(image_out, text_out, model.log_scale)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if (keep_trajectory and step % config.checkpoint_every == 0) or step == config.expert_steps:
                trajectory.append(Checkpoint(flatten_parameters(model), _flat_state(model, optimizer, "exp_avg"),
                                             _flat_state(model, optimizer, "exp_avg_sq"), step))
        trajectory = trajectory if keep_trajectory else trajectory[-1:]
        average = trajectory if not average else [
            Checkpoint(a.parameters + b.parameters, a.first_moment + b.first_moment,
                       a.second_moment + b.second_moment, a.step) for a, b in zip(average, trajectory)]
    tracks = config.expert_tracks
    average = [Checkpoint(c.parameters / tracks, c.first_moment / tracks, c.second_moment / tracks, c.step)
               for c in average]
    return load_flat_parameters(shared, average[-1].parameters), average


def _flat_state(model: nn.Module, optimizer: torch.optim.Optimizer, name: str) -> torch.Tensor:
    return torch.cat([optimizer.state[p][name].reshape(-1) if name in optimizer.state.get(p, {})
                      else torch.zeros(p.numel()) for p in model.parameters()]).detach().clone()


@torch.no_grad()
def expert_correspondence(expert: nn.Module, images: torch.Tensor, texts: torch.Tensor,
                          config: MDWConfig) -> tuple[LowRankCorrespondence, float]:
    """P's starting point and the scale used: the scale times the expert's cosine similarity of the synthetic
    images and texts, as ``diag(a) + L R^T`` (rank-``rank`` SVD, diagonal exact). The scale is
    ``correspondence_scale``, or ``correspondence_std`` over the standard deviation of the off-diagonal cosines;
    P is ``diag_init`` times the identity (scale 0) when neither asks for the expert."""
    if not config.uses_expert_correspondence:
        return LowRankCorrespondence(len(images), config.rank, config.diag_init, seed=config.seed), 0.0
    expert.eval()
    image_out, text_out = expert(images, texts)
    similarity = image_out @ text_out.T
    scale = config.correspondence_scale
    if config.correspondence_std is not None:
        off_diagonal = similarity[~torch.eye(len(similarity), dtype=torch.bool)]
        scale = config.correspondence_std / float(off_diagonal.std().clamp_min(1e-6))
    return LowRankCorrespondence.from_matrix(scale * similarity, config.rank), float(scale)


def init_synthetic(images: torch.Tensor, texts: torch.Tensor, probability: np.ndarray, num_pairs: int,
                   config: MDWConfig) -> tuple[SyntheticSet, int]:
    """Steps 1-2: the starting synthetic set (P still the identity-like default); returns it and the number
    of rows deemed clean."""
    labels, starts, n_clean = starting_clusters(images, texts, probability, num_pairs, config.clean_threshold,
                                                config.seed, config.starting_pairs)
    if config.blend:
        start_images, start_texts = blended_pairs(images, texts, probability, labels)
    else:
        start_images, start_texts = images[torch.as_tensor(starts)], texts[torch.as_tensor(starts)]
    synthetic = SyntheticSet(
        images=nn.Parameter(start_images.clone()), texts=nn.Parameter(start_texts.clone()),
        correspondence=LowRankCorrespondence(num_pairs, config.rank, config.diag_init, seed=config.seed),
        source_rows=starts, cluster_sizes=np.bincount(labels[labels >= 0], minlength=num_pairs),
        log_student_lr=nn.Parameter(torch.tensor(float(np.log(config.proxy_lr)))))
    return synthetic, n_clean


def student_loss(proxy: nn.Module, flat: torch.Tensor, synthetic: SyntheticSet, rows: torch.Tensor,
                 mix: tuple[float, torch.Tensor] | None = None) -> torch.Tensor:
    """Contrastive loss of the student ``flat`` on synthetic pairs ``rows``, P's block as soft targets.
    ``mix = (lam, partner)`` blends pair ``i`` of the block with pair ``partner[i]`` (images and texts alike)."""
    image_to_text, text_to_image = synthetic.correspondence.targets(rows)
    images, texts = synthetic.images[rows], synthetic.texts[rows]
    if mix is not None:
        lam, partner = mix
        images, texts = lam * images + (1 - lam) * images[partner], lam * texts + (1 - lam) * texts[partner]
    image_out, text_out = functional_forward(proxy, flat, images, texts)
    return info_nce(image_out, text_out, functional_log_scale(proxy, flat),
                    targets=image_to_text, text_targets=text_to_image)


def adamw_step(flat: torch.Tensor, first: torch.Tensor, second: torch.Tensor, grad: torch.Tensor, step: int,
               lr: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One differentiable ``torch.optim.AdamW`` step (same betas, eps, weight decay); ``step`` counts from 1.

    Example:
        >>> p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> optimizer = torch.optim.AdamW([p], lr=0.1, weight_decay=0.01)
        >>> p.grad = torch.tensor([0.5, 0.25]); optimizer.step()
        >>> flat, _, _ = adamw_step(torch.tensor([1.0, -2.0]), torch.zeros(2), torch.zeros(2),
        ...                         torch.tensor([0.5, 0.25]), 1, 0.1)
        >>> torch.allclose(flat, p.detach())
        True
    """
    (beta1, beta2), eps = ADAM_BETAS, ADAM_EPS
    first = beta1 * first + (1 - beta1) * grad
    second = beta2 * second + (1 - beta2) * grad * grad
    # sqrt(v + eps^2) instead of sqrt(v): the same value to float precision, a finite derivative at v = 0.
    denominator = (second / (1 - beta2 ** step) + eps * eps).sqrt() + eps
    return flat * (1 - lr * WEIGHT_DECAY) - lr * (first / (1 - beta1 ** step)) / denominator, first, second


def match_trajectories(synthetic: SyntheticSet, proxy: nn.Module, trajectory: list[Checkpoint],
                       config: MDWConfig, *, pixels: bool, real: RealPairs | None = None,
                       show_progress: bool = True) -> list[float]:
    """Step 4: optimise ``synthetic`` in place for ``config.iterations`` steps; returns the objective per
    iteration."""
    if config.iterations == 0:
        return []
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 3]).generate_state(1)[0])
    optimizer = torch.optim.Adam([
        {"params": [synthetic.images], "lr": config.lr_pixels if pixels else config.lr_features},
        {"params": [synthetic.texts], "lr": config.lr_text},
        {"params": list(synthetic.correspondence.parameters()), "lr": config.lr_correspondence},
        {"params": [synthetic.log_student_lr], "lr": config.lr_student_lr},
    ])
    heads = head_slices(proxy)
    scorer = copy.deepcopy(proxy) if pixels else None  # holds the start checkpoint for Grad-CAM
    objectives = []
    for _ in tqdm(range(config.iterations), desc=f"MDW {config.matching} matching", disable=not show_progress):
        start_index = int(rng.integers(config.last_start_epoch + 1))
        start, target = trajectory[start_index], trajectory[start_index + config.expert_epochs]
        objective = matching_objective(synthetic, proxy, start, target, heads, config, rng, real)
        optimizer.zero_grad()
        objective.backward()
        if pixels:
            _emphasise_correspondence(synthetic, load_flat_parameters(scorer, start.parameters), config)
        optimizer.step()
        objectives.append(objective.item())
    return objectives


def matching_objective(synthetic: SyntheticSet, proxy: nn.Module, start: Checkpoint, target: Checkpoint,
                       heads: dict[str, slice], config: MDWConfig, rng: np.random.Generator,
                       real: RealPairs | None = None) -> torch.Tensor:
    """What the matching lowers, after the student takes ``synthetic_steps`` differentiable AdamW steps from
    ``start`` on the synthetic set: ``config.matching == "trajectory"``, the mean over the heads of
    ``||theta_student - theta_target||^2 / ||theta_start - theta_target||^2``; ``"performance"``, the student's
    contrastive loss on a batch of ``real`` pairs over that of ``start`` (see :func:`real_pair_loss`)."""
    flat = student_after_steps(synthetic, proxy, start, target, config, rng)
    if config.matching == "performance":
        if real is None:
            raise ValueError("matching='performance' needs the real pairs (real=RealPairs(...)).")
        return real_pair_loss(proxy, flat, start, real, config.real_batch_size, rng)
    distances = [(flat[part] - target.parameters[part]).pow(2).sum()
                 / (start.parameters[part] - target.parameters[part]).pow(2).sum().clamp_min(1e-12)
                 for part in heads.values()]
    return torch.stack(distances).mean()


def student_after_steps(synthetic: SyntheticSet, proxy: nn.Module, start: Checkpoint, target: Checkpoint,
                        config: MDWConfig, rng: np.random.Generator) -> torch.Tensor:
    """The student's flat parameters after its differentiable AdamW steps on the synthetic set (as many as the
    expert took from ``start`` to ``target`` unless ``synthetic_steps`` is set), from ``start``'s moments."""
    flat = start.parameters.clone().requires_grad_(True)
    first, second = start.first_moment.clone(), start.second_moment.clone()
    batch = min(config.synthetic_batch_size or config.proxy_batch_size, len(synthetic))
    steps = config.synthetic_steps or target.step - start.step
    for step in range(start.step + 1, start.step + steps + 1):
        rows = torch.as_tensor(np.sort(rng.choice(len(synthetic), size=batch, replace=False)))
        mix = (float(rng.beta(config.mix_alpha, config.mix_alpha)), torch.as_tensor(rng.permutation(batch))) \
            if config.mix_alpha > 0 else None  # no draw without mixing: the default's batches stay as they were
        grad, = torch.autograd.grad(student_loss(proxy, flat, synthetic, rows, mix), flat, create_graph=True)
        flat, first, second = adamw_step(flat, first, second, grad, step, synthetic.log_student_lr.exp())
    return flat


def real_pair_loss(proxy: nn.Module, flat: torch.Tensor, start: Checkpoint, real: RealPairs, batch_size: int,
                   rng: np.random.Generator) -> torch.Tensor:
    """Performance matching's objective: the contrastive loss of the student ``flat`` on ``batch_size`` real pairs
    (drawn without replacement in proportion to ``real.draw``), over the loss of the ``start`` checkpoint on the
    same pairs (below 1: the synthetic steps taught the student something that holds on the real pool).
    Pairs with the same caption all count as positives of each other (:func:`shared_caption_targets`)."""
    size = min(batch_size, int((real.draw > 0).sum()))
    rows = torch.as_tensor(np.sort(rng.choice(len(real.draw), size=size, replace=False, p=real.draw)))
    images, texts = real.images[rows], real.texts[rows]
    targets = shared_caption_targets(texts)

    def loss(parameters: torch.Tensor) -> torch.Tensor:
        image_out, text_out = functional_forward(proxy, parameters, images, texts)
        return info_nce(image_out, text_out, functional_log_scale(proxy, parameters), targets=targets)

    with torch.no_grad():
        reference = loss(start.parameters).clamp_min(1e-6)
    return loss(flat) / reference


def shared_caption_targets(texts: torch.Tensor) -> torch.Tensor:
    """Contrastive targets of a batch whose captions may repeat: row ``i`` spreads evenly over the pairs whose
    text vector equals pair ``i``'s (cosine above 1 - 1e-4), so a template caption shared by many images is one
    caption, not a negative of itself; with distinct captions this is the identity.

    Example:
        >>> shared_caption_targets(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]))
        tensor([[0.5000, 0.0000, 0.5000],
                [0.0000, 1.0000, 0.0000],
                [0.5000, 0.0000, 0.5000]])
    """
    unit = nn.functional.normalize(texts.reshape(len(texts), -1), dim=1)
    same = (unit @ unit.T > 1 - 1e-4).float()
    return same / same.sum(dim=1, keepdim=True)


def head_slices(model: nn.Module) -> dict[str, slice]:
    """Where the image head's and the text head's parameters sit in the flat vector (the temperature is left
    out of the matching: it is one number, and a shared one)."""
    spans: dict[str, list[int]] = {}
    position = 0
    for name, parameter in model.named_parameters():
        top = name.split(".")[0]
        if top in ("image", "text"):
            spans.setdefault(top, [position, position])[1] = position + parameter.numel()
        position += parameter.numel()
    return {name: slice(*span) for name, span in spans.items()}


def _emphasise_correspondence(synthetic: SyntheticSet, scorer: nn.Module, config: MDWConfig) -> None:
    """Scale every synthetic image's gradient by its Grad-CAM map under the current P (in place)."""
    image_to_text, _ = synthetic.correspondence.targets()
    maps = grad_cam_maps(scorer, synthetic.images.detach(), synthetic.texts.detach(), image_to_text,
                         config.cam_top_k)
    synthetic.images.grad.mul_(emphasis_weights(maps, config.cam_floor))


def distill_pairs(images: torch.Tensor, texts: torch.Tensor, num_pairs: int, config: MDWConfig, *,
                  image_network=None, clean_probability: np.ndarray | None = None, show_progress: bool = True):
    """The whole MDW pipeline on tensors: returns (synthetic set, objectives, diagnostics with timings).

    ``clean_probability`` (one per row) skips the estimate."""
    clock = _Clock()
    if clean_probability is None:
        clean_probability = fit_dual_track(images, texts, config, image_network=image_network,
                                           show_progress=show_progress).clean_probability
    clock.lap("noise_estimation")
    synthetic, n_clean = init_synthetic(images, texts, clean_probability, num_pairs, config)
    clock.lap("starting_pairs")
    objectives = []
    scale = 0.0
    if config.iterations > 0 or config.uses_expert_correspondence:  # else the blended pairs are the result
        expert, trajectory = train_experts(images, texts, clean_probability, config, image_network=image_network,
                                           keep_trajectory=config.iterations > 0)
        synthetic.correspondence, scale = expert_correspondence(expert, synthetic.images.detach(),
                                                                synthetic.texts.detach(), config)
        clock.lap("experts")
        starting_images, starting_texts = synthetic.images.detach().clone(), synthetic.texts.detach().clone()
        draw = np.asarray(clean_probability, dtype=np.float64)
        real = RealPairs(images, texts, draw / draw.sum())
        before = held_objective(synthetic, expert, trajectory, config, real) if config.iterations > 0 else None
        objectives = match_trajectories(synthetic, expert, trajectory, config, pixels=image_network is not None,
                                        real=real, show_progress=show_progress)
        after = held_objective(synthetic, expert, trajectory, config, real) if config.iterations > 0 else None
        shift = {"images": relative_shift(starting_images, synthetic.images.detach()),
                 "texts": relative_shift(starting_texts, synthetic.texts.detach())}
    else:
        before = after = None
        shift = {"images": 0.0, "texts": 0.0}
    clock.lap("matching")
    return synthetic, objectives, {"deemed_clean": n_clean, "timings": clock.timings(), "matching_shift": shift,
                                   "objective_before": before, "objective_after": after,
                                   "correspondence_scale": scale}


def held_objective(synthetic: SyntheticSet, proxy: nn.Module, trajectory: list[Checkpoint], config: MDWConfig,
                   real: RealPairs | None = None, starts: int = 5) -> float:
    """The matching objective averaged over ``starts`` evenly spaced start checkpoints, each with the same
    student batches every time it is called: unlike the per-iteration objective (a random start and random
    batches each iteration), its before / after values compare like with like."""
    heads = head_slices(proxy)
    values = []
    for start_index in np.unique(np.linspace(0, config.last_start_epoch, starts).round().astype(int)):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 5, int(start_index)]).generate_state(1)[0])
        objective = matching_objective(synthetic, proxy, trajectory[start_index],
                                       trajectory[start_index + config.expert_epochs], heads, config, rng, real)
        values.append(objective.item())
    return float(np.mean(values))


def relative_shift(start: torch.Tensor, end: torch.Tensor) -> float:
    """How far the matching moved the synthetic vectors: their mean displacement over the mean distance of the
    starting vectors from their centroid (0: not moved; 1: as far as a typical vector is from the centre).

    Example:
        >>> start = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> relative_shift(start, start + torch.tensor([0.0, 0.5]))
        0.5
    """
    start, end = start.reshape(len(start), -1).double(), end.reshape(len(end), -1).double()
    spread = (start - start.mean(dim=0)).norm(dim=1).mean()
    return float((end - start).norm(dim=1).mean() / spread.clamp_min(1e-12))


class _Clock:
    """Wall and CPU (process) seconds of each named stage, and in total."""

    def __init__(self):
        self.started = self.last = (time.perf_counter(), time.process_time())
        self.laps: dict[str, tuple[float, float]] = {}

    def lap(self, name: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.laps[name] = (now[0] - self.last[0], now[1] - self.last[1])
        self.last = now

    def timings(self) -> dict[str, float]:
        out = {}
        for name, (wall, cpu) in self.laps.items():
            out[f"{name}_s"], out[f"{name}_cpu_s"] = wall, cpu
        out["total_s"], out["total_cpu_s"] = self.last[0] - self.started[0], self.last[1] - self.started[1]
        return out


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
        CLUSTER_SIZE: synthetic.cluster_sizes.astype(np.int64),
    }
    features = datasets.Features({
        PIXEL_VALUES if pixels else IMAGE_FEATURES: (datasets.Array3D(images.shape[1:], "float32") if pixels
                                                     else datasets.Sequence(datasets.Value("float32"))),
        TEXT_EMBEDDING: datasets.Sequence(datasets.Value("float32")),
        DIAG: datasets.Value("float32"),
        LEFT: datasets.Sequence(datasets.Value("float32")),
        RIGHT: datasets.Sequence(datasets.Value("float32")),
        SOURCE_ROW: datasets.Value("int64"),
        CLUSTER_SIZE: datasets.Value("int64"),
    })
    distilled = datasets.Dataset.from_dict(columns, features=features)
    distilled.info.description = attach_distillation(source_description, result)
    return distilled
