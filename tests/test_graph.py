"""CAST building blocks (hf_coreset.graph): kNN, fusion, diffusion wavelets, discrepancy, coverage."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hf_coreset.graph.coverage import SoftCoverage, relation_matrix
from hf_coreset.graph.fusion import fuse_graphs, modality_graph, top_k_per_row, trust_weights
from hf_coreset.graph.knn import exact_knn, knn, recall_at_k
from hf_coreset.graph.wavelets import (
    MultiScaleMatcher,
    apply_frame,
    diffusion_operator,
    discrepancy,
    scale_diagonals,
)

LEVELS = 3


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def small_t():
    """T of a fused two-modality graph on 60 random rows."""
    rng = np.random.default_rng(0)
    graphs = [modality_graph(rng.normal(size=(60, d)), k=6).weights for d in (8, 5)]
    return diffusion_operator(fuse_graphs(graphs, np.full((60, 2), 0.5), k=6))


def _dense_frame(t, levels=LEVELS):
    return apply_frame(t, np.eye(t.shape[0]), levels)


def test_exact_knn_matches_brute_force():
    x = _unit(np.random.default_rng(1).normal(size=(300, 7)))
    idx, sims = exact_knn(x, 5, block=64)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    np.testing.assert_array_equal(np.sort(idx, axis=1), np.sort(np.argsort(-s, axis=1)[:, :5], axis=1))
    np.testing.assert_allclose(sims, np.take_along_axis(s, idx, axis=1), rtol=1e-5)


def test_approximate_knn_with_projection_has_high_recall():
    pytest.importorskip("hnswlib")
    rng = np.random.default_rng(2)
    latent = rng.normal(size=(40, 16))[rng.integers(40, size=600)] + 0.5 * rng.normal(size=(600, 16))
    x = _unit(latent @ rng.normal(size=(16, 200)) + 0.3 * rng.normal(size=(600, 200))).astype(np.float32)
    idx, _, used = knn(x, 10, index="hnswlib", search_dims=32)
    assert used == "hnswlib+pca32"
    assert recall_at_k(idx, exact_knn(x, 10)[0]) > 0.9


def test_diffusion_operator_is_symmetric_with_spectrum_in_unit_interval(small_t):
    dense = small_t.toarray()
    np.testing.assert_allclose(dense, dense.T, atol=1e-12)
    eigenvalues = np.linalg.eigvalsh(dense)
    assert eigenvalues.min() > -1e-10 and eigenvalues.max() < 1 + 1e-10


def test_wavelet_frame_telescopes_to_identity(small_t):
    frame = _dense_frame(small_t)
    assert len(frame) == LEVELS + 2
    np.testing.assert_allclose(sum(frame), np.eye(small_t.shape[0]), atol=1e-12)


def test_every_wavelet_is_psd(small_t):
    for element in _dense_frame(small_t):
        np.testing.assert_allclose(element, element.T, atol=1e-12)
        assert np.linalg.eigvalsh(element).min() > -1e-10


def _exact_diagonals(t):
    return np.array([np.einsum("ij,ij->i", f, f) for f in _dense_frame(t)])


def test_closed_form_increment_equals_recomputing_the_discrepancy(small_t):
    n = small_t.shape[0]
    weights = np.random.default_rng(3).uniform(0.1, 1.0, size=LEVELS + 2)
    matcher = MultiScaleMatcher(small_t, LEVELS, _exact_diagonals(small_t), weights)
    for row in (4, 17, 33):
        matcher.add(row, exact=True)
    selected = [4, 17, 33]
    assert matcher.value() == pytest.approx(discrepancy(small_t, np.array(selected), weights, LEVELS), rel=1e-9)
    candidates = np.setdiff1d(np.arange(n), selected)
    recomputed = np.array([discrepancy(small_t, np.array(selected + [int(i)]), weights, LEVELS)
                           for i in candidates])
    np.testing.assert_allclose(matcher.after_adding(candidates), recomputed, rtol=1e-9)
    np.testing.assert_allclose(matcher.increments(candidates), recomputed - matcher.value(), atol=1e-14)


def test_local_updates_are_exact_again_after_a_refresh(small_t):
    weights = np.ones(LEVELS + 2)
    local = MultiScaleMatcher(small_t, LEVELS, _exact_diagonals(small_t), weights)
    exact = MultiScaleMatcher(small_t, LEVELS, _exact_diagonals(small_t), weights)
    for row in (1, 2, 40):
        local.add(row)
        exact.add(row, exact=True)
    local.refresh()
    np.testing.assert_allclose(local.ks, exact.ks, atol=1e-12)
    assert local.value() == pytest.approx(exact.value())


def test_hutchinson_diagonals_approach_the_exact_ones(small_t):
    estimate = scale_diagonals(small_t, LEVELS, probes=512, rng=np.random.default_rng(0))
    exact = _exact_diagonals(small_t)
    relative_error = np.abs(estimate - exact).sum(axis=1) / exact.sum(axis=1)
    assert relative_error.max() < 0.1


def _duplicated_images_dataset(n_unique=120, n_prototypes=4, copies=20, seed=0):
    """Images: 120 distinct rows, then 4 images each repeated 20 times (tiny noise); text: all distinct."""
    rng = np.random.default_rng(seed)
    unique = rng.normal(size=(n_unique, 12))
    prototypes = rng.normal(size=(n_prototypes, 12))
    duplicates = np.repeat(prototypes, copies, axis=0) + 1e-4 * rng.normal(size=(n_prototypes * copies, 12))
    image = np.concatenate([unique, duplicates])
    text = rng.normal(size=(len(image), 6))
    is_duplicate = np.arange(len(image)) >= n_unique
    return image, text, is_duplicate


def test_duplicated_images_are_locally_collapsed_and_text_takes_over():
    image, text, is_duplicate = _duplicated_images_dataset()
    image_graph, text_graph = modality_graph(image, k=10), modality_graph(text, k=10)
    assert image_graph.collapse[is_duplicate].min() > 0.9
    assert np.median(image_graph.collapse[~is_duplicate]) < 0.2
    assert text_graph.collapse[is_duplicate].mean() < 0.3

    trust = trust_weights(np.stack([image_graph.collapse, text_graph.collapse], axis=1), beta=5.0)
    assert trust[is_duplicate, 0].mean() < 0.03  # duplicated rows hardly trust their image
    assert trust[is_duplicate, 0].max() < 0.1
    assert trust[~is_duplicate, 0].mean() > 0.35

    fused = fuse_graphs([image_graph.weights, text_graph.weights], trust, k=10)
    # The neighbours of a duplicated row in the fused graph are (mostly) its text neighbours.
    for row in np.flatnonzero(is_duplicate)[::7]:
        neighbours = set(fused[row].indices) - {row}
        from_text = neighbours & set(text_graph.weights[row].indices)
        assert len(from_text) >= 0.8 * len(neighbours)


def test_trust_is_uniform_without_collapse():
    np.testing.assert_allclose(trust_weights(np.zeros((3, 2))), 0.5)


def test_top_k_per_row_keeps_the_largest():
    m = sp.csr_matrix(np.array([[0.0, 3, 1, 2], [1, 0, 0, 0], [5, 4, 0, 6], [0, 0, 0, 0]]))
    np.testing.assert_array_equal(top_k_per_row(m, 2).toarray(),
                                  [[0, 3, 0, 2], [1, 0, 0, 0], [5, 0, 0, 6], [0, 0, 0, 0]])


def test_coverage_gain_vanishes_inside_an_already_covered_tight_cluster():
    rng = np.random.default_rng(4)
    spread = rng.normal(size=(150, 10))
    # 8 near-identical rows far from the rest: fewer than k, so they are all each other's neighbours.
    tight = 8.0 * np.ones(10) + 1e-3 * rng.normal(size=(8, 10))
    x = np.concatenate([spread, tight])
    t = diffusion_operator(fuse_graphs([modality_graph(x, k=10).weights], np.ones((len(x), 1)), k=10))
    coverage = SoftCoverage(relation_matrix(t, k=10))
    cluster = np.arange(150, 158)
    first_gain = coverage.gains(cluster[:1])[0]
    coverage.add(int(cluster[0]))
    second_gain = coverage.gains(cluster[1:]).max()
    fresh_gain = coverage.gains(np.arange(150)).max()
    assert first_gain > 4
    assert second_gain < 0.05 * first_gain
    assert fresh_gain > 0.5 * first_gain
