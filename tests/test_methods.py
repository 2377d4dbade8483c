"""One table of checks run over every registered method (PEFT style)."""

from __future__ import annotations

import numpy as np
import pytest

import hf_coreset
from hf_coreset import get_selection_result

ALL_METHODS = hf_coreset.available_methods()
EMBEDDINGS = ["img_emb", "txt_emb"]


def _select(dataset, method, budget, seed=0, **kwargs):
    core = hf_coreset.select_coreset(dataset, method, budget, embedding_columns=EMBEDDINGS, seed=seed, **kwargs)
    return core, get_selection_result(core)


def test_builtin_methods_are_registered():
    assert {"random", "kcenter", "herding", "dq"} <= set(ALL_METHODS)


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("budget, expected_rows", [(1, 1), (17, 17), (0.1, 20), (0.333, 67), (1.0, 200)])
def test_budget_is_respected_exactly(embedding_dataset, method, budget, expected_rows):
    core, result = _select(embedding_dataset, method, budget)
    assert core.num_rows == expected_rows
    assert len(result.indices) == expected_rows == len(result.scores)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_indices_are_unique_in_range_and_match_the_rows(embedding_dataset, method):
    core, result = _select(embedding_dataset, method, 40)
    assert len(set(result.indices.tolist())) == 40
    assert result.indices.min() >= 0 and result.indices.max() < embedding_dataset.num_rows
    # The returned rows are the source rows at those indices, in source order.
    expected_captions = [embedding_dataset[int(i)]["caption"] for i in sorted(result.indices)]
    assert core["caption"] == expected_captions


@pytest.mark.parametrize("method", ALL_METHODS)
def test_same_seed_gives_same_indices(embedding_dataset, method):
    _, first = _select(embedding_dataset, method, 30, seed=7)
    _, second = _select(embedding_dataset, method, 30, seed=7)
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.scores, second.scores)


def test_different_seed_gives_different_indices_for_random(embedding_dataset):
    _, first = _select(embedding_dataset, "random", 30, seed=0)
    _, second = _select(embedding_dataset, "random", 30, seed=1)
    assert set(first.indices.tolist()) != set(second.indices.tolist())


@pytest.mark.parametrize("method", ALL_METHODS)
def test_scores_and_ranks_columns(embedding_dataset, method):
    core, result = _select(embedding_dataset, method, 25, return_scores=True)
    assert sorted(core["coreset_rank"]) == list(range(25))
    # Row r of the subset holds the score the method gave to that row when it picked it.
    picked_at = {int(index): rank for rank, index in enumerate(result.indices)}
    for index, rank, score in zip(sorted(result.indices), core["coreset_rank"], core["coreset_score"]):
        assert picked_at[int(index)] == rank
        expected = result.scores[rank]
        assert (score == expected) or (np.isinf(expected) and np.isinf(score))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_provenance_records_the_choice(embedding_dataset, method):
    core, result = _select(embedding_dataset, method, 0.1)
    provenance = result.provenance
    assert provenance["method"] == method
    assert provenance["rows_in"] == 200 and provenance["rows_out"] == 20
    assert provenance["budget"] == 0.1 and provenance["budget_rows"] == 20
    assert provenance["seed"] == 0 and provenance["config"]["seed"] == 0
    assert provenance["source_fingerprint"] == embedding_dataset._fingerprint
    assert provenance["rows_dropped"] == {}
    assert provenance["score_meaning"]
    assert "datasets" in provenance["library_versions"]
    assert provenance["timings"]["total_s"] >= 0


@pytest.mark.parametrize("method", ALL_METHODS)
def test_result_survives_save_to_disk(embedding_dataset, method, tmp_path):
    import datasets

    core, result = _select(embedding_dataset, method, 12, return_scores=True)
    core.save_to_disk(str(tmp_path / "core"))
    reloaded = datasets.load_from_disk(str(tmp_path / "core"))
    again = get_selection_result(reloaded)
    np.testing.assert_array_equal(again.indices, result.indices)
    assert again.provenance["method"] == method
    assert reloaded["coreset_rank"] == core["coreset_rank"]


@pytest.mark.parametrize("method", ALL_METHODS)
def test_candidates_restrict_the_picks_or_are_refused(method):
    """FeatureSet.candidates (the Ray engine's second round): a method that can honour it picks only among
    them; any other refuses it by name instead of ignoring it."""
    from hf_coreset.errors import CoresetInputError
    from hf_coreset.registry import get_method
    from hf_coreset.selector import FeatureSet

    rng = np.random.default_rng(0)
    candidates = np.arange(0, 120, 3)
    features = FeatureSet(120, {"img": rng.normal(size=(120, 8)), "txt": rng.normal(size=(120, 4))},
                          candidates=candidates)
    spec = get_method(method)
    selector = spec.selector_class(spec.build_config(0, {}))
    if not spec.selector_class.picks_among_candidates:
        with pytest.raises(CoresetInputError, match="cannot restrict its picks to FeatureSet.candidates"):
            selector.fit(features, 10)
        return
    picks = selector.fit(features, 10).indices_
    assert len(set(picks.tolist())) == 10 and set(picks.tolist()) <= set(candidates.tolist())
    with pytest.raises(CoresetInputError, match="budget=41 but only 40 rows are candidates"):
        selector.fit(features, 41)
    for bad, message in ((np.array([0, 3, 3]), "lists a row twice"), (np.array([0, 120]), r"in \[0, 120\)"),
                         (np.array([0.0, 3.0]), "1-d array of row positions"),
                         (np.array([5, 3]), r"must be sorted: pass np\.sort\(candidates\)")):
        with pytest.raises(CoresetInputError, match=message):
            selector.fit(FeatureSet(120, features.blocks, candidates=bad), 2)
