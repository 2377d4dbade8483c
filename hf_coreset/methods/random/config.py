from dataclasses import dataclass

from ...config import SelectionConfig


@dataclass
class RandomConfig(SelectionConfig):
    """Options of ``method="random"``: only the seed."""
