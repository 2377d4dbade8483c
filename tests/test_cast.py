"""method="cast" end to end: options, ablations, determinism, noise, invariance, grouping, diagnostics."""

from __future__ import annotations

import json

import numpy as np
import pytest

import hf_coreset
from hf_coreset import get_selection_result
from hf_coreset.errors import CoresetInputError
from hf_coreset.methods.cast import CASTConfig, CASTSelector
from hf_coreset.methods.cast.grouping import group_nodes
from hf_coreset.selector import FeatureSet

from .conftest import make_embedding_dataset

EMBEDDINGS = ["img_emb", "txt_emb"]


def _cast(dataset, budget, seed=0, **options):
    core = hf_coreset.select_coreset(dataset, "cast", budget, embedding_columns=EMBEDDINGS, seed=seed, **options)
    return get_selection_result(core)


def _clustered_features(n_clusters=8, per_cluster=30, seed=0):
    """Well separated clusters in both modalities (the same cluster for a row in each)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    image = 6.0 * rng.normal(size=(n_clusters, 10))[labels] + rng.normal(size=(len(labels), 10))
    text = 6.0 * rng.normal(size=(n_clusters, 5))[labels] + rng.normal(size=(len(labels), 5))
    return FeatureSet(len(labels), {"image": image, "text": text}), labels


def test_cast_is_registered():
    assert "cast" in hf_coreset.available_methods()


def test_diagnostics_are_complete_and_json_ready(embedding_dataset):
    result = _cast(embedding_dataset, 20)
    d = result.diagnostics
    json.dumps(d)
    assert d["k"] == 10 and d["levels"] == 3
    assert d["index_used"] == {"img_emb": "exact", "txt_emb": "exact"}
    assert list(d["mean_best_similarity"]) == ["fine", "diffusion_T^1", "diffusion_T^2", "diffusion_T^4"]
    assert d["diffusion_scales_off_at_pick"] == 20  # N / k
    assert set(d["wavelet_discrepancy_per_scale"]) == {"selected", "random_subset_same_size"}
    assert list(d["wavelet_discrepancy_per_scale"]["selected"]) == ["psi_0", "psi_1", "psi_2", "psi_3", "phi_3"]
    assert 0 <= d["reliability"]["estimated_mismatched_share"] <= 1
    assert sum(d["collapse_histogram"]["img_emb"]) == 200
    assert abs(sum(d["mean_trust"].values()) - 1) < 1e-3
    # The scores are the facility-location gains: positive, and never growing from one pick to the next.
    assert (result.scores > 0).all() and (np.diff(result.scores) <= 1e-9).all()


def test_same_seed_same_indices_different_seed_runs(embedding_dataset):
    first, second = _cast(embedding_dataset, 30, seed=3), _cast(embedding_dataset, 30, seed=3)
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.scores, second.scores)


@pytest.mark.parametrize("options", [
    {"reliability": "none"}, {"levels": 0}, {"scale_schedule": "constant"}, {"fusion": "sum"},
    {"collapse_refinement": False}, {"hubness_reduction": False}, {"consensus_boost": 1.0},
    {"fine_scale_trust": "collapse"},
    {"k": 5, "levels": 2, "beta": 1.0, "similarity_neighbors": 20, "diffusion_keep": 8},
])
def test_every_ablation_is_one_argument_away(embedding_dataset, options):
    result = _cast(embedding_dataset, 25, **options)
    assert len(set(result.indices.tolist())) == 25
    assert result.provenance["config"] | options == result.provenance["config"]


def test_cast_covers_every_cluster():
    features, labels = _clustered_features()
    selector = CASTSelector(CASTConfig()).fit(features, 16)
    assert len(set(labels[selector.indices_].tolist())) == 8


def _noisy_clustered_pairs(noise=0.5, n_clusters=10, per_cluster=40, seed=0):
    """Clustered pairs (image and caption near the same cluster centre), ``noise`` of the captions permuted."""
    from hf_coreset.noise import caption_permutation

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    image = 3.0 * rng.normal(size=(n_clusters, 12))[labels] + rng.normal(size=(len(labels), 12))
    text = 3.0 * rng.normal(size=(n_clusters, 6))[labels] + rng.normal(size=(len(labels), 6))
    source = caption_permutation(len(labels), noise, seed=seed)
    return FeatureSet(len(labels), {"image": image, "text": text[source]}), labels[source] != labels


def test_mismatched_pairs_are_neither_picked_nor_represented():
    features, mismatched = _noisy_clustered_pairs()
    # Half the captions are permuted; 9 in 10 of those now belong to another cluster.
    assert 0.4 < mismatched.mean() < 0.5
    picked = CASTSelector(CASTConfig()).fit(features, 40).indices_
    ablated = CASTSelector(CASTConfig(reliability="none")).fit(features, 40).indices_
    assert mismatched[picked].sum() <= 5  # random picks about 18 of 40, without reliability CAST picks 28
    assert mismatched[ablated].sum() > 3 * mismatched[picked].sum() + 4


@pytest.mark.parametrize("block", ["image", "text"])
def test_picks_do_not_depend_on_how_each_row_is_scaled(block):
    features, _ = _noisy_clustered_pairs(noise=0.2)
    scale = np.random.default_rng(1).uniform(0.05, 20.0, size=(features.n_rows, 1))
    rescaled = FeatureSet(features.n_rows, {**features.blocks, block: features.blocks[block] * scale})
    first = CASTSelector(CASTConfig()).fit(features, 30).indices_
    second = CASTSelector(CASTConfig()).fit(rescaled, 30).indices_
    np.testing.assert_array_equal(first, second)


def test_selection_is_nested_across_budgets():
    """The schedule depends on the pick number, not on the budget: a smaller budget is a prefix."""
    features, _ = _clustered_features()
    small = CASTSelector(CASTConfig()).fit(features, 10).indices_
    large = CASTSelector(CASTConfig()).fit(features, 40).indices_
    np.testing.assert_array_equal(large[:10], small)


@pytest.mark.parametrize("options, message", [
    ({"k": 1}, "k must be"), ({"scale_schedule": "fine_first"}, "scale_schedule"),
    ({"index": "annoy"}, "index must be"), ({"fusion": "max"}, "fusion"), ({"reliability": "oracle"}, "reliability"),
    ({"beta": -1}, "beta"), ({"levels": -1}, "levels"), ({"similarity_neighbors": 0}, "similarity_neighbors"),
])
def test_bad_options_fail_early(options, message):
    with pytest.raises(CoresetInputError, match=message):
        CASTConfig(**options)


def test_group_nodes_averages_and_emits_medoid_captions():
    rng = np.random.default_rng(0)
    image = np.repeat(rng.normal(size=(3, 4)), 3, axis=0)
    text = rng.normal(size=(9, 5))
    nodes, medoids = group_nodes(np.repeat(["a", "b", "c"], 3), {"image": image, "text": text})
    np.testing.assert_allclose(nodes["image"], image[::3])
    np.testing.assert_allclose(nodes["text"][1], text[3:6].mean(axis=0))
    assert [m // 3 for m in medoids] == [0, 1, 2]


def test_group_column_selects_one_medoid_row_per_group():
    dataset = make_embedding_dataset(n_rows=240)
    features = FeatureSet(240, {c: np.array(dataset[c]) for c in EMBEDDINGS}, groups=np.arange(240) // 4)
    selector = CASTSelector(CASTConfig(group_column="image_id")).fit(features, 12)
    groups = selector.indices_ // 4
    assert len(set(groups.tolist())) == 12
    _, medoids = group_nodes(features.groups, features.blocks)
    assert set(selector.indices_.tolist()) <= set(medoids.tolist())


def test_group_column_through_select_coreset_counts_the_budget_in_groups(embedding_dataset):
    ds = embedding_dataset.add_column("image_id", [i // 4 for i in range(embedding_dataset.num_rows)])  # 50 images
    core = hf_coreset.select_coreset(ds, "cast", 0.2, embedding_columns=EMBEDDINGS, group_column="image_id")
    result = get_selection_result(core)
    assert core.num_rows == 10 and result.provenance["budget_rows"] == 10  # 20 % of 50 images
    assert len(set(core["image_id"])) == 10  # one caption per chosen image
    features = FeatureSet(200, {c: np.array(ds[c]) for c in EMBEDDINGS}, groups=np.arange(200) // 4)
    _, medoids = group_nodes(features.groups, features.blocks)
    assert set(result.indices.tolist()) <= set(medoids.tolist())


def test_group_column_must_exist(embedding_dataset):
    with pytest.raises(CoresetInputError, match="'image_id' is not in the dataset"):
        _cast(embedding_dataset, 10, group_column="image_id")




def test_candidates_are_picked_from_while_every_node_is_represented():
    features, labels = _clustered_features()
    # Candidates in 4 of the 8 clusters only: every pick comes from them, and CAST still picks in each of them.
    candidates = np.flatnonzero(labels < 4)
    restricted = FeatureSet(features.n_rows, features.blocks, candidates=candidates)
    picks = CASTSelector(CASTConfig(seed=0)).fit(restricted, 8).indices_
    assert set(picks.tolist()) <= set(candidates.tolist()) and set(labels[picks].tolist()) == {0, 1, 2, 3}
    # All nodes as candidates is the unrestricted selection.
    everyone = FeatureSet(features.n_rows, features.blocks, candidates=np.arange(features.n_rows))
    np.testing.assert_array_equal(CASTSelector(CASTConfig(seed=0)).fit(everyone, 8).indices_,
                                  CASTSelector(CASTConfig(seed=0)).fit(features, 8).indices_)
    with pytest.raises(CoresetInputError, match="group_column merges rows into nodes"):
        CASTSelector(CASTConfig(seed=0, group_column="g")).fit(
            FeatureSet(features.n_rows, features.blocks, groups=labels, candidates=candidates), 4)
