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
  0.868 / 0.886 / 0.891 against 0.842 / 0.860 / 0.867 for the plain score).
"""

from __future__ import annotations

import numpy as np

from ...graph.knn import knn
from ...vectors import l2_normalize


def knn_agreement(images: np.ndarray, texts: np.ndarray, k: int = 10, *, hubness_correction: bool = True,
                  block: int = 2048) -> np.ndarray:
    """One agreement score per pair (higher = more likely matched), the sum of two z-scores.

    Args:
        images, texts: ``(N, d_image)`` and ``(N, d_text)`` vectors of the pairs ``images[i] <-> texts[i]``.
        k: neighbours per row (exact search up to 20k rows, HNSW above: ``hf_coreset.graph.knn``).
        hubness_correction: CSLS-corrected similarity to the predicted caption / image (see the module).
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
    images, texts = _centred_unit(images), _centred_unit(texts)
    image_neighbours = knn(images.astype(np.float32), k)[0]
    text_neighbours = knn(texts.astype(np.float32), k)[0]
    if not hubness_correction:
        text_score = np.einsum("nd,nkd->n", texts, texts[image_neighbours]) / image_neighbours.shape[1]
        image_score = np.einsum("nd,nkd->n", images, images[text_neighbours]) / text_neighbours.shape[1]
        return zscore(text_score) + zscore(image_score)
    predicted_texts = l2_normalize(texts[image_neighbours].mean(axis=1))
    predicted_images = l2_normalize(images[text_neighbours].mean(axis=1))
    return (zscore(csls_diagonal(texts, predicted_texts, k, block))
            + zscore(csls_diagonal(images, predicted_images, k, block)))


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
    k = min(k, len(candidates))
    diagonal = np.einsum("nd,nd->n", queries, candidates)
    return 2 * diagonal - _mean_top_k(queries, candidates, k, block) - _mean_top_k(candidates, queries, k, block)


def _mean_top_k(rows: np.ndarray, others: np.ndarray, k: int, block: int) -> np.ndarray:
    out = np.empty(len(rows))
    for start in range(0, len(rows), block):
        similarity = rows[start: start + block] @ others.T
        out[start: start + block] = np.partition(similarity, -k, axis=1)[:, -k:].mean(axis=1)
    return out


def zscore(values: np.ndarray) -> np.ndarray:
    """``(values - mean) / std`` (all-equal values give zeros)."""
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values, dtype=np.float64)


def _centred_unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return l2_normalize(x - x.mean(axis=0))
