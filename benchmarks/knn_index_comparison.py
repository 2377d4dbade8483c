"""Compare approximate kNN indexes for CAST's graphs: recall@10 and build+query time.

Usage: python benchmarks/knn_index_comparison.py [--n 50000] [--dims 384 1280] [--queries 1000]

Each backend indexes all N rows and queries all N rows for their 10 nearest other rows (what a kNN graph
needs). Recall is measured against exact search on a random sample of query rows. pynndescent's numba
compilation is done on a tiny input first and reported separately (it is paid once per process).
Features: ``cast_scale.clustered_features`` (low intrinsic dimension, see there), L2-normalised.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from cast_scale import clustered_features

from hf_coreset.graph.knn import approximate_knn, exact_knn
from hf_coreset.vectors import l2_normalize

BACKENDS = ("hnswlib", "faiss", "pynndescent")


def exact_sample(x: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Exact k nearest other rows of ``x[rows]``."""
    s = x[rows] @ x.T
    s[np.arange(len(rows)), rows] = -np.inf
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    return part


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, e)) for a, e in zip(approx, exact)]) / exact.shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 1280])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    args = parser.parse_args()

    if "pynndescent" in args.backends:
        started = time.perf_counter()
        approximate_knn(l2_normalize(np.random.default_rng(0).normal(size=(500, 8))), 10, "pynndescent")
        print(f"pynndescent numba warm-up (once per process): {time.perf_counter() - started:.1f} s")

    rows = []
    for d in args.dims:
        x = l2_normalize(clustered_features(args.n, d, seed=1)).astype(np.float32)
        sample = np.random.default_rng(0).choice(args.n, size=args.queries, replace=False)
        truth = exact_sample(x, sample, args.k)
        for backend in args.backends:
            started = time.perf_counter()
            idx, _ = approximate_knn(x, args.k, backend)
            seconds = time.perf_counter() - started
            rows.append((args.n, d, backend, recall(idx[sample], truth), seconds))
            print(f"  done N={args.n} d={d} {backend}: {seconds:.1f} s", flush=True)
        started = time.perf_counter()
        exact_knn(x[: min(args.n, 10_000)], args.k)
        exact_10k = time.perf_counter() - started
        # Exact search is quadratic: extrapolate its time from 10k rows instead of running it at N.
        rows.append((args.n, d, "exact (extrapolated)", 1.0, exact_10k * (args.n / min(args.n, 10_000)) ** 2))

    print(f"\n{'N':>8} {'d':>5} {'index':>22} {'recall@10':>10} {'build+query s':>14}")
    for n, d, backend, r, seconds in rows:
        print(f"{n:>8} {d:>5} {backend:>22} {r:>10.4f} {seconds:>14.1f}")


if __name__ == "__main__":
    main()
