"""Graph building blocks of CAST (``method="cast"``), all on ``scipy.sparse`` matrices.

A reconstruction of the published abstract (arXiv 2605.11705; ``METHODS.md`` §3), not the official
implementation:

- :mod:`.knn`: exact blocked and approximate (hnswlib / faiss / pynndescent) kNN search;
- :mod:`.fusion`: per-modality graphs (CSLS, self-tuning weights), local-collapse scores, trust fusion;
- :mod:`.wavelets`: diffusion wavelets, the multi-scale discrepancy and its closed-form greedy increment;
- :mod:`.coverage`: two-hop soft relational coverage.
"""

from .coverage import SoftCoverage, relation_matrix
from .fusion import ModalityGraph, collapse_scores, fuse_graphs, modality_graph, trust_weights
from .knn import exact_knn, knn
from .wavelets import MultiScaleMatcher, apply_frame, diffusion_operator, discrepancy, scale_diagonals

__all__ = [
    "ModalityGraph", "MultiScaleMatcher", "SoftCoverage", "apply_frame", "collapse_scores", "diffusion_operator",
    "discrepancy", "exact_knn", "fuse_graphs", "knn", "modality_graph", "relation_matrix", "scale_diagonals",
    "trust_weights",
]
