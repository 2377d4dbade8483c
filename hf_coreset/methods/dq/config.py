from dataclasses import dataclass

from ...config import EmbeddingSelectionConfig
from ...errors import CoresetInputError


@dataclass
class DQConfig(EmbeddingSelectionConfig):
    """Options of ``method="dq"``.

    Attributes:
        num_bins: K, the number of non-overlapping GraphCut bins the data is split into (the paper's default 20).
        graphcut_lambda: weight of the pool term in the GraphCut gain
            ``lambda * sum_{i in pool} s(i, x) - 2 * sum_{j in bin} s(j, x)``.
        aggregation, reduce: multimodal aggregation and optional ``"pca:K"`` / ``"umap:K"`` reduction.
    """

    num_bins: int = 20
    graphcut_lambda: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.num_bins, bool) or not isinstance(self.num_bins, int) or self.num_bins < 1:
            raise CoresetInputError(f"num_bins must be a positive int, got {self.num_bins!r}.")
