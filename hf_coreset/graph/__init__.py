"""Graph building blocks of CAST (``method="cast"``) and of facility location, on ``scipy.sparse`` matrices.

A reconstruction of the published abstract (arXiv 2605.11705; ``METHODS.md`` §3), not the official
implementation:

- :mod:`.knn`: exact blocked and approximate (hnswlib / faiss / pynndescent) kNN search;
- :mod:`.fusion`: per-modality graphs (CSLS, self-tuning weights), local-collapse scores, trust fusion, and
  the fused multimodal similarity;
- :mod:`.reliability`: how likely each image-text pair is matched, from the agreement of its neighbourhoods;
- :mod:`.wavelets`: the diffusion operator, its pruned dyadic powers, the diffusion-wavelet discrepancy;
- :mod:`.facility_location`: lazy-greedy (weighted, multi-scale) facility location.
"""

from .facility_location import facility_location_greedy, knn_similarity
from .fusion import (
    ModalityGraph,
    collapse_scores,
    fuse_graphs,
    fused_similarity,
    modality_graph,
    trust_weights,
)
from .knn import exact_knn, knn
from .reliability import PairReliability, pair_reliability
from .wavelets import apply_frame, diffusion_correlation, diffusion_operator, discrepancy, dyadic_powers

__all__ = [
    "ModalityGraph", "PairReliability", "apply_frame", "collapse_scores", "diffusion_correlation",
    "diffusion_operator", "discrepancy", "dyadic_powers", "exact_knn", "facility_location_greedy",
    "fuse_graphs", "fused_similarity", "knn", "knn_similarity", "modality_graph", "pair_reliability",
    "trust_weights",
]
