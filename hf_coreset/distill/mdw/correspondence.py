"""Dual-track correspondence estimation: how likely is each image-text pair to be correctly matched?

It starts from a training-free signal, the cross-modal kNN agreement of :mod:`.agreement` (a mismatched
caption disagrees with the captions of its image's neighbours), computed twice: the second time each
neighbour counts in proportion to its clean probability from the first. It then refines it by co-teaching.
The pool is split at random into two halves, one per track. In every round each track trains a fresh proxy
model on its own half, each pair's loss weighted by the square of its current clean probability, which came
from the OTHER track (and the agreement); then it scores the other half, which it has never trained on, by
the hubness-corrected similarity of each image to its own caption (:func:`~.agreement.csls_diagonal`). The
running mean of those held-out scores, z-scored, plus the z-scored agreement is each pair's clean score. The
same score of the pool's images with captions drawn at random from the pool shows what a mismatched pair scores
here, and the two-groups model (:class:`TwoGroups`) turns the score into a probability against that measured
null (the probability keeps the score's order).

Why these choices (Open Clip Art, 1,971 pairs, 50 % of captions permuted, seeds 0 / 1 / 2, ROC AUC; tuned on
this set only, Fashion-MNIST held out; the exploration scripts are not shipped,
``benchmarks/mdw_clean_probability.py`` measures the result):

* scoring unseen pairs keeps the estimate honest: a proxy scoring its own training pairs memorises the
  mismatched ones within a few epochs and their loss stops standing out;
* the hubness-corrected similarity beats the raw one, as the agreement (0.868 / 0.887 / 0.892 against
  0.842 / 0.860 / 0.867) and as the held-out score (a proxy trained on one half with uniform weights: 0.79
  vs 0.77 on the other half), because a generic caption is close to every image;
* weighting the neighbours by a first clean probability: 0.882 / 0.905 / 0.903 (more passes add nothing;
  at 20 % noise it neither helps nor hurts, 0.923 -> 0.922);
* a short-trained fresh proxy per round: 4 epochs scored better than 8 (linear heads, 3 rounds: 0.896 - 0.914
  vs 0.892 - 0.900); 6 epochs no better than 4;
* co-teaching rounds add to the agreement (the proxies' own held-out score stays at 0.866 - 0.883, below
  the agreement: the two signals err on different pairs): 6 rounds 0.898 / 0.911 / 0.911 with the clean
  probability as the loss weight, 0.900 / 0.914 / 0.913 with its square (the default: a doubtful pair
  teaches the proxy less); 10 rounds or k = 5 / 20 neighbours change the mean AUC by < 0.002.

(These were measured when a two-component mixture turned the score into a probability; with the two-groups
model below the final AUCs are 0.901 / 0.915 / 0.912, the same within the seeds' spread.)

Public use:

* :func:`estimate_clean_probability`: one probability per row of a Dataset with image and text vectors.
* :class:`CleanProbability`: a ``Dataset.map`` transform that adds a ``clean_probability`` column.
* :class:`KeepLikelyClean`: a ``Dataset.filter`` predicate on that column; :func:`drop_mismatched` does all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from datasets.utils.tqdm import tqdm
from scipy.special import expit
from scipy.stats import norm
from torch import nn

from ...errors import CoresetInputError
from ...proxies import epoch_batches, info_nce, optimise
from .agreement import CrossModalNeighbours, csls_of_pairs, standardise_like, standardised_sum, zscore
from .config import MDWConfig
from .inputs import check_image_network, check_pool, check_space, read_pairs
from .proxy import build_proxy

CLEAN_COLUMN = "clean_probability"
N_TRACKS = 2


@dataclass
class DualTrackResult:
    """What the two tracks learned about the pool.

    Attributes:
        clean_probability: ``(N,)`` each row's probability of being a matched pair.
        clean_score: ``(N,)`` the score it comes from (z-scored agreement + z-scored mean held-out score).
        null_score: ``(N,)`` the same score of the pool's images with captions drawn at random from the pool,
            on the same scale: what a mismatched pair scores here (see :class:`TwoGroups`).
        mismatched_fraction: the estimated share of mismatched pairs in the pool.
        agreement: ``(N,)`` the kNN agreement the tracks started from (z-scored).
        held_out_score: ``(N,)`` the mean over rounds of each row's score by the track that did not train on it.
        probability_history: ``(proxy_rounds + 1, N)`` the clean probability at the start and after each round.
    """

    clean_probability: np.ndarray
    clean_score: np.ndarray
    null_score: np.ndarray
    mismatched_fraction: float
    agreement: np.ndarray
    held_out_score: np.ndarray
    probability_history: np.ndarray

    def deemed_clean(self, threshold: float) -> np.ndarray:
        """Rows whose clean probability reaches ``threshold``."""
        return np.flatnonzero(self.clean_probability >= threshold)


def fit_dual_track(images: torch.Tensor, texts: torch.Tensor, config: MDWConfig, *,
                   image_network: Callable[[], nn.Module] | None = None, show_progress: bool = True
                   ) -> DualTrackResult:
    """Estimate every pair's clean probability from ``images[i] <-> texts[i]`` (see the module docstring).
    ``image_network`` (a zero-argument factory) switches the image side of the proxies to pixels; the
    agreement then compares flattened pixels.
    """
    # Independent streams for the tracks, the split and the null's pairing. A plain default_rng(seed) would
    # repeat the permutation that hf_coreset.noise draws with the same seed to choose the mismatched rows.
    split_seed, null_seed, *round_seeds = np.random.SeedSequence(config.seed).generate_state(2 + config.proxy_rounds)
    halves = np.array_split(np.random.default_rng(split_seed).permutation(len(images)), N_TRACKS)
    # The null: every image with a caption drawn at random from the pool, as a permuted caption would be.
    partners = np.random.default_rng(null_seed).permutation(len(images))
    neighbours = CrossModalNeighbours.build(images.reshape(len(images), -1).numpy(), texts.numpy(),
                                            config.agreement_k)
    # Twice: the second time each neighbour's caption (image) counts in proportion to its clean probability
    # from the first, so that the mismatched neighbours stop polluting the prediction.
    first = TwoGroups.fit(*neighbours.agreement_with_null(partners=partners), config).clean_probability
    agreement, agreement_null = neighbours.agreement_with_null(first, partners)
    fit = TwoGroups.fit(agreement, agreement_null, config)
    history = [fit.clean_probability]
    held_out_sum, held_out_null_sum = np.zeros(len(images)), np.zeros(len(images))
    score, null = agreement, agreement_null
    for round_ in tqdm(range(config.proxy_rounds), desc="MDW dual-track proxies", disable=not show_progress):
        track_seeds = np.random.SeedSequence(int(round_seeds[round_])).generate_state(N_TRACKS)
        for track, seed in enumerate(track_seeds):
            own, other = halves[track], halves[1 - track]
            model = build_proxy(tuple(images.shape[1:]), texts.shape[1], kind=config.heads, seed=int(seed),
                                image_network=image_network)
            train_weighted(model, images[own], texts[own], fit.clean_probability[own] ** 2, config, int(seed))
            held_out, held_out_null = held_out_scores(model, images[other], texts[other], config)
            held_out_sum[other] += held_out
            held_out_null_sum[other] += held_out_null
        score, null = standardised_sum([(agreement, agreement_null),
                                        (held_out_sum / (round_ + 1), held_out_null_sum / (round_ + 1))])
        fit = TwoGroups.fit(score, null, config)
        history.append(fit.clean_probability)
    return DualTrackResult(clean_probability=fit.clean_probability, clean_score=score, null_score=null,
                           mismatched_fraction=fit.mismatched_fraction, agreement=agreement,
                           held_out_score=held_out_sum / max(config.proxy_rounds, 1),
                           probability_history=np.stack(history))


def train_weighted(model: nn.Module, images: torch.Tensor, texts: torch.Tensor, weights: np.ndarray,
                   config: MDWConfig, seed: int) -> nn.Module:
    """``config.proxy_epochs`` epochs of AdamW (the proxies' shared loop) on the pairs, each pair's InfoNCE loss
    weighted by its clean probability."""
    weights = torch.as_tensor(weights, dtype=torch.float32)
    steps = config.proxy_epochs * max(1, len(images) // config.proxy_batch_size)

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        image_out, text_out = model(images[batch], texts[batch])
        return (weights[batch] * info_nce(image_out, text_out, model.log_scale, reduction="none")).mean()

    return optimise(model, epoch_batches(len(images), config.proxy_batch_size, steps, seed), batch_loss,
                    config.proxy_lr)


@torch.no_grad()
def held_out_scores(model: nn.Module, images: torch.Tensor, texts: torch.Tensor, config: MDWConfig
                    ) -> tuple[np.ndarray, np.ndarray]:
    """z-scored hubness-corrected similarity of each image to its own caption under ``model``, within fixed
    random chunks of ``config.score_batch_size`` pairs (one chunk when the pairs fit: every pair is then
    compared with all the others); and the null's: each image against a caption drawn at random from its
    chunk, on the same scale (minus the chunk's mean real score, over its spread)."""
    model.eval()
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(images))
    scores, null = np.empty(len(images)), np.empty(len(images))
    for chunk in np.array_split(order, max(1, int(np.ceil(len(images) / config.score_batch_size)))):
        index = torch.as_tensor(chunk)
        image_out, text_out = model(images[index], texts[index])
        rows = np.arange(len(chunk))
        real, shuffled = csls_of_pairs(image_out.double().numpy(), text_out.double().numpy(), np.stack([rows, rows]),
                                       np.stack([rows, rng.permutation(len(chunk))]), config.agreement_k)
        scores[chunk], null[chunk] = zscore(real), standardise_like(shuffled, real)
    return scores, null


@dataclass
class TwoGroups:
    """The two-groups model of the clean scores (Efron 2008, "Microarrays, empirical Bayes and the two-groups
    model"): ``f(s) = pi0 f0(s) + (1 - pi0) f1(s)``, ``f0`` the scores of mismatched pairs, ``f1`` those of
    matched ones. ``f0`` is not fitted but measured: it is the Gaussian of the null scores, the pool's images
    scored with captions drawn at random from the pool (a permuted caption is what a mismatched pair is).
    ``pi0``, the mismatched fraction, is Storey's estimate at the null's median (twice the share of scores at or
    below it; the rare matched pair that scores that low makes it err high). ``f1``, a Gaussian, is fitted by EM
    with ``f0`` and ``pi0`` held.

    Why not a two-component mixture fitted to the scores alone (what MDW did before): where the pool has one
    component it splits it in two anyway. On Open Clip Art with no caption noise it deemed 1,053-1,081 of the
    1,971 pairs (all matched) mismatched; the two-groups model estimates pi0 = 0.03-0.04 there, and 0.20-0.21
    / 0.47-0.50 at 20 / 50 % noise (seeds 0-2; Fashion-MNIST, held out: 0.00 / 0.22-0.23 / 0.56-0.57).

    Attributes:
        clean_probability: ``(N,)`` posterior of "matched", made non-decreasing in the score (two Gaussians of
            different spreads would otherwise rise again in one far tail), so it keeps the scores' order.
        mismatched_fraction: ``pi0``.
    """

    clean_probability: np.ndarray
    mismatched_fraction: float

    @classmethod
    def fit(cls, scores: np.ndarray, null_scores: np.ndarray, config: MDWConfig) -> TwoGroups:
        """Example:
            >>> rng = np.random.default_rng(0)
            >>> scores = np.r_[rng.normal(2, 1, 700), rng.normal(-2, 1, 300)]     # 30 % mismatched
            >>> fit = TwoGroups.fit(scores, rng.normal(-2, 1, 1000), MDWConfig())
            >>> round(fit.mismatched_fraction, 1), bool(fit.clean_probability[:700].mean() > 0.9)
            (0.3, True)
        """
        scores, null_scores = np.asarray(scores, dtype=np.float64), np.asarray(null_scores, dtype=np.float64)
        if not np.ptp(scores) > 1e-12:  # identical scores: nothing tells the pairs apart
            return cls(np.ones(len(scores)), 0.0)
        null_median = np.median(null_scores)
        # At most 1 - 1/N: a pool that looks all mismatched still ranks its pairs (the starts need some weight).
        pi0 = float(min(2 * np.mean(scores <= null_median), 1 - 1 / len(scores)))
        null_spread = max(null_scores.std(), 1e-12)
        log_null = norm.logpdf(scores, null_scores.mean(), null_spread)
        above = scores[scores > null_median] if np.any(scores > null_median) else scores
        mean, spread = above.mean(), max(above.std(), 1e-6)
        with np.errstate(divide="ignore"):
            log_odds_prior = np.log1p(-pi0) - np.log(pi0)  # +inf when pi0 = 0: every pair matched

        def posterior_of(mean: float, spread: float) -> np.ndarray:
            return expit(log_odds_prior + norm.logpdf(scores, mean, spread) - log_null)

        for _ in range(config.two_groups_max_iter):
            posterior = posterior_of(mean, spread)
            mean = float(np.average(scores, weights=posterior))
            spread = max(float(np.sqrt(np.average((scores - mean) ** 2, weights=posterior))), 1e-6)
        posterior = posterior_of(mean, spread)
        # Two Gaussians of unequal spreads give a log posterior odds quadratic in the score. A matched component
        # wider than the null's rises again in the far low tail (the peak is the top score); a narrower one
        # falls in the far high tail (the peak is inside). Below its peak each pair gets the least posterior at
        # or above its score, above the peak the peak's.
        order = np.argsort(scores, kind="stable")
        ranked = posterior[order]
        peak = len(ranked) - 1 if spread >= null_spread else int(np.argmax(ranked))
        ranked[peak:] = ranked[peak]
        ranked[:peak] = np.minimum.accumulate(ranked[:peak][::-1])[::-1]
        monotone = np.empty(len(scores))
        monotone[order] = ranked
        return cls(monotone, pi0)


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
