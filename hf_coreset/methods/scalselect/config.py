"""Options of ``method="scalselect"``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...config import SelectionConfig, parse_reduce
from ...errors import CoresetInputError
from .leverage import DEFAULT_CHUNK_SIZE


@dataclass
class ScalSelectConfig(SelectionConfig):
    """Options of ``method="scalselect"`` (ScalSelect, arXiv 2602.11636).

    Attributes:
        rho: fraction of the representations' total variance the dominant subspace must hold (stage B).
        tau: attention mass of the visual tokens kept per sample (stage A).
        chunk_size: rows per float64 block of the streamed covariance and scoring.
        reduce: ``"pca:K"`` projects the representations on their top K principal components before scoring
            (``rho`` is then a fraction of the variance the projection keeps); for very wide representations,
            whose decomposition would exceed the memory bound of :mod:`.leverage`. None: no projection.
        model, processor: a transformers VLM and its processor. Given, stage A computes the representation
            of every row from the model; absent, the representations come from ``embedding_columns``.
            They are described (class, name) in the provenance, never serialised.
        conversation_column: the conversation column for stage A (LLaVA ``conversations`` or OpenAI-style
            ``messages``); None picks whichever of the two exists.
        device: where stage A runs (default: the model's device).

    Example:
        >>> ScalSelectConfig(rho=0.8).to_dict()["rho"]
        0.8
    """

    object_fields = ("model", "processor")

    rho: float = 0.9
    tau: float = 0.9
    chunk_size: int = DEFAULT_CHUNK_SIZE
    reduce: str | None = None
    model: Any = field(default=None, repr=False, compare=False)
    processor: Any = field(default=None, repr=False, compare=False)
    conversation_column: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("rho", "tau"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
                raise CoresetInputError(f"{name} must be a number in (0, 1], got {value!r}.")
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise CoresetInputError(f"chunk_size must be an int >= 1, got {self.chunk_size!r}.")
        if self.reduce is not None and parse_reduce(self.reduce)[0] != "pca":
            raise CoresetInputError(
                f"scalselect's reduce must be 'pca:K' (leverage needs a linear projection), got {self.reduce!r}."
            )
        if (self.model is None) != (self.processor is None):
            raise CoresetInputError(
                "scalselect needs model= and processor= together (e.g. LlavaForConditionalGeneration and "
                "its AutoProcessor), or neither with precomputed embedding_columns=[...]."
            )

    @property
    def uses_model(self) -> bool:
        """True when stage A (representations from the VLM) runs."""
        return self.model is not None
