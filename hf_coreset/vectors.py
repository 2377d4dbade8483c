"""Small vector helpers shared by every layer (features, graph building blocks, methods, metrics).

They live here, below everything else, so that ``graph/`` and ``methods/`` do not import from ``features/``
(which is about turning rows into vectors with encoders).
"""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero instead of becoming NaN.

    Example:
        >>> import numpy as np
        >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
        [[0.6, 0.8], [0.0, 0.0]]
    """
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(x.dtype).tiny)
