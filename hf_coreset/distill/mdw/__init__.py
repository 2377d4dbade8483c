"""``method="mdw"``: multimodal dataset distillation in the wild (a reconstruction of arXiv 2506.01586's
abstract, not an official implementation).

* :mod:`.correspondence`: dual-track clean-probability estimate (``Dataset.map`` / ``filter`` transforms).
* :mod:`.distill`: trajectory matching with a learned low-rank correspondence P (:mod:`.low_rank`) and
  Grad-CAM-emphasised image updates in pixel space (:mod:`.gradcam`).
* :mod:`.train`: train retrieval heads on a distilled set.
"""

from .agreement import knn_agreement
from .config import MDWConfig
from .correspondence import (
    CleanProbability,
    DualTrackResult,
    KeepLikelyClean,
    add_clean_probability,
    drop_mismatched,
    estimate_clean_probability,
    fit_dual_track,
)
from .low_rank import LowRankCorrespondence, rebuild_correspondence
from .run import run_mdw
from .train import read_distilled, train_on_distilled

__all__ = [
    "CleanProbability",
    "DualTrackResult",
    "KeepLikelyClean",
    "LowRankCorrespondence",
    "MDWConfig",
    "add_clean_probability",
    "drop_mismatched",
    "estimate_clean_probability",
    "fit_dual_track",
    "knn_agreement",
    "read_distilled",
    "rebuild_correspondence",
    "run_mdw",
    "train_on_distilled",
]
