"""The public API: accessor, registry, and a clear error for every kind of bad input."""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np
import pytest

import hf_coreset
from hf_coreset import (
    BadFeaturesError,
    CoresetInputError,
    MissingColumnError,
    SelectionConfig,
    Selector,
    UnknownMethodError,
    get_selection_result,
)

EMBEDDINGS = ["img_emb", "txt_emb"]


def test_dataset_accessor_matches_the_function(embedding_dataset):
    via_accessor = embedding_dataset.select_coreset(method="kcenter", budget=15, embedding_columns=EMBEDDINGS)
    via_function = hf_coreset.select_coreset(embedding_dataset, "kcenter", 15, embedding_columns=EMBEDDINGS)
    assert via_accessor["caption"] == via_function["caption"]


def test_dataset_dict_accessor_selects_per_split(embedding_dataset):
    dd = datasets.DatasetDict({"train": embedding_dataset, "test": embedding_dataset.select(range(50))})
    core = dd.select_coreset(method="random", budget=0.1)
    assert {split: core[split].num_rows for split in core} == {"train": 20, "test": 5}


def test_accessor_never_overwrites_an_existing_attribute(monkeypatch):
    from hf_coreset.integrations.datasets import install_accessors

    sentinel = object()
    monkeypatch.setattr(datasets.Dataset, "select_coreset", sentinel, raising=False)
    assert install_accessors()["Dataset"] is False
    assert datasets.Dataset.select_coreset is sentinel


def test_source_dataset_is_left_untouched(embedding_dataset):
    before = (embedding_dataset._fingerprint, embedding_dataset.info.description, embedding_dataset.num_rows)
    hf_coreset.select_coreset(embedding_dataset, "dq", 0.1, embedding_columns=EMBEDDINGS, return_scores=True)
    assert (embedding_dataset._fingerprint, embedding_dataset.info.description, embedding_dataset.num_rows) == before


def test_source_description_is_kept(embedding_dataset):
    embedding_dataset.info.description = "my pairs"
    core = hf_coreset.select_coreset(embedding_dataset, "random", 3)
    import json

    assert json.loads(core.info.description)["source_description"] == "my pairs"


def test_get_selection_result_refuses_a_plain_dataset(embedding_dataset):
    with pytest.raises(ValueError, match="carries no hf_coreset selection"):
        get_selection_result(embedding_dataset)


def test_third_party_method_registers_and_runs(embedding_dataset):
    @dataclass
    class EveryOtherConfig(SelectionConfig):
        offset: int = 0

    class EveryOther(Selector):
        needs_features = False
        score_meaning = "row parity"

        def _select(self, features, budget):
            picks = np.arange(self.config.offset, features.n_rows, 2)[:budget]
            return picks, np.ones(budget), {"offset": self.config.offset}

    hf_coreset.register_method("every_other_test", EveryOtherConfig, EveryOther)
    assert "every_other_test" in hf_coreset.available_methods()
    core = embedding_dataset.select_coreset("every_other_test", 4, offset=1)
    assert get_selection_result(core).indices.tolist() == [1, 3, 5, 7]
    with pytest.raises(ValueError, match="already registered"):
        hf_coreset.register_method("every_other_test", EveryOtherConfig, EveryOther)


# ---- bad input: each raises a clear error before any heavy work -------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"method": "nope", "budget": 5}, UnknownMethodError, r"Unknown method 'nope'. Known methods: .*dq"),
        ({"method": "random", "budget": 0}, CoresetInputError, r"budget=0 rows is out of range.*1\.\.200"),
        ({"method": "random", "budget": -3}, CoresetInputError, r"out of range"),
        ({"method": "random", "budget": 201}, CoresetInputError, r"budget=201 rows.*200 rows"),
        ({"method": "random", "budget": 1.5}, CoresetInputError, r"not a fraction in \(0, 1\]"),
        ({"method": "random", "budget": 0.0}, CoresetInputError, r"not a fraction in \(0, 1\]"),
        ({"method": "random", "budget": "10%"}, CoresetInputError, r"budget must be an int"),
        ({"method": "random", "budget": True}, CoresetInputError, r"budget must be an int"),
        ({"method": "dq", "budget": 5, "num_binz": 3}, CoresetInputError, r"Unknown option.*num_binz.*num_bins"),
        ({"method": "dq", "budget": 5, "num_bins": 0, "embedding_columns": EMBEDDINGS}, CoresetInputError,
         r"num_bins must be a positive int"),
        ({"method": "kcenter", "budget": 5, "aggregation": "max", "embedding_columns": EMBEDDINGS},
         CoresetInputError, r"aggregation must be one of"),
        ({"method": "dq", "budget": 5, "reduce": "tsne:2", "embedding_columns": EMBEDDINGS}, CoresetInputError,
         r"reduce must look like 'pca:K'"),
        ({"method": "kcenter", "budget": 5}, CoresetInputError, r"needs features: pass embedding_columns"),
        ({"method": "kcenter", "budget": 5, "embedding_columns": ["nope"]}, MissingColumnError,
         r"Column 'nope' is not in the dataset. Its columns are: \['img_emb', 'txt_emb', 'caption'\]"),
        ({"method": "kcenter", "budget": 5, "embedding_columns": "img_emb"}, CoresetInputError,
         r"must be a list of column names"),
        ({"method": "kcenter", "budget": 5, "image_column": "photo"}, MissingColumnError, r"'photo'"),
        ({"method": "kcenter", "budget": 5, "text_column": "caption"}, CoresetInputError,
         r"text_column='caption' is given but no text_encoder"),
        ({"method": "kcenter", "budget": 5, "embedding_columns": ["caption"]}, BadFeaturesError,
         r"'caption' has type string, expected one list of numbers"),
        ({"method": "random", "budget": 5, "seed": -1}, CoresetInputError, r"seed must be a non-negative int"),
    ],
)
def test_bad_input_raises_a_clear_error(embedding_dataset, kwargs, error, message):
    with pytest.raises(error, match=message):
        hf_coreset.select_coreset(embedding_dataset, **kwargs)


def test_every_input_error_is_a_value_error():
    for error in (CoresetInputError, UnknownMethodError, MissingColumnError, BadFeaturesError):
        assert issubclass(error, ValueError)


def test_empty_dataset_is_refused():
    empty = datasets.Dataset.from_dict({"emb": []})
    with pytest.raises(CoresetInputError, match="empty"):
        hf_coreset.select_coreset(empty, "random", 1)


def test_a_dataset_dict_passed_to_the_function_is_refused_with_the_fix(embedding_dataset):
    with pytest.raises(CoresetInputError, match=r"call it per split"):
        hf_coreset.select_coreset(datasets.DatasetDict({"train": embedding_dataset}), "random", 1)


@pytest.mark.parametrize(
    "vectors, message",
    [
        ([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0, 3.0], [0.0, 1.0]], r"ragged: row 2 has 3 values, row 0 has 2"),
        ([[1.0, 2.0], [1.0, float("nan")], [1.0, 2.0], [0.0, 1.0]], r"NaN or inf in row 1"),
        ([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [float("inf"), 1.0]], r"NaN or inf in row 3"),
        ([[1.0, 2.0], None, [1.0, 2.0], [0.0, 1.0]], r"no vector in row 1"),
    ],
)
def test_bad_embedding_column_names_the_first_bad_row(vectors, message):
    ds = datasets.Dataset.from_dict({"emb": vectors})
    with pytest.raises(BadFeaturesError, match=message):
        hf_coreset.select_coreset(ds, "kcenter", 2, embedding_columns=["emb"])


def test_selection_of_a_selection_refreshes_the_score_columns(embedding_dataset):
    first = hf_coreset.select_coreset(embedding_dataset, "herding", 50, embedding_columns=EMBEDDINGS,
                                      return_scores=True)
    second = hf_coreset.select_coreset(first, "kcenter", 10, embedding_columns=EMBEDDINGS, return_scores=True)
    assert sorted(second["coreset_rank"]) == list(range(10))


def test_readme_usage_reaches_the_shipped_sample_after_a_plain_import():
    import subprocess
    import sys

    code = "import hf_coreset; print(hf_coreset.data.load_default_dataset().num_rows)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("2000")


# ---- options, columns and arguments that used to slip through ---------------------------------------------


def test_no_method_option_shares_a_name_with_a_select_coreset_argument():
    import dataclasses

    from hf_coreset.api import SELECT_CORESET_ARGUMENTS

    for name in hf_coreset.available_methods():
        fields = {f.name for f in dataclasses.fields(hf_coreset.get_method(name).config_class)}
        assert fields & SELECT_CORESET_ARGUMENTS == {"seed"}, name


def test_registering_an_option_that_shadows_a_select_coreset_argument_is_refused():
    @dataclass
    class ShadowingConfig(SelectionConfig):
        batch_size: int = 32

    class Whatever(Selector):
        needs_features = False

        def _select(self, features, budget):
            return np.arange(budget), np.zeros(budget), {}

    with pytest.raises(TypeError, match=r"option\(s\) \['batch_size'\] named like argument\(s\) of select_coreset"):
        hf_coreset.register_method("shadowing_test", ShadowingConfig, Whatever)
    assert "shadowing_test" not in hf_coreset.available_methods()


def test_ost_scoring_batch_size_reaches_the_config(embedding_dataset):
    core = hf_coreset.select_coreset(embedding_dataset.select(range(40)), "ost", 8, embedding_columns=EMBEDDINGS,
                                     scoring_batch_size=7, batch_size=5, show_progress=False)
    assert get_selection_result(core).provenance["config"]["scoring_batch_size"] == 7


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"embedding_columns": ["missing"]}, MissingColumnError, r"Column 'missing' is not in the dataset"),
        ({"image_column": "photo"}, MissingColumnError, r"Column 'photo' is not in the dataset"),
        ({"text_column": "text"}, MissingColumnError, r"Column 'text' is not in the dataset"),
        ({"embedding_columns": "img_emb"}, CoresetInputError, r"must be a list of column names"),
        ({"on_error": "ignore"}, CoresetInputError, r"on_error must be one of \['report', 'raise'\], got 'ignore'"),
        ({"batch_size": 0}, CoresetInputError, r"batch_size must be a positive int, got 0"),
        ({"batch_size": -1}, CoresetInputError, r"batch_size must be a positive int, got -1"),
        ({"batch_size": 2.5}, CoresetInputError, r"batch_size must be a positive int, got 2.5"),
        ({"batch_size": "8"}, CoresetInputError, r"batch_size must be a positive int, got '8'"),
    ],
)
def test_every_named_column_and_argument_is_checked_even_without_features(embedding_dataset, kwargs, error,
                                                                          message):
    with pytest.raises(error, match=message):
        hf_coreset.select_coreset(embedding_dataset, "random", 5, **kwargs)


def test_numpy_integers_are_accepted_as_seed_and_batch_size(embedding_dataset):
    core = hf_coreset.select_coreset(embedding_dataset, "random", np.int64(5), seed=np.int64(3),
                                     batch_size=np.int32(8))
    plain = hf_coreset.select_coreset(embedding_dataset, "random", 5, seed=3)
    result = get_selection_result(core)
    assert result.indices.tolist() == get_selection_result(plain).indices.tolist()
    assert type(result.provenance["seed"]) is int and result.provenance["config"]["seed"] == 3


def test_dataset_dict_names_the_failing_split(embedding_dataset):
    dd = datasets.DatasetDict({"train": embedding_dataset, "validation": embedding_dataset.select(range(3))})
    with pytest.raises(CoresetInputError, match=r"^In split 'validation': budget=5 rows is out of range"):
        dd.select_coreset("random", 5)


@pytest.mark.parametrize("shape", [(1, 4), (2, 3)])
def test_an_array2d_embedding_column_is_flattened_per_row(shape):
    rng = np.random.default_rng(0)
    arrays = rng.normal(size=(20, *shape)).astype(np.float32)
    ds = datasets.Dataset.from_dict({"emb": arrays.tolist()},
                                    features=datasets.Features({"emb": datasets.Array2D(shape, "float32")}))
    flat = datasets.Dataset.from_dict({"emb": arrays.reshape(20, -1).tolist()})
    from hf_coreset.validation import read_embedding_column

    np.testing.assert_array_equal(read_embedding_column(ds, "emb"), arrays.reshape(20, -1))
    picked = get_selection_result(hf_coreset.select_coreset(ds, "kcenter", 5, embedding_columns=["emb"])).indices
    same = get_selection_result(hf_coreset.select_coreset(flat, "kcenter", 5, embedding_columns=["emb"])).indices
    assert picked.tolist() == same.tolist()


def test_a_ragged_nested_embedding_column_names_the_row():
    ds = datasets.Dataset.from_dict({"emb": [[[1.0, 2.0]], [[1.0, 2.0]], [[1.0], [2.0, 3.0]]]})
    with pytest.raises(BadFeaturesError, match=r"ragged: row 2 has 3 values, row 0 has 2"):
        hf_coreset.select_coreset(ds, "kcenter", 2, embedding_columns=["emb"])


def test_a_float64_value_beyond_float32_is_reported_as_overflow():
    ds = datasets.Dataset.from_dict({"emb": [[1.0, 2.0], [3.0, 1e39], [0.0, 1.0]]},
                                    features=datasets.Features({"emb": datasets.Sequence(datasets.Value("float64"))}))
    with pytest.raises(BadFeaturesError, match=r"row 1 holds 1e\+39, beyond float32's range.*overflow.*Rescale"):
        hf_coreset.select_coreset(ds, "kcenter", 2, embedding_columns=["emb"])
    nan = datasets.Dataset.from_dict({"emb": [[1.0, 2.0], [3.0, float("nan")]]})
    with pytest.raises(BadFeaturesError, match=r"NaN or inf in row 1"):
        hf_coreset.select_coreset(nan, "kcenter", 1, embedding_columns=["emb"])


def test_distill_is_reachable_after_a_plain_import():
    import subprocess
    import sys

    code = ("import hf_coreset, inspect; print(hf_coreset.distill.__name__, "
            "'num_pairs' in inspect.signature(hf_coreset.distill.distill).parameters)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["hf_coreset.distill", "True"]


def test_import_is_light_and_the_lazy_names_load_on_first_use():
    """``import hf_coreset`` does not import torch (the proxies, OST and distillation load it when used)."""
    import subprocess
    import sys

    code = ("import sys, hf_coreset; light = 'torch' not in sys.modules; "
            "hf_coreset.evaluate_coreset, hf_coreset.CoresetReport; print(light, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]
