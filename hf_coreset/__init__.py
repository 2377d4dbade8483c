"""hf_coreset: pick the most useful small subset (a coreset) of a multimodal ``datasets.Dataset``.

Importing the package adds ``select_coreset`` to ``datasets.Dataset`` and ``datasets.DatasetDict``
(unless those classes already have such an attribute).

Example:
    >>> import datasets, hf_coreset
    >>> ds = datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(20)]})
    >>> ds.select_coreset(method="random", budget=0.25).num_rows
    5
"""

from . import data, methods  # noqa: F401  (data: the shipped sample; methods: registers the built-ins)
from .api import select_coreset
from .config import EmbeddingSelectionConfig, SelectionConfig
from .errors import (
    BadFeaturesError,
    CoresetInputError,
    MissingColumnError,
    UnknownMethodError,
    UnreadableImageError,
)
from .integrations.datasets import install_accessors
from .integrations.hub import push_to_hub, render_trained_on_coreset_section
from .registry import available_methods, get_method, register_method
from .result import SelectionResult, get_selection_result
from .selector import EmbeddingSelector, FeatureSet, PoolReference, Selector

__version__ = "0.1.0"

# Loaded on first use: the Trainer integration imports transformers' Trainer, distillation scipy and sklearn,
# evaluation torch (its proxies train on it).
_LAZY_NAMES = {
    **dict.fromkeys(("CoresetReport", "evaluate_coreset"), "evaluation"),
    **dict.fromkeys(("CoresetCallback", "CoresetSampler", "CoresetTrainer", "CoresetTrainerMixin"),
                    "integrations.trainer"),
    **dict.fromkeys(("get_distillation_result", "train_on_distilled", "estimate_clean_probability",
                     "drop_mismatched"), "distill"),
}
# Subpackages reachable as attributes after a plain `import hf_coreset`, imported on first use:
# hf_coreset.distill is the distillation subpackage (its entry point is hf_coreset.distill.distill).
_LAZY_SUBPACKAGES = ("distill",)


def __getattr__(name: str):
    import importlib

    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'hf_coreset' has no attribute {name!r}")


__all__ = [
    "BadFeaturesError",
    "CoresetCallback",
    "CoresetSampler",
    "CoresetTrainer",
    "CoresetTrainerMixin",
    "CoresetInputError",
    "CoresetReport",
    "EmbeddingSelectionConfig",
    "EmbeddingSelector",
    "FeatureSet",
    "MissingColumnError",
    "PoolReference",
    "SelectionConfig",
    "SelectionResult",
    "Selector",
    "UnknownMethodError",
    "UnreadableImageError",
    "available_methods",
    "distill",
    "drop_mismatched",
    "estimate_clean_probability",
    "evaluate_coreset",
    "get_distillation_result",
    "get_method",
    "get_selection_result",
    "push_to_hub",
    "register_method",
    "render_trained_on_coreset_section",
    "select_coreset",
    "train_on_distilled",
]

install_accessors()
