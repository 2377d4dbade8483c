"""Several captions per image: one graph node per image, the medoid caption's row emitted."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ...vectors import l2_normalize


def group_nodes(groups: np.ndarray, blocks: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Average every block over the rows of each group; return ``(node_blocks, medoid_row_of_node)``.

    The image block is the same on every row of a group (one image), so its mean is that image's feature;
    the text block becomes the mean caption. The medoid row of a group is the row whose last block (the
    caption) is most similar to the group's mean caption: the caption that is emitted.

    Example:
        >>> import numpy as np
        >>> blocks = {"img": np.array([[1.0], [1.0], [2.0]]), "txt": np.array([[1.0, 0], [0.8, 0.6], [0, 1.0]])}
        >>> nodes, medoids = group_nodes(np.array(["a", "a", "b"]), blocks)
        >>> nodes["img"].ravel().tolist(), medoids.tolist()
        ([1.0, 2.0], [0, 2])
    """
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(inverse.max()) + 1
    membership = sp.csr_matrix((np.ones(len(inverse)), (inverse, np.arange(len(inverse)))),
                               shape=(n_groups, len(inverse)))
    sizes = np.asarray(membership.sum(axis=1)).ravel()
    node_blocks = {name: np.asarray(membership @ np.asarray(b, dtype=np.float64)) / sizes[:, None]
                   for name, b in blocks.items()}
    captions = l2_normalize(np.asarray(list(blocks.values())[-1], dtype=np.float64))
    centre = l2_normalize(node_blocks[list(blocks)[-1]])
    similarity = np.einsum("ij,ij->i", captions, centre[inverse])
    # Per group, the member with the highest similarity (ties: the first row).
    order = np.lexsort((np.arange(len(inverse)), -similarity, inverse))
    first = np.searchsorted(inverse[order], np.arange(n_groups))
    return node_blocks, order[first]
