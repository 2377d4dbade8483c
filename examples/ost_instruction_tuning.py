"""Visual instruction tuning of a small VLM with LoRA on the 20 % of the data that OST picks (and re-picks).

The Trainer trains a LoRA adapter on the language model; at train start (and, with ``--every-n-epochs``, at the
start of every n-th epoch) :class:`hf_coreset.CoresetCallback` scores every row with OST using the model
being trained as the proxy (only the adapter's parameters count) and the Trainer's own collator, and the
Trainer then trains on the top 20 % only. The subset is saved in every checkpoint and restored on resume.

    python examples/ost_instruction_tuning.py --data llava_instruct.json --image-folder images/ \\
        --model llava-hf/llava-interleave-qwen-0.5b-hf --budget 0.2 --epochs 3 --every-n-epochs 1 \\
        --output-dir runs/ost20
    accelerate launch examples/ost_instruction_tuning.py ...   # several GPUs: selection on the main process,
                                                               # broadcast; batches sharded as usual

The data are LLaVA's JSON format (``conversations`` with ``<image>`` markers, ``image`` relative to
``--image-folder``); the supported models are those of ScalSelect's stage A (LLaVA, LLaVA-NeXT, LLaVA-OneVision,
Qwen2/2.5/3-VL, Idefics3, SmolVLM). The test suite runs :func:`build_trainer` on a tiny random LLaVA.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from hf_coreset import CoresetCallback, CoresetTrainer
from hf_coreset.integrations.instruction import VisualInstructionCollator

# LoRA on the language model's attention projections only (the vision tower's q/v projections stay frozen).
LANGUAGE_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="LLaVA-format JSON file")
    parser.add_argument("--image-folder", default="", help="folder the rows' image paths are relative to")
    parser.add_argument("--model", default="llava-hf/llava-interleave-qwen-0.5b-hf")
    parser.add_argument("--budget", type=float, default=0.2, help="rows to train on: a fraction (<= 1) or a count")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--every-n-epochs", type=int, default=None, help="re-select every n epochs (default: once)")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--ost-learning-rate", type=float, default=1e-3, help="eta of OST's simulated step")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--resume", default=None, help="checkpoint folder to resume from")
    return parser.parse_args(argv)


def add_lora(model: Any, r: int) -> Any:
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05,
                                            target_modules=LANGUAGE_LORA_TARGETS, task_type="CAUSAL_LM"))


def build_trainer(model: Any, processor: Any, train_dataset, output_dir: str, *, budget: float = 0.2,
                  epochs: float = 1, every_n_epochs: int | None = None, lora_r: int = 16,
                  learning_rate: float = 2e-4, batch_size: int = 4, ost_learning_rate: float = 1e-3,
                  **training_arguments: Any) -> tuple[CoresetTrainer, CoresetCallback]:
    """A CoresetTrainer that LoRA-tunes ``model`` on the rows OST ranks highest, and its callback."""
    from transformers import TrainingArguments

    collator = VisualInstructionCollator(processor, model)  # model type read before the PEFT wrapper
    model = add_lora(model, lora_r)
    callback = CoresetCallback("ost", budget=budget, every_n_epochs=every_n_epochs,
                               learning_rate=ost_learning_rate, warmup_fraction=0.0, anchor_fraction=0.05)
    defaults = {"save_strategy": "epoch", "logging_steps": 10, "report_to": []}
    args = TrainingArguments(
        output_dir=output_dir, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        remove_unused_columns=False,  # the collator needs the raw `conversations` and `image` columns
        **{**defaults, **training_arguments})
    trainer = CoresetTrainer(model=model, args=args, train_dataset=train_dataset, data_collator=collator,
                             callbacks=[callback])
    return trainer, callback


def main(argv=None) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from hf_coreset.data import load_llava_json

    args = parse_args(argv)
    dataset = load_llava_json(args.data, args.image_folder).filter(lambda image: image is not None,
                                                                   input_columns="image")
    processor = AutoProcessor.from_pretrained(args.model)
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    budget = args.budget if args.budget <= 1 else int(args.budget)
    trainer, callback = build_trainer(
        model, processor, dataset, args.output_dir, budget=budget, epochs=args.epochs,
        every_n_epochs=args.every_n_epochs, lora_r=args.lora_r, learning_rate=args.learning_rate,
        batch_size=args.batch_size, ost_learning_rate=args.ost_learning_rate,
        bf16=args.dtype == "bfloat16" and torch.cuda.is_available())
    trainer.train(resume_from_checkpoint=args.resume)
    trainer.save_model(args.output_dir)
    for selection in callback.history:
        diagnostics = selection["diagnostics"]
        print(f"epoch {selection['epoch']}: {selection['rows']} rows, harmful {diagnostics['harmful_rows']}, "
              f"anchor loss {diagnostics['anchor_loss']:.4f}")


if __name__ == "__main__":
    main()
