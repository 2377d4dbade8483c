"""Dataset distillation: learn a small *synthetic* image-text set that trains a model nearly as well as the
whole (possibly noisy) pool.

Unlike a coreset, the rows are not a subset: they are optimised. Methods are registered by name like the
selection methods (a config dataclass + an implementation per method package); ``"mdw"`` is built in.

Example:
    >>> import datasets, numpy as np
    >>> from hf_coreset.distill import distill, get_distillation_result, train_on_distilled
    >>> rng = np.random.default_rng(0)
    >>> topics = rng.normal(size=(4, 6))[rng.integers(0, 4, 40)]
    >>> ds = datasets.Dataset.from_dict({"img": topics + 0.1 * rng.normal(size=(40, 6)), "txt": topics})
    >>> small = distill(ds, "mdw", num_pairs=8, image_column="img", text_column="txt", show_progress=False,
    ...                 proxy_rounds=1, proxy_epochs=2, heads="linear", expert_steps=20, checkpoint_every=5,
    ...                 expert_epochs=2, synthetic_steps=3, iterations=5)
    >>> small.column_names  # doctest: +NORMALIZE_WHITESPACE
    ['image_features', 'text_embedding', 'correspondence_diag', 'correspondence_left',
     'correspondence_right', 'source_row', 'cluster_size']
    >>> len(get_distillation_result(small).objective)
    5
    >>> model = train_on_distilled(small, steps=3, kind="linear")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import datasets

from ..errors import CoresetInputError, UnknownMethodError
from .mdw import (
    CleanProbability,
    KeepLikelyClean,
    MDWConfig,
    add_clean_probability,
    drop_mismatched,
    estimate_clean_probability,
    rebuild_correspondence,
    run_mdw,
    train_on_distilled,
)
from .result import DESCRIPTION_KEY, DistillationResult, get_distillation_result


@dataclass(frozen=True)
class DistillerSpec:
    """A registered distillation method: its config dataclass and the function that runs it, called as
    ``run(dataset, num_pairs, config, space=..., image_column=..., text_column=..., image_network=...,
    show_progress=...)`` and returning a ``datasets.Dataset``."""

    name: str
    config_class: type
    run: Callable[..., datasets.Dataset]


_DISTILLERS: dict[str, DistillerSpec] = {}


def register_distiller(name: str, config_class: type, run: Callable[..., datasets.Dataset], *,
                       overwrite: bool = False) -> None:
    """Make ``distill(method=name)`` use ``run`` configured by the dataclass ``config_class`` (which has a
    ``seed`` field)."""
    if not dataclasses.is_dataclass(config_class) or "seed" not in {f.name for f in dataclasses.fields(config_class)}:
        raise TypeError(f"config_class must be a dataclass with a seed field, got {config_class!r}.")
    if name in _DISTILLERS and not overwrite:
        raise ValueError(f"A distiller named {name!r} is already registered; pass overwrite=True to replace it.")
    _DISTILLERS[name] = DistillerSpec(name, config_class, run)


def available_distillers() -> list[str]:
    """Names of all registered distillation methods, sorted."""
    return sorted(_DISTILLERS)


def distill(dataset: datasets.Dataset, method: str = "mdw", num_pairs: int = 100, *, space: str = "features",
            image_column: str | None = None, text_column: str | None = None,
            image_network: Callable[[], Any] | None = None, seed: int = 0, show_progress: bool = True,
            **options: Any) -> datasets.Dataset:
    """Distill ``dataset`` into ``num_pairs`` synthetic image-text pairs with ``method``.

    Args:
        dataset: the pool: an image column (embedding vectors, or ``(C, H, W)`` pixel arrays with
            ``space="pixels"``) and a text-embedding column. It may hold mismatched pairs.
        method: a registered distiller (``available_distillers()``).
        num_pairs: synthetic pairs to learn (2 .. number of rows).
        space: ``"features"`` (learn image feature vectors; runs on a CPU) or ``"pixels"`` (learn images;
            needs ``image_network``).
        image_column, text_column: the input columns.
        image_network: pixel space only: a zero-argument callable building the image network (a
            ``torch.nn.Module`` over ``(B, C, H, W)`` with at least one convolutional feature map).
        seed: the same seed gives the same distilled set.
        show_progress: show progress bars.
        **options: fields of the method's config (for MDW: :class:`MDWConfig`, e.g. ``iterations=200``).

    Returns:
        One row per synthetic pair, columns:

        * ``image_features`` (features space, ``float32`` vector) or ``pixel_values`` (pixels space,
          ``Array3D`` ``(C, H, W)``): the synthetic image;
        * ``text_embedding``: the synthetic text embedding;
        * ``correspondence_diag`` (float), ``correspondence_left`` and ``correspondence_right`` (vectors of
          length ``rank``): row ``i``'s share of ``P = diag(a) + L R^T``; rebuild P with
          :func:`rebuild_correspondence`;
        * ``source_row``: the real row the synthetic pair started from.

        The learned student learning rate, the objective per iteration and the provenance (config, seed,
        source fingerprint, timings, versions) are JSON in ``info.description``; read them with
        :func:`get_distillation_result`. Train on the set with :func:`train_on_distilled`.
    """
    if method not in _DISTILLERS:
        raise UnknownMethodError(
            f"Unknown distillation method {method!r}. Known: {', '.join(available_distillers())}."
        )
    if image_column is None or text_column is None:
        raise CoresetInputError(
            "distill needs image_column=... (image vectors or pixels) and text_column=... (text embeddings)."
        )
    spec = _DISTILLERS[method]
    known = [f.name for f in dataclasses.fields(spec.config_class)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise CoresetInputError(f"Unknown option(s) {unknown} for distiller {method!r}. Its options are: {known}.")
    config = spec.config_class(**{**options, "seed": seed})
    return spec.run(dataset, num_pairs, config, space=space, image_column=image_column, text_column=text_column,
                    image_network=image_network, show_progress=show_progress)


register_distiller("mdw", MDWConfig, run_mdw)

__all__ = [
    "DESCRIPTION_KEY",
    "CleanProbability",
    "DistillationResult",
    "DistillerSpec",
    "KeepLikelyClean",
    "MDWConfig",
    "add_clean_probability",
    "available_distillers",
    "distill",
    "drop_mismatched",
    "estimate_clean_probability",
    "get_distillation_result",
    "rebuild_correspondence",
    "register_distiller",
    "train_on_distilled",
]
