"""Reading LLaVA-format instruction data (e.g. ``llava_v1_5_mix665k.json``) as a ``datasets.Dataset``."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset


def load_llava_json(path: str, image_folder: str = "") -> Dataset:
    """The JSON rows as a Dataset: ``id``, ``conversations`` (the LLaVA turns as they are), ``image`` (an
    absolute path, None for text-only rows; hf_coreset opens images lazily, one row at a time) and ``row``
    (the position in the file, to write a selection back in LLaVA format).

    Example:
        >>> import json, tempfile, os
        >>> rows = [{"id": "a", "image": "cat.jpg", "conversations": [{"from": "human", "value": "<image>\\nHi"},
        ...                                                         {"from": "gpt", "value": "A cat."}]}]
        >>> path = os.path.join(tempfile.mkdtemp(), "data.json")
        >>> with open(path, "w") as handle:
        ...     json.dump(rows, handle)
        >>> load_llava_json(path, "/images")[0]["image"]
        '/images/cat.jpg'
    """
    import datasets

    with open(path) as handle:
        rows = json.load(handle)
    return datasets.Dataset.from_dict({
        "id": [str(row.get("id", i)) for i, row in enumerate(rows)],
        "conversations": [row["conversations"] for row in rows],
        "image": [os.path.join(image_folder, row["image"]) if row.get("image") else None for row in rows],
        "row": list(range(len(rows))),
    })
