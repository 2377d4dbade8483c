"""Install ``select_coreset`` on ``datasets.Dataset`` and ``datasets.DatasetDict``.

An attribute that already exists (a newer ``datasets`` release, or another plugin) is never overwritten.
"""

from __future__ import annotations

from typing import Any

import datasets

from ..api import select_coreset


def _dataset_select_coreset(self: datasets.Dataset, method: str, budget: int | float, **kwargs: Any):
    """``ds.select_coreset(method, budget, **kwargs)``: same as ``hf_coreset.select_coreset(ds, ...)``."""
    return select_coreset(self, method, budget, **kwargs)


def _dataset_dict_select_coreset(self: datasets.DatasetDict, method: str, budget: int | float, **kwargs: Any):
    """Select a coreset of every split (a fractional budget applies to each split's own size)."""
    return datasets.DatasetDict({split: select_coreset(ds, method, budget, **kwargs) for split, ds in self.items()})


def install_accessors() -> dict[str, bool]:
    """Add ``select_coreset`` to Dataset and DatasetDict where free; returns what was installed."""
    installed = {}
    for cls, function in ((datasets.Dataset, _dataset_select_coreset),
                          (datasets.DatasetDict, _dataset_dict_select_coreset)):
        installed[cls.__name__] = not hasattr(cls, "select_coreset")
        if installed[cls.__name__]:
            function.__doc__ = (function.__doc__ or "") + "\n\n" + (select_coreset.__doc__ or "")
            cls.select_coreset = function
    return installed
