"""ScalSelect stage B: streamed-covariance leverage scoring vs the exact-SVD reference.

Both score N rows of d-dimensional representations by their leverage in the subspace holding rho of the
variance and keep the top 16 %. The reference centres the matrix in float64, takes its thin SVD and the row
norms² of U_k (O(N d²) with a large constant and an N x d U in memory); hf_coreset streams the d x d
covariance in float64 chunks, takes eigh, and projects chunk by chunk. Prints a Markdown table.

    python benchmarks/scalselect_speed.py                 # N = 100,000, d = 1024
    python benchmarks/scalselect_speed.py --n 20000 --d 256
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hf_coreset.methods.scalselect import leverage_scores, top_m


def synthetic_representations(n: int, d: int, seed: int) -> np.ndarray:
    """float32 rows with a decaying spectrum (like real VLM features: a few strong directions, then noise)."""
    rng = np.random.default_rng(seed)
    rank = min(d, 64)
    basis = np.linalg.qr(rng.normal(size=(d, rank)))[0].T.astype(np.float32)
    strengths = (3.0 / np.sqrt(1.0 + np.arange(rank))).astype(np.float32)
    x = (rng.standard_normal((n, rank), dtype=np.float32) * strengths) @ basis
    x += 0.05 * rng.standard_normal((n, d), dtype=np.float32) + 1.0  # isotropic noise and an offset mean
    return x


def svd_reference(x: np.ndarray, rho: float) -> tuple[np.ndarray, int]:
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    energy = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.searchsorted(energy, rho)) + 1
    return np.einsum("ij,ij->i", u[:, :k], u[:, :k]), k


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--rho", type=float, default=0.9)
    parser.add_argument("--fraction", type=float, default=0.16, help="budget as a fraction of N")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x = synthetic_representations(args.n, args.d, args.seed)
    budget = int(round(args.fraction * args.n))
    (fast, fast_pick), fast_s = timed(lambda: (r := leverage_scores(x, rho=args.rho), top_m(r.scores, budget)))
    (reference, ref_k), ref_s = timed(svd_reference, x, args.rho)
    ref_pick, _ = timed(top_m, reference, budget)
    ref_pick = ref_pick[0]
    overlap = len(np.intersect1d(fast_pick[0], ref_pick)) / budget
    max_diff = float(np.abs(fast.scores - reference).max())

    print(f"ScalSelect leverage scoring, N = {args.n:,}, d = {args.d}, rho = {args.rho}, "
          f"top {args.fraction:.0%} = {budget:,} rows\n")
    print("| path | time (s) | speed-up | k | top-M identical | max abs score diff |")
    print("|---|---:|---:|---:|---|---:|")
    print(f"| exact SVD of the centred matrix (float64) | {ref_s:.2f} | 1.0x | {ref_k} | reference | |")
    print(f"| hf_coreset streamed covariance + eigh | {fast_s:.2f} | {ref_s / fast_s:.1f}x | {fast.k} | "
          f"{'yes' if overlap == 1.0 else f'NO ({overlap:.4%} overlap)'} | {max_diff:.1e} |")


if __name__ == "__main__":
    main()
