"""Rows -> vectors: encoders applied with ``Dataset.map`` (cached by fingerprint) and multimodal aggregation.

Names are imported on first use, so ``import hf_coreset`` does not import torch or transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Encoder": "encoders",
    "TransformersImageEncoder": "encoders",
    "TransformersTextEncoder": "encoders",
    "CallableEncoder": "encoders",
    "as_encoder": "encoders",
    "encode_dataset": "encoders",
    "EncodingResult": "encoders",
    "load_offline_image_encoder": "pretrained",
    "load_offline_text_encoder": "pretrained",
    "VLMAttentionExtractor": "vlm_attention",
    "VLMExtractionResult": "vlm_attention",
    "extract_representations": "vlm_attention",
    "SUPPORTED_ARCHITECTURES": "vlm_attention",
    "tau_prefix": "vlm_attention",
    "aggregate_blocks": "aggregate",
    "reduce_dimensions": "aggregate",
    "embed_rows": "aggregate",
    "l2_normalize": "aggregate",  # re-exported from hf_coreset.vectors
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hf_coreset.features' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
