"""Facility location: the built-in baseline against apricot-select and against a naive greedy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import hf_coreset
from hf_coreset.errors import CoresetInputError
from hf_coreset.graph import facility_location as fl
from hf_coreset.vectors import l2_normalize

from .conftest import make_embedding_dataset


def naive_facility_location(similarity: np.ndarray, budget: int, row_weights=None, candidate_weights=None):
    """Recompute every candidate's gain at every step (the obvious, slow greedy)."""
    n = similarity.shape[1]
    w = np.ones(similarity.shape[0]) if row_weights is None else row_weights
    c = np.ones(n) if candidate_weights is None else candidate_weights
    best, picked = np.zeros(similarity.shape[0]), []
    for _ in range(budget):
        gains = c * (w[:, None] * np.maximum(similarity - best[:, None], 0.0)).sum(axis=0)
        gains[picked] = -np.inf
        j = int(np.argmax(gains))
        picked.append(j)
        best = np.maximum(best, similarity[:, j])
    return np.array(picked)


def _concat(ds) -> np.ndarray:
    return np.concatenate([l2_normalize(np.asarray(ds["img_emb"], dtype=np.float64)),
                           l2_normalize(np.asarray(ds["txt_emb"], dtype=np.float64))], axis=1)


def test_all_pairs_facility_location_picks_what_apricot_picks():
    apricot = pytest.importorskip("apricot")
    ds = make_embedding_dataset(150)
    core = hf_coreset.select_coreset(ds, "facility_location", 20, embedding_columns=["img_emb", "txt_emb"],
                                     n_neighbors=None)
    ours = hf_coreset.get_selection_result(core)
    reference = apricot.FacilityLocationSelection(20, metric="cosine", optimizer="lazy", verbose=False)
    reference.fit(_concat(ds))
    np.testing.assert_array_equal(ours.indices, reference.ranking)
    np.testing.assert_allclose(ours.scores, reference.gains, rtol=1e-6)


@pytest.mark.parametrize("n_neighbors", [5, 30])
def test_knn_facility_location_equals_the_naive_greedy_on_the_same_similarity(n_neighbors):
    x = _concat(make_embedding_dataset(120, seed=3))
    similarity = fl.knn_similarity(x, n_neighbors)
    dense = similarity.toarray()
    # Each row holds itself and exactly its n_neighbors most similar rows, with s = cos^2.
    assert ((dense > 0).sum(axis=1) == n_neighbors + 1).all()
    cosine = l2_normalize(x) @ l2_normalize(x).T
    kept = dense > 0
    np.testing.assert_allclose(dense[kept], np.where(np.eye(120, dtype=bool), 1.0, cosine**2)[kept], rtol=1e-5)
    indices, gains = fl.facility_location_greedy(similarity, 25)
    np.testing.assert_array_equal(indices, naive_facility_location(dense, 25))
    assert (np.diff(gains) <= 1e-12).all()  # greedy gains of a submodular function never grow


def test_weighted_greedy_equals_the_naive_weighted_greedy():
    rng = np.random.default_rng(0)
    similarity = sp.random(80, 80, density=0.2, random_state=1, format="csc")
    rows, candidates = rng.uniform(size=80), rng.uniform(size=80)
    indices, _ = fl.facility_location_greedy(similarity, 15, row_weights=rows, candidate_weights=candidates)
    np.testing.assert_array_equal(indices, naive_facility_location(similarity.toarray(), 15, rows, candidates))


def test_picks_are_invariant_to_rescaling_rows_of_either_block():
    ds = make_embedding_dataset(200)
    scale = np.random.default_rng(1).uniform(0.1, 10.0, size=(200, 1))
    rescaled = ds.map(lambda row, i: {"img_emb": (np.asarray(row["img_emb"]) * scale[i]).tolist()},
                      with_indices=True)
    picks = [hf_coreset.get_selection_result(hf_coreset.select_coreset(
        d, "facility_location", 20, embedding_columns=["img_emb", "txt_emb"])).indices for d in (ds, rescaled)]
    np.testing.assert_array_equal(*picks)


def test_all_pairs_are_refused_past_the_memory_bound(monkeypatch):
    monkeypatch.setattr(fl, "MAX_DENSE_ENTRIES", 100)
    with pytest.raises(CoresetInputError, match="n_neighbors=K"):
        fl.knn_similarity(np.random.default_rng(0).normal(size=(11, 3)), None)


def test_negative_similarity_is_refused():
    with pytest.raises(CoresetInputError, match="non-negative"):
        fl.facility_location_greedy(sp.csc_matrix(np.array([[1.0, -0.5], [-0.5, 1.0]])), 1)


@pytest.mark.parametrize("bad", [{"n_neighbors": 0}, {"n_neighbors": 2.5}, {"index": "annoy"}])
def test_bad_options_are_refused(bad):
    with pytest.raises(CoresetInputError):
        hf_coreset.select_coreset(make_embedding_dataset(20), "facility_location", 5,
                                  embedding_columns=["img_emb", "txt_emb"], **bad)


def test_candidates_keep_every_row_to_represent_and_equal_the_naive_restricted_greedy():
    from hf_coreset.methods.facility_location import FacilityLocationConfig, FacilityLocationSelector
    from hf_coreset.selector import FeatureSet

    ds = make_embedding_dataset(120, seed=4)
    candidates = np.arange(1, 120, 4)
    features = FeatureSet(120, {c: np.asarray(ds[c]) for c in ("img_emb", "txt_emb")}, candidates=candidates)
    x = _concat(ds)
    picks = FacilityLocationSelector(FacilityLocationConfig(n_neighbors=30)).fit(features, 12).indices_
    # Every row (not only the candidates) is a row to represent: the columns are restricted, not the rows.
    dense = fl.knn_similarity(x, 30).toarray()
    np.testing.assert_array_equal(picks, candidates[naive_facility_location(dense[:, candidates], 12)])
