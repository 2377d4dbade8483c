"""Real image-text data that works offline: Open Clip Art (full) and Fashion-MNIST, from Debian packages.

Both are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a cache folder (no root
needed), then written as parquet so later runs start at once.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import subprocess
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

CACHE = Path.home() / ".cache" / "hf_coreset" / "bench"
REPO = Path(__file__).resolve().parents[2]
FASHION_CLASSES = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle boot"]
FASHION_TEMPLATES = ["a photo of a {}", "a black and white picture of a {}", "a small image of a {}",
                     "a product photo of a {}", "a {} on a dark background"]


def _build_script():
    spec = importlib.util.spec_from_file_location("build_openclipart", REPO / "scripts" / "build_openclipart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def openclipart(cache: Path = CACHE, n_test: int = 1000, seed: int = 0) -> datasets.DatasetDict:
    """Every usable Open Clip Art drawing (generic and collection titles dropped), split train / test."""
    path = cache / "openclipart_full.parquet"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["python", str(REPO / "scripts" / "build_openclipart.py"), "--output", str(path)], check=True)
    full = datasets.Dataset.from_parquet(str(path))
    full = full.add_column("label", list(range(full.num_rows)))  # instance-level relevance
    order = np.random.default_rng(seed).permutation(full.num_rows)
    return datasets.DatasetDict({"train": full.select(np.sort(order[n_test:])),
                                 "test": full.select(np.sort(order[:n_test]))})


def _read_idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _fashion_files(cache: Path) -> Path:
    root = cache / "fashion-mnist"
    folder = root / "root" / "usr" / "share" / "datasets" / "fashion-mnist"
    if not folder.exists():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "dataset-fashion-mnist"], cwd=root, check=True)
        deb = next(root.glob("dataset-fashion-mnist*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root / "root")], check=True)
    return folder


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def fashion_mnist(cache: Path = CACHE, n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> datasets.DatasetDict:
    """A seeded subset of Fashion-MNIST with captions from class-name templates (class-level relevance).

    The full 60k / 10k would take about an hour to encode with EfficientNet on 2 CPU cores, hence the subset.
    """
    folder = _fashion_files(cache)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, prefix, size in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
        rows = np.sort(rng.permutation(len(labels))[:size])
        templates = rng.integers(len(FASHION_TEMPLATES), size=size)
        splits[split] = datasets.Dataset.from_dict(
            {"image": [{"bytes": _png(images[r]), "path": None} for r in rows],
             "caption": [FASHION_TEMPLATES[t].format(FASHION_CLASSES[labels[r]]) for r, t in zip(rows, templates)],
             "label": [int(labels[r]) for r in rows]},
            features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                        "label": datasets.Value("int64")}))
    return datasets.DatasetDict(splits)


LOADERS = {"openclipart": openclipart, "fashion_mnist": fashion_mnist}


def noisy_pool(train: dict, noise: float, seed: int) -> tuple[datasets.Dataset, np.ndarray, np.ndarray]:
    """The training pairs with ``noise`` of their captions permuted (``hf_coreset.noise``): the pool as a Dataset
    (``img_emb``, ``txt_emb``), the permuted text features and which rows are now mismatched."""
    from hf_coreset.noise import caption_permutation

    source = caption_permutation(len(train["text"]), noise, seed=seed)
    texts = train["text"][source]
    pool = datasets.Dataset.from_dict({"img_emb": train["image"], "txt_emb": texts})
    return pool, texts, source != np.arange(len(source))
