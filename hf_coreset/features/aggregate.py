"""Turn per-modality embeddings into one vector per row (the multimodal aggregation of the DQ study).

``concat`` L2-normalises each block before concatenating, so a 1280-d image block cannot drown a 384-d
text block; ``mean`` and ``sum`` combine blocks element-wise and so need blocks of equal width. An optional
PCA or UMAP reduction follows, as in the depth-prediction study (arXiv 2502.15834).
"""

from __future__ import annotations

import numpy as np

from ..config import parse_reduce
from ..errors import CoresetInputError
from ..vectors import l2_normalize


def aggregate_blocks(blocks: dict[str, np.ndarray], how: str = "concat") -> np.ndarray:
    """Combine ``{name: (N, d_m)}`` blocks into one ``(N, D)`` float array.

    Example:
        >>> import numpy as np
        >>> blocks = {"image": np.ones((2, 3)), "text": np.ones((2, 2))}
        >>> aggregate_blocks(blocks, "concat").shape
        (2, 5)
    """
    if not blocks:
        raise CoresetInputError("No features to aggregate: pass embedding_columns or encoders.")
    arrays = [np.asarray(b, dtype=np.float64) for b in blocks.values()]
    if how == "concat":
        return np.concatenate([l2_normalize(a) for a in arrays], axis=1)
    widths = {name: b.shape[1] for name, b in blocks.items()}
    if len(set(widths.values())) > 1:
        raise CoresetInputError(
            f"aggregation={how!r} combines blocks element-wise and needs equal widths, got {widths}. "
            "Use aggregation='concat', or give embeddings of equal width."
        )
    stacked = np.stack(arrays)
    return stacked.mean(axis=0) if how == "mean" else stacked.sum(axis=0)


def reduce_dimensions(x: np.ndarray, spec: str | None, seed: int = 0) -> np.ndarray:
    """Apply ``"pca:K"`` or ``"umap:K"`` to ``x``; ``None`` returns ``x`` unchanged.

    PCA keeps ``min(K, N, D)`` components (it cannot keep more than the data has).
    """
    if spec is None:
        return x
    kind, size = parse_reduce(spec)
    if kind == "pca":
        from sklearn.decomposition import PCA

        n_components = min(size, x.shape[0], x.shape[1])
        return PCA(n_components=n_components, random_state=seed).fit_transform(x)
    try:
        import umap
    except ImportError as err:
        raise ImportError("reduce='umap:K' needs umap-learn: pip install 'hf-coreset[umap]'.") from err
    return umap.UMAP(n_components=size, random_state=seed).fit_transform(x)


def embed_rows(blocks: dict[str, np.ndarray], how: str = "concat", reduce: str | None = None,
               seed: int = 0) -> np.ndarray:
    """Aggregation followed by the optional reduction: the single vector per row that a method works on."""
    return reduce_dimensions(aggregate_blocks(blocks, how), reduce, seed)
