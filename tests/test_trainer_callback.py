"""CoresetCallback in a real transformers Trainer: the model sees only selected rows, re-selection changes them,
and a resumed run continues on the subset saved in the checkpoint, batch for batch."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from hf_coreset import CoresetCallback, CoresetTrainer
from hf_coreset.errors import CoresetInputError, UnknownMethodError

N_ROWS, BATCH = 40, 5


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(
        vocab_size=N_ROWS + 2, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2))


def rows_with_ids() -> datasets.Dataset:
    """Token 0 of every row is its row id + 1, so a collator can tell which rows the model is fed."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, N_ROWS + 1, size=(N_ROWS, 5))
    ids[:, 0] = np.arange(N_ROWS) + 1
    return datasets.Dataset.from_dict({"input_ids": ids.tolist(), "label": rng.integers(0, 2, N_ROWS).tolist(),
                                       "img_emb": rng.normal(size=(N_ROWS, 6)).tolist()})


class RecordingCollator:
    """Collates like a plain data collator and records the row ids of every batch, in order."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __call__(self, rows):
        ids = torch.tensor([r["input_ids"] for r in rows])
        self.batches.append((ids[:, 0] - 1).tolist())
        return {"input_ids": ids, "labels": torch.tensor([r["label"] for r in rows])}


def make_trainer(tmp_path, callback, *, epochs=1, save_steps=None, trainer_class=CoresetTrainer, **arg_kwargs):
    collator = RecordingCollator()
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=BATCH, num_train_epochs=epochs, use_cpu=True,
        report_to=[], logging_strategy="no", disable_tqdm=True, seed=0,
        save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500, **arg_kwargs)
    trainer = trainer_class(model=tiny_model(), args=args, train_dataset=rows_with_ids(), data_collator=collator,
                            callbacks=[callback])
    return trainer, collator


def test_dataloader_yields_only_the_selected_rows(tmp_path):
    callback = CoresetCallback("random", budget=0.25)
    trainer, collator = make_trainer(tmp_path, callback, epochs=2)
    trainer.train()
    seen = [row for batch in collator.batches for row in batch]
    assert trainer.state.global_step == 2 * 10 // BATCH  # steps per epoch follow the subset, not the 40 rows
    assert len(seen) == 20 and set(seen) == set(callback.indices) and len(callback.indices) == 10
    assert sorted(seen[:10]) == sorted(seen[10:]) == sorted(callback.indices)  # each epoch: the subset once
    assert seen[:10] != seen[10:]  # reshuffled per epoch
    assert callback.selections == 1


def test_every_n_epochs_reselects_a_subset_of_the_same_size(tmp_path):
    callback = CoresetCallback("random", budget=10, every_n_epochs=1)
    trainer, collator = make_trainer(tmp_path, callback, epochs=3)
    trainer.train()
    per_epoch = [sorted(sum(collator.batches[e * 2:(e + 1) * 2], [])) for e in range(3)]
    assert [h["epoch"] for h in callback.history] == [0, 1, 2]
    assert all(len(rows) == 10 for rows in per_epoch)
    assert per_epoch[0] != per_epoch[1] != per_epoch[2]
    assert per_epoch[2] == sorted(callback.indices)


def test_resume_continues_on_the_saved_subset_batch_for_batch(tmp_path):
    straight_callback = CoresetCallback("random", budget=10)
    straight, straight_batches = make_trainer(tmp_path / "straight", straight_callback, epochs=3)
    straight.train()

    first_callback = CoresetCallback("random", budget=10)
    first, _ = make_trainer(tmp_path / "resumed", first_callback, epochs=3, save_steps=3)
    first.train()
    # A new process would start from scratch: new trainer, new callback, resume from the step-3 checkpoint.
    resumed_callback = CoresetCallback("random", budget=10, seed=123)  # a different seed must not matter
    resumed, resumed_batches = make_trainer(tmp_path / "resumed", resumed_callback, epochs=3)
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-3"))
    assert resumed_callback.indices == first_callback.indices == straight_callback.indices
    assert resumed_callback.history == []  # restored, not re-selected
    assert resumed_batches.batches == straight_batches.batches[3:]


def test_ost_in_the_callback_scores_with_the_model_being_trained(tmp_path):
    callback = CoresetCallback("ost", budget=0.2, warmup_fraction=0.0, anchor_fraction=0.1)
    trainer, collator = make_trainer(tmp_path, callback)
    trainer.train()
    diagnostics = callback.history[0]["diagnostics"]
    assert diagnostics["estimator"] == "first_order" and diagnostics["anchor_rows"] == 4
    assert diagnostics["trainable_parameters"] == sum(p.numel() for p in trainer.model.parameters())
    # The Trainer's collator served the scoring first (anchor + candidate chunks), then the 2 training batches.
    assert len(collator.batches) > 2 and len(callback.indices) == 8
    assert set(sum(collator.batches[-2:], [])) == set(callback.indices)


def test_embedding_methods_read_the_columns_the_model_does_not_take(tmp_path):
    callback = CoresetCallback("kcenter", budget=10, embedding_columns=["img_emb"])
    trainer, collator = make_trainer(tmp_path, callback)
    trainer.train()
    assert set(sum(collator.batches, [])) == set(callback.indices)


def test_a_plain_trainer_is_refused_with_the_fix(tmp_path):
    trainer, _ = make_trainer(tmp_path, CoresetCallback("random", budget=10), trainer_class=Trainer)
    with pytest.raises(CoresetInputError, match="CoresetTrainer"):
        trainer.train()


def test_bad_callback_arguments_fail_at_construction():
    with pytest.raises(UnknownMethodError):
        CoresetCallback("no-such-method", budget=0.1)
    with pytest.raises(CoresetInputError, match="every_n_epochs"):
        CoresetCallback("random", budget=0.1, every_n_epochs=0)
