"""``method="dq"``: Dataset Quantization with GraphCut bins and multimodal aggregation.

Zhou et al., "Dataset Quantization" (ICCV 2023), with the per-modality aggregation and PCA / UMAP
reduction of "Challenges of Multi-Modal Coreset Selection for Depth Prediction" (arXiv 2502.15834).
"""

from .config import DQConfig
from .reference import matvec_graphcut_bins, naive_graphcut_bins
from .selector import DQSelector, graphcut_bins

__all__ = ["DQConfig", "DQSelector", "graphcut_bins", "matvec_graphcut_bins", "naive_graphcut_bins"]
