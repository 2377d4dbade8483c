"""CAST building blocks (hf_coreset.graph): kNN, fusion, fused similarity, diffusion, reliability."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.sparse as sp

from hf_coreset.graph.facility_location import facility_location_greedy
from hf_coreset.graph.fusion import (
    collapse_scores,
    fuse_graphs,
    fused_similarity,
    modality_graph,
    prepare_features,
    top_k_per_row,
    trust_weights,
    union_support,
)
from hf_coreset.graph.knn import exact_knn, knn, recall_at_k
from hf_coreset.graph.reliability import local_false_discovery_rate, mismatched_share, pair_reliability
from hf_coreset.graph.wavelets import (
    apply_frame,
    diffusion_correlation,
    diffusion_operator,
    discrepancy,
    dyadic_powers,
    selection_residual,
)
from hf_coreset.noise import caption_permutation

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


def test_exact_knn_is_the_same_whatever_the_blas_thread_count():
    """BLAS sums a float32 product in an order that depends on its threads: ranked on those sums, 113 of these
    3,000 rows' neighbour lists differed between 1 and 2 threads (so did CAST's picks, and a Ray worker's)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    x = _unit((rng.normal(size=(8, 512))[rng.integers(8, size=3000)] + 0.05 * rng.normal(size=(3000, 512)))
              .astype(np.float32))
    with threadpool_limits(1):
        one = exact_knn(x, 30)
    with threadpool_limits(2):
        two = exact_knn(x, 30)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_exact_knn_ranks_by_float64_similarity_and_ties_go_to_the_following_rows():
    rng = np.random.default_rng(2)
    x = _unit(rng.normal(size=(40, 6)))[np.repeat(np.arange(20), 3)].astype(np.float32)  # each row three times
    idx, sims = exact_knn(x, 4)
    s = x.astype(np.float64) @ x.T.astype(np.float64)
    np.fill_diagonal(s, -np.inf)
    n = len(x)
    expected = np.array([np.lexsort(((np.arange(n) - i) % n, -row))[:4] for i, row in enumerate(s)])
    np.testing.assert_array_equal(idx, expected)
    # Its copies first, the following ones first (wrapping): no copy is everyone's first neighbour.
    assert idx[0, :2].tolist() == [1, 2] and idx[1, :2].tolist() == [2, 0] and idx[2, :2].tolist() == [0, 1]


def test_approximate_knn_with_projection_has_high_recall():
    pytest.importorskip("hnswlib")
    rng = np.random.default_rng(2)
    latent = rng.normal(size=(40, 16))[rng.integers(40, size=600)] + 0.5 * rng.normal(size=(600, 16))
    x = _unit(latent @ rng.normal(size=(16, 200)) + 0.3 * rng.normal(size=(600, 200))).astype(np.float32)
    idx, _, used = knn(x, 10, index="hnswlib", search_dims=32)
    assert used == "hnswlib+pca32"
    assert recall_at_k(idx, exact_knn(x, 10)[0]) > 0.9


@pytest.mark.parametrize("threads", [2, 4])
def test_hnswlib_neighbours_do_not_depend_on_the_number_of_threads(monkeypatch, threads):
    """Same seed, same neighbours, on any machine: the index is built in one thread (a parallel insertion
    order changes the graph), only the queries use every core."""
    pytest.importorskip("hnswlib")
    knn_module = importlib.import_module("hf_coreset.graph.knn")  # hf_coreset.graph.knn is also a function

    rng = np.random.default_rng(3)
    x = _unit(rng.normal(size=(30, 32))[rng.integers(30, size=6000)] + 0.8 * rng.normal(size=(6000, 32)))
    monkeypatch.setattr(knn_module, "_threads", lambda: 1)
    one_thread = knn_module.approximate_knn(x.astype(np.float32), 10, seed=0)
    monkeypatch.setattr(knn_module, "_threads", lambda: threads)
    for _ in range(3):  # a thread-dependent build differs in some of these
        many_threads = knn_module.approximate_knn(x.astype(np.float32), 10, seed=0)
        np.testing.assert_array_equal(many_threads[0], one_thread[0])
        np.testing.assert_array_equal(many_threads[1], one_thread[1])


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


def test_discrepancy_is_the_weighted_energy_of_the_residual_in_every_frame_element(small_t):
    selected = np.array([3, 8, 21, 40])
    weights = np.random.default_rng(3).uniform(0.1, 1.0, size=LEVELS + 2)
    frame = _dense_frame(small_t)
    residual = selection_residual(selected, small_t.shape[0])
    expected = sum(w * float(np.sum((f @ residual) ** 2)) for w, f in zip(weights, frame))
    assert discrepancy(small_t, selected, weights, LEVELS) == pytest.approx(expected, rel=1e-10)


def test_dyadic_powers_without_pruning_are_the_exact_powers(small_t):
    powers = dyadic_powers(small_t, 4, keep=small_t.shape[0], chunk=7)
    dense = small_t.toarray()
    for j, power in enumerate(powers):
        np.testing.assert_allclose(power.toarray(), np.linalg.matrix_power(dense, 2**j), atol=1e-12)


def test_pruned_powers_keep_the_diagonal_and_stay_symmetric(small_t):
    squared, pruned = dyadic_powers(small_t, 3, keep=5)[1:]
    # The diagonal is never pruned: it is that of the (pruned) square before it, squared.
    np.testing.assert_allclose(pruned.diagonal(), (squared @ squared).diagonal(), rtol=1e-12)
    assert (pruned != pruned.T).nnz == 0
    # Before symmetrisation every row had its diagonal and its 4 largest other entries.
    assert np.diff(pruned.tocsr().indptr).min() >= 5


def test_diffusion_correlation_is_the_cosine_of_diffusion_profiles(small_t):
    half = small_t.toarray()  # P = T^2 = T T: the profiles are the columns of T
    correlation = diffusion_correlation(sp.csr_matrix(half @ half)).toarray()
    profiles = half / np.linalg.norm(half, axis=0, keepdims=True)
    np.testing.assert_allclose(correlation, np.clip(profiles.T @ profiles, 0, 1), atol=1e-10)
    np.testing.assert_allclose(np.diag(correlation), 1.0)


@pytest.mark.parametrize("fusion", ["product", "sum"])
def test_fused_similarity_matches_a_dense_computation(fusion):
    rng = np.random.default_rng(5)
    image, text = _unit(rng.normal(size=(40, 6)) + 2.0), _unit(rng.normal(size=(40, 4)) + 1.0)
    candidates = [exact_knn(image, 5)[0], exact_knn(text, 5)[0]]
    trust = rng.uniform(size=(40, 1))
    trust = np.concatenate([trust, 1 - trust], axis=1)
    similarity = fused_similarity([image, text], candidates, trust, fusion).toarray()
    cos_image, cos_text = image @ image.T, text @ text.T
    a = 0.5 * (trust[:, None, 0] + trust[None, :, 0])
    if fusion == "product":
        dense = np.maximum(cos_image, 0) ** (4 * a) * np.maximum(cos_text, 0) ** (4 * (1 - a))
    else:
        dense = (a * cos_image + (1 - a) * cos_text) ** 2
    np.fill_diagonal(dense, 1.0)
    support = np.zeros((40, 40), dtype=bool)
    for lists in candidates:
        np.put_along_axis(support, lists, True, axis=1)
    np.fill_diagonal(support, True)
    np.testing.assert_allclose(similarity, np.where(support, dense, 0.0), rtol=1e-5, atol=1e-7)


def test_own_list_cosines_in_closed_form_equal_the_gathered_ones():
    rng = np.random.default_rng(10)
    blocks = [rng.normal(size=(80, 6)) + 1.5, 3.0 * rng.normal(size=(80, 4)) + 1.0]
    lists = [exact_knn(prepare_features(x), 7) for x in blocks]
    trust = np.full((80, 2), 0.5)
    candidates, similarities = [idx for idx, _ in lists], [s for _, s in lists]
    gathered = fused_similarity(blocks, candidates, trust)
    closed_form = fused_similarity(blocks, candidates, trust, candidate_similarities=similarities)
    np.testing.assert_allclose(closed_form.toarray(), gathered.toarray(), atol=1e-5)


def test_union_support_marks_each_repeat_once():
    support, keep = union_support([np.array([[1, 2], [2, 0], [0, 1]]), np.array([[2, 0], [0, 2], [1, 2]])])
    for row, mask in zip(support, keep):
        assert sorted(row[mask].tolist()) == sorted(set(row.tolist()))


def test_prepared_features_ignore_how_each_row_is_scaled():
    x = np.random.default_rng(6).normal(size=(30, 5))
    scaled = x * np.random.default_rng(7).uniform(0.01, 100, size=(30, 1))
    np.testing.assert_allclose(prepare_features(x), prepare_features(scaled), atol=1e-5)


def _noisy_pairs(n_classes=12, per_class=40, noise=0.4, seed=0):
    """Image and caption vectors around the same class centre; ``noise`` of the captions permuted."""
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(n_classes), per_class)
    image = _unit(rng.normal(size=(n_classes, 16))[label] + 0.4 * rng.normal(size=(len(label), 16)))
    text = _unit(rng.normal(size=(n_classes, 8))[label] + 0.4 * rng.normal(size=(len(label), 8)))
    source = caption_permutation(len(label), noise, seed=seed)
    return image, text[source], source != np.arange(len(label)), label


def test_reliability_separates_mismatched_pairs_and_estimates_their_share():
    from sklearn.metrics import roc_auc_score

    image, text, mismatched, _ = _noisy_pairs()
    r = pair_reliability(image, text, exact_knn(image, 10)[0], exact_knn(text, 10)[0])
    assert roc_auc_score(~mismatched, r.reliability) > 0.9
    # 40 % permuted, of which 1/12 land in their own class and look matched: about 0.37 look mismatched.
    assert 0.3 < r.mismatched_share < 0.45


def test_reliability_of_clean_pairs_stays_near_one():
    image, text, _, _ = _noisy_pairs(noise=0.0)
    r = pair_reliability(image, text, exact_knn(image, 10)[0], exact_knn(text, 10)[0])
    assert r.mismatched_share < 0.05 and r.reliability.mean() > 0.95


def test_a_partition_judged_with_a_reference_of_the_pool_keeps_the_pools_reliability():
    from sklearn.metrics import roc_auc_score

    from hf_coreset import PoolReference
    from hf_coreset.methods.cast import CASTConfig
    from hf_coreset.methods.cast.selector import against_reference

    image, text, mismatched, label = _noisy_pairs(per_class=100, noise=0.3)
    part = np.flatnonzero(label < 2)  # what a k-means partition holds: a few classes
    rest = np.setdiff1d(np.arange(len(label)), part)
    reference = np.sort(np.random.default_rng(1).choice(rest, size=500, replace=False))
    pool = pair_reliability(image, text, exact_knn(image, 10)[0], exact_knn(text, 10)[0]).reliability[part]
    alone = pair_reliability(image[part], text[part], exact_knn(image[part], 10)[0],
                             exact_knn(text[part], 10)[0]).reliability
    rest_of_pool = PoolReference({"img": image[reference], "txt": text[reference]}, pool_rows=len(label))
    judged = against_reference({"img": image[part], "txt": text[part]}, rest_of_pool, ["img", "txt"], 10,
                               CASTConfig())
    with_reference = pair_reliability(**judged).reliability
    wrong = mismatched[part]
    # Alone, the partition's re-pairings are alike: its clean pairs look partly mismatched.
    assert alone[~wrong].mean() < 0.85 and np.abs(alone - pool).mean() > 0.1
    assert with_reference[~wrong].mean() > 0.9 and np.abs(with_reference - pool).mean() < 0.05
    assert roc_auc_score(~wrong, with_reference) > 0.9


def test_a_null_sample_is_all_mismatched_and_the_lfdr_never_rises_with_the_score():
    rng = np.random.default_rng(8)
    null, scores = rng.normal(size=5000), np.concatenate([rng.normal(size=2000), rng.normal(3.0, 1.0, size=2000)])
    assert mismatched_share(rng.normal(size=5000), null) == pytest.approx(1.0, abs=0.05)
    share = mismatched_share(scores, null)
    assert share == pytest.approx(0.5, abs=0.06)
    lfdr = local_false_discovery_rate(scores, null, share)
    ordered = lfdr[np.argsort(scores)]
    assert (np.diff(ordered) <= 1e-12).all() and 0 <= lfdr.min() and lfdr.max() <= 1


def test_facility_location_second_pick_in_a_covered_tight_cluster_gains_little():
    rng = np.random.default_rng(4)
    spread = _unit(rng.normal(size=(150, 10)))
    tight = _unit(8.0 * np.ones(10) + 1e-3 * rng.normal(size=(8, 10)))
    x = np.concatenate([spread, tight])
    similarity = np.clip(x @ x.T, 0, 1) ** 2
    picks, gains = facility_location_greedy(similarity, 12)
    assert sum(int(p) >= 150 for p in picks) == 1  # the cluster gets exactly one representative


def test_block_weights_schedule_equals_a_naive_greedy_with_the_same_weights():
    similarity = sp.random(120, 60, density=0.3, random_state=2, format="csc")  # two blocks of 60 rows
    blocks = np.repeat([0, 1], 60)

    def weights(step):
        return np.array([1.0, max(0.0, 1.0 - step / 6)])

    picks, _ = facility_location_greedy(similarity, 10, row_blocks=blocks, block_weights=weights)
    dense, best, naive = similarity.toarray(), np.zeros(120), []
    for step in range(10):
        w = weights(step)[blocks]
        gains = (w[:, None] * np.maximum(dense - best[:, None], 0)).sum(axis=0)
        gains[naive] = -np.inf
        naive.append(int(np.argmax(gains)))
        best = np.maximum(best, dense[:, naive[-1]])
    np.testing.assert_array_equal(picks, naive)
    with pytest.raises(ValueError, match="never increase"):
        facility_location_greedy(similarity, 3, row_blocks=blocks, block_weights=lambda step: np.full(2, step + 1.0))


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
    assert trust[is_duplicate, 0].max() < 0.15
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


@pytest.mark.parametrize("k", [1, 3, 12])
def test_top_k_per_row_equals_sorting_every_row_ties_by_column(k):
    m = sp.random(200, 200, density=0.1, random_state=k, format="csr")
    m.data = np.round(m.data * 4) / 4  # many ties
    coo = m.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))
    rows, cols, data = coo.row[order], coo.col[order], coo.data[order]
    keep = (np.arange(len(rows)) - np.searchsorted(rows, rows)) < k
    reference = sp.csr_matrix((data[keep], (rows[keep], cols[keep])), shape=m.shape)
    assert (top_k_per_row(m, k, max_cells=300) != reference).nnz == 0


def test_rows_of_exact_duplicates_are_collapsed_whatever_their_float32_rounding():
    # Four rows whose neighbours are all exact duplicates: float32 sums leave a contrast of 0 or of 1e-7
    # depending on the summation order. Both are "no contrast"; before, the median was itself 5e-8 and the
    # rows with 1e-7 scored 0 (uncollapsed).
    sims = np.array([[1.0, 1.0], [1.0, 1.0 - 1e-7], [1.0, 1.0], [1.0, 1.0 - 1e-7]])
    neighbours = np.array([[1, 2], [2, 3], [3, 0], [0, 1]])  # every row in two lists: no hubness
    assert collapse_scores(sims, neighbours, 4).tolist() == [1.0, 1.0, 1.0, 1.0]
