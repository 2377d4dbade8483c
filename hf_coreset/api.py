"""``select_coreset``: the one call that turns a ``datasets.Dataset`` into its coreset."""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np

from .config import check_choice, check_positive
from .errors import CoresetInputError
from .registry import get_method
from .result import SelectionResult, attach_result
from .selector import FeatureSet
from .validation import ON_ERROR_VALUES, check_columns_exist, read_embedding_column, resolve_budget

SCORE_COLUMN = "coreset_score"
RANK_COLUMN = "coreset_rank"


def select_coreset(
    dataset: datasets.Dataset,
    method: str,
    budget: int | float,
    *,
    image_column: str | None = None,
    text_column: str | None = None,
    embedding_columns: Sequence[str] | None = None,
    seed: int = 0,
    return_scores: bool = False,
    image_encoder: Any = None,
    text_encoder: Any = None,
    batch_size: int = 32,
    on_error: str = "report",
    cache_dir: str | None = None,
    show_progress: bool = True,
    engine: str = "local",
    engine_options: dict[str, Any] | None = None,
    **method_options: Any,
) -> datasets.Dataset:
    """Select ``budget`` rows of ``dataset`` with ``method`` and return them as a new ``Dataset``.

    Features come either from precomputed vectors (``embedding_columns``, one column per modality) or from
    encoders applied to ``image_column`` / ``text_column`` (cached by fingerprint, so a second call does not
    re-encode). Methods that need no features (``random``) need neither.

    Args:
        dataset: the source rows.
        method: a registered method name (``hf_coreset.available_methods()``).
        budget: rows to keep, as a count (int) or a fraction of the dataset (float in (0, 1]).
        image_column, text_column: columns to encode with ``image_encoder`` / ``text_encoder``.
        embedding_columns: columns of precomputed vectors; skips encoding.
        seed: the same seed gives the same indices.
        return_scores: add ``coreset_score`` and ``coreset_rank`` (pick order) columns.
        image_encoder, text_encoder: an ``hf_coreset.features.Encoder``, a ``(model, processor)`` pair or a
            plain callable mapping a list of images / strings to an array ``(B, d)``.
        batch_size: encoding batch size.
        on_error: ``"report"`` drops rows whose image cannot be read and records them in the provenance;
            ``"raise"`` stops at the first one.
        cache_dir: where encoded features are cached (default: under the datasets cache).
        show_progress: show progress bars.
        engine: ``"local"`` (this process) or ``"ray"``: shard by shard and partition by partition on Ray, for
            vectors that do not fit one process (needs ``embedding_columns``; see
            :func:`hf_coreset.sharded.select_with_ray`, whose options go in ``engine_options``).
        engine_options: options of the engine, e.g. ``{"num_workers": 2, "rows_per_partition": 20_000}``.
        **method_options: fields of the method's config dataclass (e.g. ``num_bins=20`` for ``dq``).

    Returns:
        The selected rows, in their original order. The :class:`SelectionResult` (indices in pick order,
        scores, diagnostics, provenance) is stored in ``info.description``; read it with
        :func:`hf_coreset.get_selection_result`.

    Example:
        >>> import datasets, numpy as np, hf_coreset
        >>> vectors = np.random.default_rng(0).normal(size=(100, 8)).tolist()
        >>> ds = datasets.Dataset.from_dict({"emb": vectors})
        >>> core = hf_coreset.select_coreset(ds, "kcenter", 0.1, embedding_columns=["emb"], return_scores=True)
        >>> core.num_rows, core.column_names
        (10, ['emb', 'coreset_score', 'coreset_rank'])
    """
    started = time.perf_counter()
    _check_dataset(dataset)
    _check_arguments(dataset, image_column, text_column, embedding_columns, batch_size, on_error)
    check_choice("engine", engine, ("local", "ray"))
    if engine == "ray":
        from .sharded import select_with_ray

        if any(v is not None for v in (image_column, text_column, image_encoder, text_encoder)):
            raise CoresetInputError(
                "engine='ray' selects on precomputed embedding_columns; encode the images / texts first "
                "(hf_coreset.features.encode_dataset) and pass the vector columns."
            )
        result = select_with_ray(dataset, method, budget, embedding_columns=embedding_columns, seed=seed,
                                 show_progress=show_progress, **(engine_options or {}), **method_options)
        return _subset(dataset, result, return_scores)
    spec = get_method(method)
    config = spec.build_config(seed, method_options)
    groups = _read_groups(dataset, getattr(config, "group_column", None))
    # With groups (several captions per image) the budget counts groups, one row emitted per group.
    n_budget = resolve_budget(budget, dataset.num_rows if groups is None else len(np.unique(groups)))
    needs_features = spec.selector_class.needs_features
    own_features = _own_features(spec, config, dataset, image_column, batch_size=batch_size, on_error=on_error,
                                 cache_dir=cache_dir, show_progress=show_progress)
    if needs_features and own_features is None:
        _check_feature_sources(dataset, image_column, text_column, embedding_columns, image_encoder, text_encoder)

    blocks, dropped, feature_diagnostics = {}, {}, {}
    if own_features is not None:
        blocks, dropped, feature_diagnostics = own_features.blocks, own_features.dropped_rows, own_features.diagnostics
    elif needs_features:
        blocks, dropped = _features(
            dataset, image_column, text_column, embedding_columns, image_encoder, text_encoder,
            batch_size=batch_size, on_error=on_error, cache_dir=cache_dir, show_progress=show_progress,
        )
    features_done = time.perf_counter()
    pool = _pool_rows(dataset.num_rows, dropped)
    usable, unit = (len(pool), "rows") if groups is None else (len(np.unique(groups[pool])), "groups")
    if n_budget > usable:
        raise CoresetInputError(
            f"budget={n_budget} {unit} but only {usable} {unit} are usable after dropping "
            f"{_describe_dropped(dropped)}; lower the budget or fix those rows."
        )
    features = FeatureSet(n_rows=len(pool), blocks={name: block[pool] for name, block in blocks.items()},
                          groups=None if groups is None else groups[pool], diagnostics=feature_diagnostics)
    selector = spec.selector_class(config).fit(features, n_budget)
    finished = time.perf_counter()

    result = SelectionResult(
        indices=pool[selector.indices_],
        scores=selector.scores_,
        diagnostics=selector.diagnostics_,
        provenance=spec.provenance(
            config, budget=budget, budget_rows=n_budget, rows_in=dataset.num_rows,
            rows_out=int(len(selector.indices_)), dropped=dropped, source_fingerprint=dataset._fingerprint,
            source_split=str(dataset.split) if dataset.split is not None else None,
            timings={"features_s": features_done - started, "selection_s": finished - features_done,
                     "total_s": finished - started},
        ),
    )
    return _subset(dataset, result, return_scores)


# The names select_coreset takes itself: a method option named like one would never receive its value.
SELECT_CORESET_ARGUMENTS = frozenset(inspect.signature(select_coreset).parameters) - {"method_options"}


def _check_dataset(dataset: Any) -> None:
    if not isinstance(dataset, datasets.Dataset):
        raise CoresetInputError(
            f"select_coreset needs a datasets.Dataset, got {type(dataset).__name__}. "
            "For a DatasetDict call it per split (ds['train']) or use DatasetDict.select_coreset."
        )
    if dataset.num_rows == 0:
        raise CoresetInputError("The dataset is empty (0 rows): there is nothing to select from.")


def _read_groups(dataset, group_column: str | None) -> np.ndarray | None:
    """The group of every row, for methods with a ``group_column`` option (CAST: several captions per image)."""
    if group_column is None:
        return None
    check_columns_exist(dataset, [group_column])
    return np.asarray(list(dataset[group_column]))


def _own_features(spec, config, dataset, image_column, **kwargs):
    """Features a method computes from the rows itself (ScalSelect with model=): ComputedFeatures or None."""
    return spec.selector_class.features_from_dataset(config, dataset, image_column=image_column, **kwargs)


def _check_arguments(dataset, image_column, text_column, embedding_columns, batch_size, on_error) -> None:
    """Checks that hold whatever the method: every column named exists, batch_size and on_error are valid
    (even when the method encodes nothing, a typo must not pass silently)."""
    if isinstance(embedding_columns, str):
        raise CoresetInputError(f"embedding_columns must be a list of column names, e.g. [{embedding_columns!r}].")
    named = [column for column in (image_column, text_column) if column is not None]
    check_columns_exist(dataset, [*named, *(embedding_columns or [])])
    check_positive("batch_size", batch_size)
    check_choice("on_error", on_error, ON_ERROR_VALUES)


def _check_feature_sources(dataset, image_column, text_column, embedding_columns, image_encoder, text_encoder):
    """Fail before any encoding if the feature sources are missing or inconsistent (the columns exist:
    ``_check_arguments`` saw to it)."""
    if embedding_columns:
        return
    if image_column is None and text_column is None:
        raise CoresetInputError(
            "This method needs features: pass embedding_columns=[...] (precomputed vectors), or "
            "image_column / text_column together with image_encoder / text_encoder."
        )
    for column, encoder, name in ((image_column, image_encoder, "image"), (text_column, text_encoder, "text")):
        if column is not None:
            if encoder is None:
                raise CoresetInputError(
                    f"{name}_column={column!r} is given but no {name}_encoder: pass {name}_encoder=... "
                    f"(see hf_coreset.features) or precomputed embedding_columns."
                )


def _features(dataset, image_column, text_column, embedding_columns, image_encoder, text_encoder, **encode_kwargs):
    """Per-modality feature blocks for every row, and the rows that could not be featurised (by reason)."""
    if embedding_columns:
        return {column: read_embedding_column(dataset, column) for column in embedding_columns}, {}
    from .features import encode_dataset

    encoded = encode_dataset(
        dataset, image_column=image_column, text_column=text_column,
        image_encoder=image_encoder, text_encoder=text_encoder, **encode_kwargs,
    )
    return encoded.embeddings, encoded.failed_rows


def _pool_rows(n_rows: int, dropped: dict[str, list[int]]) -> np.ndarray:
    """Row indices that take part in the selection: every row not dropped for some reason."""
    keep = np.ones(n_rows, dtype=bool)
    for rows in dropped.values():
        keep[list(rows)] = False
    return np.flatnonzero(keep)


def _describe_dropped(dropped: dict[str, list[int]]) -> str:
    return ", ".join(f"{len(rows)} ({reason})" for reason, rows in dropped.items()) or "no rows"


def _subset(dataset: datasets.Dataset, result: SelectionResult, return_scores: bool) -> datasets.Dataset:
    """The selected rows in source order, carrying the result (and optionally score and rank columns)."""
    order = np.argsort(result.indices, kind="stable")
    subset = dataset.select(result.indices[order])
    if return_scores:
        # A coreset of a coreset gets fresh columns rather than an "already exists" error.
        subset = subset.remove_columns([c for c in (SCORE_COLUMN, RANK_COLUMN) if c in subset.column_names])
        subset = subset.add_column(SCORE_COLUMN, result.scores[order].tolist())
        subset = subset.add_column(RANK_COLUMN, result.ranks[order].tolist())
    # Dataset.select and add_column give the subset its own copy of DatasetInfo, so the source is untouched.
    subset.info.description = attach_result(dataset.info.description, result)
    return subset
