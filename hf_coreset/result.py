"""The outcome of a selection: which rows, their scores, and how the choice was made."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

# The selection is stored as JSON in ``Dataset.info.description`` under this key, so it survives
# ``save_to_disk`` / ``load_from_disk`` and travels with the data.
DESCRIPTION_KEY = "hf_coreset_selection"


@dataclass
class SelectionResult:
    """Indices, scores, diagnostics and provenance of one ``select_coreset`` call.

    Attributes:
        indices: row indices into the source dataset, in the order the method picked them.
        scores: one score per picked row, aligned with ``indices`` (what the score means is method-specific:
            see ``provenance["score_meaning"]``).
        diagnostics: method-specific figures (e.g. bin sizes for ``dq``).
        provenance: method, full config, seed, budget, source fingerprint, rows in/out, rows dropped and why,
            timings and library versions.

    Example:
        >>> import datasets, hf_coreset
        >>> ds = datasets.Dataset.from_dict({"x": list(range(10))})
        >>> core = hf_coreset.select_coreset(ds, method="random", budget=3, seed=0)
        >>> result = hf_coreset.get_selection_result(core)
        >>> len(result.indices), result.provenance["method"]
        (3, 'random')
    """

    indices: np.ndarray
    scores: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def ranks(self) -> np.ndarray:
        """Pick order of each row of ``indices`` (0 = picked first)."""
        return np.arange(len(self.indices))

    def to_dict(self) -> dict[str, Any]:
        return {
            "indices": [int(i) for i in self.indices],
            "scores": [_json_float(s) for s in self.scores],
            "diagnostics": _jsonable(self.diagnostics),
            "provenance": _jsonable(self.provenance),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelectionResult:
        return cls(
            indices=np.asarray(data["indices"], dtype=np.int64),
            scores=np.asarray([float(s) for s in data["scores"]], dtype=np.float64),
            diagnostics=data.get("diagnostics", {}),
            provenance=data.get("provenance", {}),
        )


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the libraries a result depends on (and of ``extra`` packages), for provenance.

    Example:
        >>> "numpy" in library_versions()
        True
    """
    versions = {}
    for package in ("hf-coreset", "datasets", "transformers", "torch", "numpy", "scikit-learn", *extra):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _json_float(value: Any) -> float | str:
    """JSON has no NaN or infinity: store them as the strings "nan", "inf", "-inf", which float() reads back
    (k-center's first pick has an infinite score)."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars and arrays (nested in dicts and lists) into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return _json_float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def attach_record(description: str | None, key: str, record: dict[str, Any]) -> str:
    """A ``DatasetInfo.description`` carrying ``record`` under ``key`` and keeping the source's description
    (shared by selections and distillations)."""
    return json.dumps({key: record, "source_description": description or ""})


def read_record(dataset: Any, key: str, made_by: str) -> dict[str, Any]:
    """The record stored under ``key`` by :func:`attach_record`; a ValueError naming ``made_by`` if absent."""
    try:
        return json.loads(dataset.info.description or "")[key]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(
            f"This dataset carries no hf_coreset {key.removeprefix('hf_coreset_')} record: only datasets "
            f"returned by {made_by} (or saved from one) do."
        ) from err


def attach_result(description: str | None, result: SelectionResult) -> str:
    """Return a ``DatasetInfo.description`` that carries ``result`` and keeps the source's description."""
    return attach_record(description, DESCRIPTION_KEY, result.to_dict())


def get_selection_result(dataset: Any) -> SelectionResult:
    """Read back the :class:`SelectionResult` that ``select_coreset`` stored in the returned dataset.

    Works after ``save_to_disk`` / ``load_from_disk`` too.

    Raises:
        ValueError: the dataset was not produced by ``select_coreset``.
    """
    return SelectionResult.from_dict(read_record(dataset, DESCRIPTION_KEY, "select_coreset"))
