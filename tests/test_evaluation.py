"""evaluate_coreset / CoresetReport: the verdict against random, the full-pool reference, determinism, JSON,
overlap refusal, the linear probe, and the shared proxy run the retrieval benchmark uses.

Toy pairs: text = image @ MAP + noise, so a proxy can learn the alignment; half the pool's captions are
permuted (``hf_coreset.noise.add_caption_noise``), which flags them in ``is_mismatched``. Linear heads and
60-150 steps keep every evaluation to a few seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import datasets
import evaluate
import numpy as np
import pytest
import torch

import hf_coreset
from hf_coreset import CoresetInputError, CoresetReport, SelectionConfig, Selector, evaluate_coreset
from hf_coreset.evaluation import BEATS, NO_BETTER, WORSE, ProxyData, retrieval_scores, train_and_score
from hf_coreset.metrics import RETRIEVAL_RECALL_PATH
from hf_coreset.noise import add_caption_noise
from hf_coreset.proxies import train_heads

MAP = np.random.default_rng(123).normal(size=(16, 8))
COLUMNS = ["img", "txt"]
FAST = {"embedding_columns": COLUMNS, "heads": "linear", "steps": 60, "batch_size": 64, "show_progress": False}


def toy_pairs(n_rows: int, seed: int) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n_rows, 16)).astype(np.float32)
    texts = (images @ MAP + 0.5 * rng.normal(size=(n_rows, 8))).astype(np.float32)
    return datasets.Dataset.from_dict({"img": images.tolist(), "txt": texts.tolist()})


@pytest.fixture(scope="module")
def noisy_pool() -> datasets.Dataset:
    return add_caption_noise(toy_pairs(400, seed=0), 0.5, caption_columns=["txt"], seed=0)


@pytest.fixture(scope="module")
def clean_test() -> datasets.Dataset:
    return toy_pairs(150, seed=1)


# ---- the verdict ----------------------------------------------------------------------------------------------


@dataclass
class DisagreementConfig(SelectionConfig):
    pass


class MostDisagreeingPairs(Selector):
    """Picks the pairs whose text is farthest from what the image predicts: on the toy data, the mismatched ones."""

    needs_features = True
    score_meaning = "disagreement between image and text"

    def _select(self, features, budget):
        images, texts = features.blocks.values()
        predicted = images @ MAP
        cosine = (predicted * texts).sum(1) / np.linalg.norm(predicted, axis=1) / np.linalg.norm(texts, axis=1)
        picks = np.argsort(cosine)[:budget]
        return picks, -cosine[picks], {}


@pytest.mark.usefixtures("restore_registry")
def test_a_selector_picking_only_mismatched_pairs_is_worse_than_random(noisy_pool, clean_test):
    hf_coreset.register_method("most_disagreeing_test", DisagreementConfig, MostDisagreeingPairs)
    coreset = noisy_pool.select_coreset("most_disagreeing_test", 60, embedding_columns=COLUMNS)
    assert all(coreset["is_mismatched"])  # the selector did what it says

    report = evaluate_coreset(noisy_pool, coreset, test=clean_test, **{**FAST, "steps": 150})

    assert report.verdict == WORSE
    assert report.method == "most_disagreeing_test"
    assert report.mismatch_column == "is_mismatched"
    assert report.mismatched_share("coreset") == 100.0
    assert report.mismatched_share("full") == 50.0
    assert 35.0 < report.mismatched_share("random") < 65.0
    coreset_mean, random_mean = report.summary("coreset")[0], report.summary("random")[0]
    assert random_mean - coreset_mean > 2 * report.pooled_std
    assert report.summary("full")[0] > random_mean
    assert "is **worse than random**" in report.to_markdown()


def test_the_full_pool_evaluated_as_a_coreset_sits_at_the_full_pool_number(noisy_pool, clean_test):
    everything = noisy_pool.select_coreset("random", 1.0, seed=4)  # every row, in a shuffled pick order

    report = evaluate_coreset(noisy_pool, everything, test=clean_test, **FAST)

    assert report.coreset_rows == report.pool_rows == 400
    assert report.summary("coreset") == report.summary("full") == report.summary("random")
    assert report.margin == 0.0
    assert report.verdict == NO_BETTER


@pytest.mark.parametrize(
    "coreset, random, verdict",
    [
        ([10.0, 11.0, 12.0], [7.0, 8.0, 9.0], BEATS),      # margin 3 > 2 * sqrt(1 + 1) = 2.83
        ([9.5, 10.5, 11.5], [7.0, 8.0, 9.0], NO_BETTER),   # margin 2.5 < 2.83
        ([4.0, 5.0, 6.0], [7.0, 8.0, 9.0], WORSE),         # margin -3
        ([8.0, 8.0, 8.0], [7.9, 8.0, 8.1], NO_BETTER),     # margin 0
    ],
)
def test_verdict_is_the_margin_against_two_pooled_sample_stds(coreset, random, verdict):
    def runs(values):
        return [{"seed": s, "rows": 10, "r_mean": v} for s, v in enumerate(values)]

    report = CoresetReport("dual_encoder", "r_mean", {"coreset": runs(coreset), "random": runs(random)})

    assert report.pooled_std == pytest.approx(np.hypot(np.std(coreset, ddof=1), np.std(random, ddof=1)))
    assert report.margin == pytest.approx(np.mean(coreset) - np.mean(random))
    assert report.verdict == verdict


def test_one_seed_gives_no_verdict(noisy_pool, clean_test):
    report = evaluate_coreset(noisy_pool, np.arange(50), test=clean_test, seeds=(0,), **FAST)
    assert report.verdict.startswith("undecided")
    assert "undecided" in report.to_markdown()


# ---- determinism and serialisation ----------------------------------------------------------------------------


def _without_timings(report: CoresetReport) -> dict:
    return {arm: [{k: v for k, v in r.items() if k != "train_s"} for r in records]
            for arm, records in report.runs.items()}


def test_same_seeds_give_identical_numbers(noisy_pool, clean_test):
    rows = np.arange(0, 400, 5)
    first = evaluate_coreset(noisy_pool, rows, test=clean_test, seeds=(0, 1), **FAST)
    second = evaluate_coreset(noisy_pool, rows, test=clean_test, seeds=(0, 1), **FAST)
    other = evaluate_coreset(noisy_pool, rows, test=clean_test, seeds=(2, 3), **FAST)

    assert _without_timings(first) == _without_timings(second)
    assert _without_timings(first) != _without_timings(other)


def test_report_round_trips_through_json_and_saves_md_json_png(noisy_pool, clean_test, tmp_path):
    report = evaluate_coreset(noisy_pool, np.arange(40), test=clean_test, **FAST)

    again = CoresetReport.from_json(report.to_json())
    assert again == report
    assert again.verdict == report.verdict and again.to_markdown() == report.to_markdown()

    folder = report.save(tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == ["report.json", "report.md", "report.png"]
    saved = json.loads((folder / "report.json").read_text())
    assert saved["derived"]["verdict"] == report.verdict
    assert saved["derived"]["summary"]["random"]["mean"] == pytest.approx(report.summary("random")[0])
    assert CoresetReport.from_dict(saved) == report
    assert (folder / "report.png").read_bytes().startswith(b"\x89PNG")
    assert (folder / "report.md").read_text() == report.to_markdown()
    png = report.plot(tmp_path / "figures" / "bars.png")  # a folder that does not exist yet is created
    assert (tmp_path / "figures" / "bars.png").read_bytes() == png and png.startswith(b"\x89PNG")
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["bars.png"]  # no temporary file left


def test_an_interrupted_save_leaves_every_earlier_file_whole(noisy_pool, clean_test, tmp_path, monkeypatch):
    report = evaluate_coreset(noisy_pool, np.arange(40), test=clean_test, **FAST)
    folder = report.save(tmp_path / "out")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real_write, calls = Path.write_bytes, []

    def interrupted_in_the_second_file(path, data):
        calls.append(path)
        if len(calls) == 2:  # half of the bytes reach the disk, then the process is interrupted
            real_write(path, data[: len(data) // 2])
            raise KeyboardInterrupt
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", interrupted_in_the_second_file)
    other = evaluate_coreset(noisy_pool, np.arange(20), test=clean_test, **FAST)
    with pytest.raises(KeyboardInterrupt):
        other.save(folder)
    # Each file is the old one or the new one, whole: never a truncated mix.
    for name, old in before.items():
        now = (folder / name).read_bytes()
        assert now == old or now == other.files()[name]
    assert CoresetReport.from_json((folder / "report.json").read_text()) in (report, other)


def test_from_dict_refuses_another_record():
    with pytest.raises(ValueError, match="Not a hf_coreset.CoresetReport/1 record"):
        CoresetReport.from_dict({"indices": [1, 2]})


# ---- the test set must be unseen ------------------------------------------------------------------------------


def test_the_pool_itself_as_test_set_is_refused(noisy_pool):
    with pytest.raises(CoresetInputError, match="test is the pool itself.*train_test_split"):
        evaluate_coreset(noisy_pool, np.arange(40), test=noisy_pool, **FAST)


def test_a_test_set_sharing_rows_with_the_pool_is_refused():
    data = toy_pairs(300, seed=2).add_column("id", [f"row-{i}" for i in range(300)])
    pool, test = data.select(range(0, 200)), data.select(range(180, 300))  # rows 180..199 in both

    with pytest.raises(CoresetInputError, match=r"20 test row\(s\) have the same features as a pool row"):
        evaluate_coreset(pool, np.arange(40), test=test, **FAST)
    with pytest.raises(CoresetInputError, match=r"20 id value\(s\) are in both pool and test"):
        evaluate_coreset(pool, np.arange(40), test=test, id_column="id", **FAST)

    report = evaluate_coreset(pool, np.arange(40), test=test, duplicates="drop", **FAST)
    assert report.test_rows == 100
    assert "20 test row(s) identical to pool rows were left out" in report.notes[0]
    assert "Note: 20 test row(s)" in report.to_markdown()


def test_a_proper_split_is_accepted():
    split = toy_pairs(300, seed=3).train_test_split(test_size=0.25, seed=0)
    report = evaluate_coreset(split["train"], np.arange(30), test=split["test"], seeds=(0, 1), **FAST)
    assert (report.pool_rows, report.test_rows) == (225, 75)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"proxy": "svm"}, r"Unknown proxy 'svm'; the proxies are \['dual_encoder', 'linear_probe'\]"),
        ({"proxy": "linear_probe"}, "pass label_column"),
        ({"baselines": ("random", "everything")}, r"each of baselines must be one of \['random', 'full'\]"),
        ({"seeds": ()}, "seeds must be distinct and at least one"),
        ({"seeds": (1, 1)}, "seeds must be distinct"),
        ({"steps": 0}, "steps must be a positive int"),
        ({"embedding_columns": ["img"]}, "dual_encoder proxy needs two feature blocks"),
        ({"embedding_columns": None}, "evaluate_coreset needs features"),
        ({"mismatch_column": "flag"}, "Column 'flag' is not in the dataset"),
    ],
)
def test_bad_options_are_refused(noisy_pool, clean_test, kwargs, message):
    with pytest.raises(CoresetInputError, match=message):
        evaluate_coreset(noisy_pool, np.arange(40), test=clean_test, **{**FAST, **kwargs})


def test_a_coreset_of_another_dataset_is_refused(noisy_pool, clean_test):
    other = toy_pairs(100, seed=5).select_coreset("random", 10)
    with pytest.raises(CoresetInputError, match="selected from a dataset of 100 rows, but pool has 400"):
        evaluate_coreset(noisy_pool, other, test=clean_test, **FAST)
    with pytest.raises(CoresetInputError, match="carries no hf_coreset selection"):
        evaluate_coreset(noisy_pool, clean_test, test=clean_test, **FAST)
    with pytest.raises(CoresetInputError, match=r"must be in 0\.\.399"):
        evaluate_coreset(noisy_pool, [3, 400], test=clean_test, **FAST)


# ---- linear probe ---------------------------------------------------------------------------------------------


def labelled_blobs(n_rows: int, seed: int) -> datasets.Dataset:
    """Three Gaussian classes in 6-d (plus a 3-d second block), labelled by name."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(scale=3.0, size=(3, 6))
    classes = rng.integers(3, size=n_rows)
    first = centres[classes] + rng.normal(size=(n_rows, 6))
    second = rng.normal(size=(n_rows, 3))
    names = np.array(["cat", "dog", "fox"])[classes]
    return datasets.Dataset.from_dict({"a": first.tolist(), "b": second.tolist(), "label": names.tolist()})


def test_linear_probe_on_a_labelled_toy_set():
    pool, test = labelled_blobs(300, seed=0), labelled_blobs(120, seed=1)
    one_class = np.flatnonzero(np.asarray(pool["label"]) == "cat")[:30]
    options = {"embedding_columns": ["a", "b"], "label_column": "label", "proxy": "linear_probe", "steps": 100,
               "show_progress": False}

    report = evaluate_coreset(pool, one_class, test=test, **options)

    assert (report.proxy, report.metric, report.heads) == ("linear_probe", "accuracy", None)
    cat_share = 100 * np.mean(np.asarray(test["label"]) == "cat")
    assert report.summary("coreset")[0] == pytest.approx(cat_share)  # predicts "cat" for every test row
    assert report.summary("full")[0] > 90.0
    assert report.summary("random")[0] > 80.0
    assert report.verdict == WORSE
    assert "accuracy (mean ± std)" in report.to_markdown()


# ---- encoders instead of embedding columns --------------------------------------------------------------------


def test_image_and_text_columns_with_encoders():
    from PIL import Image

    from hf_coreset.features import CallableEncoder

    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(160, 3))
    data = datasets.Dataset.from_dict({
        "image": [Image.new("RGB", (4, 4), tuple(int(c) for c in rgb)) for rgb in colours],
        "caption": [f"{r} {g} {b}" for r, g, b in colours],
    })
    split = data.train_test_split(test_size=40, seed=0)
    image_encoder = CallableEncoder(lambda ims: [np.asarray(im, dtype=np.float32).mean((0, 1)) / 255 for im in ims],
                                    "image", name="mean-rgb")
    text_encoder = CallableEncoder(lambda texts: [[float(v) / 255 for v in t.split()] for t in texts], "text",
                                   name="numbers")

    report = evaluate_coreset(split["train"], np.arange(30), test=split["test"], image_column="image",
                              text_column="caption", image_encoder=image_encoder, text_encoder=text_encoder,
                              heads="linear", steps=20, seeds=(0, 1), show_progress=False)

    assert report.test_rows == 40 and report.coreset_rows == 30


# ---- the shared proxy run -------------------------------------------------------------------------------------


def test_train_and_score_is_train_heads_plus_the_evaluate_recall_module():
    rng = np.random.default_rng(0)
    pool = ProxyData({"image": rng.normal(size=(80, 16)), "text": rng.normal(size=(80, 8))})
    test = ProxyData({"image": rng.normal(size=(30, 16)), "text": rng.normal(size=(30, 8))}, labels=np.arange(30))
    rows = np.arange(0, 80, 2)

    scores = train_and_score("dual_encoder", pool, rows, test, steps=15, seed=3, heads="mlp")

    model = train_heads(pool.blocks["image"][rows], pool.blocks["text"][rows], steps=15, seed=3)
    with torch.no_grad():
        image_out, text_out = model.eval()(torch.as_tensor(test.blocks["image"]), torch.as_tensor(test.blocks["text"]))
    reference = evaluate.load(RETRIEVAL_RECALL_PATH).compute(
        image_embeddings=image_out.numpy(), text_embeddings=text_out.numpy(), labels=test.labels)
    assert {k: v for k, v in scores.items() if k != "train_s"} == reference
    assert retrieval_scores(model, test) == reference


def test_train_and_score_restores_torch_threads():
    before = torch.get_num_threads()
    pool = ProxyData({"image": np.eye(4), "text": np.eye(4)})
    train_and_score("dual_encoder", pool, np.arange(4), pool, steps=1, heads="linear", num_threads=1)
    assert torch.get_num_threads() == before
