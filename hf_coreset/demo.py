"""The main job: does each registered method beat random on the Open Clip Art sample shipped with hf_coreset?

Encodes the 2,000 drawings with the offline encoders (EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for
captions; cached, so a second run skips encoding), holds out a quarter of the pairs before any selection
(``train_test_split``, seed 0), and selects 10 % of the remaining pool with every registered method. Then
``hf_coreset.evaluate_coresets`` trains light image and text heads on each selection, on random subsets of the same
size and on the whole pool (3 seeds each; the baselines are trained once and shared) and scores retrieval recall
on the held-out pairs. The table gives r_mean (mean ± std over seeds), the margin over random with its pooled
std, the verdict at 2 pooled std, the selection time and, as a secondary figure, the coverage: the mean distance
from every pool row to its nearest selected row in the concatenated, per-modality L2-normalised feature space.

    hf-coreset demo                 # or: make demo
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import datasets

from .api import select_coreset
from .errors import CoresetInputError
from .evaluation import evaluate_coresets
from .features.aggregate import aggregate_blocks
from .metrics import mean_nearest_selected_distance
from .registry import available_methods
from .result import get_selection_result
from .validation import read_embedding_column

IMAGE_COLUMN, TEXT_COLUMN = "image", "caption"
EMBEDDING_COLUMNS = ["image_embedding", "text_embedding"]
TEST_SIZE = 0.25
SEEDS = (0, 1, 2)
# The demo's training recipe: 100 steps (the benchmark protocol's 500 cost 5x on 2 CPU cores) with the protocol's
# MLP heads, the same for every arm. On the demo split its r_mean stays close to the 500-step one and the verdicts
# agree except at the 2-std boundary (benchmarks/demo_recipe.py, results/demo_recipe.md).
DEMO_STEPS, DEMO_HEADS = 100, "mlp"


def run_demo(budget: int | float = 0.1, methods: Sequence[str] | None = None, *, steps: int = DEMO_STEPS,
             heads: str = DEMO_HEADS, seeds: Sequence[int] = SEEDS) -> list[dict[str, Any]]:
    """Run every method (or ``methods``) on the shipped sample, print the quality table and return its rows."""
    from .data import load_default_dataset
    from .features import encode_dataset, load_offline_image_encoder, load_offline_text_encoder

    dataset = load_default_dataset()
    encoders = {"image_encoder": load_offline_image_encoder(), "text_encoder": load_offline_text_encoder()}
    started = time.perf_counter()
    encoded = encode_dataset(dataset, image_column=IMAGE_COLUMN, text_column=TEXT_COLUMN, **encoders)
    encode_s = time.perf_counter() - started
    print(f"Open Clip Art sample: {dataset.num_rows} image-caption pairs; features "
          f"{'from cache' if encoded.cache_hit else 'encoded'} in {encode_s:.1f} s "
          f"(image {encoded.embeddings['image'].shape[1]}-d, text {encoded.embeddings['text'].shape[1]}-d)")

    pool, test = held_out_split(dataset, encoded.embeddings)
    print(f"Held out {test.num_rows} pairs (train_test_split, seed 0); every method selects from the other "
          f"{pool.num_rows}.\n")
    rows = compare_methods(pool, test, budget, methods, steps=steps, heads=heads, seeds=seeds)
    print_table(rows, budget=budget, steps=steps, heads=heads, seeds=seeds, test_rows=test.num_rows)
    return rows


def held_out_split(dataset: datasets.Dataset, embeddings: dict[str, Any]) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The sample's captions, categories and embeddings (``EMBEDDING_COLUMNS``), split into a pool to select from
    and ``TEST_SIZE`` held-out pairs (``train_test_split``, seed 0) before any selection."""
    pairs = dataset.select_columns([TEXT_COLUMN, "category"])
    for column, modality in zip(EMBEDDING_COLUMNS, ("image", "text")):
        pairs = pairs.add_column(column, list(embeddings[modality]))
    split = pairs.train_test_split(test_size=TEST_SIZE, seed=0)
    return split["train"], split["test"]


def compare_methods(pool: datasets.Dataset, test: datasets.Dataset, budget: int | float,
                    methods: Sequence[str] | None = None, *, steps: int = DEMO_STEPS, heads: str = DEMO_HEADS,
                    seeds: Sequence[int] = SEEDS, show_progress: bool = True) -> list[dict[str, Any]]:
    """Select ``budget`` of ``pool`` (embedding columns ``EMBEDDING_COLUMNS``) with each method and judge each
    selection against random subsets and the full pool on ``test``. One row per method, then the two baselines;
    a method that cannot run on embedding columns alone (it needs a model) is listed with the reason."""
    coresets, skipped = {}, {}
    for method in methods or available_methods():
        try:
            coresets[method] = select_coreset(pool, method, budget, embedding_columns=EMBEDDING_COLUMNS,
                                              show_progress=False)
        except CoresetInputError as err:  # e.g. a method that needs a model: the demo has none to offer
            skipped[method] = str(err)
    reports = evaluate_coresets(pool, coresets, test=test, embedding_columns=EMBEDDING_COLUMNS, seeds=seeds,
                                steps=steps, heads=heads, show_progress=show_progress)
    space = aggregate_blocks({c: read_embedding_column(pool, c) for c in EMBEDDING_COLUMNS}, "concat")
    rows = []
    for method, report in reports.items():
        result = get_selection_result(coresets[method])
        rows.append({"method": method, "rows": report.coreset_rows, "r_mean": report.summary("coreset"),
                     "margin": report.margin, "pooled_std": report.pooled_std, "verdict": report.verdict,
                     "time_s": result.provenance["timings"]["selection_s"],
                     "coverage": mean_nearest_selected_distance(space, result.indices)})
    any_report = next(iter(reports.values()))
    for arm in ("random", "full"):
        rows.append({"method": any_report.arm_label(arm), "rows": any_report.runs[arm][0]["rows"],
                     "r_mean": any_report.summary(arm), "baseline": True})
    rows += [{"method": method, "skipped": reason} for method, reason in skipped.items()]
    return rows


def print_table(rows: list[dict[str, Any]], *, budget, steps: int, heads: str, seeds: Sequence[int],
                test_rows: int) -> None:
    print("| method | rows | r_mean (mean ± std) | margin over random ± pooled std | verdict (2 pooled std) "
          "| selection time (s) | coverage (lower covers better) |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for row in rows:
        if "skipped" in row:
            continue
        mean, std = row["r_mean"]
        if row.get("baseline"):
            print(f"| *{row['method']}* | {row['rows']} | {mean:.2f} ± {std:.2f} | | | | |")
            continue
        print(f"| {row['method']} | {row['rows']} | {mean:.2f} ± {std:.2f} | {row['margin']:+.2f} ± "
              f"{row['pooled_std']:.2f} | {row['verdict']} | {row['time_s']:.2f} | {row['coverage']:.4f} |")
    for row in rows:
        if "skipped" in row:
            print(f"\n{row['method']}: skipped ({row['skipped']})")
    print(f"\nbudget = {budget} of the pool; r_mean = mean of image->text and text->image recall@1/5/10 (%) on the "
          f"{test_rows} held-out pairs after training {heads} heads for {steps} steps (batch 128) on the rows; "
          f"seeds {', '.join(map(str, seeds))} (std: sample std over seeds). The same seed gives the same numbers.")
