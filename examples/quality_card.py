"""Render a dataset card with its "Quality check" section: 10 % of the shipped Open Clip Art sample picked by
``dq``, judged against random subsets of the same size and the full pool on held-out pairs.

    python examples/quality_card.py [--output examples/quality_card] [--method dq] [--steps 200] [--overwrite]

The recipe of ``make demo`` for one method: the offline encoders' features (cached after the first run), a
quarter of the pairs held out before selecting (``hf_coreset.demo.held_out_split``), ``evaluate_coreset`` with
3 seeds, and the card ``hf_coreset.push_to_hub(coreset, ..., report=report)`` would upload, written to a folder
without any network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hf_coreset
from hf_coreset.data import load_default_dataset
from hf_coreset.demo import DEMO_HEADS, DEMO_STEPS, EMBEDDING_COLUMNS, IMAGE_COLUMN, TEXT_COLUMN, held_out_split
from hf_coreset.features import encode_dataset, load_offline_image_encoder, load_offline_text_encoder
from hf_coreset.integrations.hub import QUALITY_FILENAME, render_dataset_card

REPO_ID = "your-name/openclipart-dq-10pct"


def main(output: Path, method: str, steps: int, overwrite: bool = False) -> None:
    dataset = load_default_dataset()
    encoded = encode_dataset(dataset, image_column=IMAGE_COLUMN, text_column=TEXT_COLUMN,
                             image_encoder=load_offline_image_encoder(), text_encoder=load_offline_text_encoder())
    pool, test = held_out_split(dataset, encoded.embeddings)
    pool.info.license = "cc0-1.0"  # Open Clip Art drawings are public domain (see hf_coreset/data/README.md)
    pool.info.dataset_name = "openclipart_2k"
    coreset = hf_coreset.select_coreset(pool, method, 0.1, embedding_columns=EMBEDDING_COLUMNS)
    report = hf_coreset.evaluate_coreset(pool, coreset, test=test, embedding_columns=EMBEDDING_COLUMNS,
                                         steps=steps, heads=DEMO_HEADS)
    card = render_dataset_card(coreset, REPO_ID, source=pool, report=report)
    card.save(output, overwrite=overwrite)
    (output / QUALITY_FILENAME).write_text(report.to_json(indent=1))  # what push_to_hub uploads beside the card
    print(report.to_markdown())
    print(f"wrote {output / 'README.md'} and {len(card.images)} figure(s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "quality_card",
                        help="folder for README.md and images/ (default: examples/quality_card)")
    parser.add_argument("--method", default="dq", help="a registered method (default: dq)")
    parser.add_argument("--steps", type=int, default=DEMO_STEPS, help=f"training steps (default: {DEMO_STEPS})")
    parser.add_argument("--overwrite", action="store_true", help="replace a README.md already in --output")
    arguments = parser.parse_args()
    main(arguments.output, arguments.method, arguments.steps, arguments.overwrite)
