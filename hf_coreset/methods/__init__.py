"""Built-in selection methods, one package each (config.py + selector.py), registered by name here."""

from ..registry import register_method
from .cast import CASTConfig, CASTSelector
from .dq import DQConfig, DQSelector
from .facility_location import FacilityLocationConfig, FacilityLocationSelector
from .herding import HerdingConfig, HerdingSelector
from .kcenter import KCenterConfig, KCenterSelector
from .ost import OSTConfig, OSTSelector
from .random import RandomConfig, RandomSelector
from .scalselect import ScalSelectConfig, ScalSelectSelector

register_method("random", RandomConfig, RandomSelector)
register_method("kcenter", KCenterConfig, KCenterSelector)
register_method("herding", HerdingConfig, HerdingSelector)
register_method("dq", DQConfig, DQSelector)
register_method("facility_location", FacilityLocationConfig, FacilityLocationSelector)
register_method("scalselect", ScalSelectConfig, ScalSelectSelector)
register_method("cast", CASTConfig, CASTSelector)
register_method("ost", OSTConfig, OSTSelector)
