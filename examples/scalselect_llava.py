"""Select 16 % of a LLaVA-format instruction-tuning set with ScalSelect and LLaVA-1.5-7B (not run in CI).

The dataset is LLaVA's JSON format (e.g. ``llava_v1_5_mix665k.json``): a list of rows with ``id``, an
optional ``image`` path relative to ``--image-folder``, and ``conversations`` ([{"from": "human", "value":
"<image>\\n..."}, {"from": "gpt", "value": "..."}, ...]). Rows without an image (text-only ShareGPT rows) or
with an unreadable image get no representation: they are reported and never selected.

    # one GPU
    python examples/scalselect_llava.py --data llava_v1_5_mix665k.json --image-folder data/ \\
        --budget 0.16 --output llava_scalselect_16pct.json
    # several GPUs: each process extracts a shard, the covariance is reduced, every process picks the same
    accelerate launch --multi_gpu --num_processes 8 examples/scalselect_llava.py --data ... --output ...

Stage A caches its representations (Arrow, keyed by dataset + model + processor fingerprints) under
``--cache-dir``, so a rerun with another ``--budget`` or ``--rho`` skips the model entirely.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from accelerate import Accelerator
from transformers import AutoModelForImageTextToText, AutoProcessor

import hf_coreset
from hf_coreset.data import load_llava_json
from hf_coreset.features.vlm_attention import extract_representations
from hf_coreset.methods.scalselect import select_with_accelerate


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="LLaVA-format JSON file")
    parser.add_argument("--image-folder", default="", help="folder the rows' image paths are relative to")
    parser.add_argument("--model", default="llava-hf/llava-1.5-7b-hf")
    parser.add_argument("--budget", type=float, default=0.16, help="rows to keep: a fraction (<= 1) or a count")
    parser.add_argument("--rho", type=float, default=0.9, help="energy of the dominant subspace")
    parser.add_argument("--tau", type=float, default=0.9, help="attention mass of the kept visual tokens")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--batch-size", type=int, default=16, help="rows per Dataset.map batch (one forward each)")
    parser.add_argument("--cache-dir", default=None, help="stage-A cache (default: under the datasets cache)")
    parser.add_argument("--output", required=True, help="JSON file for the selected rows (LLaVA format)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    accelerator = Accelerator()
    dataset = load_llava_json(args.data, args.image_folder)
    budget = int(round(args.budget * len(dataset))) if args.budget <= 1 else int(args.budget)
    processor = AutoProcessor.from_pretrained(args.model)
    # Any attention implementation works: stage A switches the first decoder layer to eager by itself.
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    model.to(accelerator.device).eval()

    if accelerator.num_processes > 1:
        selection = select_with_accelerate(dataset, budget, model, processor, accelerator, rho=args.rho,
                                           tau=args.tau, batch_size=args.batch_size, cache_dir=args.cache_dir)
        picked, failed, diagnostics = selection.indices, selection.failed_rows, selection.diagnostics
    else:
        extraction = extract_representations(dataset, model, processor, tau=args.tau, batch_size=args.batch_size,
                                             cache_dir=args.cache_dir)
        failed = extraction.failed_rows
        good = np.flatnonzero(np.isfinite(extraction.representations).all(axis=1))
        with_vectors = dataset.select(good).add_column(
            "scalselect_repr", extraction.representations[good].tolist())
        core = hf_coreset.select_coreset(with_vectors, "scalselect", budget, embedding_columns=["scalselect_repr"],
                                         rho=args.rho, tau=args.tau)
        result = hf_coreset.get_selection_result(core)
        picked, diagnostics = good[result.indices], {**result.diagnostics, **extraction.kept_token_summary()}

    if accelerator.is_main_process:
        with open(args.data) as handle:
            rows = json.load(handle)
        with open(args.output, "w") as handle:
            json.dump([rows[int(i)] for i in sorted(picked)], handle)
        print(f"Kept {len(picked):,} of {len(rows):,} rows -> {args.output}")
        print(f"Rows without a representation: { {reason: len(r) for reason, r in failed.items()} }")
        print(f"Diagnostics: {diagnostics}")


if __name__ == "__main__":
    main()
