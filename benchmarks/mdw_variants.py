"""MDW with other options than the default, per seed, beside the committed distillation grid.

    python -m benchmarks.mdw_variants --dataset fashion_mnist --noise 0.5 --sizes 100 200 500 \\
        --options '{"lr_correspondence": 1e-9, "lr_student_lr": 1e-9}'
    python -m benchmarks.mdw_variants --dataset fashion_mnist --noise 0.5 --sizes 100 --training-seeds 5
    python -m benchmarks.mdw_variants --dataset fashion_mnist --noise 0.5 --options '{"iterations": 0}' \\
        --scales 3 5 10 20 30

The first form distils each (seed, N) cell of ``benchmarks.retrieval.distill`` with ``MDWConfig`` options changed
(the same pools, clean probabilities and training of the heads) and prints r_mean per seed beside the committed
grid's ``mdw`` and ``cast`` for the same seed (``results/distill_<dataset>.json``; re-run the grid when the
default changed since), then the variant's two margins per N (over the grid's best selector and its mdw-init, 2
pooled std) and how many cells pass both. The second form asks where a cell's seed-to-seed spread comes from: per
pool seed (``--seeds``), one distilled set and one CAST coreset, each trained with ``--training-seeds`` seeds; the
spread of those is the training's alone, and the spread of their means over the pool seeds is the pools'. The third form
asks how sharp P's soft targets should be: each (seed, N) set is distilled once and trained with P multiplied by
each of ``--scales`` / ``correspondence_scale`` (with ``iterations=0``, P is ``correspondence_scale`` times the
experts' cosine similarity, so this equals distilling with ``correspondence_scale`` set to each scale, at one
distillation's cost). Results are printed, not written: quote them with the command.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import hf_coreset
from hf_coreset.distill import (
    CleanProbability,
    MDWConfig,
    distill,
    estimate_clean_probability,
    get_distillation_result,
    train_on_distilled,
)
from hf_coreset.distill.mdw.distill import DIAG, LEFT, RIGHT
from hf_coreset.evaluation import ProxyData, retrieval_scores, train_and_score

from .retrieval.__main__ import test_pairs
from .retrieval.data import noisy_pool
from .retrieval.distill import (
    RESULTS,
    add_cell_arguments,
    fmt,
    load_features,
    margin_text,
    margins,
    passes,
    summary_of,
)

COLUMNS = {"image_column": "img_emb", "text_column": "txt_emb"}


def scored_pool(train: dict, noise: float, seed: int):
    """The grid's pool of ``seed`` (permuted captions) with its clean probability as a column, the permuted text
    features and which rows are mismatched (as ``noisy_pool``)."""
    pool, texts, mismatched = noisy_pool(train, noise, seed)
    probability = estimate_clean_probability(pool, "img_emb", "txt_emb", seed=seed, show_progress=False)
    return pool.map(CleanProbability(probability), with_indices=True, batched=True), texts, mismatched


def distilled(scored, size: int, seed: int, options: dict):
    """MDW's ``size`` pairs of a scored pool, with the default config changed by ``options``."""
    return distill(scored, "mdw", size, **COLUMNS, seed=seed, show_progress=False,
                   clean_probability_column="clean_probability", **options)


def distilled_score(small, test, training_seed: int) -> float:
    """r_mean of heads trained on a distilled set, as the grid trains them."""
    return retrieval_scores(train_on_distilled(small, steps=500, seed=training_seed), test)["r_mean"]


def committed(dataset: str, noise: float) -> dict[tuple[int, str], dict[int, float]]:
    """r_mean per seed of every (N, method) in the committed grid at ``noise`` (empty without the file)."""
    path = RESULTS / f"distill_{dataset}.json"
    cells: dict[tuple[int, str], dict[int, float]] = {}
    for r in json.loads(path.read_text())["runs"] if path.exists() else []:
        if r["noise"] == noise:
            cells.setdefault((r["pairs"], r["method"]), {})[r["seed"]] = r["r_mean"]
    return cells


def compare_options(args, train, test) -> None:
    options = json.loads(args.options)
    scores: dict[int, dict[int, float]] = {size: {} for size in args.sizes}
    for seed in args.seeds:
        scored, _, _ = scored_pool(train, args.noise, seed)
        for size in args.sizes:
            scores[size][seed] = distilled_score(distilled(scored, size, seed, options), test, seed)
            print(f"  N={size} seed={seed}: {scores[size][seed]:.2f}", flush=True)
    print(f"\n{args.dataset}, noise {args.noise:.0%}, options {options}\n")
    print("| N | seed | variant | committed mdw | committed cast |\n|---:|---:|---:|---:|---:|")
    saved = committed(args.dataset, args.noise)
    for size in args.sizes:
        grid = {m: saved.get((size, m), {}) for m in ("mdw", "cast")}
        for seed in args.seeds:
            cells = [f"{grid[m][seed]:.2f}" if seed in grid[m] else "" for m in ("mdw", "cast")]
            print(f"| {size} | {seed} | {scores[size][seed]:.2f} | {' | '.join(cells)} |")
        mine = summary_of(list(scores[size].values()))
        means = [summary_of([grid[m][s] for s in args.seeds if s in grid[m]]) if grid[m] else None
                 for m in ("mdw", "cast")]
        print(f"| {size} | mean | {mine[0]:.2f} ± {mine[1]:.2f} | "
              + " | ".join(f"{m[0]:.2f} ± {m[1]:.2f}" if m else "" for m in means) + " |")
    print(verdicts(scores, saved, args.seeds))


def verdicts(scores: dict[int, dict[int, float]], saved: dict, seeds: list[int]) -> str:
    """The variant's two margins per N, against the committed grid's selectors and mdw-init on the same seeds
    (the margins of ``benchmarks.retrieval.distill``'s summary, with the variant in mdw's place)."""
    lines = ["\n| N | variant | best selector | mdw-init | - best (2 pooled std) | - init (2 pooled std) |",
             "|---:|---:|---|---:|---:|---:|"]
    passed = 0
    for size, per_seed in scores.items():
        methods = {method: summary_of([values[s] for s in seeds]) for (n, method), values in saved.items()
                   if n == size and method != "mdw" and all(s in values for s in seeds)}
        if "mdw-init" not in methods:
            continue  # no committed grid for this cell
        methods["mdw"] = summary_of(list(per_seed.values()))
        found = margins(methods)
        passed += passes(methods)
        best = found["best_selector"]
        lines.append(f"| {size} | {fmt(methods['mdw'])} | {best} {fmt(methods[best])} | {fmt(methods['mdw-init'])} | "
                     f"{margin_text(found['vs_best'])} | {margin_text(found['vs_init'])} |")
    return "\n".join(lines) + f"\n\nCells passing both margins: {passed} of {len(lines) - 2}."


def with_scaled_correspondence(small, factor: float):
    """The distilled set with P multiplied by ``factor`` (diag times factor, each factor of L R^T times its root)."""
    root = float(np.sqrt(factor))
    return small.map(lambda batch: {
        DIAG: (factor * np.asarray(batch[DIAG])).tolist(),
        LEFT: (root * np.asarray(batch[LEFT])).tolist(),
        RIGHT: (root * np.asarray(batch[RIGHT])).tolist()}, batched=True, load_from_cache_file=False)


def compare_scales(args, train, test) -> None:
    options = json.loads(args.options)
    if not MDWConfig(**options).uses_expert_correspondence:
        raise SystemExit("--scales rescales P: --options needs correspondence_scale > 0 or correspondence_std.")
    scores: dict[tuple[int, float], list[float]] = {}
    for seed in args.seeds:
        scored, _, _ = scored_pool(train, args.noise, seed)
        for size in args.sizes:
            small = distilled(scored, size, seed, options)
            base = get_distillation_result(small).diagnostics["correspondence_scale"]  # the scale P started at
            for scale in args.scales:
                score = distilled_score(with_scaled_correspondence(small, scale / base), test, seed)
                scores.setdefault((size, scale), []).append(score)
                print(f"  N={size} seed={seed} scale={scale:g}: {score:.2f}", flush=True)
    print(f"\n{args.dataset}, noise {args.noise:.0%}, options {options}, r_mean mean ± std over seeds {args.seeds} "
          "(per seed in brackets)\n")
    print("| N | " + " | ".join(f"scale {s:g}" for s in args.scales) + " |\n|---:|" + "---:|" * len(args.scales))
    for size in args.sizes:
        cells = [scores[(size, scale)] for scale in args.scales]
        print(f"| {size} | " + " | ".join(f"{summary_of(v)[0]:.2f} ± {summary_of(v)[1]:.2f} {np.round(v, 2).tolist()}"
                                        for v in cells) + " |")


def training_spread(args, train, test) -> None:
    """Per pool seed, one distilled set and one CAST coreset each trained with ``--training-seeds`` seeds; then
    the per-seed means over the pool seeds (their spread is the pools' alone, the training's averaged out)."""
    options = json.loads(args.options)
    means: dict[tuple[int, str], list[float]] = {}
    for pool_seed in args.seeds:
        scored, texts, _ = scored_pool(train, args.noise, pool_seed)
        pairs = ProxyData({"image": train["image"], "text": texts})
        seeds = range(pool_seed * args.training_seeds, (pool_seed + 1) * args.training_seeds)
        for size in args.sizes:
            core = hf_coreset.select_coreset(scored, "cast", size, embedding_columns=["img_emb", "txt_emb"],
                                             seed=pool_seed, show_progress=False)
            rows = hf_coreset.get_selection_result(core).indices
            small = distilled(scored, size, pool_seed, options)
            spread = {"mdw": [distilled_score(small, test, s) for s in seeds],
                      "cast": [train_and_score("dual_encoder", pairs, rows, test, steps=500, seed=s)["r_mean"]
                               for s in seeds]}
            for name, values in spread.items():
                means.setdefault((size, name), []).append(summary_of(values)[0])
            print(f"{args.dataset}, noise {args.noise:.0%}, N={size}, pool seed {pool_seed}, training seeds "
                  f"{seeds.start}-{seeds.stop - 1}: " + ", ".join(
                      f"{name} {summary_of(v)[0]:.2f} ± {summary_of(v)[1]:.2f} {np.round(v, 2).tolist()}"
                      for name, v in spread.items()), flush=True)
    if len(args.seeds) > 1:
        for size in args.sizes:
            (mdw, mdw_std), (cast, cast_std) = summary_of(means[(size, "mdw")]), summary_of(means[(size, "cast")])
            print(f"N={size}, pool seeds {args.seeds}, each the mean of {args.training_seeds} trainings: "
                  f"mdw {mdw:.2f} ± {mdw_std:.2f}, cast {cast:.2f} ± {cast_std:.2f}, "
                  f"mdw - cast {mdw - cast:+.2f} (2 pooled std {2 * np.hypot(mdw_std, cast_std):.2f})", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_cell_arguments(parser)
    parser.add_argument("--options", default="{}", help="MDWConfig options as JSON, e.g. '{\"clean_threshold\": 0.8}'")
    parser.add_argument("--training-seeds", type=int, default=0,
                        help="instead: per pool seed, train one distilled set and one CAST coreset this many times")
    parser.add_argument("--scales", nargs="+", type=float, default=None,
                        help="instead: train each distilled set with P rescaled to each of these correspondence scales")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the grid: one thread, CPU times comparable
    features = load_features(args.dataset)
    train, test = features["train"], test_pairs(features["test"])
    with threadpool_limits(1):
        mode = training_spread if args.training_seeds else compare_scales if args.scales else compare_options
        mode(args, train, test)


if __name__ == "__main__":
    main()
