"""Coreset selection inside a ``transformers.Trainer``: pick the subset at train start, refresh it every n epochs.

How it hooks into the Trainer (tested with transformers 5.24; it relies on ``Trainer._get_train_sampler`` and
on the ``train_dataloader`` the Trainer hands its callbacks):

- :class:`CoresetTrainerMixin` (or the ready :class:`CoresetTrainer`) overrides ``_get_train_sampler`` to return
  a :class:`CoresetSampler` with as many rows as the budget, so the Trainer's steps per epoch, learning-rate
  schedule and ``max_steps`` are those of the subset from the start. The dataset itself is never modified.
- :class:`CoresetCallback` fills the sampler with the selected rows at ``on_train_begin`` and, with
  ``every_n_epochs``, replaces them at the start of every n-th epoch (same size, so the schedule holds). The
  selection runs on the main process only and is broadcast to the others; the sampler orders the rows by
  ``(seed, epoch)`` alone, so every process sees the same order and accelerate's batch sharding splits it.
- The selected rows are saved in each checkpoint (``trainer_state.json``, ``stateful_callbacks``) and restored
  on ``trainer.train(resume_from_checkpoint=...)``, so a resumed run continues on the saved subset and skips
  exactly the batches it had already seen.

Example:
    >>> from hf_coreset import CoresetCallback, CoresetTrainer                          # doctest: +SKIP
    >>> trainer = CoresetTrainer(model=model, args=args, train_dataset=train,          # doctest: +SKIP
    ...                          callbacks=[CoresetCallback("ost", budget=0.2, every_n_epochs=1)])
    >>> trainer.train()                                                                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState

from ..distributed import single_process_selection
from ..errors import CoresetInputError
from ..registry import get_method
from ..validation import resolve_budget

# Options a method can take from the running Trainer when the user did not give them (OST's proxy model).
TRAINER_SUPPLIED_OPTIONS = ("proxy", "collate_fn")


class CoresetSampler(torch.utils.data.Sampler[int]):
    """Yields the selected rows of the training set, shuffled by ``(seed, epoch)``.

    Its length is the budget from the start (the Trainer sizes its schedule with it); the rows are set by
    :class:`CoresetCallback`. ``selection_dataset`` is the training set as the user gave it (for methods that
    read embedding columns), ``model_inputs`` the same rows with only the model's columns and ``collate_fn``
    the Trainer's data collator (for methods that run the model on the rows, such as OST).
    """

    def __init__(self, num_rows: int, num_selected: int, seed: int, *, selection_dataset: Any = None,
                 model_inputs: Any = None, collate_fn: Callable | None = None):
        self.num_rows, self.num_selected, self.seed = num_rows, num_selected, seed
        self.selection_dataset, self.model_inputs, self.collate_fn = selection_dataset, model_inputs, collate_fn
        self.indices: np.ndarray | None = None
        self.epoch = 0

    def set_indices(self, indices) -> None:
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) != self.num_selected or len(np.unique(indices)) != len(indices):
            raise RuntimeError(f"A coreset must hold {self.num_selected} distinct rows, got {len(indices)}.")
        if indices.min() < 0 or indices.max() >= self.num_rows:
            raise RuntimeError(f"Coreset rows must lie in [0, {self.num_rows}), got {indices.min()}..{indices.max()}.")
        self.indices = indices

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_selected

    def __iter__(self):
        if self.indices is None:
            raise RuntimeError("The coreset sampler has no rows yet: CoresetCallback fills it at train start; "
                               "pass it in the Trainer's callbacks.")
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.indices))
        return iter(self.indices[order].tolist())


class CoresetCallback(TrainerCallback, ExportableState):
    """Selects the training subset with any registered method at train start, optionally every n epochs.

    Args:
        method: a registered method name (``hf_coreset.available_methods()``).
        budget: rows to train on, a count or a fraction of the training set; constant across re-selections.
        every_n_epochs: re-select at the start of every n-th epoch (None: select once).
        seed: seed of the selections (round r uses ``seed + r``) and of the sampler's order; default: the
            Trainer's ``args.seed``.
        show_progress: show the selection's progress bars.
        **select_kwargs: passed to :func:`hf_coreset.select_coreset` (``embedding_columns=...``, method
            options). A method with a ``proxy`` option (OST) gets the model being trained and the Trainer's
            data collator unless given here, so a re-selection scores rows with the current model.

    After training, ``history`` lists every selection (epoch, rows, diagnostics) and ``indices`` the current rows.
    """

    def __init__(self, method: str, budget: int | float, every_n_epochs: int | None = None, seed: int | None = None,
                 show_progress: bool = False, **select_kwargs: Any):
        get_method(method)  # an unknown name fails here, not after the Trainer has started
        if every_n_epochs is not None and (isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int)
                                           or every_n_epochs < 1):
            raise CoresetInputError(f"every_n_epochs must be None or an int >= 1, got {every_n_epochs!r}.")
        self.method, self.budget, self.every_n_epochs, self.seed = method, budget, every_n_epochs, seed
        self.show_progress, self.select_kwargs = show_progress, select_kwargs
        self.indices: list[int] | None = None
        self.selections = 0
        self.selected_at_epoch: int | None = None
        self.sampler_seed: int | None = None
        self.history: list[dict[str, Any]] = []

    # -- Trainer events -------------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        sampler = find_coreset_sampler(train_dataloader)
        saved = _saved_attributes(state, type(self).__name__)
        self.sampler_seed = sampler.seed
        if state.global_step > 0 and saved.get("indices") is not None:
            # Resuming: the saved rows in the saved order, so the Trainer skips exactly the batches already seen.
            self.indices, self.selections = saved["indices"], saved["selections"]
            self.selected_at_epoch, self.sampler_seed = saved["selected_at_epoch"], saved["sampler_seed"]
            sampler.seed = self.sampler_seed
            sampler.set_indices(self.indices)
        else:
            self._select(args, model, sampler, epoch=0)

    def on_epoch_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        epoch = state.epoch or 0.0
        if (self.every_n_epochs is None or epoch == 0 or not float(epoch).is_integer()
                or int(epoch) % self.every_n_epochs or int(epoch) == self.selected_at_epoch):
            return  # not a re-selection epoch (or a resumed run in the middle of an epoch)
        self._select(args, model, find_coreset_sampler(train_dataloader), epoch=int(epoch))

    def state(self) -> dict[str, Any]:
        return {
            "args": {"method": self.method, "budget": self.budget, "every_n_epochs": self.every_n_epochs,
                     "seed": self.seed, **{k: v for k, v in self.select_kwargs.items() if _is_json(v)}},
            "attributes": {"indices": self.indices, "selections": self.selections,
                           "selected_at_epoch": self.selected_at_epoch, "sampler_seed": self.sampler_seed},
        }

    # -- selection ---------------------------------------------------------------------------------------

    def _select(self, args, model, sampler: CoresetSampler, epoch: int) -> None:
        from accelerate import PartialState
        from accelerate.utils import broadcast_object_list

        seed = (args.seed if self.seed is None else self.seed) + self.selections
        state = PartialState()
        payload = [None]
        if state.is_main_process:
            with single_process_selection():
                payload = [self._run_selection(model, sampler, seed)]
        if state.num_processes > 1:
            broadcast_object_list(payload)
        indices, diagnostics = payload[0]
        sampler.set_indices(indices)
        self.indices, self.selected_at_epoch = [int(i) for i in indices], epoch
        self.selections += 1
        self.history.append({"epoch": epoch, "seed": seed, "rows": len(indices), "diagnostics": diagnostics})

    def _run_selection(self, model, sampler: CoresetSampler, seed: int):
        from ..api import select_coreset
        from ..result import get_selection_result

        options = dict(self.select_kwargs)
        dataset = sampler.selection_dataset
        fields = {f.name for f in dataclasses.fields(get_method(self.method).config_class)}
        if set(TRAINER_SUPPLIED_OPTIONS) <= fields and options.get("proxy") is None:
            # Score with the model being trained, on the rows exactly as the Trainer feeds them.
            options.update(proxy=model, collate_fn=options.get("collate_fn") or sampler.collate_fn)
            dataset = sampler.model_inputs
        core = select_coreset(dataset, self.method, sampler.num_selected, seed=seed,
                              show_progress=self.show_progress, **options)
        result = get_selection_result(core)
        return result.indices.tolist(), result.diagnostics


class CoresetTrainerMixin:
    """Mix into any ``transformers.Trainer`` subclass (``class MyTrainer(CoresetTrainerMixin, SFTTrainer)``) so
    that a :class:`CoresetCallback` among its callbacks controls which rows are trained on."""

    def _get_train_sampler(self, train_dataset=None):
        callback = next((cb for cb in self.callback_handler.callbacks if isinstance(cb, CoresetCallback)), None)
        if callback is None:
            return super()._get_train_sampler(train_dataset)
        model_inputs = train_dataset if train_dataset is not None else self.train_dataset
        return CoresetSampler(
            len(model_inputs), resolve_budget(callback.budget, len(model_inputs)),
            self.args.seed if callback.seed is None else callback.seed,
            selection_dataset=self.train_dataset, model_inputs=model_inputs, collate_fn=self.data_collator,
        )


class CoresetTrainer(CoresetTrainerMixin, Trainer):
    """A ``transformers.Trainer`` that trains on the rows its :class:`CoresetCallback` selects."""


def find_coreset_sampler(dataloader) -> CoresetSampler:
    """The :class:`CoresetSampler` inside the Trainer's (possibly accelerate-wrapped) training dataloader."""
    stack, seen = [dataloader], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, CoresetSampler):
            return node
        stack.extend(getattr(node, name, None) for name in ("sampler", "batch_sampler", "base_dataloader"))
    raise CoresetInputError(
        "CoresetCallback found no CoresetSampler in the training dataloader: train with hf_coreset.CoresetTrainer, "
        "or add hf_coreset.CoresetTrainerMixin in front of your Trainer class "
        "(class MyTrainer(CoresetTrainerMixin, Trainer)), so the Trainer samples from the coreset."
    )


def _saved_attributes(state, name: str) -> dict[str, Any]:
    saved = (getattr(state, "stateful_callbacks", None) or {}).get(name) or {}
    if isinstance(saved, list):  # several callbacks of one class: the Trainer stores a list
        saved = saved[0] if saved else {}
    return saved.get("attributes", {}) if isinstance(saved, dict) else {}


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False
