"""select_coreset end to end through the feature stage: encoders, caching, unreadable images."""

from __future__ import annotations

import io

import datasets
import numpy as np
import pytest
from PIL import Image

import hf_coreset
from hf_coreset import UnreadableImageError, get_selection_result
from hf_coreset.features import CallableEncoder


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _pairs(n_rows: int = 60, broken_rows: tuple[int, ...] = ()):
    images = [{"bytes": b"not an image" if i in broken_rows else _png(i), "path": None} for i in range(n_rows)]
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")})
    return datasets.Dataset.from_dict({"image": images, "caption": [f"a drawing {i}" for i in range(n_rows)]},
                                      features=features)


class CountingEncoders:
    """An image encoder (mean colour + colour spread) and a text encoder (character statistics) that count
    how many rows they were asked to encode."""

    def __init__(self):
        self.image_rows = 0
        self.text_rows = 0
        self.image = CallableEncoder(self._encode_images, "image", name="test-mean-colour")
        self.text = CallableEncoder(self._encode_texts, "text", name="test-char-stats")

    def _encode_images(self, images):
        self.image_rows += len(images)
        arrays = [np.asarray(image, dtype=np.float32) for image in images]
        return np.stack([np.concatenate([a.mean(axis=(0, 1)), a.std(axis=(0, 1))]) for a in arrays])

    def _encode_texts(self, texts):
        self.text_rows += len(texts)
        return np.array([[len(t), sum(map(ord, t)) % 97, t.count("1")] for t in texts], dtype=np.float32)


def _select(dataset, encoders, cache_dir, **kwargs):
    return hf_coreset.select_coreset(
        dataset, kwargs.pop("method", "dq"), kwargs.pop("budget", 0.2), image_column="image",
        text_column="caption", image_encoder=encoders.image, text_encoder=encoders.text,
        cache_dir=str(cache_dir), show_progress=False, **kwargs,
    )


def test_second_selection_does_not_run_the_encoders_again(tmp_path):
    encoders = CountingEncoders()
    first = _select(_pairs(), encoders, tmp_path)
    assert (encoders.image_rows, encoders.text_rows) == (60, 60)
    # A fresh Dataset object with the same content, another method: features come from the cache.
    second = _select(_pairs(), encoders, tmp_path, method="kcenter")
    assert (encoders.image_rows, encoders.text_rows) == (60, 60)
    third = _select(_pairs(), encoders, tmp_path)
    assert get_selection_result(third).indices.tolist() == get_selection_result(first).indices.tolist()
    assert second.num_rows == 12


def test_unreadable_images_are_dropped_and_reported(tmp_path):
    encoders = CountingEncoders()
    core = _select(_pairs(broken_rows=(4, 9)), encoders, tmp_path, method="kcenter", budget=58)
    result = get_selection_result(core)
    assert result.provenance["rows_dropped"] == {"unreadable_image": {"count": 2, "rows": [4, 9]}}
    assert result.provenance["rows_in"] == 60 and result.provenance["rows_out"] == 58
    assert not {4, 9} & set(result.indices.tolist())


def test_budget_larger_than_the_readable_rows_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match=r"only 58 rows are usable after dropping 2 \(unreadable_image\)"):
        _select(_pairs(broken_rows=(4, 9)), CountingEncoders(), tmp_path, method="herding", budget=59)


def test_on_error_raise_names_the_row(tmp_path):
    with pytest.raises(UnreadableImageError, match="row 9"):
        _select(_pairs(broken_rows=(9,)), CountingEncoders(), tmp_path, on_error="raise")


def test_random_needs_no_encoding(tmp_path):
    encoders = CountingEncoders()
    core = _select(_pairs(), encoders, tmp_path, method="random", budget=5)
    assert core.num_rows == 5 and encoders.image_rows == 0
