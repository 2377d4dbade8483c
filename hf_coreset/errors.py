"""Exceptions raised by hf_coreset.

Every error a user can cause is a ``ValueError`` subclass, so ``except ValueError`` keeps working, and every
message names the problem and the fix.
"""

from __future__ import annotations


class CoresetInputError(ValueError):
    """The dataset, a column, the budget or an option is not usable as given."""


class UnknownMethodError(CoresetInputError):
    """The method name is not registered; the message lists the known ones."""


class MissingColumnError(CoresetInputError):
    """A named column does not exist; the message lists the dataset's columns."""


class BadFeaturesError(CoresetInputError):
    """An embedding column is ragged, not numeric, or holds NaN / inf; the message names the first bad row."""


class CoresetEngineError(RuntimeError):
    """A distributed selection (``engine="ray"``) lost a task: its worker died more often than the retries
    allow, or the task raised an error that is not about the input. Nothing is returned half-selected."""


class UnreadableImageError(CoresetInputError):
    """An image could not be decoded (raised only with ``on_error="raise"``); the message names the row."""
