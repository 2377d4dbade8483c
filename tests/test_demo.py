"""The demo's quality table on toy data: one row per method with its verdict, the two baselines, skipped methods.

(The real `make demo` encodes the shipped sample with the offline encoders: minutes, so it is measured by hand
and pasted in the README, not run here.)
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np
import pytest

from hf_coreset import CoresetInputError, SelectionConfig, Selector, register_method
from hf_coreset.demo import EMBEDDING_COLUMNS, compare_methods, print_table


def toy_split():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(200, 12)).astype(np.float32)
    texts = (images[:, :6] + 0.3 * rng.normal(size=(200, 6))).astype(np.float32)
    pairs = datasets.Dataset.from_dict({EMBEDDING_COLUMNS[0]: images.tolist(), EMBEDDING_COLUMNS[1]: texts.tolist()})
    split = pairs.train_test_split(test_size=0.25, seed=0)
    return split["train"], split["test"]


@dataclass
class NeedsModelConfig(SelectionConfig):
    pass


class NeedsModel(Selector):
    needs_features = True

    def _select(self, features, budget):
        raise CoresetInputError("this method needs model=... (a VLM)")


@pytest.mark.usefixtures("restore_registry")
def test_compare_methods_judges_each_method_against_shared_baselines(capsys):
    register_method("needs_model_test", NeedsModelConfig, NeedsModel)
    pool, test = toy_split()

    rows = compare_methods(pool, test, 0.1, ["kcenter", "random", "needs_model_test"], steps=20, heads="linear",
                           seeds=(0, 1), show_progress=False)

    by_method = {row["method"]: row for row in rows}
    assert list(by_method) == ["kcenter", "random", "random subsets", "full pool", "needs_model_test"]
    for method in ("kcenter", "random"):
        row = by_method[method]
        assert row["rows"] == 15
        assert row["verdict"] in ("beats random", "no better than random", "worse than random")
        assert row["coverage"] > 0 and row["time_s"] >= 0
        assert abs(row["margin"]) == pytest.approx(abs(row["r_mean"][0] - by_method["random subsets"]["r_mean"][0]))
    assert by_method["full pool"]["rows"] == 150
    assert "needs model=" in by_method["needs_model_test"]["skipped"]

    print_table(rows, budget=0.1, steps=20, heads="linear", seeds=(0, 1), test_rows=50)
    printed = capsys.readouterr().out
    assert "| kcenter | 15 |" in printed and "| *full pool* | 150 |" in printed
    assert "needs_model_test: skipped (this method needs model=... (a VLM))" in printed
    assert "linear heads for 20 steps" in printed
