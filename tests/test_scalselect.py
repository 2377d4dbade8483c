"""ScalSelect stage B: leverage scores, top-M, and method="scalselect" on precomputed representations."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import datasets
import numpy as np
import pytest

import hf_coreset
from hf_coreset import CoresetInputError, get_selection_result
from hf_coreset.methods.scalselect import ScalSelectConfig, leverage, leverage_scores, top_m
from hf_coreset.methods.scalselect.leverage import covariance_leverage, energy_rank, gram_leverage


def _svd_reference(x: np.ndarray, rho: float) -> tuple[np.ndarray, int]:
    """Row norms² of the top-k left singular vectors of the centred matrix, k by the energy rule (capped at
    the numerical rank: singular vectors of zero singular values are arbitrary)."""
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    energy = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.searchsorted(energy, rho - 1e-12)) + 1
    k = min(k, int((s > s[0] * 1e-10).sum()))
    return (u[:, :k] ** 2).sum(axis=1), k


@pytest.mark.parametrize("shape", [(40, 5), (120, 16), (30, 50)])  # the last one: d > n (rank n - 1)
@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0])
def test_leverage_matches_svd_reference(shape, rho):
    x = np.random.default_rng(shape[0]).normal(size=shape) * np.linspace(3, 0.5, shape[1])
    result = leverage_scores(x, rho=rho, chunk_size=7)  # chunks that do not divide N
    expected, k = _svd_reference(x, rho)
    assert result.k == k
    np.testing.assert_allclose(result.scores, expected, atol=1e-9)
    assert np.isclose(result.scores.sum(), k)
    assert result.scores.min() >= -1e-12 and result.scores.max() <= 1 + 1e-9


@pytest.mark.parametrize("shape", [(30, 50), (12, 300), (80, 81), (60, 20)])
@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0])
def test_gram_and_covariance_routes_give_the_same_leverage(shape, rho):
    x = np.random.default_rng(shape[1]).normal(size=shape) * np.linspace(3, 0.5, shape[1]) + 5.0
    gram, covariance = gram_leverage(x, rho, chunk_size=7), covariance_leverage(x, rho, chunk_size=7)
    assert gram.k == covariance.k and gram.n_total == covariance.n_total
    np.testing.assert_allclose(gram.scores, covariance.scores, atol=1e-9)
    np.testing.assert_allclose(gram.energy, covariance.energy, atol=1e-12)
    np.testing.assert_allclose(gram.eigenvalues, covariance.eigenvalues, atol=1e-8 * covariance.eigenvalues[0])
    np.testing.assert_allclose(gram.mean, covariance.mean)
    np.testing.assert_allclose(gram.scores, _svd_reference(x, rho)[0], atol=1e-9)


def test_few_rows_of_very_wide_representations_never_build_the_covariance(monkeypatch):
    """d = 20,000: the d x d covariance (3.2 GB, and an OpenBLAS crash at N = 200) is never built."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the d x d covariance was built")

    monkeypatch.setattr(leverage, "streamed_covariance", forbidden)
    x = np.random.default_rng(0).normal(size=(100, 20_000)).astype(np.float32)
    result = leverage_scores(x, rho=0.9)
    expected, k = _svd_reference(x.astype(np.float64), 0.9)
    assert result.k == k and result.eigenvalues.shape == (20_000,)
    np.testing.assert_allclose(result.scores, expected, atol=1e-8)
    ds = datasets.Dataset.from_dict({"r": x[:, :3000]})
    assert hf_coreset.select_coreset(ds, "scalselect", 10, embedding_columns=["r"]).num_rows == 10


def test_a_decomposition_above_the_memory_bound_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(leverage, "MAX_DECOMPOSITION_BYTES", 4 * 8 * 40**2)  # a 40 x 40 matrix at most
    x = np.random.default_rng(0).normal(size=(50, 60))
    with pytest.raises(CoresetInputError, match=r"N=50 rows of d=60 dims .* 50 x 50 float64 .* reduce='pca:K'"):
        leverage_scores(x)
    assert leverage_scores(x[:40]).k > 0  # 40 x 40: within the bound
    ds = datasets.Dataset.from_dict({"r": x.tolist()})
    with pytest.raises(CoresetInputError, match="reduce='pca:K'"):
        hf_coreset.select_coreset(ds, "scalselect", 5, embedding_columns=["r"])
    core = hf_coreset.select_coreset(ds, "scalselect", 5, embedding_columns=["r"], reduce="pca:30")
    assert get_selection_result(core).diagnostics["dim"] == 30
    with pytest.raises(CoresetInputError, match="under accelerate the d x d covariance"):
        leverage_scores(np.random.default_rng(0).normal(size=(10, 60)), reduce=lambda a: a)


def test_reduce_must_be_a_linear_projection():
    with pytest.raises(CoresetInputError, match="scalselect's reduce must be 'pca:K'"):
        ScalSelectConfig(reduce="umap:8")


def test_scores_independent_of_chunk_size_and_float32_input():
    x = np.random.default_rng(3).normal(size=(257, 9))
    whole = leverage_scores(x, chunk_size=10_000).scores
    np.testing.assert_allclose(leverage_scores(x, chunk_size=16).scores, whole, atol=1e-12)
    np.testing.assert_allclose(leverage_scores(x.astype(np.float32)).scores, whole, atol=1e-5)


def test_rank_deficient_input_ignores_null_directions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)) @ rng.normal(size=(3, 12))  # rank 3 in 12 dims
    result = leverage_scores(x, rho=1.0)
    assert result.k == 3
    expected, _ = _svd_reference(x, 1.0)
    np.testing.assert_allclose(result.scores, expected, atol=1e-8)
    assert np.isclose(result.scores.sum(), 3) and result.scores.max() <= 1 + 1e-9


def test_rho_edge_cases():
    x = np.random.default_rng(1).normal(size=(60, 6)) * np.array([10, 1, 1, 1, 1, 1])
    assert leverage_scores(x, rho=1e-9).k == 1  # tiny rho: the first direction is enough
    assert leverage_scores(x, rho=1.0).k == 6
    eigenvalues = np.array([3.0, 1.0, 0.0])
    assert energy_rank(eigenvalues, 0.75, 10) == (1, 0.75)  # exactly rho: that k suffices
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(CoresetInputError, match="rho"):
            leverage_scores(x, rho=bad)
        with pytest.raises(CoresetInputError, match="rho"):
            ScalSelectConfig(rho=bad)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(CoresetInputError, match="at least 2 rows"):
        leverage_scores(np.ones((1, 4)))
    x = np.random.default_rng(0).normal(size=(10, 3))
    x[4, 1] = np.nan
    with pytest.raises(CoresetInputError, match="row 4"):
        leverage_scores(x)
    with pytest.raises(CoresetInputError, match="identical"):
        leverage_scores(np.ones((5, 3)))
    with pytest.raises(CoresetInputError, match="together"):
        ScalSelectConfig(model=object())


def test_top_m_is_the_m_largest_with_deterministic_ties():
    scores = np.random.default_rng(0).random(1000)
    indices, picked = top_m(scores, 50)
    np.testing.assert_array_equal(indices, np.argsort(-scores, kind="stable")[:50])
    np.testing.assert_array_equal(picked, scores[indices])
    tied = np.array([0.2, 0.7, 0.7, 0.7, 0.1])
    assert top_m(tied, 2)[0].tolist() == [1, 2]
    assert top_m(tied, 5)[0].tolist() == [1, 2, 3, 0, 4]


def test_select_coreset_scalselect_on_embedding_column():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 10)) * np.linspace(4, 0.2, 10)
    ds = datasets.Dataset.from_dict({"r": x.astype(np.float32).tolist(), "id": list(range(300))})
    core = hf_coreset.select_coreset(ds, "scalselect", 0.16, embedding_columns=["r"], return_scores=True)
    result = get_selection_result(core)
    reference = leverage_scores(np.asarray(ds["r"], dtype=np.float32), rho=0.9)
    assert sorted(result.indices.tolist()) == sorted(top_m(reference.scores, 48)[0].tolist())
    assert result.diagnostics["k"] == reference.k
    assert 0 < result.diagnostics["leverage_mass"] <= 1
    again = get_selection_result(hf_coreset.select_coreset(ds, "scalselect", 0.16, embedding_columns=["r"]))
    np.testing.assert_array_equal(again.indices, result.indices)  # deterministic
    assert result.provenance["config"]["model"] is None  # provenance stays JSON-ready


def test_several_embedding_columns_are_concatenated(embedding_dataset):
    core = hf_coreset.select_coreset(embedding_dataset, "scalselect", 10, embedding_columns=["img_emb", "txt_emb"])
    both = np.concatenate([np.asarray(embedding_dataset[c], dtype=np.float32) for c in ("img_emb", "txt_emb")], 1)
    expected = top_m(leverage_scores(both).scores, 10)[0]
    np.testing.assert_array_equal(get_selection_result(core).indices, expected)


def test_config_to_dict_describes_objects_without_copying():
    class FakeModel:
        name_or_path = "tiny/llava"

    config = ScalSelectConfig(model=FakeModel(), processor=object())
    described = config.to_dict()
    assert described["model"] == "FakeModel('tiny/llava')" and described["processor"] == "object"


def test_accelerate_two_processes_select_like_one(tmp_path):
    """~50 s on 2 cores: two launches of tests/accelerate_check.py, compared. (The launcher runs as
    ``python -m accelerate.commands.launch`` so it needs no console script on PATH.)"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(root, "tests", "accelerate_check.py")
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, script, "--out", str(one), "--cache-dir", str(tmp_path / "c1")],
                   check=True, cwd=root)
    subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                    script, "--out", str(two),
                    "--cache-dir", str(tmp_path / "c2"), "--expect-processes", "2"], check=True, cwd=root)
    single, distributed = json.loads(one.read_text()), json.loads(two.read_text())
    assert distributed["diagnostics"]["processes"] == 2
    assert distributed["indices"] == single["indices"]
    np.testing.assert_allclose(distributed["scores"], single["scores"], atol=1e-10)
    assert distributed["failed_rows"] == single["failed_rows"] == {"no_image": [11]}
    # Stage A alone, gathered across the two processes: the same rows in the same order.
    np.testing.assert_allclose(distributed["representations"], single["representations"], atol=1e-6)
    assert distributed["gathered_failed_rows"] == {"no_image": [11]}
    # OST: each process scores its share of the candidates; the gathered utilities select like one process.
    assert (single["ost_processes"], distributed["ost_processes"]) == (1, 2)
    assert distributed["ost_indices"] == single["ost_indices"]
    np.testing.assert_allclose(distributed["ost_scores"], single["ost_scores"], rtol=1e-5)
    # CoresetCallback: OST selects on the main process, every process gets the same rows, and the two
    # processes' batches split the subset between them.
    first, second = distributed["trainer"]
    assert first["indices"] == second["indices"] and len(first["indices"]) == 10
    assert sorted(first["seen"] + second["seen"]) == sorted(first["indices"])
    assert len(single["trainer"]) == 1 and set(single["trainer"][0]["seen"]) <= set(single["trainer"][0]["indices"])
