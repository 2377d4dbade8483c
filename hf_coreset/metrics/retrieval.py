"""Image-text retrieval recall: the figure the multimodal coreset and distillation literature reports.

TR@K (image -> text): the share of images with a relevant caption among their K most similar captions.
IR@K (text -> image): the share of captions with a relevant image among their K most similar images.
``r_mean`` is the mean of the six recalls (K = 1, 5, 10), in percent. A pair is relevant when it is the same
row (instance-level, e.g. Open Clip Art) or, given ``labels``, when the labels match (class-level, e.g.
Fashion-MNIST captions built from the class name).
"""

from __future__ import annotations

import numpy as np

RECALL_AT = (1, 5, 10)


def _recall_at(similarity: np.ndarray, relevant: np.ndarray, ks=RECALL_AT) -> dict[int, float]:
    """For each query row, is a relevant column among the top-K by similarity? (ties broken by column index)"""
    order = np.argsort(-similarity, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), np.iinfo(np.int64).max)
    return {k: 100.0 * float((first_hit < k).mean()) for k in ks}


def retrieval_recall(similarity: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
    """Recalls from an image x text similarity matrix (row i and column i are the i-th pair).

    Example:
        >>> import numpy as np
        >>> retrieval_recall(np.eye(3))["r_mean"]
        100.0
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"similarity must be a square images x texts matrix, got shape {similarity.shape}.")
    n = len(similarity)
    if labels is None:
        relevant = np.eye(n, dtype=bool)
    else:
        labels = np.asarray(labels)
        relevant = labels[:, None] == labels[None, :]
    text_recall = _recall_at(similarity, relevant)
    image_recall = _recall_at(similarity.T, relevant.T)
    scores = {f"TR@{k}": v for k, v in text_recall.items()} | {f"IR@{k}": v for k, v in image_recall.items()}
    scores["r_mean"] = float(np.mean(list(scores.values())))
    return scores


def retrieval_recall_from_embeddings(image_embeddings, text_embeddings, labels=None) -> dict[str, float]:
    """Recalls with cosine similarity between L2-normalised image and text embeddings of the same rows."""
    from ..vectors import l2_normalize

    images = l2_normalize(np.asarray(image_embeddings, dtype=np.float64))
    texts = l2_normalize(np.asarray(text_embeddings, dtype=np.float64))
    return retrieval_recall(images @ texts.T, labels)
