"""``method="scalselect"``: ScalSelect (arXiv 2602.11636), training-free and linear in N."""

from .config import ScalSelectConfig
from .leverage import LeverageResult, accelerate_reduce, leverage_scores, top_m
from .selector import DistributedSelection, ScalSelectSelector, select_with_accelerate

__all__ = [
    "DistributedSelection",
    "LeverageResult",
    "ScalSelectConfig",
    "ScalSelectSelector",
    "accelerate_reduce",
    "leverage_scores",
    "select_with_accelerate",
    "top_m",
]
