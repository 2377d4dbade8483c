"""Each method against a slow, obvious reference on small inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import hf_coreset
from hf_coreset.budget import equal_counts, proportional_counts
from hf_coreset.features.aggregate import aggregate_blocks, reduce_dimensions
from hf_coreset.methods.dq import graphcut_bins, matvec_graphcut_bins, naive_graphcut_bins
from hf_coreset.methods.kcenter import farthest_point_greedy
from hf_coreset.selector import FeatureSet
from hf_coreset.vectors import l2_normalize


def brute_force_farthest_point(x, budget, first):
    distances = cdist(x, x)
    picked = [first]
    while len(picked) < budget:
        to_set = distances[:, picked].min(axis=1)
        to_set[picked] = -1
        picked.append(int(np.argmax(to_set)))
    return np.array(picked)


def test_kcenter_equals_brute_force_farthest_point_on_500_rows():
    x = np.random.default_rng(3).normal(size=(500, 16))
    fast, radii = farthest_point_greedy(x, 60, first=11, chunk_size=37)  # odd chunk size: exercises chunking
    np.testing.assert_array_equal(fast, brute_force_farthest_point(x, 60, 11))
    # radii[t] is the distance from pick t to the rows picked before it.
    distances = cdist(x, x)
    for t in range(1, 60):
        assert radii[t] == pytest.approx(distances[fast[t], fast[:t]].min(), rel=1e-9)
    assert np.isinf(radii[0])


def test_kcenter_selector_uses_the_seeded_first_pick_and_concat_aggregation():
    rng = np.random.default_rng(0)
    blocks = {"image": rng.normal(size=(500, 10)), "text": rng.normal(size=(500, 4))}
    selector = hf_coreset.get_method("kcenter").selector_class(hf_coreset.get_method("kcenter").config_class(seed=5))
    selector.fit(FeatureSet(500, blocks), 40)
    x = np.concatenate([l2_normalize(blocks["image"]), l2_normalize(blocks["text"])], axis=1)
    first = int(np.random.default_rng(5).integers(500))
    np.testing.assert_array_equal(selector.indices_, brute_force_farthest_point(x, 40, first))


def test_herding_equals_brute_force_mean_matching():
    x = np.random.default_rng(1).normal(size=(120, 5))
    spec = hf_coreset.get_method("herding")
    selector = spec.selector_class(spec.config_class()).fit(FeatureSet(120, {"v": x}), 15)
    x = l2_normalize(x)  # concat aggregation of a single block = its L2-normalised rows
    mu, picked = x.mean(axis=0), []
    for _ in range(15):
        gaps = [np.inf if i in picked else np.linalg.norm(mu - x[picked + [i]].mean(axis=0)) for i in range(120)]
        picked.append(int(np.argmin(gaps)))
    np.testing.assert_array_equal(selector.indices_, picked)


@pytest.mark.parametrize("num_bins", [1, 7, 20])
def test_dq_fast_graphcut_equals_naive_greedy_on_300_rows(num_bins):
    x = np.random.default_rng(2).normal(size=(300, 24))
    fast_bins, fast_gains = graphcut_bins(x, num_bins)
    naive_bins, naive_gains = naive_graphcut_bins(x, num_bins)
    assert len(fast_bins) == len(naive_bins) == num_bins
    for fast, naive, fg, ng in zip(fast_bins, naive_bins, fast_gains, naive_gains):
        np.testing.assert_array_equal(fast, naive)
        np.testing.assert_allclose(fg, ng, rtol=1e-9, atol=1e-9)
    # The bins partition the rows.
    assert sorted(np.concatenate(fast_bins).tolist()) == list(range(300))


def _tight_clusters() -> np.ndarray:
    """400 rows in 8 tight clusters: a dense front of near-equal GraphCut gains."""
    rng = np.random.default_rng(5)
    return rng.normal(size=(8, 16))[rng.integers(8, size=400)] + 0.2 * rng.normal(size=(400, 16))


def assert_bins_are_the_exact_greedys(x: np.ndarray, num_bins: int, **options) -> None:
    """``graphcut_bins(x, num_bins, **options)`` gives the matrix-vector and the naive greedies' bins, in pick
    order, and their gains."""
    fast_bins, fast_gains = graphcut_bins(x, num_bins, **options)
    for reference_bins, reference_gains in (matvec_graphcut_bins(x, num_bins), naive_graphcut_bins(x, num_bins)):
        for fast, reference, fg, rg in zip(fast_bins, reference_bins, fast_gains, reference_gains):
            np.testing.assert_array_equal(fast, reference)
            np.testing.assert_allclose(fg, rg, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("max_cached_floats", [64_000_000, 4_000])
def test_dq_bins_equal_the_exact_greedy_on_clustered_rows_with_a_tiny_cache(max_cached_floats):
    # A 4,000-float cache holds 10 rows, so prefetched rows are evicted all the time.
    x = _tight_clusters()
    assert_bins_are_the_exact_greedys(x, 6, max_cached_floats=max_cached_floats)


# The windowed path (rows near the top tracked, the others bounded) on small inputs: every pool is windowed,
# windows are short, the first margin is tiny and the bound's subspace narrow, so windows get cut short and
# untracked rows come back all the time. The bins must still be the exact greedy's.
WINDOWED = {"windowed_min_rows": 0, "window_picks": 8, "margin": 0.05, "bound_rank": 2}


@pytest.mark.parametrize("data", ["tight_clusters", "gaussian", "near_duplicates"])
def test_dq_windowed_bins_equal_the_exact_greedy_when_untracked_rows_beat_the_window(data):
    rng = np.random.default_rng(7)
    x = {"tight_clusters": _tight_clusters, "gaussian": lambda: rng.normal(size=(300, 24)),
         "near_duplicates": lambda: np.vstack([_tight_clusters()[:380], _tight_clusters()[:20] + 1e-7])}[data]()
    assert_bins_are_the_exact_greedys(x, 6, max_cached_floats=4_000, **WINDOWED)


def test_dq_windows_are_cut_short_where_an_untracked_row_wins(monkeypatch):
    # The case above must really exercise the check: count the windows it cut short.
    from hf_coreset.methods.dq import selector

    cut = []
    check = selector.UntrackedGainBound.first_step_beaten

    def counting(self, *args):
        step = check(self, *args)
        cut.append(step is not None)
        return step

    monkeypatch.setattr(selector.UntrackedGainBound, "first_step_beaten", counting)
    graphcut_bins(_tight_clusters(), 6, **WINDOWED)
    assert sum(cut) >= 10 and len(cut) - sum(cut) >= 10


def test_dq_flat_gains_are_recomputed_exactly_and_follow_the_float64_greedy():
    # 250 rows within 1e-6 of one another: their gains differ by less than float32 updates can tell, so nearly
    # every row is "close" to the best at every pick and the greedy recomputes all gains exactly instead.
    rng = np.random.default_rng(8)
    x = np.vstack([rng.normal(size=(1, 16)) + 1e-6 * rng.normal(size=(250, 16)), rng.normal(size=(50, 16))])
    assert_bins_are_the_exact_greedys(x, 3)


def test_dq_duplicate_rows_tie_and_the_bins_hold_the_same_rows():
    # Exact duplicates have equal gains up to rounding, so which copy goes first may differ from the naive
    # greedy; the bins must still hold the same rows (each index mapped to its first identical copy).
    x = _tight_clusters()
    x[380:] = x[:20]
    canonical = np.arange(400)
    canonical[380:] = np.arange(20)
    fast_bins, _ = graphcut_bins(x, 6, max_cached_floats=4_000)
    naive_bins, _ = naive_graphcut_bins(x, 6)
    for fast, naive in zip(fast_bins, naive_bins):
        assert sorted(canonical[fast]) == sorted(canonical[naive])


def test_dq_draws_from_each_bins_own_indices():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 8))
    spec = hf_coreset.get_method("dq")
    selector = spec.selector_class(spec.config_class(num_bins=8, seed=3)).fit(FeatureSet(400, {"v": x}), 40)
    bins, _ = graphcut_bins(x, 8)
    bin_of_row = {int(row): b for b, members in enumerate(bins) for row in members}
    # Every pick belongs to the bin it is reported in, and each bin gives rho * |bin| = 5 rows. (The study's
    # script used positions inside a bin as dataset indices, which would put picks outside their bin.)
    for index, reported_bin in zip(selector.indices_, selector.diagnostics_["bin_of_pick"]):
        assert bin_of_row[int(index)] == reported_bin
    np.testing.assert_array_equal(selector.diagnostics_["picked_per_bin"], [5] * 8)


@pytest.mark.parametrize("split", [proportional_counts, equal_counts])
def test_budget_splits_sum_to_the_budget_and_respect_group_sizes(split):
    for sizes in (np.array([34, 33, 33]), np.array([90, 7, 0, 3])):
        for budget in range(1, 101):
            counts = split(sizes, budget)
            assert counts.sum() == budget and (counts <= sizes).all() and (counts >= 0).all()


def test_equal_split_gives_a_small_group_all_its_rows_and_the_rest_evenly():
    np.testing.assert_array_equal(equal_counts(np.array([90, 7, 0, 3]), 40), [30, 7, 0, 3])
    np.testing.assert_array_equal(equal_counts(np.array([10, 10, 10]), 10), [4, 3, 3])


def test_aggregations():
    image, text = np.array([[3.0, 4.0]]), np.array([[0.0, 2.0]])
    np.testing.assert_allclose(aggregate_blocks({"i": image, "t": text}, "concat"), [[0.6, 0.8, 0.0, 1.0]])
    np.testing.assert_allclose(aggregate_blocks({"i": image, "t": text}, "mean"), [[1.5, 3.0]])
    np.testing.assert_allclose(aggregate_blocks({"i": image, "t": text}, "sum"), [[3.0, 6.0]])
    with pytest.raises(ValueError, match="equal widths.*concat"):
        aggregate_blocks({"i": image, "t": np.ones((1, 3))}, "mean")


def test_pca_reduction_keeps_the_requested_components():
    x = np.random.default_rng(0).normal(size=(50, 20))
    assert reduce_dimensions(x, "pca:5").shape == (50, 5)
    assert reduce_dimensions(x, "pca:1024").shape == (50, 20)  # capped by the data
    assert reduce_dimensions(x, None) is x


def test_dq_with_mean_aggregation_and_pca_runs_end_to_end(embedding_dataset):
    ds = embedding_dataset.map(lambda row: {"txt_emb2": [2 * v for v in row["txt_emb"]]})  # two 6-d blocks
    core = hf_coreset.select_coreset(ds, "dq", 0.1, embedding_columns=["txt_emb", "txt_emb2"],
                                     aggregation="mean", reduce="pca:4")
    assert core.num_rows == 20
    config = hf_coreset.get_selection_result(core).provenance["config"]
    assert config["aggregation"] == "mean" and config["reduce"] == "pca:4"


def test_dq_near_duplicates_closer_than_float32_resolves_follow_the_float64_greedy():
    # Rows 380-399 are rows 0-19 moved by 1e-7: their gains differ by less than a float32 similarity row can
    # tell, so the float32 updates alone would order them by rounding; the exact arbitration orders them as
    # the float64 greedy does.
    x = _tight_clusters()
    x[380:] = x[:20] + 1e-7 * np.random.default_rng(6).normal(size=(20, 16))
    assert_bins_are_the_exact_greedys(x, 6, max_cached_floats=4_000)
