"""Shared fixtures: small, deterministic multimodal datasets with precomputed embeddings."""

from __future__ import annotations

import datasets
import numpy as np
import pytest


def make_embedding_dataset(n_rows: int = 200, image_dim: int = 12, text_dim: int = 6, seed: int = 0):
    """Rows with an image-embedding and a text-embedding column and a caption, from a seeded RNG."""
    rng = np.random.default_rng(seed)
    return datasets.Dataset.from_dict(
        {
            "img_emb": rng.normal(size=(n_rows, image_dim)).astype(np.float32).tolist(),
            "txt_emb": rng.normal(size=(n_rows, text_dim)).astype(np.float32).tolist(),
            "caption": [f"caption {i}" for i in range(n_rows)],
        }
    )


@pytest.fixture
def embedding_dataset():
    return make_embedding_dataset()


@pytest.fixture(autouse=True)
def _quiet_progress_bars():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


@pytest.fixture
def restore_registry():
    """Tests that register a method take it out again afterwards."""
    from hf_coreset import registry

    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
