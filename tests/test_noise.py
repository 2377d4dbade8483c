"""Caption-noise injection for the noisy-correspondence protocol."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from hf_coreset.noise import add_caption_noise, caption_permutation


@pytest.mark.parametrize("n_rows, fraction", [(1000, 0.0), (1000, 0.2), (1000, 0.5), (999, 0.5), (10, 1.0)])
def test_the_right_fraction_is_permuted_and_none_keeps_its_caption(n_rows, fraction):
    source = caption_permutation(n_rows, fraction, seed=3)
    moved = source != np.arange(n_rows)
    assert moved.sum() == round(fraction * n_rows)
    # A permutation: every caption is used exactly once; the moved rows only swap among themselves.
    assert sorted(source.tolist()) == list(range(n_rows))
    assert set(source[moved].tolist()) == set(np.flatnonzero(moved).tolist())


def test_seeds_choose_different_rows_and_are_reproducible():
    a, b = caption_permutation(500, 0.2, seed=0), caption_permutation(500, 0.2, seed=1)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, caption_permutation(500, 0.2, seed=0))


def test_bad_fraction_is_refused():
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        caption_permutation(10, 1.5)


def test_add_caption_noise_moves_caption_columns_together_and_flags_rows():
    ds = datasets.Dataset.from_dict({"image_id": list(range(20)), "caption": [f"c{i}" for i in range(20)],
                                     "text_emb": [[float(i)] for i in range(20)]})
    noisy = add_caption_noise(ds, 0.5, caption_columns=["caption", "text_emb"], seed=0)
    assert noisy["image_id"] == list(range(20))
    mismatched = [c != f"c{i}" for i, c in enumerate(noisy["caption"])]
    assert noisy["is_mismatched"] == mismatched and sum(mismatched) == 10
    # The embedding moved with its caption.
    assert all(f"c{int(e[0])}" == c for e, c in zip(noisy["text_emb"], noisy["caption"]))
