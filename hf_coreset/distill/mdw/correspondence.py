"""Dual-track correspondence estimation: how likely is each image-text pair to be correctly matched?

Two proxy models (different seeds and data orders) train on the pool side by side. After every epoch each
track measures one contrastive loss per pair and fits a two-component 1-D Gaussian mixture to those losses;
the posterior of the low-mean component is the pair's *clean probability*. In the next epoch each track
weights every pair's loss by the OTHER track's clean probability (co-teaching: a model does not get to
down-weight only what it already finds hard, so its own memorisation errors are not reinforced). Mismatched
pairs are hard to fit, so they keep a high loss and a low clean probability.

Public use:

* :func:`estimate_clean_probability`: one probability per row of a Dataset with image and text vectors.
* :class:`CleanProbability`: a ``Dataset.map`` transform that adds a ``clean_probability`` column.
* :class:`KeepLikelyClean`: a ``Dataset.filter`` predicate on that column; :func:`drop_mismatched` does all.

Both tracks' per-epoch checkpoints are kept (:class:`DualTrackResult`): they are the expert trajectories the
distillation matches.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from datasets.utils.tqdm import tqdm
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from torch import nn

from ...errors import CoresetInputError
from ...proxies import info_nce
from .config import MDWConfig
from .inputs import check_image_network, check_pool, check_space, read_pairs
from .proxy import build_proxy, flatten_parameters

CLEAN_COLUMN = "clean_probability"
N_TRACKS = 2


@dataclass
class DualTrackResult:
    """What the two tracks learned about the pool.

    Attributes:
        clean_probability: ``(N,)`` each row's clean probability from the track that did NOT train on it,
            averaged over the co-teaching epochs.
        track_probabilities: ``(2, N)`` each track's final clean probability of every row (on its own half a
            mixture fitted to its training losses, on the other half the held-out estimate above).
        trajectories: per track, ``proxy_epochs + 1`` flat parameter checkpoints (index 0 = initialisation).
        second_moments: per track and checkpoint, AdamW's bias-corrected second-moment estimate ``v_hat`` (flat)
            at that point; index 0 repeats index 1 (no state exists before the first step). The student's
            steps use it, so that they move like the Adam-trained experts.
        proxy: a model of the proxies' architecture (parameters unused), to run a checkpoint functionally.
        epoch_losses: ``(2, proxy_epochs)`` mean weighted training loss per track and epoch.
        probability_history: ``(proxy_epochs, N)`` every epoch's held-out clean probabilities (diagnostics).
    """

    clean_probability: np.ndarray
    track_probabilities: np.ndarray
    trajectories: list[list[torch.Tensor]]
    second_moments: list[list[torch.Tensor]]
    proxy: nn.Module
    epoch_losses: np.ndarray
    probability_history: np.ndarray

    def both_clean(self, threshold: float) -> np.ndarray:
        """Rows that BOTH tracks deem clean (probability >= ``threshold``)."""
        return np.flatnonzero((self.track_probabilities >= threshold).all(axis=0))


def fit_dual_track(images: torch.Tensor, texts: torch.Tensor, config: MDWConfig, *,
                   image_network: Callable[[], nn.Module] | None = None, show_progress: bool = True
                   ) -> DualTrackResult:
    """Train the two co-teaching tracks on ``images[i] <-> texts[i]`` and return their clean probabilities
    and checkpoints. ``image_network`` (a zero-argument factory) switches the image side to pixels.

    The pool is split at random into two halves, one per track. Every epoch each track trains on its own
    half, weighted by the clean probabilities that the OTHER track gave those rows, and then scores the
    other half, which it has never trained on. Scoring unseen pairs is what keeps the estimate honest: a
    proxy scoring its own training pairs memorises the mismatched ones within a few epochs and their loss
    stops standing out (on Open Clip Art with 50 % noise the in-sample AUC fell from about 0.82 to 0.70 over
    12 epochs).
    """
    # Independent streams for the two tracks, the split and the loss chunks. A plain default_rng(seed) would
    # repeat the permutation that hf_coreset.noise draws with the same seed to choose the mismatched rows.
    *track_seeds, split_seed, chunk_seed = np.random.SeedSequence(config.seed).generate_state(N_TRACKS + 2)
    models = [build_proxy(tuple(images.shape[1:]), texts.shape[1], kind=config.heads, seed=int(s),
                          image_network=image_network) for s in track_seeds]
    optimizers = [torch.optim.AdamW(m.parameters(), lr=config.proxy_lr, weight_decay=0.01) for m in models]
    orders = [np.random.default_rng(int(s)) for s in track_seeds]  # each track its own data order
    halves = np.array_split(np.random.default_rng(split_seed).permutation(len(images)), N_TRACKS)
    loss_chunks = _loss_chunks(len(images), config.loss_batch_size, int(chunk_seed))
    trajectories = [[flatten_parameters(m)] for m in models]
    second_moments = [[] for _ in models]
    held_out = np.ones(len(images))  # each row's probability from the track that did not train on it
    epoch_losses = np.zeros((N_TRACKS, config.proxy_epochs))
    history = []
    for epoch in tqdm(range(config.proxy_epochs), desc="MDW dual-track proxies", disable=not show_progress):
        co_teaching = epoch >= config.warmup_epochs
        for track, (model, optimizer) in enumerate(zip(models, optimizers)):
            rows = halves[track]
            weights = held_out[rows] if co_teaching else np.ones(len(rows))
            epoch_losses[track, epoch] = _train_one_epoch(model, optimizer, images[rows], texts[rows], weights,
                                                          orders[track], config.proxy_batch_size)
            trajectories[track].append(flatten_parameters(model))
            second_moments[track].append(second_moment(model, optimizer))
        # Both tracks are scored after both have trained, so neither sees the other's newer estimate early.
        track_probabilities = _score_halves(models, halves, images, texts, loss_chunks, config)
        for track in range(N_TRACKS):
            other = halves[1 - track]
            held_out[other] = track_probabilities[track, other]
        history.append(held_out.copy())
    return DualTrackResult(clean_probability=_average_after_warmup(history, config.warmup_epochs),
                           track_probabilities=track_probabilities,
                           trajectories=trajectories, second_moments=[[v[0], *v] for v in second_moments],
                           proxy=models[0], epoch_losses=epoch_losses,
                           probability_history=np.stack(history))


def _score_halves(models, halves, images, texts, loss_chunks, config) -> np.ndarray:
    """``(2, N)``: each track's clean probability of every row, from one mixture on the losses of its own
    (training) half and another on those of the other (unseen) half."""
    probabilities = np.ones((len(models), len(images)))
    for track, model in enumerate(models):
        losses = per_pair_losses(model, images, texts, loss_chunks)
        for rows in halves:
            probabilities[track, rows] = clean_probability_from_losses(losses[rows], config)
    return probabilities


def _average_after_warmup(history: list[np.ndarray], warmup_epochs: int) -> np.ndarray:
    """Mean held-out probability over the co-teaching epochs. A late epoch alone is worse: the mismatched
    pairs a track trains on are slowly memorised and its estimate drifts (held-out AUC on Open Clip Art with
    50 % noise: 0.81 at its best epoch, 0.77 at the last, 0.82 averaged)."""
    return np.mean(history[min(warmup_epochs, len(history) - 1):], axis=0)


def second_moment(model: nn.Module, optimizer: torch.optim.AdamW) -> torch.Tensor:
    """AdamW's bias-corrected second-moment estimate of every parameter, flat (zeros before the first step)."""
    beta2 = optimizer.param_groups[0]["betas"][1]
    moments = []
    for parameter in model.parameters():
        state = optimizer.state.get(parameter, {})
        if "exp_avg_sq" not in state:
            moments.append(torch.zeros(parameter.numel()))
        else:
            moments.append((state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))).reshape(-1))
    return torch.cat(moments).detach().clone()


def _train_one_epoch(model, optimizer, images, texts, weights, rng, batch_size) -> float:
    """One pass over the pool in a fresh random order; each pair's loss weighted by the other track."""
    model.train()
    weights = torch.as_tensor(weights, dtype=torch.float32)
    order = rng.permutation(len(images))
    total = 0.0
    batches = [b for b in np.array_split(order, max(1, len(order) // batch_size)) if len(b) >= 2]
    for batch in batches:
        batch = torch.as_tensor(batch)
        image_out, text_out = model(images[batch], texts[batch])
        loss = (weights[batch] * info_nce(image_out, text_out, model.log_scale, reduction="none")).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(batches)


def _loss_chunks(n_rows: int, loss_batch_size: int, seed: int) -> list[np.ndarray]:
    """A fixed random split of the rows into near-equal chunks: every pair is scored against about the same
    number of negatives, and against the same ones in every epoch."""
    order = np.random.default_rng(seed).permutation(n_rows)
    return np.array_split(order, max(1, int(np.ceil(n_rows / loss_batch_size))))


@torch.no_grad()
def per_pair_losses(model: nn.Module, images: torch.Tensor, texts: torch.Tensor,
                    chunks: list[np.ndarray]) -> np.ndarray:
    """Symmetric InfoNCE of every pair against the other pairs of its chunk, in row order."""
    model.eval()
    losses = np.empty(len(images))
    for chunk in chunks:
        index = torch.as_tensor(chunk)
        image_out, text_out = model(images[index], texts[index])
        losses[chunk] = info_nce(image_out, text_out, model.log_scale, reduction="none").numpy()
    return losses


def clean_probability_from_losses(losses: np.ndarray, config: MDWConfig) -> np.ndarray:
    """Posterior of the low-mean component of a two-component Gaussian mixture fitted to ``losses``.

    Example:
        >>> losses = np.r_[np.full(80, 0.5), np.full(20, 3.0)] + np.random.default_rng(0).normal(0, 0.1, 100)
        >>> p = clean_probability_from_losses(losses, MDWConfig())
        >>> bool(p[:80].min() > 0.9 and p[80:].max() < 0.1)
        True
    """
    spread = losses.max() - losses.min()
    if not spread > 1e-12:  # identical losses: nothing tells the pairs apart
        return np.ones(len(losses))
    scaled = ((losses - losses.min()) / spread).reshape(-1, 1)
    mixture = GaussianMixture(n_components=config.gmm_components, max_iter=config.gmm_max_iter,
                              reg_covar=config.gmm_reg_covar, random_state=config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixture.fit(scaled)
    clean_component = int(np.argmin(mixture.means_.ravel()))
    return mixture.predict_proba(scaled)[:, clean_component]


def estimate_clean_probability(dataset, image_column: str, text_column: str, *, space: str = "features",
                               image_network: Callable[[], nn.Module] | None = None, show_progress: bool = True,
                               config: MDWConfig | None = None, **options) -> np.ndarray:
    """The probability that each row's image and text really belong together, in row order.

    Args:
        dataset: rows with an image column (vectors, or ``(C, H, W)`` pixels with ``space="pixels"``) and a
            text-embedding column.
        image_column, text_column: those columns.
        space: ``"features"`` or ``"pixels"`` (then ``image_network`` builds the differentiable image side).
        config: an :class:`MDWConfig`; or pass its fields as keyword ``options`` (e.g. ``proxy_epochs=8``).

    Example:
        >>> import datasets, numpy as np
        >>> from hf_coreset.distill.mdw.correspondence import estimate_clean_probability
        >>> rng = np.random.default_rng(0)
        >>> topics = rng.normal(size=(4, 6))[rng.integers(0, 4, 40)]
        >>> ds = datasets.Dataset.from_dict({"img": topics + 0.1 * rng.normal(size=(40, 6)), "txt": topics})
        >>> p = estimate_clean_probability(ds, "img", "txt", proxy_epochs=3, heads="linear", show_progress=False)
        >>> p.shape, bool(((p >= 0) & (p <= 1)).all())
        ((40,), True)
    """
    config = resolve_config(config, options)
    check_pool(dataset, "The clean-probability estimate")
    check_space(space)
    check_image_network(space, image_network)
    images, texts = read_pairs(dataset, image_column, text_column, space)
    return fit_dual_track(images, texts, config, image_network=image_network,
                          show_progress=show_progress).clean_probability


def resolve_config(config: MDWConfig | None, options: dict) -> MDWConfig:
    """``config`` as given, or an :class:`MDWConfig` built from keyword options (unknown ones are named)."""
    if config is not None and options:
        raise CoresetInputError(f"Pass either config=MDWConfig(...) or options {sorted(options)}, not both.")
    if config is not None:
        return config
    known = list(MDWConfig.__dataclass_fields__)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise CoresetInputError(f"Unknown MDW option(s) {unknown}. Its options are: {known}.")
    return MDWConfig(**options)


class CleanProbability:
    """A ``Dataset.map`` transform that adds the rows' clean probability as a column.

    The probabilities come from one dual-track fit on the whole dataset (:meth:`fit`); the transform then
    looks each row up by its index, so map it with ``with_indices=True`` over the dataset it was fitted on.
    It is picklable and hashes by its content (the probabilities and the column name), so ``datasets``
    fingerprints and caches the mapped dataset as usual.

    Example:
        >>> import datasets, numpy as np
        >>> from hf_coreset.distill.mdw.correspondence import CleanProbability, KeepLikelyClean
        >>> ds = datasets.Dataset.from_dict({"x": [0, 1, 2]})
        >>> transform = CleanProbability([0.9, 0.2, 0.7])   # or CleanProbability.fit(ds, "img", "txt")
        >>> scored = ds.map(transform, with_indices=True, batched=True)
        >>> list(scored["clean_probability"])
        [0.9, 0.2, 0.7]
        >>> list(scored.filter(KeepLikelyClean(0.5), batched=True)["x"])
        [0, 2]
    """

    def __init__(self, probabilities, column: str = CLEAN_COLUMN):
        self.probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
        self.column = column

    @classmethod
    def fit(cls, dataset, image_column: str, text_column: str, *, column: str = CLEAN_COLUMN,
            **estimate_options) -> CleanProbability:
        """Run the dual-track estimate on ``dataset`` (options as :func:`estimate_clean_probability`)."""
        return cls(estimate_clean_probability(dataset, image_column, text_column, **estimate_options), column)

    def __call__(self, batch: dict, indices):
        rows = np.asarray(indices)
        if rows.size and rows.max() >= len(self.probabilities):
            raise CoresetInputError(
                f"Row {int(rows.max())} is beyond the {len(self.probabilities)} rows this transform was fitted "
                "on; map it over the same dataset it was fitted on, with with_indices=True."
            )
        values = self.probabilities[rows]
        return {self.column: values.tolist() if rows.ndim else float(values)}

    def _key(self) -> tuple[str, bytes]:
        return self.column, self.probabilities.tobytes()

    def __eq__(self, other) -> bool:
        return isinstance(other, CleanProbability) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"CleanProbability(<{len(self.probabilities)} rows>, column={self.column!r})"


@dataclass(frozen=True)
class KeepLikelyClean:
    """A ``Dataset.filter`` predicate: keep rows whose clean probability is at least ``threshold``
    (batched or not). Drops the likely mismatched pairs."""

    threshold: float = 0.5
    column: str = CLEAN_COLUMN

    def __call__(self, batch: dict):
        values = batch[self.column]
        if isinstance(values, (list, np.ndarray)):
            return [value >= self.threshold for value in values]
        return values >= self.threshold


def add_clean_probability(dataset, image_column: str, text_column: str, *, column: str = CLEAN_COLUMN,
                          **estimate_options):
    """``dataset`` with a ``clean_probability`` column (one dual-track fit, then a cached ``Dataset.map``)."""
    transform = CleanProbability.fit(dataset, image_column, text_column, column=column, **estimate_options)
    return dataset.map(transform, with_indices=True, batched=True)


def drop_mismatched(dataset, image_column: str, text_column: str, *, threshold: float = 0.5, **estimate_options):
    """``dataset`` without the pairs whose clean probability is below ``threshold`` (column added, then
    filtered with :class:`KeepLikelyClean`)."""
    scored = add_clean_probability(dataset, image_column, text_column, **estimate_options)
    return scored.filter(KeepLikelyClean(threshold), batched=True)
