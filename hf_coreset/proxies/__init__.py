"""Light proxy models that OST, MDW and the retrieval benchmark train on embedding features."""

from .dual_heads import DualEncoderHeads, info_nce, make_head, train_heads

__all__ = ["DualEncoderHeads", "info_nce", "make_head", "train_heads"]
