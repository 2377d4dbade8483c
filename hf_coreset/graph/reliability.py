"""Pair reliability from cross-modal topology agreement: is this image-text pair probably matched?

Part of CAST (a reconstruction of the published abstract, arXiv 2605.11705; ``METHODS.md`` §3). A matched
pair's two neighbourhoods agree: the captions of the images nearest to its image resemble its caption, and
the images of the captions nearest to its caption resemble its image. A mismatched pair (a caption that
belongs to another image) has two unrelated neighbourhoods, so both resemblances sit at the level of a
random pairing.

The score of pair ``i`` (centred, L2-normalised features ``v``, ``t``; ``k`` nearest neighbours ``N_v(i)``
among images and ``N_t(i)`` among captions) is

    a_i = mean_{j in N_v(i)} <t_i, t_j>,   c_i = mean_{j in N_t(i)} <v_i, v_j>,   s_i = z(a_i) + z(c_i).

What a mismatched pair scores is not guessed but simulated: the same statistic for random re-pairings of the
pool's own images and captions gives the null distribution ``f_0`` (``z`` standardises by it). The share of
mismatched pairs ``pi_0`` is estimated from the p-values against that null (Storey's estimator, lambda =
1/2) and the reliability is one minus the local false discovery rate, ``r_i = 1 - pi_0 f_0(s_i) / f(s_i)``
(Efron), made non-increasing in ``s``. On clean data ``pi_0`` is small and nearly every pair keeps
``r ~ 1``; with 50 % of captions permuted about half the pairs fall towards 0. Nothing is tuned per dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .knn import similarities_to

# Densities are Gaussian kernel estimates with Scott's bandwidth, computed on a grid of this many bins
# (a binned KDE: linear in the number of pairs, so a million pairs cost nothing).
DENSITY_BINS = 512
STOREY_LAMBDA = 0.5


@dataclass
class PairReliability:
    """Per-pair reliability and how it was reached.

    Attributes:
        reliability: ``(N,)`` in [0, 1]: one minus the local false discovery rate of the agreement score.
        score: ``(N,)`` agreement score ``s_i`` (null-standardised; larger = neighbourhoods agree more).
        mismatched_share: estimated share ``pi_0`` of pairs that look like random pairings.
    """

    reliability: np.ndarray
    score: np.ndarray
    mismatched_share: float


def topology_agreement(image: np.ndarray, text: np.ndarray, image_neighbours: np.ndarray,
                       text_neighbours: np.ndarray, pairing: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(a, c)`` of the pairs ``(image[i], text[pairing[i]])`` (``pairing=None``: the pairs as given).

    ``image_neighbours[i]`` are row ``i``'s nearest images, ``text_neighbours[j]`` caption ``j``'s nearest
    captions; both are neighbour lists of the pool as it is, so a re-paired caption brings its own
    neighbourhood along. Rows of ``image`` and ``text`` must be unit-norm.

    Example:
        >>> import numpy as np
        >>> v = t = np.eye(3)[[0, 0, 1, 1]]
        >>> neighbours = np.array([[1], [0], [3], [2]])
        >>> [x.tolist() for x in topology_agreement(v, t, neighbours, neighbours)]
        [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
    """
    captions = np.arange(len(image)) if pairing is None else np.asarray(pairing)
    a = similarities_to(text, image_neighbours, rows=captions).mean(axis=1, dtype=np.float64)
    c = similarities_to(image, text_neighbours[captions]).mean(axis=1, dtype=np.float64)
    return a, c


def pair_reliability(image: np.ndarray, text: np.ndarray, image_neighbours: np.ndarray,
                     text_neighbours: np.ndarray, null_draws: int = 3,
                     rng: np.random.Generator | None = None,
                     null_captions: np.ndarray | None = None,
                     null_weights: np.ndarray | None = None) -> PairReliability:
    """Reliability of every pair against ``null_draws`` simulated random re-pairings (see the module doc).

    The pairs judged are the first ``len(image_neighbours)`` rows; ``image``, ``text`` and ``text_neighbours``
    may hold more rows after them (a sample of the whole pool, when the pairs are only a part of it: see
    :func:`~hf_coreset.methods.cast.selector.against_reference`). ``null_captions``: the rows whose captions
    the re-pairings give the judged images, drawn with probabilities ``null_weights`` (default: uniformly;
    without ``null_captions``, the judged rows' own captions, permuted).

    Example:
        >>> import numpy as np
        >>> from hf_coreset.graph.knn import exact_knn
        >>> from hf_coreset.noise import caption_permutation
        >>> rng = np.random.default_rng(0)
        >>> centres, label = rng.normal(size=(10, 16)), np.repeat(np.arange(10), 30)  # 10 classes of 30 pairs
        >>> unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
        >>> v = unit(centres[label] + 0.3 * rng.normal(size=(300, 16)))
        >>> t = unit(centres[label] + 0.3 * rng.normal(size=(300, 16)))
        >>> source = caption_permutation(300, 0.3, seed=0)  # 90 pairs get another pair's caption
        >>> mismatched, t = source != np.arange(300), t[source]
        >>> r = pair_reliability(v, t, exact_knn(v, 10)[0], exact_knn(t, 10)[0])
        >>> bool(r.reliability[mismatched].mean() < 0.35 < 0.9 < r.reliability[~mismatched].mean())
        True
    """
    rng = rng or np.random.default_rng(0)
    n = len(image_neighbours)
    a, c = topology_agreement(image, text, image_neighbours, text_neighbours, np.arange(n))
    null = [topology_agreement(image, text, image_neighbours, text_neighbours,
                               rng.permutation(n) if null_captions is None
                               else rng.choice(null_captions, size=n, p=null_weights))
            for _ in range(null_draws)]
    null_a = np.concatenate([n[0] for n in null])
    null_c = np.concatenate([n[1] for n in null])
    scale_a, scale_c = max(null_a.std(), 1e-12), max(null_c.std(), 1e-12)
    score = (a - null_a.mean()) / scale_a + (c - null_c.mean()) / scale_c
    null_score = (null_a - null_a.mean()) / scale_a + (null_c - null_c.mean()) / scale_c
    share = mismatched_share(score, null_score)
    return PairReliability(1.0 - local_false_discovery_rate(score, null_score, share), score, share)


def mismatched_share(score: np.ndarray, null_score: np.ndarray, lam: float = STOREY_LAMBDA) -> float:
    """Storey's ``pi_0``: pairs with an upper-tail p-value above ``lam`` look null; scale their count up.

    Example:
        >>> import numpy as np
        >>> null = np.random.default_rng(0).normal(size=20000)
        >>> round(mismatched_share(null[:10000], null[10000:]), 1)  # a null sample is all "mismatched"
        1.0
    """
    p_values = 1.0 - np.searchsorted(np.sort(null_score), score, side="left") / len(null_score)
    return float(min(1.0, np.mean(p_values > lam) / (1.0 - lam)))


def local_false_discovery_rate(score: np.ndarray, null_score: np.ndarray, null_share: float) -> np.ndarray:
    """``pi_0 f_0(s) / f(s)`` at every score, clipped to [0, 1] and non-increasing in ``s``.

    Both densities are binned Gaussian kernel estimates on one grid, each with Scott's bandwidth
    ``std * n ** (-1/5)``.
    """
    lo, hi = min(score.min(), null_score.min()), max(score.max(), null_score.max())
    edges = np.linspace(lo, hi + 1e-12 * max(1.0, abs(hi)), DENSITY_BINS + 1)
    f = _binned_density(score, edges)
    f0 = _binned_density(null_score, edges)
    position = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, DENSITY_BINS - 1)
    lfdr = np.clip(null_share * f0[position] / np.maximum(f[position], 1e-300), 0.0, 1.0)
    # A higher agreement can never make a pair more likely mismatched: running max from the right.
    order = np.argsort(score, kind="stable")
    monotone = np.empty_like(lfdr)
    monotone[order] = np.maximum.accumulate(lfdr[order][::-1])[::-1]
    return monotone


def _binned_density(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Gaussian KDE of ``values`` (Scott's bandwidth) evaluated at the bin centres, from the bin counts."""
    counts = np.histogram(values, bins=edges)[0].astype(np.float64)
    width = edges[1] - edges[0]
    bandwidth_bins = max(float(values.std()) * len(values) ** (-0.2) / width, 0.5)
    offsets = np.arange(-int(4 * bandwidth_bins) - 1, int(4 * bandwidth_bins) + 2)
    kernel = np.exp(-0.5 * (offsets / bandwidth_bins) ** 2)
    # Pad so that mass near the ends is not cut off by the convolution.
    padded = np.convolve(np.pad(counts, len(offsets)), kernel / kernel.sum(), mode="same")[len(offsets):-len(offsets)]
    return padded / (counts.sum() * width)
