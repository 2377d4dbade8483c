"""MDW with other options than the default, per seed, beside the committed distillation grid.

    python -m benchmarks.mdw_variants --dataset fashion_mnist --noise 0.5 --sizes 100 200 500 \\
        --options '{"lr_correspondence": 1e-9, "lr_student_lr": 1e-9}'
    python -m benchmarks.mdw_variants --dataset fashion_mnist --noise 0.5 --sizes 100 --training-seeds 5

The first form distils each (seed, N) cell of ``benchmarks.retrieval.distill`` with ``MDWConfig`` options
changed (the same pools, clean probabilities and training of the heads) and prints r_mean per seed beside the
committed grid's ``mdw`` and ``cast`` for the same seed (``results/distill_<dataset>.json``; re-run the grid
when the default changed since). The second form asks where a cell's seed-to-seed spread comes from: one
distilled set and one CAST coreset of the seed-0 pool, each trained with ``--training-seeds`` seeds; the spread
of those is the training's alone. Results are printed, not written: quote them with the command.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import hf_coreset
from hf_coreset.distill import CleanProbability, distill, estimate_clean_probability, train_on_distilled
from hf_coreset.evaluation import ProxyData, retrieval_scores, train_and_score

from .retrieval.__main__ import test_pairs
from .retrieval.data import noisy_pool
from .retrieval.distill import RESULTS, add_cell_arguments, load_features, summary_of

COLUMNS = {"image_column": "img_emb", "text_column": "txt_emb"}


def scored_pool(train: dict, noise: float, seed: int):
    """The grid's pool of ``seed`` (permuted captions), with its clean probability as a column."""
    pool, texts, _ = noisy_pool(train, noise, seed)
    probability = estimate_clean_probability(pool, "img_emb", "txt_emb", seed=seed, show_progress=False)
    return pool.map(CleanProbability(probability), with_indices=True, batched=True), texts


def distilled_score(scored, size: int, seed: int, test, options: dict, training_seed: int | None = None) -> float:
    small = distill(scored, "mdw", size, **COLUMNS, seed=seed, show_progress=False,
                    clean_probability_column="clean_probability", **options)
    model = train_on_distilled(small, steps=500, seed=seed if training_seed is None else training_seed)
    return retrieval_scores(model, test)["r_mean"]


def committed(dataset: str, noise: float, size: int, method: str) -> dict[int, float]:
    """r_mean per seed of ``method`` in the committed grid's cell (empty when the cell is not there)."""
    path = RESULTS / f"distill_{dataset}.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    return {r["seed"]: r["r_mean"] for r in runs
            if (r["noise"], r["pairs"], r["method"]) == (noise, size, method)}


def compare_options(args, train, test) -> None:
    options = json.loads(args.options)
    scores: dict[int, dict[int, float]] = {size: {} for size in args.sizes}
    for seed in args.seeds:
        scored, _ = scored_pool(train, args.noise, seed)
        for size in args.sizes:
            scores[size][seed] = distilled_score(scored, size, seed, test, options)
            print(f"  N={size} seed={seed}: {scores[size][seed]:.2f}", flush=True)
    print(f"\n{args.dataset}, noise {args.noise:.0%}, options {options}\n")
    print("| N | seed | variant | committed mdw | committed cast |\n|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        grid = {m: committed(args.dataset, args.noise, size, m) for m in ("mdw", "cast")}
        for seed in args.seeds:
            cells = [f"{grid[m][seed]:.2f}" if seed in grid[m] else "" for m in ("mdw", "cast")]
            print(f"| {size} | {seed} | {scores[size][seed]:.2f} | {' | '.join(cells)} |")
        mine = summary_of(list(scores[size].values()))
        means = [summary_of([grid[m][s] for s in args.seeds if s in grid[m]]) if grid[m] else None
                 for m in ("mdw", "cast")]
        print(f"| {size} | mean | {mine[0]:.2f} ± {mine[1]:.2f} | "
              + " | ".join(f"{m[0]:.2f} ± {m[1]:.2f}" if m else "" for m in means) + " |")


def training_spread(args, train, test) -> None:
    scored, texts = scored_pool(train, args.noise, 0)
    pairs = ProxyData({"image": train["image"], "text": texts})
    for size in args.sizes:
        core = hf_coreset.select_coreset(scored, "cast", size, embedding_columns=["img_emb", "txt_emb"], seed=0,
                                         show_progress=False)
        rows = hf_coreset.get_selection_result(core).indices
        seeds = range(args.training_seeds)
        small = distill(scored, "mdw", size, **COLUMNS, seed=0, show_progress=False,
                        clean_probability_column="clean_probability", **json.loads(args.options))
        mdw = [retrieval_scores(train_on_distilled(small, steps=500, seed=s), test)["r_mean"] for s in seeds]
        cast = [train_and_score("dual_encoder", pairs, rows, test, steps=500, seed=s)["r_mean"] for s in seeds]
        print(f"{args.dataset}, noise {args.noise:.0%}, N={size}, pool seed 0, {args.training_seeds} training seeds: "
              f"mdw {summary_of(mdw)[0]:.2f} ± {summary_of(mdw)[1]:.2f} {np.round(mdw, 2).tolist()}, "
              f"cast {summary_of(cast)[0]:.2f} ± {summary_of(cast)[1]:.2f} {np.round(cast, 2).tolist()}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_cell_arguments(parser)
    parser.add_argument("--options", default="{}", help="MDWConfig options as JSON, e.g. '{\"clean_threshold\": 0.8}'")
    parser.add_argument("--training-seeds", type=int, default=0,
                        help="instead: train one distilled set and one CAST coreset (seed-0 pool) with this many seeds")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the grid: one thread, CPU times comparable
    features = load_features(args.dataset)
    train, test = features["train"], test_pairs(features["test"])
    with threadpool_limits(1):
        (training_spread if args.training_seeds else compare_options)(args, train, test)


if __name__ == "__main__":
    main()
