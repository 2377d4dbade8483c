"""Diffusion on a graph at dyadic scales: the operator, its pruned powers, and the diffusion-wavelet discrepancy.

Part of CAST (a reconstruction of the published abstract, arXiv 2605.11705; see ``METHODS.md`` §3).
With ``T = (I + D^-1/2 W D^-1/2) / 2`` (symmetric, spectrum in [0, 1]):

- :func:`dyadic_powers` and :func:`diffusion_correlation` give the coarse scales of CAST's similarity
  (``T, T^2, T^4, ...``, pruned to O(N keep) entries);
- the wavelet frame ``Psi_0 = I - T``, ``Psi_j = T^(2^(j-1)) - T^(2^j)`` (``j = 1..J``) and the low-pass
  ``Phi_J = T^(2^J)`` telescopes to the identity; :func:`discrepancy_per_scale` measures, scale by scale,
  how far a subset's empirical measure is from the pool's (CAST reports it against a random subset).
  Only sparse mat-vecs are used: applying the frame costs ``2^J`` products with ``T``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def diffusion_operator(w: sp.spmatrix) -> sp.csr_matrix:
    """``T = (I + D^-1/2 W D^-1/2) / 2`` of a symmetric non-negative ``W`` with no zero-degree row.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> diffusion_operator(sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]]))).toarray().tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """
    w = sp.csr_matrix(w, dtype=np.float64)
    scale = 1.0 / np.sqrt(np.asarray(w.sum(axis=1)).ravel())
    normalised = sp.diags(scale) @ w @ sp.diags(scale)
    return ((sp.identity(w.shape[0], format="csr") + normalised) * 0.5).tocsr()


def scale_names(levels: int) -> list[str]:
    """Names of the frame elements, fine to coarse: ``psi_0 .. psi_J, phi_J``."""
    return [f"psi_{j}" for j in range(levels + 1)] + [f"phi_{levels}"]


def apply_frame(t: sp.csr_matrix, v: np.ndarray, levels: int) -> list[np.ndarray]:
    """``[Psi_0 v, ..., Psi_J v, Phi_J v]`` for a vector or a block of column vectors ``v``.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> t = diffusion_operator(sp.csr_matrix(np.ones((3, 3)) - np.eye(3)))
        >>> v = np.array([1.0, 0.0, 0.0])
        >>> np.allclose(sum(apply_frame(t, v, 3)), v)  # the frame telescopes
        True
    """
    powers = [v]  # powers[j] = T^(2^(j-1)) v for j >= 1, v itself first
    current = v
    for step in range(1, 2**levels + 1):
        current = t @ current
        if step & (step - 1) == 0:  # step is a power of two
            powers.append(current)
    frame = [powers[j] - powers[j + 1] for j in range(levels + 1)]
    return frame + [powers[-1]]


def selection_residual(selected: np.ndarray, n_rows: int) -> np.ndarray:
    """``e_S = 1_S / |S| - 1 / N``: the difference between the subset's and the pool's empirical measure."""
    e = np.full(n_rows, -1.0 / n_rows)
    e[np.asarray(selected)] += 1.0 / len(selected)
    return e


def discrepancy_per_scale(t: sp.csr_matrix, selected: np.ndarray, levels: int) -> np.ndarray:
    """``[||Psi_0 e_S||^2, ..., ||Psi_J e_S||^2, ||Phi_J e_S||^2]`` (unweighted)."""
    e = selection_residual(selected, t.shape[0])
    return np.array([float(f @ f) for f in apply_frame(t, e, levels)])


def discrepancy(t: sp.csr_matrix, selected: np.ndarray, weights: np.ndarray, levels: int) -> float:
    """The multi-scale discrepancy ``D(S) = sum_j w_j ||Psi_j e_S||^2 + w_Phi ||Phi_J e_S||^2``.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> t = diffusion_operator(sp.csr_matrix(np.ones((4, 4)) - np.eye(4)))
        >>> discrepancy(t, np.arange(4), np.ones(3) / 3, 1)  # the whole pool matches itself
        0.0
    """
    return float(weights @ discrepancy_per_scale(t, selected, levels))


def dyadic_powers(t: sp.csr_matrix, levels: int, keep: int = 64, chunk: int = 4096) -> list[sp.csr_matrix]:
    """``[T, T^2, T^4, ..., T^(2^(levels-1))]`` with memory O(N keep) per power.

    Each power is the previous one squared, ``chunk`` rows at a time, then pruned to the diagonal and the
    ``keep - 1`` largest other entries of each row and symmetrised (the compression step of Coifman and
    Maggioni's diffusion wavelets, done by magnitude): a dense ``T^8`` of a large graph would not fit.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> t = diffusion_operator(sp.csr_matrix(np.ones((4, 4)) - np.eye(4)))
        >>> [p.nnz for p in dyadic_powers(t, 3, keep=2)]
        [16, 10, 10]
    """
    from .fusion import top_k_per_row

    powers = [sp.csr_matrix(t)]
    for _ in range(levels - 1):
        previous = powers[-1]
        pieces = []
        for start in range(0, previous.shape[0], chunk):
            square = (previous[start : start + chunk] @ previous).tocsr()
            diagonal = square[np.arange(square.shape[0]), np.arange(start, start + square.shape[0])].A1
            off_diagonal = square - sp.csr_matrix((diagonal, (np.arange(len(diagonal)),
                                                              np.arange(start, start + len(diagonal)))),
                                                  shape=square.shape)
            off_diagonal.eliminate_zeros()
            kept = top_k_per_row(off_diagonal, keep - 1)
            pieces.append(kept + sp.csr_matrix((diagonal, (np.arange(len(diagonal)),
                                                            np.arange(start, start + len(diagonal)))),
                                               shape=square.shape))
        power = sp.vstack(pieces, format="csr")
        powers.append(power.maximum(power.T).tocsr())
    return powers[:levels]


def diffusion_correlation(power: sp.spmatrix) -> sp.csc_matrix:
    """``P_ij / sqrt(P_ii P_jj)`` clipped to [0, 1], column-compressed.

    For ``P = T^(2q)`` this is the cosine between the diffusion profiles ``T^q e_i`` and ``T^q e_j`` of two
    rows: 1 for a row and itself, near 1 for rows that diffuse to the same places.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> diffusion_correlation(sp.csr_matrix(np.array([[4.0, 1.0], [1.0, 1.0]]))).toarray().tolist()
        [[1.0, 0.5], [0.5, 1.0]]
    """
    inverse_root = sp.diags(1.0 / np.sqrt(np.maximum(power.diagonal(), 1e-300)))
    correlation = (inverse_root @ power @ inverse_root).tocsc()
    np.clip(correlation.data, 0.0, 1.0, out=correlation.data)
    return correlation
