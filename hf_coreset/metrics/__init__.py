"""Figures that judge a coreset: coverage without training, retrieval recall after training.

``RETRIEVAL_RECALL_PATH`` is the folder of the ``evaluate`` metric module, for ``evaluate.load(path)``.
"""

from pathlib import Path

from .coverage import mean_nearest_selected_distance
from .retrieval import retrieval_recall, retrieval_recall_from_embeddings

RETRIEVAL_RECALL_PATH = str(Path(__file__).parent / "retrieval_recall")

__all__ = [
    "RETRIEVAL_RECALL_PATH",
    "mean_nearest_selected_distance",
    "retrieval_recall",
    "retrieval_recall_from_embeddings",
]
