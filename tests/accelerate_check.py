"""ScalSelect and OST under ``accelerate launch`` pick the same rows as one process.

Run from the repository root, once alone and once with two CPU processes, and compare the JSON files:

    python tests/accelerate_check.py --out one.json
    accelerate launch --multi_gpu --num_processes 2 tests/accelerate_check.py --out two.json \
        --expect-processes 2

``--multi_gpu`` picks accelerate's torchrun launcher; the script's ``Accelerator(cpu=True)`` then runs both
processes on the CPU with the gloo backend. (``accelerate launch --cpu --num_processes 2`` starts a single
process unless MPI is configured, hence ``--expect-processes``, which fails loudly in that case.)

Each process builds the same tiny random LLaVA (fixed seed) and the same 17-row dataset (row 11 has no image,
so the shards are uneven and a failed row in the second shard must come back with its global index),
extracts its shard, reduces the covariance sums, gathers the scores and selects. Then OST scores its share of
a 23-row embedding dataset (uneven shares again) and gathers the utilities. Process 0 writes both selections.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file for the selection (written by process 0)")
    parser.add_argument("--rows", type=int, default=17)
    parser.add_argument("--budget", type=int, default=5)
    parser.add_argument("--expect-processes", type=int, default=None, help="fail unless this many processes ran")
    parser.add_argument("--cache-dir", default=None, help="stage-A cache (default: a folder next to --out)")
    args = parser.parse_args()

    import datasets
    import numpy as np
    from accelerate import Accelerator

    import hf_coreset
    from hf_coreset.features.vlm_attention import extract_representations
    from hf_coreset.methods.scalselect import select_with_accelerate
    from tests.tiny_vlms import tiny_llava, tiny_llava_dataset

    datasets.disable_progress_bars()
    accelerator = Accelerator(cpu=True)
    if args.expect_processes is not None and accelerator.num_processes != args.expect_processes:
        raise SystemExit(f"Expected {args.expect_processes} processes, got {accelerator.num_processes}: "
                         "launch with `accelerate launch --multi_gpu --num_processes N`.")
    model, processor = tiny_llava()
    dataset = tiny_llava_dataset(args.rows, missing_images=(11,))
    cache_dir = args.cache_dir or os.path.join(os.path.dirname(os.path.abspath(args.out)), "stage_a_cache")
    selection = select_with_accelerate(dataset, args.budget, model, processor, accelerator, cache_dir=cache_dir,
                                       show_progress=False)
    # Stage A gathered in row order on every process (read back from the shards' cache files).
    gathered = extract_representations(dataset, model, processor, cache_dir=cache_dir, show_progress=False,
                                       accelerator=accelerator)
    ost = hf_coreset.get_selection_result(hf_coreset.select_coreset(
        _embedding_pairs(23), "ost", 7, embedding_columns=["img", "txt"], show_progress=False))
    trainer = _train_with_coreset_callback(os.path.join(os.path.dirname(os.path.abspath(args.out)), "trainer"))
    if accelerator.is_main_process:
        with open(args.out, "w") as handle:
            json.dump({"trainer": trainer, "ost_indices": ost.indices.tolist(), "ost_scores": ost.scores.tolist(),
                       "ost_processes": ost.diagnostics.get("processes", 1),
                       "indices": selection.indices.tolist(), "scores": selection.scores.tolist(),
                       "failed_rows": selection.failed_rows, "diagnostics": selection.diagnostics,
                       "representations": np.nan_to_num(gathered.representations, nan=1e9).tolist(),
                       "gathered_failed_rows": gathered.failed_rows}, handle)
    accelerator.wait_for_everyone()


def _train_with_coreset_callback(output_dir: str) -> list[dict]:
    """One epoch of a tiny Trainer on the 10 rows OST picks (selected on the main process, broadcast): what
    every process selected and which rows its batches held, gathered in process order."""
    from pathlib import Path

    from accelerate.utils import gather_object

    import hf_coreset
    from tests.test_trainer_callback import make_trainer

    callback = hf_coreset.CoresetCallback("ost", budget=10, warmup_fraction=0.0, anchor_fraction=0.1)
    trainer, collator = make_trainer(Path(output_dir), callback, epochs=1)
    trainer.train()
    return gather_object([{"indices": callback.indices, "seen": sum(collator.batches[-1:], [])}])


def _embedding_pairs(n_rows: int):
    import datasets
    import numpy as np

    rng = np.random.default_rng(0)
    return datasets.Dataset.from_dict({"img": rng.normal(size=(n_rows, 6)).tolist(),
                                       "txt": rng.normal(size=(n_rows, 5)).tolist()})


if __name__ == "__main__":
    main()
