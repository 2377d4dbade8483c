"""The shipped Open Clip Art dataset and the script that builds it.

No network: the tests read the shipped parquet and files written to tmp_path only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import datasets
import pytest

from hf_coreset.data import DEFAULT_DATASET_PATH, load_default_dataset

# The build script is not part of the package; import its helpers from scripts/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from build_openclipart import (  # noqa: E402
    is_generic_title,
    make_caption,
    read_svg_metadata,
    stratified_sample,
)

EXPECTED_ROWS = 2000
MAX_FILE_BYTES = 15 * 1024 * 1024


@pytest.fixture(scope="module")
def dataset() -> datasets.Dataset:
    return load_default_dataset()


def test_row_count_and_features(dataset):
    assert dataset.num_rows == EXPECTED_ROWS
    assert dataset.features == datasets.Features(
        {
            "image": datasets.Image(),
            "caption": datasets.Value("string"),
            "title": datasets.Value("string"),
            "category": datasets.Value("string"),
            "source_path": datasets.Value("string"),
        }
    )


def test_every_image_decodes_to_a_small_rgb_picture(dataset):
    for image in dataset["image"]:
        assert image.mode == "RGB"
        assert max(image.size) <= 96


def test_captions_start_with_a_specific_title(dataset):
    for row in dataset.remove_columns("image"):
        assert row["caption"].strip()
        assert not is_generic_title(row["title"]), row["title"]
        assert row["caption"].startswith(row["title"])


def test_categories_and_source_paths(dataset):
    assert len(set(dataset["category"])) >= 10
    for category, source_path in zip(dataset["category"], dataset["source_path"], strict=True):
        assert source_path.startswith(f"usr/share/openclipart/svg/{category}/")
        assert source_path.endswith(".svg")
    assert len(set(dataset["source_path"])) == dataset.num_rows  # each drawing once


def test_shipped_file_is_small():
    assert DEFAULT_DATASET_PATH.is_file()
    assert len(DEFAULT_DATASET_PATH.read_bytes()) <= MAX_FILE_BYTES


SVG_WITH_METADATA = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg"
     xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:cc="http://web.resource.org/cc/"
     xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <metadata>
    <rdf:RDF>
      <cc:Work rdf:about="">
        <dc:title>Red   Apple</dc:title>
        <dc:description>A shiny apple
          with a leaf</dc:description>
        <dc:subject><rdf:Bag><rdf:li>fruit</rdf:li><rdf:li></rdf:li><rdf:li>food_item</rdf:li></rdf:Bag></dc:subject>
        <dc:creator><cc:Agent><dc:title>Jane Artist</dc:title></cc:Agent></dc:creator>
      </cc:Work>
    </rdf:RDF>
  </metadata>
  <circle cx="5" cy="5" r="4" fill="red"/>
</svg>
"""


def test_read_svg_metadata_parses_title_description_keywords(tmp_path):
    svg = tmp_path / "apple.svg"
    svg.write_text(SVG_WITH_METADATA, encoding="utf-8")
    meta = read_svg_metadata(svg)
    # The creator's dc:title must not be taken for the drawing's title; empty keywords are dropped.
    assert meta == {
        "title": "Red Apple",
        "description": "A shiny apple with a leaf",
        "keywords": ["fruit", "food_item"],
    }
    assert make_caption(meta) == "Red Apple. A shiny apple with a leaf. Keywords: fruit, food item."


@pytest.mark.parametrize(
    "content",
    [
        "<svg><metadata><rdf:RDF>",  # truncated, unbound prefix
        "not xml at all",
        '<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>',  # valid but no metadata
        "",
    ],
)
def test_read_svg_metadata_gives_empty_fields_for_bad_files(tmp_path, content):
    svg = tmp_path / "bad.svg"
    svg.write_text(content, encoding="utf-8")
    assert read_svg_metadata(svg) == {"title": "", "description": "", "keywords": []}


def test_read_svg_metadata_missing_file(tmp_path):
    assert read_svg_metadata(tmp_path / "absent.svg") == {"title": "", "description": "", "keywords": []}


@pytest.mark.parametrize(
    "title",
    [
        "",
        "   ",
        "Untitled",
        "image",
        "Drawing",
        "clip art",
        "ClipArt",
        "svg",
        "new-1",
        "image001.png",
        "drawing_3",
        "12",
        "2004-08-25",
        "Icons",
        "Art",
        "untitled drawing",
    ],
)
def test_generic_titles(title):
    assert is_generic_title(title)


@pytest.mark.parametrize(
    "title",
    [
        "Sun",
        "Clips",
        "clip of new file",
        "bee1",
        "Red Apple",
        "south africa",
        "Menu Clip Art Collection Example 1",
        "8ball",
        "Tigre01",
    ],
)
def test_specific_titles(title):
    assert not is_generic_title(title)


def test_stratified_sample_is_proportional_deterministic_and_keeps_tiny_categories():
    sizes = {"tiny": 1, "small": 2, "big": 500, "medium": 97}
    items = [{"category": c, "source_path": f"{c}/{i}"} for c, n in sizes.items() for i in range(n)]
    sample = stratified_sample(items, 100, seed=0)
    counts = {c: sum(item["category"] == c for item in sample) for c in sizes}
    assert counts == {"tiny": 1, "small": 1, "big": 82, "medium": 16}
    assert sample == stratified_sample(items, 100, seed=0)
    assert sample != stratified_sample(items, 100, seed=1)
