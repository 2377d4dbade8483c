"""``method="cast"``: Collapse-Aware multi-Scale Topology fusion coreset selection.

A reconstruction of the published abstract (arXiv 2605.11705, "CAST: Collapse-Aware multi-Scale Topology
Fusion for Multimodal Coreset Selection"), not the official implementation: it starts from ``METHODS.md`` §3
and departs from it where the retrieval benchmark showed a better way (see the README); the building blocks
live in :mod:`hf_coreset.graph`.
"""

from .config import CASTConfig
from .selector import CASTSelector, build_cast_graph, multiscale_similarity, scale_weights_at

__all__ = ["CASTConfig", "CASTSelector", "build_cast_graph", "multiscale_similarity", "scale_weights_at"]
