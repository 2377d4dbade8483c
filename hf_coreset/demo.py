"""The main job: every registered method on the Open Clip Art sample shipped with hf_coreset.

Encodes the ~2,000 drawings with the offline encoders (EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for
captions; cached, so a second run skips encoding), selects 10 % with each method and prints a table with the
coverage of each selection: the mean distance from every row to its nearest selected row, in the
concatenated, per-modality L2-normalised feature space (lower covers the data better).

    hf-coreset demo                 # or: make demo
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .api import select_coreset
from .features.aggregate import aggregate_blocks
from .metrics import mean_nearest_selected_distance
from .registry import available_methods
from .result import get_selection_result

IMAGE_COLUMN, TEXT_COLUMN = "image", "caption"


def run_demo(budget: int | float = 0.1, methods: Sequence[str] | None = None) -> list[dict]:
    """Run every method (or ``methods``) on the shipped sample and print the table; returns its rows."""
    from .data import load_default_dataset
    from .features import encode_dataset, load_offline_image_encoder, load_offline_text_encoder

    dataset = load_default_dataset()
    encoders = {"image_encoder": load_offline_image_encoder(), "text_encoder": load_offline_text_encoder()}
    columns = {"image_column": IMAGE_COLUMN, "text_column": TEXT_COLUMN}
    started = time.perf_counter()
    encoded = encode_dataset(dataset, **columns, **encoders)
    encode_s = time.perf_counter() - started
    space = aggregate_blocks(encoded.embeddings, "concat")
    print(f"Open Clip Art sample: {dataset.num_rows} image-caption pairs; features "
          f"{'from cache' if encoded.cache_hit else 'encoded'} in {encode_s:.1f} s "
          f"(image {encoded.embeddings['image'].shape[1]}-d, text {encoded.embeddings['text'].shape[1]}-d)\n")

    rows = []
    for method in methods or available_methods():
        core = select_coreset(dataset, method, budget, **columns, **encoders, show_progress=False)
        result = get_selection_result(core)
        rows.append({
            "method": method,
            "rows": core.num_rows,
            "time_s": result.provenance["timings"]["selection_s"],
            "coverage": mean_nearest_selected_distance(space, result.indices),
        })
    _print_table(rows, budget)
    return rows


def _print_table(rows: list[dict], budget: int | float) -> None:
    print("| method | rows | selection time (s) | coverage: mean distance to nearest selected (lower is better) |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['method']} | {row['rows']} | {row['time_s']:.2f} | {row['coverage']:.4f} |")
    print(f"\nbudget = {budget}; the same seed (0) gives the same rows on every run.")
