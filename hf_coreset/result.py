"""The outcome of a selection: which rows, their scores, and how the choice was made."""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from .errors import CoresetInputError

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
        """Rebuild a result from :meth:`to_dict`'s output, checking it first: a record that is malformed (edited
        or crafted) raises :class:`~hf_coreset.CoresetInputError`, a ``ValueError``, naming the field."""
        check_selection_record(data)
        return cls(
            indices=np.asarray(data["indices"], dtype=np.int64),
            scores=np.asarray([float(s) for s in data["scores"]], dtype=np.float64),
            diagnostics=data.get("diagnostics", {}),
            provenance=data.get("provenance", {}),
        )


# Provenance fields and the check each must pass when present (every selection has them; a result built by hand
# may leave them out). Other keys are allowed: methods and integrations may add their own.
_PROVENANCE_CHECKS = {
    "method": ("a string", lambda v: isinstance(v, str)),
    "selector": ("a string", lambda v: isinstance(v, str)),
    "config": ("a dict of option names (identifiers) to values",
               lambda v: isinstance(v, dict) and all(isinstance(k, str) and k.isidentifier() for k in v)),
    "seed": ("a non-negative int", lambda v: _is_count(v)),
    "budget": ("a number", lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)),
    "budget_rows": ("a non-negative int", lambda v: _is_count(v)),
    "rows_in": ("a non-negative int", lambda v: _is_count(v)),
    "rows_out": ("a non-negative int", lambda v: _is_count(v)),
    "rows_dropped": ("a dict of reasons to {'count': int, 'rows': [int, ...]}", lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(d, dict) and _is_count(d.get("count")) and _is_index_list(d.get("rows"))
        and len(d["rows"]) == d["count"] for k, d in v.items())),
    "source_fingerprint": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "source_split": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "score_meaning": ("a string", lambda v: isinstance(v, str)),
    "timings": ("a dict of names to numbers", lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(t, numbers.Real) and not isinstance(t, bool) for k, t in v.items())),
    "library_versions": ("a dict of names to version strings", lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(t, str) for k, t in v.items())),
}


def check_selection_record(data: Any) -> None:
    """Check a selection record (:meth:`SelectionResult.to_dict` output, e.g. read back from
    ``info.description``): types, index range, lengths. Raises :class:`~hf_coreset.CoresetInputError` naming
    the first malformed field.

    Example:
        >>> check_selection_record({"indices": [3, 1], "scores": [0.5, "inf"], "provenance": {"rows_in": 4}})
        >>> check_selection_record({"indices": [3, 7], "scores": [0.5, 0.1], "provenance": {"rows_in": 4}})
        Traceback (most recent call last):
        ...
        hf_coreset.errors.CoresetInputError: The hf_coreset selection record is malformed: indices has row 7, ...
    """
    def malformed(what: str) -> CoresetInputError:
        return CoresetInputError(
            f"The hf_coreset selection record is malformed: {what}. It was edited or not written by hf_coreset; "
            "select again to get a sound one."
        )

    if not isinstance(data, dict):
        raise malformed(f"it is a {type(data).__name__}, not a dict")
    indices, scores = data.get("indices"), data.get("scores")
    if not _is_index_list(indices):
        raise malformed("indices must be a list of non-negative ints")
    if len(set(indices)) != len(indices):
        raise malformed("indices holds a row twice")
    if not isinstance(scores, list) or not all(_is_score(s) for s in scores):
        raise malformed("scores must be a list of numbers (or 'nan', 'inf', '-inf')")
    if len(scores) != len(indices):
        raise malformed(f"{len(scores)} scores for {len(indices)} indices")
    for key in ("diagnostics", "provenance"):
        if not isinstance(data.get(key, {}), dict):
            raise malformed(f"{key} must be a dict")
    provenance = data.get("provenance", {})
    for key, (expected, check) in _PROVENANCE_CHECKS.items():
        if key in provenance and not check(provenance[key]):
            raise malformed(f"provenance[{key!r}] must be {expected}, got {provenance[key]!r:.80}")
    rows_in = provenance.get("rows_in")
    dropped = [row for info in provenance.get("rows_dropped", {}).values() for row in info["rows"]]
    if rows_in is not None and any(row >= rows_in for row in [*indices, *dropped]):
        row = max([*indices, *dropped])
        where = "indices" if row in indices else "rows_dropped"
        raise malformed(f"{where} has row {row}, outside the {rows_in} rows of the source")
    if provenance.get("rows_out", len(indices)) != len(indices):
        raise malformed(f"provenance['rows_out'] is {provenance['rows_out']} but there are {len(indices)} indices")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_index_list(value: Any) -> bool:
    return isinstance(value, list) and all(_is_count(i) for i in value)


def _is_score(value: Any) -> bool:
    if isinstance(value, str):
        return value in ("nan", "inf", "-inf")
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


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
