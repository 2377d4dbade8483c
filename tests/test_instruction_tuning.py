"""The OST instruction-tuning example on a tiny random LLaVA, and the collator's labels."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from hf_coreset.errors import CoresetInputError
from hf_coreset.integrations.instruction import IGNORE_INDEX, VisualInstructionCollator

from .tiny_vlms import tiny_llava, tiny_llava_dataset, tiny_qwen2_vl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_example():
    spec = importlib.util.spec_from_file_location("ost_instruction_tuning",
                                                  os.path.join(ROOT, "examples", "ost_instruction_tuning.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("build", [tiny_llava, tiny_qwen2_vl])
def test_collator_labels_only_the_assistant_answers(build):
    model, processor = build()
    rows = list(tiny_llava_dataset(3))
    batch = VisualInstructionCollator(processor, model)(rows)
    tokenizer = processor.tokenizer
    for i, row in enumerate(rows):
        answer_ids = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        answers = " ".join(turn["value"] for turn in row["conversations"] if turn["from"] == "gpt")
        assert tokenizer.decode(answer_ids).split() == answers.split()
    # Padding is masked out of the loss and the attention.
    assert ((batch["attention_mask"] == 0) <= (batch["labels"] == IGNORE_INDEX)).all()
    assert torch.isfinite(model(**batch).loss)


def test_collator_says_to_keep_the_raw_columns():
    model, processor = tiny_llava()
    with pytest.raises(CoresetInputError, match="remove_unused_columns=False"):
        VisualInstructionCollator(processor, model)([{"input_ids": [1, 2]}])


def test_example_trains_lora_on_the_ost_selection(tmp_path):
    example = load_example()
    model, processor = tiny_llava()
    trainer, callback = example.build_trainer(model, processor, tiny_llava_dataset(20), str(tmp_path),
                                              budget=0.2, epochs=2, every_n_epochs=1, lora_r=2, batch_size=2,
                                              use_cpu=True, disable_tqdm=True, save_strategy="no")
    lora = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert all("lora_" in name for name in lora) and lora
    assert [h["rows"] for h in callback.history] == [4, 4] and trainer.state.global_step == 4
    diagnostics = callback.history[0]["diagnostics"]
    assert diagnostics["trainable_parameters"] == sum(p.numel() for p in lora.values())
    changed = [name for name, p in trainer.model.named_parameters() if name in lora and not torch.equal(p, lora[name])]
    assert changed  # the adapter trained
