"""The entry point that ``hf_coreset.distill.distill(method="mdw")`` calls: checks, pipeline, Dataset."""

from __future__ import annotations

import numbers

import datasets

from ...errors import CoresetInputError
from ...result import library_versions
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
    synthetic, _, objectives, diagnostics = distill_pairs(images, texts, num_pairs, config,
                                                         image_network=image_network, show_progress=show_progress)
    result = DistillationResult(
        student_lr=float(synthetic.student_lr.detach()),
        objective=objectives,
        diagnostics={"both_tracks_clean": diagnostics["both_tracks_clean"],
                     "first_objective": objectives[0], "last_objective": objectives[-1]},
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


def _check_num_pairs(num_pairs, n_rows: int) -> None:
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, numbers.Integral) or not 2 <= num_pairs <= n_rows:
        raise CoresetInputError(
            f"num_pairs={num_pairs!r} is out of range: pass an int in 2..{n_rows} (the dataset has {n_rows} "
            "rows, and a contrastive loss needs at least 2 synthetic pairs)."
        )


def _name_of(factory) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', type(factory).__name__)}"

