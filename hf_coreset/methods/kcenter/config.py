from dataclasses import dataclass

from ...config import EmbeddingSelectionConfig
from ...errors import CoresetInputError


@dataclass
class KCenterConfig(EmbeddingSelectionConfig):
    """Options of ``method="kcenter"``.

    Attributes:
        chunk_size: rows per block when updating distances (bounds temporary memory to chunk_size x d).
    """

    chunk_size: int = 65536

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chunk_size < 1:
            raise CoresetInputError(f"chunk_size must be >= 1, got {self.chunk_size}.")
