"""matplotlib for the figures of dataset cards and quality reports: loaded on first use, rendered to PNG bytes."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend; a clear ImportError when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(
            "hf_coreset's figures (dataset card, quality report) need matplotlib: "
            "pip install 'hf-coreset[hub]' (or pip install matplotlib)."
        ) from err
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes (no timestamp in the metadata, so the same figure gives the same bytes); closes it.

    Example:
        >>> plt = pyplot()
        >>> fig, ax = plt.subplots()
        >>> png_bytes(fig)[:4]
        b'\\x89PNG'
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    pyplot().close(fig)
    return buffer.getvalue()
