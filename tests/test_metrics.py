"""Retrieval recall (plain function and the evaluate module) and coverage, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from hf_coreset.metrics import (
    RETRIEVAL_RECALL_PATH,
    mean_nearest_selected_distance,
    retrieval_recall,
)

# Rows: images, columns: captions; pair i is (image i, caption i).
SIMILARITY = np.array([
    [0.9, 0.1, 0.0, 0.2],   # image 0: its caption ranks 1st
    [0.8, 0.7, 0.1, 0.0],   # image 1: 2nd
    [0.5, 0.6, 0.3, 0.9],   # image 2: 4th
    [0.0, 0.1, 0.2, 0.4],   # image 3: 1st
])
# Caption (column) j's own image ranks: caption 0 -> 1st (0.9), caption 1 -> 1st (0.7),
# caption 2 -> 1st (0.3), caption 3 -> 2nd (0.9 of image 2 beats 0.4).


def test_recall_on_a_hand_computed_4x4_matrix():
    scores = retrieval_recall(SIMILARITY)
    # Recall@K with K >= 4 covers every column, so @5 and @10 are 100 %.
    assert scores["TR@1"] == pytest.approx(50.0)   # images 0 and 3
    assert scores["IR@1"] == pytest.approx(75.0)   # captions 0, 1, 2
    assert scores["TR@5"] == scores["TR@10"] == scores["IR@5"] == scores["IR@10"] == 100.0
    assert scores["r_mean"] == pytest.approx((50 + 100 + 100 + 75 + 100 + 100) / 6)


def test_recall_at_k_counts_ranks_below_k():
    # 12 images; image i's own caption is ranked exactly i-th (0-based), so TR@K = K / 12.
    n = 12
    similarity = np.zeros((n, n))
    for i in range(n):
        order = [j for j in range(n) if j != i]
        order.insert(i, i)
        similarity[i, order] = -np.arange(n)
    scores = retrieval_recall(similarity)
    assert [scores["TR@1"], scores["TR@5"], scores["TR@10"]] == pytest.approx([100 / 12, 500 / 12, 1000 / 12])


def test_class_level_relevance():
    labels = np.array([0, 0, 1, 1])
    scores = retrieval_recall(SIMILARITY, labels)
    # image 1's top caption is caption 0, same class -> hit; image 2's top is caption 3, same class -> hit.
    assert scores["TR@1"] == 100.0


def test_a_non_square_matrix_is_refused():
    with pytest.raises(ValueError, match="square"):
        retrieval_recall(np.ones((2, 3)))


def test_evaluate_module_loads_offline_by_path_and_agrees(monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(RETRIEVAL_RECALL_PATH)
    # Image embeddings = the similarity rows, caption embeddings = the unit vectors: their dot products
    # are SIMILARITY, but the module uses cosine, so normalise the expectation the same way.
    images, texts = SIMILARITY, np.eye(4)
    cosine = (images / np.linalg.norm(images, axis=1, keepdims=True)) @ texts.T
    scores = metric.compute(image_embeddings=images, text_embeddings=texts, labels=list(range(4)))
    assert scores == pytest.approx(retrieval_recall(cosine))


def test_coverage_is_the_mean_distance_to_the_nearest_selected_row():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [0.0, 1.0]])
    expected = np.mean([0.0, 5.0, 0.0, 1.0])  # nearest of rows 0 and 2
    assert mean_nearest_selected_distance(x, np.array([0, 2]), chunk_size=3) == pytest.approx(expected)
