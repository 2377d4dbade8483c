"""Render the example coreset dataset card in ``examples/coreset_card/`` (README.md and its PNG figures).

It selects 10% of the shipped Open Clip Art sample (2,000 drawings) with ``dq`` on cheap precomputed features
(an RGB colour histogram of each drawing and three caption statistics), compares it with a ``random`` coreset of
the same size in a small benchmark figure, and writes exactly the card ``hf_coreset.push_to_hub`` would upload,
without any network. It also writes the "Trained on a coreset" model-card section next to it.

    python examples/render_card.py [--output examples/coreset_card] [--overwrite]

The features are an example of the card, not of selection quality: use real encoders for real work.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

import hf_coreset
from hf_coreset.data import load_default_dataset
from hf_coreset.integrations.hub import render_dataset_card, render_trained_on_coreset_section
from hf_coreset.metrics.coverage import mean_nearest_selected_distance

REPO_ID = "your-name/openclipart-dq-10pct"
BUDGET = 0.1
SEED = 0


def colour_histogram(image, bins: int = 4) -> list[float]:
    """A ``bins**3`` joint RGB histogram of the drawing's pixels, as fractions of the pixel count."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8).reshape(-1, 3) // (256 // bins)
    codes = pixels[:, 0] * bins * bins + pixels[:, 1] * bins + pixels[:, 2]
    return (np.bincount(codes, minlength=bins**3) / len(codes)).tolist()


def caption_stats(caption: str) -> list[float]:
    """Length in characters and words, and keyword count, roughly scaled to [0, 1]."""
    keywords = caption.partition("Keywords:")[2]
    return [len(caption) / 200, len(caption.split()) / 40, len([k for k in keywords.split(",") if k.strip()]) / 10]


def add_features(dataset):
    return dataset.map(
        lambda batch: {"colour_hist": [colour_histogram(im) for im in batch["image"]],
                       "caption_stats": [caption_stats(c) for c in batch["caption"]]},
        batched=True, batch_size=200, desc="cheap features",
    )


def nearest_selected_distances(features: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """Distance from every row to its nearest selected row (2,000 x 200 here: small enough to do at once)."""
    chosen = features[selected]
    squared = (features**2).sum(1)[:, None] - 2 * features @ chosen.T + (chosen**2).sum(1)[None, :]
    return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def coverage_figure(features: np.ndarray, coresets: dict[str, np.ndarray]) -> bytes:
    """Mean and max distance from every drawing to its nearest selected drawing, per method (lower is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(coresets)
    distances = {name: nearest_selected_distances(features, coresets[name]) for name in names}
    assert np.isclose(distances[names[0]].mean(), mean_nearest_selected_distance(features, coresets[names[0]]))
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.6), sharey=True)
    for ax, (label, reduce) in zip(axes, (("mean", np.mean), ("max (k-center's objective)", np.max))):
        values = [float(reduce(distances[name])) for name in names]
        bars = ax.barh(names, values, color=["#BBBBBB" if n == "random" else "#4C72B0" for n in names])
        ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=3)
        ax.set_xlim(0, max(values) * 1.25)
        ax.set_xlabel(f"{label} distance")
    axes[0].invert_yaxis()
    fig.suptitle(f"Distance from each of the {len(features):,} drawings to its nearest selected one "
                 f"({len(coresets[names[0]])} selected; lower = better coverage)", fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def stacked_features(dataset) -> np.ndarray:
    """The features DQ saw: each block L2-normalised per row, then concatenated (``aggregation="concat"``)."""
    blocks = [np.asarray(dataset[column], dtype=np.float64) for column in ("colour_hist", "caption_stats")]
    return np.hstack([b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12) for b in blocks])


def main(output: Path, overwrite: bool = False) -> None:
    source = add_features(load_default_dataset())
    source.info.license = "cc0-1.0"  # Open Clip Art drawings are public domain (see hf_coreset/data/README.md)
    source.info.dataset_name = "openclipart_2k"  # named in the card (it is not on the Hub: no load snippet)
    options = {"embedding_columns": ["colour_hist", "caption_stats"], "seed": SEED, "return_scores": True}
    dq = hf_coreset.select_coreset(source, "dq", BUDGET, num_bins=10, **options)
    others = {name: hf_coreset.select_coreset(source, name, BUDGET, **options) for name in ("random", "kcenter")}

    picked = {name: hf_coreset.get_selection_result(core).indices for name, core in {**others, "dq": dq}.items()}
    figure = coverage_figure(stacked_features(source), picked)
    card = render_dataset_card(
        dq, REPO_ID, source=source, benchmark_figures={"Coverage: dq, k-center and random": figure},
    )
    card.save(output, overwrite=overwrite)
    section = render_trained_on_coreset_section(dq, dataset_id=REPO_ID)
    (output / "trained_on_coreset_section.md").write_text(section, encoding="utf-8")
    print(f"wrote {output / 'README.md'}, {len(card.images)} figure(s) and trained_on_coreset_section.md")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "coreset_card",
                        help="folder for README.md and images/ (default: examples/coreset_card)")
    parser.add_argument("--overwrite", action="store_true", help="replace a README.md already in --output")
    arguments = parser.parse_args()
    main(arguments.output, arguments.overwrite)
