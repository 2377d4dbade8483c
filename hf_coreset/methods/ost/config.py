"""Options of ``method="ost"``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ...config import SelectionConfig, check_choice, check_positive
from ...errors import CoresetInputError

ESTIMATORS = ("first_order", "exact")
PER_SAMPLE_MODES = ("auto", "vmap", "loop")
# Defaults of the options left at None, by proxy. With a user's model: the paper's setting (first order, a
# short warm-up). With the built-in contrastive proxy: first-order inner products are dominated by the
# repulsion term every pair shares, so mismatched pairs look useful; the exact step after one warm-up epoch
# is what separated them on the retrieval benchmark (benchmarks/results/retrieval_openclipart_ost.md).
MODEL_PROXY_DEFAULTS = {"estimator": "first_order", "learning_rate": 1e-3, "warmup_fraction": 0.05}
BUILTIN_PROXY_DEFAULTS = {"estimator": "exact", "learning_rate": 0.05, "warmup_fraction": 1.0}


@dataclass
class OSTConfig(SelectionConfig):
    """Options of ``method="ost"`` (One-Step-Train, arXiv 2605.07488; a reconstruction of the abstract).

    The utility of row i is how much one simulated optimiser step on that row alone lowers the proxy's loss
    on an anchor set V: ``U_i = L_V(theta) - L_V(theta - eta * g_i)``. Rows are kept by descending utility;
    ``U_i < 0`` marks a harmful row.

    ``estimator``, ``learning_rate`` and ``warmup_fraction`` left at None take the defaults of the proxy in use
    (``MODEL_PROXY_DEFAULTS`` with ``proxy=``, ``BUILTIN_PROXY_DEFAULTS`` without); the diagnostics record the
    values that ran.

    Attributes:
        estimator: ``"first_order"`` (``U_i ~ eta <g_V, g_i>``, per-sample gradients) or ``"exact"`` (apply the
            step to a functional copy of the parameters and evaluate L_V: one pass over V per row).
        learning_rate: eta, the size of the simulated step.
        preconditioner: None (plain SGD step) or ``"adam"``: the step is ``eta * g / (sqrt(v) + eps)`` with v
            Adam's second-moment estimate from the warm-up (LESS style; needs a warm-up).
        redundancy: greedy selection that subtracts ``eta^2 * sum_{j in S} <g_i, g_j>`` (rows whose gradients
            repeat what is already picked gain less), computed on gradient sketches of ``sketch_dim`` values.
        sketch_dim: width of the CountSketch of each gradient used by ``redundancy`` (gradients with fewer
            values are kept exactly).
        warmup_fraction: fraction of an epoch over the pool the proxy trains on (a copy of its parameters;
            the proxy itself is never modified) before scoring.
        warmup_learning_rate, warmup_batch_size: the warm-up's AdamW learning rate and batch size.
        anchor_fraction: size of the anchor set drawn from the pool when ``anchor`` is not given (its rows
            stay candidates; pass a held-out ``anchor`` Dataset for an unbiased V).
        scoring_batch_size: candidate rows per chunk of per-sample gradients, and anchor rows per forward.
        per_sample_gradients: ``"vmap"`` (torch.func), ``"loop"`` (one backward per row) or ``"auto"``
            (vmap, falling back to the loop when the model cannot be vmapped; the diagnostics say which ran).
        proxy: the proxy model (any ``torch.nn.Module``, e.g. a transformers model, optionally a PEFT model
            so that only the adapter's parameters count: only parameters with ``requires_grad`` are used).
            None: a light two-head contrastive proxy is built on the two ``embedding_columns``.
        collate_fn: with ``proxy``, maps a list of dataset rows to the model's keyword inputs (e.g. a
            transformers data collator); the loss of a batch of one row is that row's loss.
        loss_fn: ``loss_fn(outputs, batch) -> scalar`` (default: ``outputs.loss``, ``outputs["loss"]`` or the
            output itself when it is a scalar tensor).
        anchor: a ``datasets.Dataset`` to use as V, with the pool's columns (with ``proxy=``) or the same
            embedding columns (without). A small clean, held-out set is what the method assumes: scored
            against a noisy V, rows that fit the noise look useful too.
        heads, bank_size: the built-in proxy's heads (``"linear"`` or ``"mlp"``) and number of pool pairs
            each pair is contrasted with (so that one pair alone has a meaningful loss).
        device: where the proxy runs (default: where its parameters are).

    Example:
        >>> OSTConfig(estimator="exact", learning_rate=0.01).to_dict()["estimator"]
        'exact'
    """

    object_fields = ("proxy", "collate_fn", "loss_fn", "anchor")

    estimator: str | None = None
    learning_rate: float | None = None
    preconditioner: str | None = None
    redundancy: bool = False
    sketch_dim: int = 512
    warmup_fraction: float | None = None
    warmup_learning_rate: float = 1e-3
    warmup_batch_size: int = 32
    anchor_fraction: float = 0.05
    scoring_batch_size: int = 32
    per_sample_gradients: str = "auto"
    proxy: Any = field(default=None, repr=False, compare=False)
    collate_fn: Any = field(default=None, repr=False, compare=False)
    loss_fn: Any = field(default=None, repr=False, compare=False)
    anchor: Any = field(default=None, repr=False, compare=False)
    heads: str = "linear"
    bank_size: int = 128
    device: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("estimator", self.estimator, (None, *ESTIMATORS))
        check_choice("per_sample_gradients", self.per_sample_gradients, PER_SAMPLE_MODES)
        check_choice("preconditioner", self.preconditioner, (None, "adam"))
        check_choice("heads", self.heads, ("linear", "mlp"))
        for name in ("learning_rate", "warmup_learning_rate"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name), float)
        for name in ("sketch_dim", "warmup_batch_size", "scoring_batch_size", "bank_size"):
            check_positive(name, getattr(self, name), int)
        for name in ("warmup_fraction", "anchor_fraction"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise CoresetInputError(f"{name} must be a number in [0, 1], got {value!r}.")
        if self.anchor is None and self.anchor_fraction == 0:
            raise CoresetInputError("OST needs an anchor set: pass anchor=<Dataset> or anchor_fraction > 0.")
        if self.preconditioner == "adam" and self.warmup_fraction == 0:  # explicitly no warm-up
            raise CoresetInputError(
                "preconditioner='adam' uses the second moments of the warm-up: set warmup_fraction > 0."
            )
        if self.proxy is not None and self.collate_fn is None:
            raise CoresetInputError(
                "proxy= needs collate_fn= too: a function mapping a list of dataset rows to the model's "
                "inputs (e.g. a transformers DataCollator, or one built around the model's processor)."
            )
        if self.proxy is None and (self.collate_fn is not None or self.loss_fn is not None):
            raise CoresetInputError("collate_fn= and loss_fn= only apply with proxy=<model>.")


def resolve_defaults(config: OSTConfig, builtin_proxy: bool) -> OSTConfig:
    """A copy of ``config`` with the options left at None set for the proxy in use."""
    defaults = BUILTIN_PROXY_DEFAULTS if builtin_proxy else MODEL_PROXY_DEFAULTS
    return dataclasses.replace(config, **{name: value for name, value in defaults.items()
                                          if getattr(config, name) is None})
