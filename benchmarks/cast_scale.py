"""CAST time and peak memory at growing N (budget 10 %), with the recall of the approximate kNN index.

Usage: python benchmarks/cast_scale.py [--sizes 10000 100000 400000] [--budget 0.1]

Each N runs in its own subprocess under ``/usr/bin/time -v`` (peak RSS of that process alone). Features:
``clustered_features`` (1280-d "image" and 384-d "text" blocks, random with a low intrinsic
dimension, see its docstring). The time is that of the selection (graphs, reliability, similarity, greedy),
not of generating the features (nor of measuring the recall). Recall@10 of each modality's index is
measured on 1,000 random rows against exact search in the same (centred, normalised) space. The growth
exponent between the last two sizes is ``log(t2 / t1) / log(N2 / N1)``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time

import numpy as np


def clustered_features(n: int, d: int, seed: int = 0, latent_dim: int = 32, noise: float = 0.3) -> np.ndarray:
    """``(n, d)`` float32 rows: random, but with a neighbourhood structure.

    i.i.d. Gaussian vectors in 1280 dimensions have no meaningful nearest neighbours (all distances are
    nearly equal), which would make recall figures meaningless. Here each row is a point of a 32-d latent
    Gaussian mixture (``N / 100`` clusters) mapped by a fixed random linear map to ``d`` dimensions, plus
    isotropic noise: real encoder outputs also have a low intrinsic dimension.
    """
    rng = np.random.default_rng(seed)
    n_clusters = max(1, n // 100)
    centres = rng.normal(size=(n_clusters, latent_dim)).astype(np.float32)
    latent = centres[rng.integers(n_clusters, size=n)]
    latent += 0.5 * rng.standard_normal((n, latent_dim), dtype=np.float32)
    mixing = (rng.standard_normal((latent_dim, d), dtype=np.float32) / np.sqrt(latent_dim)).astype(np.float32)
    x = latent @ mixing
    x += noise * rng.standard_normal((n, d), dtype=np.float32)
    return x


def child(n: int, budget_fraction: float) -> None:
    """Run one selection and print its figures as one JSON line."""
    from hf_coreset.graph.fusion import prepare_features
    from hf_coreset.methods.cast import CASTConfig, CASTSelector
    from hf_coreset.selector import FeatureSet

    blocks = {"image": clustered_features(n, 1280, seed=1), "text": clustered_features(n, 384, seed=2)}
    budget = int(round(budget_fraction * n))
    started = time.perf_counter()
    selector = CASTSelector(CASTConfig(seed=0)).fit(FeatureSet(n, blocks), budget)
    seconds = time.perf_counter() - started
    diagnostics = selector.diagnostics_
    graph_candidates = _candidates_of(blocks, selector)
    recall = {name: _recall(prepare_features(blocks[name]), graph_candidates[name]) for name in blocks}
    print(json.dumps({"n": n, "budget": budget, "seconds": seconds, "stages": diagnostics["seconds"],
                      "recall": recall, "index": diagnostics["index_used"],
                      "unique": len(set(selector.indices_.tolist())),
                      "coverage": diagnostics["mean_best_similarity"]["fine"]}))


def _candidates_of(blocks: dict, selector) -> dict:
    """The 10 nearest neighbours each modality's index found (rebuilt the same way, for the recall figure)."""
    from hf_coreset.graph.fusion import modality_graph, prepare_features

    config = selector.config
    return {name: modality_graph(prepare_features(x), config.k, config.index, config.seed,
                                 config.hubness_reduction, config.search_dims).candidates[:, :10]
            for name, x in blocks.items()}


def _recall(x: np.ndarray, neighbours: np.ndarray, sample: int = 1000) -> float:
    rows = np.random.default_rng(0).choice(len(x), size=min(sample, len(x)), replace=False)
    s = x[rows] @ x.T
    s[np.arange(len(rows)), rows] = -np.inf
    exact = np.argpartition(-s, 9, axis=1)[:, :10]
    return float(np.mean([len(np.intersect1d(a, e)) for a, e in zip(neighbours[rows], exact)]) / 10)


def run(n: int, budget_fraction: float) -> dict:
    command = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", str(n), "--budget", str(budget_fraction)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"N={n} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["peak_rss_gb"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1]) / 2**20
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 400_000])
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.budget)
        return
    rows = []
    for n in args.sizes:
        rows.append(run(n, args.budget))
        print(f"  N={n}: {rows[-1]['seconds']:.1f} s  {json.dumps(rows[-1]['stages'])}", flush=True)
    print(f"\n{'N':>8} {'budget':>7} {'time s':>8} {'peak RSS GB':>12} {'index':>18} "
          f"{'recall@10 img':>14} {'recall@10 txt':>14} {'mean best sim':>14}")
    for r in rows:
        print(f"{r['n']:>8} {r['budget']:>7} {r['seconds']:>8.1f} {r['peak_rss_gb']:>12.2f} "
              f"{r['index']['image']:>18} {r['recall']['image']:>14.3f} {r['recall']['text']:>14.3f} "
              f"{r['coverage']:>14.3f}")
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        exponent = math.log(b["seconds"] / a["seconds"]) / math.log(b["n"] / a["n"])
        print(f"\ngrowth exponent between N={a['n']} and N={b['n']}: {exponent:.2f}")


if __name__ == "__main__":
    main()
