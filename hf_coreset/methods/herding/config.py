from dataclasses import dataclass

from ...config import EmbeddingSelectionConfig


@dataclass
class HerdingConfig(EmbeddingSelectionConfig):
    """Options of ``method="herding"``: aggregation, reduction and seed (herding itself is deterministic)."""
