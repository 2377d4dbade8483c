"""The base class of every selection method, and the feature container it receives."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .config import SelectionConfig
from .errors import CoresetInputError


@dataclass
class PoolReference:
    """The rest of the pool, when a :class:`FeatureSet` holds only a part of it.

    Attributes:
        blocks: the same blocks as the part's, for rows drawn uniformly from the pool outside the part.
        pool_rows: rows in the whole pool, the part's included.
    """

    blocks: dict[str, np.ndarray]
    pool_rows: int


@dataclass
class FeatureSet:
    """Per-row features of the candidate pool.

    Attributes:
        n_rows: number of candidate rows.
        blocks: modality or column name -> float array of shape ``(n_rows, d)``, in a fixed order
            (image first, then text, or the order of ``embedding_columns``). Empty for methods that
            need no features (``random``).
        groups: the group of every row when the method merges rows (CAST's ``group_column``), else None.
        diagnostics: what a method's own feature stage (:meth:`Selector.features_from_dataset`) reported,
            for the selector to pass on into its diagnostics.
        reference: when the rows are only a part of the pool (a partition of the Ray engine), a
            :class:`PoolReference` for the rest of it; methods that judge a row against the pool use it (CAST:
            the pool's centre and its random image-caption pairings). None: the rows are the pool.
        candidates: the rows that may be picked (positions in the rows, sorted), the others only count as rows
            to represent; None: every row may be picked. Only methods with ``Selector.picks_among_candidates``
            accept it (the Ray engine's second round, :mod:`hf_coreset.sharded`).
    """

    n_rows: int
    blocks: dict[str, np.ndarray] = field(default_factory=dict)
    groups: np.ndarray | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    reference: PoolReference | None = None
    candidates: np.ndarray | None = None


@dataclass
class ComputedFeatures:
    """What :meth:`Selector.features_from_dataset` returns: per-row blocks for every row of the dataset, the
    rows it could not featurise (reason -> row indices; ``select_coreset`` drops and reports them) and
    diagnostics of the feature stage (``FeatureSet.diagnostics`` hands them to the selector)."""

    blocks: dict[str, np.ndarray]
    dropped_rows: dict[str, list[int]] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)


class Selector(abc.ABC):
    """Picks ``budget`` rows out of a :class:`FeatureSet`.

    Subclasses set ``needs_features`` and implement ``_select``. After :meth:`fit` the fitted state is
    available scikit-learn style: ``indices_`` (pick order), ``scores_`` (aligned with ``indices_``) and
    ``diagnostics_``.
    """

    needs_features: ClassVar[bool] = True
    # What a score means, written into the provenance so that the score column is self-explaining.
    score_meaning: ClassVar[str] = ""
    # True when the scores are a greedy's marginal gains of an objective that sums (or maxes) over rows, so
    # that gains of different partitions compare: the Ray engine then splits the budget by gain.
    scores_are_marginal_gains: ClassVar[bool] = False
    # True when the method can pick among FeatureSet.candidates while representing every row.
    picks_among_candidates: ClassVar[bool] = False

    def __init__(self, config: SelectionConfig):
        self.config = config

    @classmethod
    def features_from_dataset(cls, config: SelectionConfig, dataset: Any, **kwargs: Any) -> ComputedFeatures | None:
        """Hook for methods that compute their own features from the rows (ScalSelect with ``model=``, OST with
        ``proxy=``).

        Return :class:`ComputedFeatures` to replace the feature stage, or ``None`` (the default) to let
        ``select_coreset`` read ``embedding_columns`` or run the encoders.
        """
        return None

    def fit(self, features: FeatureSet, budget: int) -> Selector:
        if features.candidates is not None:
            self._check_candidates(features.candidates, features.n_rows, budget)
        indices, scores, diagnostics = self._select(features, budget)
        self.indices_ = np.asarray(indices, dtype=np.int64)
        self.scores_ = np.asarray(scores, dtype=np.float64)
        self.diagnostics_ = diagnostics
        if len(self.indices_) != budget or len(np.unique(self.indices_)) != budget:
            raise RuntimeError(
                f"{type(self).__name__} returned {len(self.indices_)} indices "
                f"({len(np.unique(self.indices_))} unique) for a budget of {budget}: this is a bug in the method."
            )
        return self

    def _check_candidates(self, candidates: np.ndarray, n_rows: int, budget: int) -> None:
        if not self.picks_among_candidates:
            raise CoresetInputError(f"{type(self).__name__} cannot restrict its picks to FeatureSet.candidates: "
                                    "leave candidates=None.")
        candidates = np.asarray(candidates)
        if candidates.ndim != 1 or not np.issubdtype(candidates.dtype, np.integer):
            raise CoresetInputError(f"FeatureSet.candidates must be a 1-d array of row positions (ints), got "
                                    f"dtype {candidates.dtype} and shape {candidates.shape}.")
        if len(candidates) and (candidates.min() < 0 or candidates.max() >= n_rows):
            raise CoresetInputError(f"FeatureSet.candidates must be row positions in [0, {n_rows}), got values from "
                                    f"{candidates.min()} to {candidates.max()}.")
        if len(np.unique(candidates)) != len(candidates):
            raise CoresetInputError("FeatureSet.candidates lists a row twice: pass each candidate row once.")
        if np.any(np.diff(candidates) < 0):  # the greedy breaks ties by position: the smaller row must come first
            raise CoresetInputError("FeatureSet.candidates must be sorted: pass np.sort(candidates).")
        if len(candidates) < budget:
            raise CoresetInputError(f"budget={budget} but only {len(candidates)} rows are candidates.")

    def make_rng(self) -> np.random.Generator:
        """A new generator seeded from the config: every fit with the same seed draws the same numbers."""
        return np.random.default_rng(self.config.seed)

    @abc.abstractmethod
    def _select(self, features: FeatureSet, budget: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Return ``(indices, scores, diagnostics)`` with exactly ``budget`` unique indices."""


class EmbeddingSelector(Selector):
    """A selector that works on one vector per row, built by the config's aggregation and reduction."""

    def embed(self, features: FeatureSet) -> np.ndarray:
        from .features.aggregate import embed_rows

        return embed_rows(features.blocks, self.config.aggregation, self.config.reduce, self.config.seed)
