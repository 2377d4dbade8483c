"""``method="kcenter"``: greedy farthest-point k-center (Sener & Savarese, 2018)."""

from .config import KCenterConfig
from .selector import KCenterSelector, farthest_point_greedy

__all__ = ["KCenterConfig", "KCenterSelector", "farthest_point_greedy"]
