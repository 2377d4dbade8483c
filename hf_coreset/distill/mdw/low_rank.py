"""The learned soft image-text correspondence of a synthetic set: P = diag(a) + L R^T.

Entry ``P[i, j]`` says how much synthetic image ``i`` and synthetic text ``j`` belong together. A row softmax
turns P into image-to-text targets and a column softmax into text-to-image targets for the contrastive loss,
in place of the identity (one synthetic pair may then also teach its near neighbours). The low-rank form keeps
it at ``n (2 r + 1)`` numbers, stored as three per-row columns of the distilled dataset.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class LowRankCorrespondence(nn.Module):
    """``P = diag(diag) + left @ right.T`` over ``n`` synthetic pairs, with ``left``, ``right`` of width ``rank``.

    ``right`` starts at zero (so P starts diagonal, as the identity targets of real pairs) and ``left`` small
    and random (so ``right`` receives a gradient from the first step on).
    """

    def __init__(self, n_pairs: int, rank: int, diag_init: float, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.diag = nn.Parameter(torch.full((n_pairs,), float(diag_init)))
        self.left = nn.Parameter(0.01 * torch.randn(n_pairs, rank, generator=generator))
        self.right = nn.Parameter(torch.zeros(n_pairs, rank))

    @classmethod
    def from_matrix(cls, matrix: torch.Tensor, rank: int) -> LowRankCorrespondence:
        """The factors of a given ``(n, n)`` matrix: ``L R^T`` its best rank-``rank`` approximation (SVD, the
        singular values split evenly between the factors) and ``diag`` what the diagonal still needs, so the
        diagonal is exact.

        Example:
            >>> m = torch.tensor([[3.0, 1.0], [1.0, 2.0]])
            >>> p = LowRankCorrespondence.from_matrix(m, rank=1)
            >>> torch.allclose(p.matrix().diagonal(), m.diagonal()), p.left.shape
            (True, torch.Size([2, 1]))
        """
        matrix = torch.as_tensor(matrix, dtype=torch.float64)
        u, s, vh = torch.linalg.svd(matrix)
        rank = min(rank, len(s))
        left, right = u[:, :rank] * s[:rank].sqrt(), vh[:rank].T * s[:rank].sqrt()
        correspondence = cls(len(matrix), rank, 0.0)
        with torch.no_grad():
            correspondence.left.copy_(left)
            correspondence.right.copy_(right)
            correspondence.diag.copy_(matrix.diagonal() - (left * right).sum(dim=1))
        return correspondence

    def matrix(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """P, or its block ``P[rows][:, rows]`` (a minibatch of synthetic pairs)."""
        if rows is None:
            return torch.diag(self.diag) + self.left @ self.right.T
        return torch.diag(self.diag[rows]) + self.left[rows] @ self.right[rows].T

    def targets(self, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(image-to-text, text-to-image) target distributions, each row summing to 1."""
        return correspondence_targets(self.matrix(rows))


def correspondence_targets(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row softmax of P (image ``i`` -> texts) and column softmax of P, transposed (text ``j`` -> images)."""
    return torch.softmax(matrix, dim=1), torch.softmax(matrix, dim=0).T


def rebuild_correspondence(diag, left, right) -> np.ndarray:
    """P as a dense ``(n, n)`` array from the stored per-row factors.

    Example:
        >>> rebuild_correspondence([1.0, 2.0], [[1.0], [0.0]], [[0.0], [3.0]])
        array([[1., 3.],
               [0., 2.]])
    """
    left, right = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    return np.diag(np.asarray(diag, dtype=np.float64)) + left @ right.T
