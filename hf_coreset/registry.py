"""Method registry: a name maps to a config dataclass and a selector class.

Third parties add their own method with :func:`register_method`; ``select_coreset(method=NAME)`` then
finds it like a built-in one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import SelectionConfig
from .errors import CoresetInputError, UnknownMethodError
from .result import library_versions

if TYPE_CHECKING:
    from .selector import Selector


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_class: type[SelectionConfig]
    selector_class: type[Selector]

    def build_config(self, seed: int, options: dict[str, Any]) -> SelectionConfig:
        """The method's config from keyword options; an unknown option raises and lists the known ones."""
        known = [f.name for f in dataclasses.fields(self.config_class)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise CoresetInputError(
                f"Unknown option(s) {unknown} for method {self.name!r}. Its options are: {known}."
            )
        return self.config_class(**{**options, "seed": seed})

    def provenance(self, config: SelectionConfig, *, budget: int | float, budget_rows: int, rows_in: int,
                   rows_out: int, dropped: dict[str, list[int]], source_fingerprint: str | None,
                   source_split: str | None, timings: dict[str, float], score_meaning: str | None = None,
                   extra_versions: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
        """The provenance of one selection with this method (the fields ``check_selection_record`` validates),
        whatever engine ran it; ``extra`` adds engine-specific fields."""
        return {
            "method": self.name,
            "selector": f"{self.selector_class.__module__}.{self.selector_class.__qualname__}",
            "config": config.to_dict(),
            "seed": config.seed,
            "budget": budget,
            "budget_rows": budget_rows,
            "rows_in": rows_in,
            "rows_out": rows_out,
            "rows_dropped": {reason: {"count": len(rows), "rows": list(rows)} for reason, rows in dropped.items()},
            "source_fingerprint": source_fingerprint,
            "source_split": source_split,
            "score_meaning": score_meaning or self.selector_class.score_meaning,
            **extra,
            "timings": timings,
            "library_versions": library_versions(extra_versions),
        }


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(
    name: str,
    config_class: type[SelectionConfig],
    selector_class: type[Selector],
    *,
    overwrite: bool = False,
) -> None:
    """Make ``select_coreset(method=name)`` use ``selector_class`` configured by ``config_class``.

    Example:
        >>> import numpy as np
        >>> from dataclasses import dataclass
        >>> from hf_coreset import register_method, SelectionConfig, Selector
        >>> @dataclass
        ... class FirstRowsConfig(SelectionConfig):
        ...     pass
        >>> class FirstRows(Selector):
        ...     needs_features = False
        ...     def _select(self, features, budget):
        ...         return np.arange(budget), np.zeros(budget), {}
        >>> register_method("first_rows", FirstRowsConfig, FirstRows)
    """
    from .selector import Selector

    if not (isinstance(config_class, type) and issubclass(config_class, SelectionConfig)):
        raise TypeError(f"config_class must subclass hf_coreset.SelectionConfig, got {config_class!r}.")
    if not (isinstance(selector_class, type) and issubclass(selector_class, Selector)):
        raise TypeError(f"selector_class must subclass hf_coreset.Selector, got {selector_class!r}.")
    from .api import SELECT_CORESET_ARGUMENTS

    # seed is the one shared name: every config has it, and select_coreset hands its seed to the config.
    shadowed = sorted({f.name for f in dataclasses.fields(config_class)} & SELECT_CORESET_ARGUMENTS - {"seed"})
    if shadowed:
        raise TypeError(
            f"{config_class.__name__} has option(s) {shadowed} named like argument(s) of select_coreset, which "
            "would take their values: rename them (e.g. 'proxy_batch_size' rather than 'batch_size')."
        )
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"A method named {name!r} is already registered; pass overwrite=True to replace it.")
    _REGISTRY[name] = MethodSpec(name, config_class, selector_class)


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``; an unknown name raises and lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(
            f"Unknown method {name!r}. Known methods: {', '.join(available_methods())}. "
            "Register your own with hf_coreset.register_method."
        ) from None


def available_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    return sorted(_REGISTRY)
