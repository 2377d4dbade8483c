"""One proxy run: train a proxy on some rows of a pool, score it on a test set.

This is the single code path behind :func:`hf_coreset.evaluate_coreset` and ``benchmarks/retrieval``:

* ``dual_encoder``: image and text heads (``hf_coreset.proxies.train_heads``), scored by image-text retrieval
  recall on the test pairs (``hf_coreset.metrics``: TR@1/5/10, IR@1/5/10 and their mean ``r_mean``, in %);
* ``linear_probe``: a linear classifier on the concatenated, per-block L2-normalised features
  (``hf_coreset.proxies.train_linear_probe``), scored by accuracy (%) on the test rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import CoresetInputError
from ..features.aggregate import aggregate_blocks
from ..metrics import retrieval_recall_from_embeddings
from ..proxies import DualEncoderHeads, torch_threads, train_heads, train_linear_probe


@dataclass
class ProxyData:
    """Rows as a proxy sees them.

    Attributes:
        blocks: one ``(N, d)`` float32 array per modality, in order (the dual encoder takes the first block as
            the image side and the second as the text side).
        labels: ``(N,)`` integer labels or None. The linear probe's classes (ids ``0..K-1``); for retrieval,
            pairs with equal labels count as relevant to each other (None: each pair only to itself).

    Example:
        >>> import numpy as np
        >>> data = ProxyData({"image": np.zeros((4, 3), np.float32), "text": np.ones((4, 2), np.float32)})
        >>> len(data), data.pair()[1].shape
        (4, (4, 2))
    """

    blocks: dict[str, np.ndarray]
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        # float32 as the proxies train in it; no copy when the blocks already are.
        self.blocks = {name: np.asarray(block, dtype=np.float32) for name, block in self.blocks.items()}
        if self.labels is not None:
            self.labels = np.asarray(self.labels)

    def __len__(self) -> int:
        return len(next(iter(self.blocks.values())))

    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        """The (image, text) blocks of the dual encoder."""
        if len(self.blocks) != 2:
            raise CoresetInputError(
                f"The dual_encoder proxy needs two feature blocks (image, then text), got {list(self.blocks)}: "
                "pass image_column and text_column, or two embedding_columns."
            )
        image, text = self.blocks.values()
        return image, text


@dataclass(frozen=True)
class Proxy:
    """A trainable proxy: how to train it on some rows, and the figure it is judged by (``metric``)."""

    name: str
    metric: str
    run: Callable[..., dict[str, float]]


def retrieval_scores(model: DualEncoderHeads, test: ProxyData) -> dict[str, float]:
    """TR@1/5/10, IR@1/5/10 and r_mean (%) of trained heads on the test pairs (cosine similarity)."""
    images, texts = test.pair()
    with torch.no_grad():
        model.eval()
        image_out, text_out = model(torch.as_tensor(images), torch.as_tensor(texts))
    return retrieval_recall_from_embeddings(image_out.numpy(), text_out.numpy(), test.labels)


def _dual_encoder_run(train: ProxyData, rows: np.ndarray, test: ProxyData, *, steps: int, seed: int, heads: str,
                      batch_size: int) -> dict[str, float]:
    images, texts = train.pair()
    model = train_heads(images[rows], texts[rows], kind=heads, steps=steps, batch_size=batch_size, seed=seed)
    return retrieval_scores(model, test)


def _linear_probe_run(train: ProxyData, rows: np.ndarray, test: ProxyData, *, steps: int, seed: int, heads: str,
                      batch_size: int) -> dict[str, float]:
    if train.labels is None or test.labels is None:
        raise CoresetInputError("The linear_probe proxy needs class labels: pass label_column=...")
    n_classes = int(max(train.labels.max(), test.labels.max())) + 1
    vectors = aggregate_blocks({name: block[rows] for name, block in train.blocks.items()}, "concat")
    probe = train_linear_probe(vectors, train.labels[rows], n_classes, steps=steps, batch_size=batch_size,
                               seed=seed)
    with torch.no_grad():
        predicted = probe(torch.as_tensor(aggregate_blocks(test.blocks, "concat"), dtype=torch.float32)).argmax(1)
    return {"accuracy": 100.0 * float((predicted.numpy() == test.labels).mean())}


PROXIES: dict[str, Proxy] = {
    "dual_encoder": Proxy("dual_encoder", "r_mean", _dual_encoder_run),
    "linear_probe": Proxy("linear_probe", "accuracy", _linear_probe_run),
}


def get_proxy(name: str) -> Proxy:
    if name not in PROXIES:
        raise CoresetInputError(f"Unknown proxy {name!r}; the proxies are {sorted(PROXIES)}.")
    return PROXIES[name]


def train_and_score(proxy: str, train: ProxyData, rows: np.ndarray, test: ProxyData, *, steps: int = 500,
                    seed: int = 0, heads: str = "mlp", batch_size: int = 128,
                    num_threads: int | None = 1) -> dict[str, float]:
    """Train ``proxy`` on ``train``'s ``rows`` for ``steps`` steps with ``seed`` and score it on ``test``.

    Returns the proxy's scores plus ``train_s`` (wall seconds of training and scoring). ``num_threads`` is the
    torch thread count during the run (1 by default: these models are small, and a second thread on a shared
    2-core machine mostly waits; None leaves torch's setting alone). Same inputs and seed, same numbers.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> pool = ProxyData({"image": rng.normal(size=(50, 8)), "text": rng.normal(size=(50, 4))})
        >>> test = ProxyData({"image": rng.normal(size=(20, 8)), "text": rng.normal(size=(20, 4))})
        >>> scores = train_and_score("dual_encoder", pool, np.arange(10), test, steps=5, heads="linear")
        >>> sorted(scores)
        ['IR@1', 'IR@10', 'IR@5', 'TR@1', 'TR@10', 'TR@5', 'r_mean', 'train_s']
    """
    runner = get_proxy(proxy).run
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        raise CoresetInputError("A proxy needs at least one row to train on; got none.")
    started = time.perf_counter()
    with torch_threads(num_threads):
        scores = runner(train, rows, test, steps=steps, seed=seed, heads=heads, batch_size=batch_size)
    return {**scores, "train_s": time.perf_counter() - started}
