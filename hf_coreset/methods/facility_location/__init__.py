"""``method="facility_location"``: greedy facility location on a sparse kNN cosine similarity (a baseline)."""

from .config import FacilityLocationConfig
from .selector import FacilityLocationSelector

__all__ = ["FacilityLocationConfig", "FacilityLocationSelector"]
