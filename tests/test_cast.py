"""method="cast" end to end: options, ablations, determinism, stochastic greedy, grouping, diagnostics."""

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
    assert d["k"] == 10 and d["levels"] == 5
    assert d["index_used"] == {"img_emb": "exact", "txt_emb": "exact"}
    assert d["scales"] == ["psi_0", "psi_1", "psi_2", "psi_3", "psi_4", "psi_5", "phi_5"]
    assert set(d["discrepancy_per_scale"]) == {"selected", "random_subset_same_size"}
    assert 0 < d["coverage_reached"] <= 1
    assert sum(d["collapse_histogram"]["img_emb"]) == 200
    assert abs(sum(d["mean_trust"].values()) - 1) < 1e-3


def test_same_seed_same_indices_different_seed_runs(embedding_dataset):
    first, second = _cast(embedding_dataset, 30, seed=3), _cast(embedding_dataset, 30, seed=3)
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.scores, second.scores)


@pytest.mark.parametrize("options", [
    {"coverage": False}, {"matching": False}, {"collapse_refinement": False}, {"hubness_reduction": False},
    {"scale_schedule": "all"}, {"consensus_boost": 1.0}, {"k": 5, "levels": 2, "beta": 1.0},
    {"refresh_every": 4}, {"exact_greedy_max_rows": 0},
])
def test_every_ablation_is_one_argument_away(embedding_dataset, options):
    result = _cast(embedding_dataset, 25, **options)
    assert len(set(result.indices.tolist())) == 25
    assert result.provenance["config"] | options == result.provenance["config"]


def test_stochastic_greedy_scores_a_sample_of_candidates():
    features, _ = _clustered_features()
    selector = CASTSelector(CASTConfig(exact_greedy_max_rows=0, stochastic_eps=0.1)).fit(features, 24)
    # (N / budget) log(1 / eps) = 10 * 2.3 -> 24 candidates per step instead of 240.
    assert selector.diagnostics_["candidates_per_step"] == 24
    assert len(set(selector.indices_.tolist())) == 24


def test_cast_covers_every_cluster():
    features, labels = _clustered_features()
    selector = CASTSelector(CASTConfig()).fit(features, 16)
    assert len(set(labels[selector.indices_].tolist())) == 8


@pytest.mark.parametrize("options, message", [
    ({"coverage": False, "matching": False}, "nothing to optimise"),
    ({"k": 1}, "k must be"), ({"scale_schedule": "fine_first"}, "scale_schedule"),
    ({"index": "annoy"}, "index must be"), ({"stochastic_eps": 1.5}, "stochastic_eps"),
    ({"beta": -1}, "beta"),
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


