"""The small real image-text dataset shipped with hf_coreset.

``openclipart_2k.parquet`` holds 2,000 public-domain drawings from the Open Clip Art Library, taken
from the Debian packages ``openclipart-png`` and ``openclipart-svg`` (version 1:0.18+dfsg-19).
See ``README.md`` next to this file for the data card.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from .llava import load_llava_json  # noqa: F401  (re-exported: hf_coreset.data.load_llava_json)

if TYPE_CHECKING:  # keep `import hf_coreset.data` light: datasets is imported on first use
    from datasets import Dataset

# A Traversable inside the installed package (a plain path for normal installs).
DEFAULT_DATASET_PATH = files("hf_coreset.data") / "openclipart_2k.parquet"


def load_default_dataset() -> Dataset:
    """Load the shipped Open Clip Art dataset: 2,000 drawings with captions.

    Columns:

    - ``image``: ``datasets.Image()``, an RGB PIL image on a white background, at most 96 px on
      the longer side;
    - ``caption``: "Title. Description. Keywords: a, b, c", built from the SVG's RDF metadata
      (``dc:title``, ``dc:description`` - dropped when it only repeats the title or is an e-mail
      address - cut to about 200 characters, and the ``dc:subject`` keywords);
    - ``title``: the drawing's title, cleaned (underscores as spaces, no "Clipart by <author> - ");
    - ``category``: the top-level Open Clip Art folder ("animals", "food", ...);
    - ``source_path``: the SVG's path inside the Debian package.

    Source: Debian ``openclipart-png`` / ``openclipart-svg`` 1:0.18+dfsg-19, public domain (Open
    Clip Art Library). Drawings whose title is generic ("Untitled", "new-1", ...) or shared by more
    than 10 drawings (collection names such as "Lemon SVG theme") were left out; the 2,000 rows are
    a seeded sample stratified over the 22 categories.

    Rebuild (on Debian/Ubuntu, after ``apt-get update``)::

        python scripts/build_openclipart.py --output hf_coreset/data/openclipart_2k.parquet --max-items 2000

    Example:

    >>> from hf_coreset.data import load_default_dataset
    >>> dataset = load_default_dataset()
    >>> dataset.num_rows
    2000
    >>> row = dataset[0]
    >>> row["image"].mode, max(row["image"].size) <= 96
    ('RGB', True)
    >>> sorted(dataset.column_names)
    ['caption', 'category', 'image', 'source_path', 'title']
    """
    from datasets import Dataset, Image

    dataset = Dataset.from_parquet(str(DEFAULT_DATASET_PATH))
    # The parquet metadata already says `image` is an Image feature; casting again is a no-op then,
    # and a safeguard if the file was rewritten by a tool that drops the Hugging Face metadata.
    if not isinstance(dataset.features["image"], Image):
        dataset = dataset.cast_column("image", Image())
    return dataset
