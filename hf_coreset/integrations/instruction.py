"""A data collator for visual instruction tuning: LLaVA-format rows -> a training batch for a transformers VLM.

Each row goes through the model's chat template and processor exactly as ScalSelect's stage A renders it
(:func:`hf_coreset.features.vlm_attention.encode_conversation`); the labels are the assistant answers'
tokens, everything else (system prompt, user turns, image tokens, padding) is -100. Rows are right-padded
to the longest in the batch; image tensors are concatenated along their first dimension.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import CoresetInputError
from ..features.encoders import RowFailure, load_image
from ..features.vlm_attention import check_supported, encode_conversation

IGNORE_INDEX = -100
# Padding of the per-token inputs (input_ids use the tokenizer's pad id, unlisted ones 0); image tensors
# are concatenated instead.
_PAD_VALUES = {"attention_mask": 0, "labels": IGNORE_INDEX}


class VisualInstructionCollator:
    """Collates rows with a LLaVA ``conversations`` (or OpenAI ``messages``) column and an image column.

    Args:
        processor: the VLM's processor (chat template, tokenizer, image processor).
        model: the VLM (or its ``config.model_type`` string): selects how images are passed to the processor.
        conversation_column, image_column: where the rows keep them.

    Example:
        >>> collator = VisualInstructionCollator(processor, model)                 # doctest: +SKIP
        >>> batch = collator([dataset[0], dataset[1]])                             # doctest: +SKIP
        >>> sorted(batch)                                                          # doctest: +SKIP
        ['attention_mask', 'input_ids', 'labels', 'pixel_values']
    """

    def __init__(self, processor: Any, model: Any, conversation_column: str = "conversations",
                 image_column: str = "image"):
        self.processor = processor
        self.model_type = model if isinstance(model, str) else check_supported(model)
        self.conversation_column, self.image_column = conversation_column, image_column
        tokenizer = getattr(processor, "tokenizer", processor)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return _pad_and_stack([self._encode(row) for row in rows], self.pad_token_id)

    def _encode(self, row: dict[str, Any]) -> dict[str, torch.Tensor]:
        missing = [c for c in (self.conversation_column, self.image_column) if c not in row]
        if missing:
            raise CoresetInputError(
                f"The rows have no {missing} column(s) (they have {sorted(row)}). With a transformers Trainer set "
                "TrainingArguments(remove_unused_columns=False): the model's forward does not name these columns."
            )
        cell = row[self.image_column]
        cells = [c for c in (cell if isinstance(cell, list) else [cell]) if c is not None]
        try:
            images = [load_image(value, -1, self.image_column) for value in cells]
            inputs, assistant = encode_conversation(self.processor, self.model_type, row[self.conversation_column],
                                                    images)
        except RowFailure as failure:
            raise CoresetInputError(f"A row cannot be collated ({failure.reason}: {failure.detail}).") from failure
        ids = inputs["input_ids"][0]
        # Per-token tensors (input ids, attention mask, token types) lose their batch dimension to be padded.
        inputs = {key: value[0] if _is_per_token(value, len(ids)) else value for key, value in inputs.items()}
        inputs["labels"] = torch.where(assistant, ids, torch.full_like(ids, IGNORE_INDEX))
        return inputs


def _is_per_token(value: Any, length: int) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 2 and tuple(value.shape) == (1, length)


def _pad_and_stack(samples: list[dict[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    longest = max(len(sample["input_ids"]) for sample in samples)
    batch = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        if values[0].dim() == 1:  # per token: right-pad
            fill = pad_token_id if key == "input_ids" else _PAD_VALUES.get(key, 0)
            batch[key] = torch.stack([torch.cat([v, v.new_full((longest - len(v),), fill)]) for v in values])
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.cat(values)
    return batch
