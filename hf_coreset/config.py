"""Configuration dataclasses shared by every selection method.

A method's options live in a plain dataclass (scikit-learn style: no work in ``__init__``, everything
validated in ``__post_init__`` so a bad option fails before any heavy work starts).
"""

from __future__ import annotations

import copy
import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import CoresetInputError

AGGREGATIONS = ("concat", "mean", "sum")


@dataclass
class SelectionConfig:
    """Options every method has.

    Attributes:
        seed: seed of every random choice the method makes; the same seed gives the same indices.
    """

    seed: int = 0
    # Fields that hold live objects (a model, a processor, a collate function): described in the provenance,
    # never serialised or deep-copied.
    object_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        check_non_negative("seed", self.seed)
        self.seed = int(self.seed)  # numpy integers (np.int64(3)) become plain ints, like budget

    def to_dict(self) -> dict[str, Any]:
        """The full config as a JSON-ready dict (used in the provenance of every selection).

        Object fields appear as short descriptions: ``dataclasses.asdict`` would deep-copy a multi-gigabyte
        model, and a model is not JSON anyway.
        """
        return {
            f.name: describe_object(getattr(self, f.name)) if f.name in self.object_fields
            else copy.deepcopy(getattr(self, f.name))
            for f in dataclasses.fields(self)
        }


def describe_object(obj: Any) -> str | None:
    """A short description of a live object for the provenance: ``"LlavaForConditionalGeneration('name')"``."""
    if obj is None:
        return None
    path = getattr(obj, "name_or_path", None) or getattr(getattr(obj, "config", None), "_name_or_path", None)
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    return f"{name}({path!r})" if path else name


@dataclass
class EmbeddingSelectionConfig(SelectionConfig):
    """Options of methods that work on one aggregated vector per row.

    Attributes:
        aggregation: how per-modality embeddings become one vector: ``"concat"`` (each block L2-normalised,
            then concatenated), ``"mean"`` or ``"sum"`` (element-wise; blocks must have the same width).
        reduce: optional dimensionality reduction after aggregation, ``"pca:K"`` or ``"umap:K"``
            (UMAP needs ``pip install umap-learn``).
    """

    aggregation: str = "concat"
    reduce: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.aggregation not in AGGREGATIONS:
            raise CoresetInputError(
                f"aggregation must be one of {list(AGGREGATIONS)}, got {self.aggregation!r}."
            )
        if self.reduce is not None:
            parse_reduce(self.reduce)  # fail early on a malformed spec


def parse_reduce(spec: str) -> tuple[str, int]:
    """Split a reduction spec such as ``"pca:1024"`` into ``("pca", 1024)``."""
    kind, _, size = str(spec).partition(":")
    if kind not in ("pca", "umap") or not size.isdigit() or int(size) < 1:
        raise CoresetInputError(
            f"reduce must look like 'pca:K' or 'umap:K' with K a positive int, got {spec!r}."
        )
    return kind, int(size)


def check_choice(name: str, value: Any, choices: tuple) -> None:
    """Raise :class:`CoresetInputError` unless ``value`` is one of ``choices`` (listed in the message)."""
    if value not in choices:
        raise CoresetInputError(f"{name} must be one of {list(choices)}, got {value!r}.")


def check_positive(name: str, value: Any, kind: type = int) -> None:
    """Raise :class:`CoresetInputError` unless ``value`` is a positive int (``kind=int``) or number
    (``kind=float``, ints accepted); numpy numbers count, booleans and strings are refused.

    Example:
        >>> check_positive("batch_size", 8); check_positive("lr", 0.5, float)
        >>> check_positive("batch_size", 2.5)
        Traceback (most recent call last):
        ...
        hf_coreset.errors.CoresetInputError: batch_size must be a positive int, got 2.5.
    """
    allowed = numbers.Real if kind is float else numbers.Integral
    if isinstance(value, bool) or not isinstance(value, allowed) or value <= 0:
        raise CoresetInputError(f"{name} must be a positive {kind.__name__}, got {value!r}.")


def check_non_negative(name: str, value: Any) -> None:
    """Raise :class:`CoresetInputError` unless ``value`` is an int >= 0; numpy integers count, booleans are refused.

    Example:
        >>> check_non_negative("seed", 0)
        >>> check_non_negative("seed", -1)
        Traceback (most recent call last):
        ...
        hf_coreset.errors.CoresetInputError: seed must be a non-negative int, got -1.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise CoresetInputError(f"{name} must be a non-negative int, got {value!r}.")
