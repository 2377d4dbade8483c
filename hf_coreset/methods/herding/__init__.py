"""``method="herding"``: greedy mean matching (Welling, 2009; Chen et al., 2010)."""

from .config import HerdingConfig
from .selector import HerdingSelector

__all__ = ["HerdingConfig", "HerdingSelector"]
