"""``method="ost"``: One-Step-Train marginal utility (arXiv 2605.07488; a reconstruction of the abstract).

Also here: :func:`ost_utilities` (every row's utility without selecting) and :func:`drop_harmful`
(``Dataset.filter`` away the rows whose utility is negative).
"""

from .config import OSTConfig
from .selector import OSTSelector, OSTUtilities, drop_harmful, ost_utilities

__all__ = ["OSTConfig", "OSTSelector", "OSTUtilities", "drop_harmful", "ost_utilities"]
