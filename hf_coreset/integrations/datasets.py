"""Install ``select_coreset`` on ``datasets.Dataset`` and ``datasets.DatasetDict``.

An attribute that already exists (a newer ``datasets`` release, or another plugin) is never overwritten.
"""

from __future__ import annotations

from typing import Any

import datasets

from ..api import select_coreset
from ..errors import CoresetInputError


def _dataset_select_coreset(self: datasets.Dataset, method: str, budget: int | float, **kwargs: Any):
    """``ds.select_coreset(method, budget, **kwargs)``: same as ``hf_coreset.select_coreset(ds, ...)``."""
    return select_coreset(self, method, budget, **kwargs)


def _dataset_dict_select_coreset(self: datasets.DatasetDict, method: str, budget: int | float, **kwargs: Any):
    """Select a coreset of every split (a fractional budget applies to each split's own size); an input error
    names the split it came from."""
    selected = {}
    for split, dataset in self.items():
        try:
            selected[split] = select_coreset(dataset, method, budget, **kwargs)
        except CoresetInputError as err:  # same error class, so `except MissingColumnError` still works
            raise type(err)(f"In split {split!r}: {err}") from err
    return datasets.DatasetDict(selected)


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
