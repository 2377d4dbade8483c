"""MDW: dual-track clean probability, its map / filter transforms, distillation and the distilled dataset."""

from __future__ import annotations

import doctest
import importlib

import datasets
import numpy as np
import pytest
import torch
from datasets.fingerprint import Hasher
from sklearn.metrics import roc_auc_score
from torch import nn

from hf_coreset import BadFeaturesError, CoresetInputError, MissingColumnError, UnknownMethodError
from hf_coreset.distill import (
    CleanProbability,
    KeepLikelyClean,
    distill,
    drop_mismatched,
    estimate_clean_probability,
    get_distillation_result,
    rebuild_correspondence,
    train_on_distilled,
)
from hf_coreset.distill.mdw import distill as mdw_distill
from hf_coreset.distill.mdw.config import MDWConfig
from hf_coreset.distill.mdw.gradcam import emphasis_weights, grad_cam_maps
from hf_coreset.distill.mdw.low_rank import LowRankCorrespondence
from hf_coreset.distill.mdw.proxy import PixelDualEncoder
from hf_coreset.noise import add_caption_noise
from hf_coreset.proxies import info_nce

FAST = {"proxy_epochs": 4, "show_progress": False}  # estimate options small enough for a unit test


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models on 2 shared cores: a second thread only adds synchronisation (10x slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clustered_pairs(n_rows: int = 300, n_topics: int = 10, seed: int = 0) -> datasets.Dataset:
    """Image and text vectors that share a topic (plus private noise), like real pairs sharing content."""
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, n_topics, n_rows)
    image_centres, text_centres = rng.normal(size=(n_topics, 24)), rng.normal(size=(n_topics, 12))
    return datasets.Dataset.from_dict({
        "img": (image_centres[topics] + 0.6 * rng.normal(size=(n_rows, 24))).astype(np.float32),
        "txt": (text_centres[topics] + 0.6 * rng.normal(size=(n_rows, 12))).astype(np.float32),
    })


@pytest.fixture(scope="module")
def noisy_pairs():
    datasets.disable_progress_bars()
    return add_caption_noise(clustered_pairs(), 0.3, caption_columns=["txt"], seed=0)


@pytest.fixture(scope="module")
def noisy_probability(noisy_pairs):
    return estimate_clean_probability(noisy_pairs, "img", "txt", **FAST)


@pytest.fixture(scope="module")
def distilled(noisy_pairs):
    return distill(noisy_pairs, "mdw", num_pairs=24, image_column="img", text_column="txt", seed=0,
                   show_progress=False, proxy_epochs=4, iterations=40, synthetic_steps=4, rank=3,
                   lr_features=0.01, lr_text=0.01)


# ----- dual-track clean probability -----------------------------------------------------------------------------


def test_clean_probability_separates_matched_from_mismatched(noisy_pairs, noisy_probability):
    mismatched = np.asarray(noisy_pairs["is_mismatched"])
    # Measured 0.92 (seeds 0, 1, 2); 13 of the 90 swaps stay within a topic and cannot be told from the vectors.
    assert roc_auc_score(~mismatched, noisy_probability) > 0.85
    assert noisy_probability[~mismatched].mean() > noisy_probability[mismatched].mean() + 0.3


def test_same_seed_same_probabilities_other_seed_other(noisy_pairs, noisy_probability):
    again = estimate_clean_probability(noisy_pairs, "img", "txt", **FAST)
    np.testing.assert_array_equal(again, noisy_probability)
    other = estimate_clean_probability(noisy_pairs, "img", "txt", seed=1, **FAST)
    assert not np.array_equal(other, noisy_probability)


def test_map_transform_adds_the_column_with_a_stable_fingerprint(noisy_pairs, noisy_probability, tmp_path):
    noisy_pairs.save_to_disk(tmp_path / "pool")
    on_disk = datasets.load_from_disk(tmp_path / "pool")  # on disk, so that map writes (and reuses) a cache file
    transform = CleanProbability.fit(on_disk, "img", "txt", **FAST)
    refitted = CleanProbability.fit(on_disk, "img", "txt", **FAST)
    assert Hasher.hash(transform) == Hasher.hash(refitted) and transform == refitted

    scored = on_disk.map(transform, with_indices=True, batched=True)
    again = on_disk.map(refitted, with_indices=True, batched=True)
    np.testing.assert_allclose(scored["clean_probability"], noisy_probability)
    assert scored._fingerprint == again._fingerprint
    assert scored.cache_files == again.cache_files  # the second map was a cache hit
    other_seed = CleanProbability.fit(on_disk, "img", "txt", seed=1, **FAST)
    assert on_disk.map(other_seed, with_indices=True, batched=True)._fingerprint != scored._fingerprint


def test_filter_keeps_exactly_the_rows_at_or_above_the_threshold():
    ds = datasets.Dataset.from_dict({"row": list(range(5))})
    scored = ds.map(CleanProbability([0.9, 0.1, 0.5, 0.49, 1.0]), with_indices=True, batched=True)
    assert list(scored.filter(KeepLikelyClean(0.5), batched=True)["row"]) == [0, 2, 4]
    assert list(scored.filter(KeepLikelyClean(0.95))["row"]) == [4]  # not batched: one value at a time


def test_drop_mismatched_removes_most_mismatched_pairs(noisy_pairs):
    kept = drop_mismatched(noisy_pairs, "img", "txt", threshold=0.5, **FAST)
    assert 0 < kept.num_rows < noisy_pairs.num_rows
    assert min(kept["clean_probability"]) >= 0.5
    assert np.mean(kept["is_mismatched"]) < 0.5 * np.mean(noisy_pairs["is_mismatched"])  # measured 7 % vs 30 %


def test_transform_refuses_rows_it_was_not_fitted_on():
    with pytest.raises(CoresetInputError, match="beyond the 2 rows"):
        datasets.Dataset.from_dict({"x": [1, 2, 3]}).map(CleanProbability([0.1, 0.2]), with_indices=True,
                                                         batched=True)


# ----- distillation ---------------------------------------------------------------------------------------------


def test_distillation_objective_decreases(distilled):
    objective = np.asarray(get_distillation_result(distilled).objective)
    assert len(objective) == 40 and np.isfinite(objective).all()
    # The start checkpoint is drawn at random every iteration, so compare the first and last ten iterations
    # (measured: 0.86 -> 0.77).
    assert objective[-10:].mean() < 0.95 * objective[:10].mean()


def test_distilled_set_starts_from_pairs_deemed_clean(noisy_pairs, distilled):
    rows = np.asarray(distilled["source_row"])
    assert len(set(rows.tolist())) == 24
    assert np.asarray(noisy_pairs["is_mismatched"])[rows].mean() < 0.1  # the pool has 30 %


def test_distilled_set_round_trips_and_rebuilds_p(distilled, tmp_path):
    distilled.save_to_disk(tmp_path / "small")
    loaded = datasets.load_from_disk(tmp_path / "small")
    assert loaded.column_names == ["image_features", "text_embedding", "correspondence_diag",
                                   "correspondence_left", "correspondence_right", "source_row"]
    for column in loaded.column_names:
        np.testing.assert_array_equal(np.asarray(loaded[column]), np.asarray(distilled[column]))
    result = get_distillation_result(loaded)
    assert result.to_dict() == get_distillation_result(distilled).to_dict()
    assert result.provenance["config"]["rank"] == 3 and result.student_lr > 0

    matrix = rebuild_correspondence(loaded["correspondence_diag"], loaded["correspondence_left"],
                                    loaded["correspondence_right"])
    left, right = np.asarray(loaded["correspondence_left"]), np.asarray(loaded["correspondence_right"])
    assert matrix.shape == (24, 24)
    np.testing.assert_allclose(np.diag(matrix), np.asarray(loaded["correspondence_diag"]) + (left * right).sum(1),
                               rtol=1e-5)
    assert np.abs(right).max() > 0  # P's low-rank part was learned (it starts at zero)


def test_train_on_distilled_learns_retrieval(noisy_pairs, distilled):
    model = train_on_distilled(distilled, steps=60, kind="mlp")
    clean = noisy_pairs.filter(lambda row: not row["is_mismatched"])
    with torch.no_grad():
        image_out, text_out = model(torch.tensor(np.asarray(clean["img"], dtype=np.float32)),
                                    torch.tensor(np.asarray(clean["txt"], dtype=np.float32)))
    similarity = (image_out @ text_out.T).numpy()
    # Topic-level retrieval on the real clean pairs: a matched text beats a random one most of the time.
    rng = np.random.default_rng(0)
    random_texts = rng.integers(0, len(similarity), len(similarity))
    assert (np.diag(similarity) > similarity[np.arange(len(similarity)), random_texts]).mean() > 0.75


def test_p_targets_start_near_identity_and_info_nce_default_is_unchanged():
    correspondence = LowRankCorrespondence(6, rank=2, diag_init=10.0)
    image_to_text, text_to_image = correspondence.targets()
    assert image_to_text.diagonal().min() > 0.99 and torch.allclose(image_to_text.sum(1), torch.ones(6))
    assert torch.allclose(text_to_image.sum(1), torch.ones(6))
    image_out, text_out = torch.randn(6, 4), torch.randn(6, 4)
    log_scale = torch.tensor(2.0)
    assert torch.allclose(info_nce(image_out, text_out, log_scale, targets=torch.eye(6)),
                          info_nce(image_out, text_out, log_scale))


# ----- pixel space ----------------------------------------------------------------------------------------------


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))


def test_pixel_space_distils_images_with_a_tiny_cnn():
    rng = np.random.default_rng(0)
    colours = rng.uniform(size=(8, 3, 1, 1))
    pixels = (colours + 0.1 * rng.normal(size=(8, 3, 16, 16))).astype(np.float32)
    ds = datasets.Dataset.from_dict({"pixels": pixels, "txt": (colours[:, :, 0, 0] @ rng.normal(size=(3, 6)))})
    small = distill(ds, "mdw", num_pairs=4, space="pixels", image_column="pixels", text_column="txt",
                    image_network=tiny_cnn, show_progress=False, proxy_epochs=3, heads="linear", iterations=3,
                    synthetic_steps=2, lr_pixels=0.05)
    images = np.asarray(small.with_format("numpy")["pixel_values"])
    assert images.shape == (4, 3, 16, 16)
    assert not np.allclose(images, pixels[np.asarray(small["source_row"])])  # the images were optimised
    assert len(get_distillation_result(small).objective) == 3
    model = train_on_distilled(small, steps=2, kind="linear", image_network=tiny_cnn)
    texts = torch.tensor(np.asarray(small["text_embedding"], dtype=np.float32))
    assert model(torch.tensor(images), texts)[0].shape == (4, 256)


def test_grad_cam_map_marks_the_regions_that_carry_the_match():
    # Feature map: channel 0 = the image's brightness, channel 1 = a constant 0.1. Only the left half of each
    # image has content. The matched text points along channel 0, so brightness is what supports the match:
    # the map must be positive on the bright left half and zero on the empty right half.
    images = torch.zeros(2, 3, 8, 8)
    images[:, :, :, :4] = torch.rand(2, 3, 8, 4) + 0.5
    network = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    model = PixelDualEncoder(network, (3, 8, 8), text_dim=2, kind="linear")
    with torch.no_grad():
        network[0].weight.zero_()
        network[0].weight[0] = 1.0
        network[0].bias.copy_(torch.tensor([0.0, 0.1]))
        for head in (model.image[2], model.text):  # both heads: the first two output dims copy the input
            head.weight.zero_()
            head.bias.zero_()
            head.weight[0, 0] = head.weight[1, 1] = 1.0
    texts = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    maps = grad_cam_maps(model, images, texts, torch.eye(2), top_k=1)
    assert torch.all(maps[:, :, 4:] == 0)
    assert maps[:, :, :4].min() > 0 and torch.allclose(maps.flatten(1).max(1).values, torch.ones(2))
    weights = emphasis_weights(maps, floor=0.2)
    assert weights.shape == (2, 1, 8, 8)
    assert torch.all(weights[:, :, :, 4:] == 0.2) and weights[:, :, :, :4].min() > 0.2


def test_emphasis_scales_each_synthetic_image_gradient_by_its_map():
    config = MDWConfig(proxy_epochs=2, expert_epochs=1, cam_floor=0.25)
    images, texts = torch.rand(4, 3, 8, 8), torch.rand(4, 5)
    synthetic = mdw_distill.init_synthetic(images, texts, np.arange(4), config)
    scorer = PixelDualEncoder(tiny_cnn(), (3, 8, 8), text_dim=5, kind="linear")
    synthetic.images.grad = torch.ones_like(synthetic.images)
    mdw_distill._emphasise_correspondence(synthetic, scorer, config)
    maps = grad_cam_maps(scorer, images, texts, synthetic.correspondence.targets()[0], config.cam_top_k)
    expected = (0.25 + 0.75 * maps)[:, None].expand(-1, 3, -1, -1)
    torch.testing.assert_close(synthetic.images.grad, expected)
    assert synthetic.images.grad.min() >= 0.25 - 1e-6 and synthetic.images.grad.max() <= 1 + 1e-6


# ----- bad input ------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_the_projects_errors_with_the_fix(noisy_pairs):
    run = {"image_column": "img", "text_column": "txt", "show_progress": False}
    with pytest.raises(MissingColumnError, match="'nope' is not in the dataset"):
        distill(noisy_pairs, "mdw", 10, image_column="nope", text_column="txt")
    with pytest.raises(CoresetInputError, match=r"num_pairs=1000 is out of range: pass an int in 2\.\.300"):
        distill(noisy_pairs, "mdw", 1000, **run)
    with pytest.raises(CoresetInputError, match="0 rows"):
        distill(noisy_pairs.select([]), "mdw", 2, **run)
    with pytest.raises(UnknownMethodError, match="Known: mdw"):
        distill(noisy_pairs, "lors", 10, **run)
    with pytest.raises(CoresetInputError, match=r"Unknown option\(s\) \['epochs'\]"):
        distill(noisy_pairs, "mdw", 10, epochs=3, **run)
    with pytest.raises(CoresetInputError, match="needs image_network"):
        distill(noisy_pairs, "mdw", 10, space="pixels", **run)
    with pytest.raises(CoresetInputError, match="space must be one of"):
        estimate_clean_probability(noisy_pairs, "img", "txt", space="voxels")
    with pytest.raises(CoresetInputError, match="expert_epochs=5 exceeds proxy_epochs=3"):
        MDWConfig(proxy_epochs=3, expert_epochs=5)

    with_nan = noisy_pairs.map(lambda row, i: {"img": [float("nan")] * 24} if i == 7 else {}, with_indices=True)
    with pytest.raises(BadFeaturesError, match="NaN or inf in row 7"):
        estimate_clean_probability(with_nan, "img", "txt", **FAST)
    with_text = noisy_pairs.add_column("caption", ["a drawing"] * noisy_pairs.num_rows)
    with pytest.raises(BadFeaturesError, match="'caption' has type"):
        distill(with_text, "mdw", 10, image_column="img", text_column="caption", show_progress=False)


@pytest.mark.parametrize("name", ["hf_coreset.distill", "hf_coreset.distill.mdw.correspondence",
                                  "hf_coreset.distill.mdw.low_rank", "hf_coreset.distill.mdw.gradcam",
                                  "hf_coreset.distill.mdw.distill"])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
