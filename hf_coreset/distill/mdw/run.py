"""The entry point that ``hf_coreset.distill.distill(method="mdw")`` calls: checks, pipeline, Dataset."""

from __future__ import annotations

import numbers

import datasets
import numpy as np

from ...errors import BadFeaturesError, CoresetInputError
from ...result import library_versions
from ...validation import check_columns_exist
from ..result import DistillationResult
from .config import MDWConfig
from .distill import distill_pairs, to_dataset
from .inputs import check_image_network, check_pool, check_space, read_pairs


def run_mdw(dataset: datasets.Dataset, num_pairs: int, config: MDWConfig, *, space: str, image_column: str,
            text_column: str, image_network=None, show_progress: bool = True) -> datasets.Dataset:
    """Distill ``dataset`` into ``num_pairs`` synthetic pairs (arguments as ``hf_coreset.distill.distill``)."""
    check_pool(dataset, "distill")
    check_space(space)
    check_image_network(space, image_network)
    _check_num_pairs(num_pairs, dataset.num_rows)
    images, texts = read_pairs(dataset, image_column, text_column, space)
    clean_probability = read_clean_probability(dataset, config.clean_probability_column)
    synthetic, objectives, diagnostics = distill_pairs(images, texts, num_pairs, config, image_network=image_network,
                                                       clean_probability=clean_probability,
                                                       show_progress=show_progress)
    result = DistillationResult(
        student_lr=synthetic.student_lr,
        objective=objectives,
        diagnostics={"deemed_clean": diagnostics["deemed_clean"], "matching_shift": diagnostics["matching_shift"],
                     "objective_before": diagnostics["objective_before"],
                     "objective_after": diagnostics["objective_after"],
                     "correspondence_scale": diagnostics["correspondence_scale"],
                     "first_objective": objectives[0] if objectives else None,
                     "last_objective": objectives[-1] if objectives else None},
        provenance={
            "method": "mdw", "space": space, "config": config.to_dict(), "seed": config.seed,
            "num_pairs": num_pairs, "rows_in": dataset.num_rows, "source_fingerprint": dataset._fingerprint,
            "image_column": image_column, "text_column": text_column,
            "image_network": None if image_network is None else _name_of(image_network),
            "correspondence": "P = diag(correspondence_diag) + correspondence_left @ correspondence_right.T; "
                              "targets: row softmax (image->text), column softmax (text->image)",
            "timings": diagnostics["timings"], "library_versions": library_versions(),
        },
    )
    return to_dataset(synthetic, pixels=space == "pixels", result=result,
                      source_description=dataset.info.description)


def read_clean_probability(dataset: datasets.Dataset, column: str | None) -> np.ndarray | None:
    """The clean probabilities stored in ``column`` (None: no column given, estimate them)."""
    if column is None:
        return None
    check_columns_exist(dataset, [column])
    try:
        values = np.asarray(dataset.with_format("numpy", columns=[column])[column], dtype=np.float64)
    except (TypeError, ValueError):
        values = np.full(1, np.nan)
    if values.shape != (dataset.num_rows,) or not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise BadFeaturesError(
            f"Column {column!r} must hold one clean probability in [0, 1] per row (e.g. from "
            "hf_coreset.distill.add_clean_probability); it does not."
        )
    if not values.max() > 0:
        raise CoresetInputError(f"Every clean probability in {column!r} is 0: no pair to distill from.")
    return values.astype(np.float64)


def _check_num_pairs(num_pairs, n_rows: int) -> None:
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, numbers.Integral) or not 2 <= num_pairs <= n_rows:
        raise CoresetInputError(
            f"num_pairs={num_pairs!r} is out of range: pass an int in 2..{n_rows} (the dataset has {n_rows} "
            "rows, and a contrastive loss needs at least 2 synthetic pairs)."
        )


def _name_of(factory) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', type(factory).__name__)}"

