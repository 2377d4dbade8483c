"""Diffusion wavelets on a graph and the multi-scale discrepancy that CAST's matching term minimises.

Part of CAST (a reconstruction of the published abstract, arXiv 2605.11705; see ``METHODS.md`` §3).
With ``T = (I + D^-1/2 W D^-1/2) / 2`` (symmetric, spectrum in [0, 1]) the frame is
``Psi_0 = I - T``, ``Psi_j = T^(2^(j-1)) - T^(2^j)`` for ``j = 1..J`` and the low-pass ``Phi_J = T^(2^J)``.
It telescopes to the identity, and every element is PSD. Only sparse mat-vecs are used: applying the
frame costs ``2^J`` products with ``T``, applying the kernel ``K`` costs ``2^(J+1)``.
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


def kernel_coefficients(weights: np.ndarray, levels: int) -> np.ndarray:
    """Coefficients ``c_p`` of ``K = sum_j w_j Psi_j^2 + w_Phi Phi_J^2 = sum_p c_p T^p`` (``p <= 2^(J+1)``).

    Example:
        >>> kernel_coefficients(np.array([1.0, 0.0]), 0).tolist()  # (I - T)^2
        [1.0, -2.0, 1.0]
    """
    c = np.zeros(2 ** (levels + 1) + 1)
    c[[0, 1, 2]] += weights[0] * np.array([1.0, -2.0, 1.0])
    for j in range(1, levels + 1):
        a = 2 ** (j - 1)  # (T^a - T^2a)^2 = T^2a - 2 T^3a + T^4a
        c[[2 * a, 3 * a, 4 * a]] += weights[j] * np.array([1.0, -2.0, 1.0])
    c[2 ** (levels + 1)] += weights[levels + 1]
    return c


def apply_polynomial(t: sp.csr_matrix, v: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """``sum_p c_p T^p v`` with one sparse mat-vec per power up to the last non-zero coefficient."""
    last = int(np.flatnonzero(coefficients)[-1]) if np.any(coefficients) else 0
    out = coefficients[0] * v
    current = v
    for p in range(1, last + 1):
        current = t @ current
        if coefficients[p]:
            out = out + coefficients[p] * current
    return out


def scale_diagonals(t: sp.csr_matrix, levels: int, probes: int = 32,
                    rng: np.random.Generator | None = None, block: int = 8) -> np.ndarray:
    """Hutchinson estimates of ``diag(Psi_j^2)`` and ``diag(Phi_J^2)``, shape ``(J + 2, N)``.

    For Rademacher ``z``, ``E[(Psi z)_i^2] = (Psi Psi^T)_ii = (Psi^2)_ii`` (``Psi`` is symmetric); the
    squared form keeps every estimate non-negative. Probes go through the frame ``block`` at a time.
    """
    rng = rng or np.random.default_rng(0)
    n = t.shape[0]
    totals = np.zeros((levels + 2, n))
    for start in range(0, probes, block):
        z = rng.choice(np.array([-1.0, 1.0]), size=(n, min(block, probes - start)))
        for j, psi_z in enumerate(apply_frame(t, z, levels)):
            totals[j] += np.einsum("ij,ij->i", psi_z, psi_z)
    return totals / probes


def equal_contribution_weights(t: sp.csr_matrix, levels: int, subset_size: int, n_subsets: int = 16,
                               rng: np.random.Generator | None = None) -> np.ndarray:
    """Scale weights ``w_j`` under which every scale contributes equally for uniformly random subsets.

    ``E ||Psi_j e_S||^2`` over random subsets of ``subset_size`` rows is estimated by Monte Carlo
    (``n_subsets`` subsets through the frame as one block); the weights are its inverses, summing to 1.
    The expectation scales as ``1/|S| - 1/N`` for every scale alike, so the weights hold for any size.
    (A trace formula ``tr(Psi_j^2) - ||Psi_j 1||^2 / N`` with Hutchinson traces would subtract two nearly
    equal numbers for the low-pass scale and is dominated by probe noise there.)

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> t = diffusion_operator(sp.random(50, 50, density=0.2, random_state=0) + sp.identity(50))
        >>> w = equal_contribution_weights(t.maximum(t.T), 2, 10)
        >>> w.shape, bool(np.isclose(w.sum(), 1.0))
        ((4,), True)
    """
    rng = rng or np.random.default_rng(0)
    n = t.shape[0]
    subset_size = min(max(subset_size, 1), n - 1)
    e = np.empty((n, n_subsets))
    for s in range(n_subsets):
        e[:, s] = selection_residual(rng.choice(n, size=subset_size, replace=False), n)
    expected = np.array([np.einsum("ij,ij->", f, f) / n_subsets for f in apply_frame(t, e, levels)])
    inverse = 1.0 / np.maximum(expected, 1e-12 * max(float(expected.max()), 1e-300))
    return inverse / inverse.sum()


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


class MultiScaleMatcher:
    """Greedy state of ``D(S)`` with the closed-form increment of adding one row.

    With ``s = 1_S``, ``m = |S|`` and ``u = 1 / N``: ``D(S) = s'Ks / m^2 - 2 s'Ku / m + u'Ku``, so
    ``D(S + i)`` needs only ``(Ks)_i``, ``K_ii`` and ``(Ku)_i``; minimising it over ``i`` is minimising
    ``2 m (K e_S)_i + K_ii - 2 (K u)_i``. ``Ks`` is updated exactly (``K`` applied to the new rows) by
    :meth:`refresh`, and between refreshes by the local part of ``K`` (its terms up to ``T^2``), so that
    many picks can share one ``2^(J+1)``-mat-vec application of ``K``.
    """

    def __init__(self, t: sp.csr_matrix, levels: int, diagonals: np.ndarray, weights: np.ndarray):
        self.t, self.levels, self.diagonals = t, levels, diagonals
        self.n = t.shape[0]
        self.selected: list[int] = []
        self.set_weights(weights)

    def set_weights(self, weights: np.ndarray) -> None:
        """Change the scale weights (the schedule switching scales on) and recompute ``Ku`` and ``Ks``."""
        self.weights = np.asarray(weights, dtype=np.float64)
        self.coefficients = kernel_coefficients(self.weights, self.levels)
        self.k_diag = self.weights @ self.diagonals
        self.ku = apply_polynomial(self.t, np.full(self.n, 1.0 / self.n), self.coefficients)
        self.uku = float(self.ku.sum() / self.n)
        self.refresh()

    def refresh(self) -> None:
        """Exact ``Ks`` with one application of ``K`` (``Ku`` only changes with the weights)."""
        s = np.zeros(self.n)
        s[self.selected] = 1.0
        self.ks = apply_polynomial(self.t, s, self.coefficients) if self.selected else np.zeros(self.n)
        self.sks, self.sku = float(s @ self.ks), float(s @ self.ku)

    def value(self) -> float:
        """``D(S)`` from the maintained state (0 terms for the empty set: ``u'Ku``)."""
        m = len(self.selected)
        if m == 0:
            return self.uku
        return self.sks / m**2 - 2.0 * self.sku / m + self.uku

    def after_adding(self, candidates: np.ndarray) -> np.ndarray:
        """``D(S + i)`` for each candidate ``i``, in closed form."""
        m1 = len(self.selected) + 1
        sks = self.sks + 2.0 * self.ks[candidates] + self.k_diag[candidates]
        sku = self.sku + self.ku[candidates]
        return sks / m1**2 - 2.0 * sku / m1 + self.uku

    def increments(self, candidates: np.ndarray) -> np.ndarray:
        """``D(S + i) - D(S)`` for each candidate."""
        return self.after_adding(candidates) - self.value()

    def add(self, i: int, exact: bool = False) -> None:
        """Add row ``i``: exactly (``K`` applied to ``e_i``), or with the local part of ``K``."""
        column = self._kernel_column(i, exact)
        self.sks += 2.0 * self.ks[i] + column[i]
        self.sku += self.ku[i]
        self.ks += column
        self.selected.append(int(i))

    def _kernel_column(self, i: int, exact: bool) -> np.ndarray:
        e = np.zeros(self.n)
        e[i] = 1.0
        if exact:
            return apply_polynomial(self.t, e, self.coefficients)
        column = self.coefficients[0] * e
        t_i = self.t[i]  # row i = column i, T is symmetric
        column[t_i.indices] += self.coefficients[1] * t_i.data
        t2_i = t_i @ self.t
        column[t2_i.indices] += self.coefficients[2] * t2_i.data
        # The diagonal must stay the (estimated) K_ii so that the increment is consistent with k_diag.
        column[i] = self.k_diag[i]
        return column
