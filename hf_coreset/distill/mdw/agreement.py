"""Cross-modal kNN agreement: does a pair's caption look like the captions of the images that look like its
image, and its image like the images of the captions that look like its caption?

A training-free clean-probability signal that uses the whole pool at once: a mismatched caption (one that
belongs to another image) disagrees with the captions of its image's neighbours. Both modalities are centred
and L2-normalised first (the mean direction of a frozen encoder's features carries no pair information and
inflates every cosine).

* ``hubness_correction=False`` is the plain score: the mean cosine between a pair's caption and the captions
  of its image's ``k`` nearest images, plus the mean cosine between its image and the images of its caption's
  ``k`` nearest captions, each z-scored. MDW's AUC benchmark reports it as the baseline to beat.
* ``hubness_correction=True`` (what MDW starts from) compares each caption with the *predicted* caption of its
  image (the normalised mean of the neighbours' captions) by CSLS (Lample et al. 2018, "Word translation
  without parallel data"): ``2 cos(t, t_hat) - r(t) - r(t_hat)``, where ``r`` is an item's mean cosine to its
  ``k`` most similar items on the other side. A generic caption is close to every prediction, and the
  correction stops it from looking matched everywhere (Open Clip Art, 50 % caption noise, seeds 0-2: ROC AUC
  0.868 / 0.887 / 0.892 against 0.842 / 0.860 / 0.867 for the plain score).
* ``weights``: under heavy noise half of a row's neighbours carry someone else's caption; weighting each
  neighbour by a first clean probability (MDW does one such pass) lifts the same AUCs to 0.882 / 0.905 / 0.903.
"""

from __future__ import annotations

import numpy as np

from ...graph.knn import knn
from ...vectors import l2_normalize


def knn_agreement(images: np.ndarray, texts: np.ndarray, k: int = 10, *, hubness_correction: bool = True,
                  weights: np.ndarray | None = None, block: int = 2048) -> np.ndarray:
    """One agreement score per pair (higher = more likely matched), the sum of two z-scores.

    Args:
        images, texts: ``(N, d_image)`` and ``(N, d_text)`` vectors of the pairs ``images[i] <-> texts[i]``.
        k: neighbours per row (exact search up to 20k rows, HNSW above: ``hf_coreset.graph.knn``).
        hubness_correction: CSLS-corrected similarity to the predicted caption / image (see the module).
        weights: ``(N,)`` non-negative weight of each pair as a neighbour (e.g. its clean probability): a
            neighbour's caption then counts in proportion to how likely it is its image's own. None: all 1.
        block: rows per block of the ``N x N`` similarity products (never held whole).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> topics = rng.integers(0, 5, 200)
        >>> images = rng.normal(size=(5, 16))[topics] + 0.3 * rng.normal(size=(200, 16))
        >>> texts = rng.normal(size=(5, 8))[topics] + 0.3 * rng.normal(size=(200, 8))
        >>> texts[:20] = texts[100:120]          # 20 mismatched captions (from other topics, mostly)
        >>> score = knn_agreement(images, texts)
        >>> bool(score[20:].mean() > score[:20].mean() + 1)
        True
    """
    return CrossModalNeighbours.build(images, texts, k).agreement(weights, hubness_correction=hubness_correction,
                                                                   block=block)


class CrossModalNeighbours:
    """The centred unit vectors of a pool and each row's ``k`` nearest images and ``k`` nearest captions, found
    once so that the agreement can be recomputed cheaply with new neighbour weights.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> neighbours = CrossModalNeighbours.build(rng.normal(size=(50, 8)), rng.normal(size=(50, 4)), k=5)
        >>> neighbours.of_images.shape, neighbours.agreement().shape
        ((50, 5), (50,))
    """

    def __init__(self, images: np.ndarray, texts: np.ndarray, of_images: np.ndarray, of_texts: np.ndarray):
        self.images, self.texts = images, texts
        self.of_images, self.of_texts = of_images, of_texts  # (N, k) rows: image / caption neighbours

    @classmethod
    def build(cls, images: np.ndarray, texts: np.ndarray, k: int = 10) -> CrossModalNeighbours:
        images, texts = _centred_unit(images), _centred_unit(texts)
        return cls(images, texts, knn(images.astype(np.float32), k)[0], knn(texts.astype(np.float32), k)[0])

    @property
    def k(self) -> int:
        return self.of_images.shape[1]

    def agreement(self, weights: np.ndarray | None = None, *, hubness_correction: bool = True,
                  block: int = 2048) -> np.ndarray:
        """The agreement score of every pair (see :func:`knn_agreement`)."""
        return self.agreement_with_null(weights, hubness_correction=hubness_correction, block=block)[0]

    def agreement_with_null(self, weights: np.ndarray | None = None, partners: np.ndarray | None = None, *,
                            hubness_correction: bool = True, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """The agreement of every pair, and that of the mismatched pairs ``image i <-> caption partners[i]``
        (None: no null, an empty array), standardised with the real pairs' mean and spread so that the two
        can be compared: the null is what a permuted caption scores on this pool."""
        weights = np.ones(len(self.images)) if weights is None else np.asarray(weights, dtype=np.float64)
        # A row whose neighbours all weigh 0 falls back to equal weights rather than to a zero prediction.
        text_weights = _normalised_rows(weights[self.of_images])
        image_weights = _normalised_rows(weights[self.of_texts])
        # Row i: the caption image i's neighbours predict, and the image caption i's neighbours predict.
        predicted_texts = np.einsum("nk,nkd->nd", text_weights, self.texts[self.of_images])
        predicted_images = np.einsum("nk,nkd->nd", image_weights, self.images[self.of_texts])
        rows = np.arange(len(self.images))
        # Pairing 0 is the pool's own (image i <-> caption i), pairing 1 the null's (image i <-> caption
        # partners[i]); both in one pass, so the N x N products behind the hubness terms are taken once.
        captions = rows[None] if partners is None else np.stack([rows, np.asarray(partners)])
        images = np.broadcast_to(rows, captions.shape)
        if hubness_correction:
            text_side = csls_of_pairs(self.texts, l2_normalize(predicted_texts), captions, images, self.k, block)
            image_side = csls_of_pairs(self.images, l2_normalize(predicted_images), images, captions, self.k, block)
        else:  # the mean cosine to the neighbours' captions / images
            text_side = np.einsum("mnd,mnd->mn", self.texts[captions], predicted_texts[images])
            image_side = np.einsum("mnd,mnd->mn", self.images[images], predicted_images[captions])
        # Row 0 of each side is the pool's pairing; rows 1: are the null's (none without partners: an empty null).
        return standardised_sum([(text_side[0], text_side[1:].ravel()), (image_side[0], image_side[1:].ravel())])


def _normalised_rows(weights: np.ndarray) -> np.ndarray:
    totals = weights.sum(axis=1, keepdims=True)
    return np.where(totals > 0, weights / np.where(totals > 0, totals, 1), 1 / weights.shape[1])


def csls_diagonal(queries: np.ndarray, candidates: np.ndarray, k: int = 10, block: int = 2048) -> np.ndarray:
    """``2 <q_i, c_i> - r_q(i) - r_c(i)`` for every ``i``: the similarity of each row to its own counterpart,
    corrected for hubness. ``r_q(i)`` is the mean of query ``i``'s ``k`` largest similarities to all
    candidates, ``r_c(i)`` the same for candidate ``i`` against all queries. Rows should be unit-norm.

    Computed block by block (``block x N`` similarities at a time): O(N^2 d) time, O(block N) memory.

    Example:
        >>> q = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
        >>> bool(np.allclose(csls_diagonal(q, q, k=1), [0.0, 0.0, 0.0]))   # every row its own best match
        True
    """
    rows = np.arange(len(queries))
    return csls_of_pairs(queries, candidates, rows, rows, k, block)


def csls_of_pairs(queries: np.ndarray, candidates: np.ndarray, query_rows: np.ndarray, candidate_rows: np.ndarray,
                  k: int = 10, block: int = 2048) -> np.ndarray:
    """The hubness-corrected similarity of query ``query_rows[i]`` and candidate ``candidate_rows[i]`` for every
    ``i`` (see :func:`csls_diagonal`, the case of both rows equal to ``arange(N)``). The row arrays may have a
    leading axis (several pairings, the hubness terms computed once); the result has their shape.

    Example:
        >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> csls_of_pairs(q, q, np.array([0, 1]), np.array([1, 0]), k=1).tolist()   # each with the other's
        [-2.0, -2.0]
    """
    k = min(k, len(candidates))
    similarity = np.einsum("...d,...d->...", queries[query_rows], candidates[candidate_rows])
    return (2 * similarity - _mean_top_k(queries, candidates, k, block)[query_rows]
            - _mean_top_k(candidates, queries, k, block)[candidate_rows])


def _mean_top_k(rows: np.ndarray, others: np.ndarray, k: int, block: int) -> np.ndarray:
    out = np.empty(len(rows))
    for start in range(0, len(rows), block):
        similarity = rows[start: start + block] @ others.T
        out[start: start + block] = np.partition(similarity, -k, axis=1)[:, -k:].mean(axis=1)
    return out


def zscore(values: np.ndarray) -> np.ndarray:
    """``(values - mean) / std`` (all-equal values give zeros)."""
    return standardise_like(values, values)


def standardise_like(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``values`` on the scale of ``zscore(reference)``: minus the reference's mean, over its std.

    Example:
        >>> standardise_like(np.array([3.0]), np.array([0.0, 2.0])).tolist()
        [2.0]
    """
    spread = reference.std()
    return (values - reference.mean()) / spread if spread > 0 else np.zeros_like(values, dtype=np.float64)


def standardised_sum(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """A score made of several signals, and its null on the same scale: the sum of ``zscore(real)`` over the
    ``(real, null)`` parts, and the sum of each ``null`` standardised like its own ``real``. (A null put on any
    other scale than the score's would not say what a mismatched pair scores.)

    Example:
        >>> first, second = (np.array([0.0, 2.0]), np.array([3.0])), (np.array([1.0, 3.0]), np.array([1.0]))
        >>> score, null = standardised_sum([first, second])
        >>> score.tolist(), null.tolist()
        ([-2.0, 2.0], [1.0])
    """
    score = sum(zscore(real) for real, _ in parts)
    null = sum(standardise_like(null, real) for real, null in parts)
    return score, null


def _centred_unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return l2_normalize(x - x.mean(axis=0))
