"""Light proxy models that the quality report, OST, MDW and the retrieval benchmark train on embedding features."""

from .dual_heads import DualEncoderHeads, info_nce, make_head, train_heads
from .linear_probe import train_linear_probe
from .training import epoch_batches, optimise, torch_threads

__all__ = ["DualEncoderHeads", "epoch_batches", "info_nce", "make_head", "optimise", "torch_threads",
           "train_heads", "train_linear_probe"]
