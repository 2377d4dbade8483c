"""``method="random"``: a uniform draw without replacement, the baseline every table needs."""

from .config import RandomConfig
from .selector import RandomSelector

__all__ = ["RandomConfig", "RandomSelector"]
