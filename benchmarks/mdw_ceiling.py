"""How high can N distilled pairs go? Heads trained on every clean pair of each grid pool, beside the grid's cells.

    python -m benchmarks.mdw_ceiling                                  # both datasets, noise 0 / 0.2 / 0.5, 3 seeds
    python -m benchmarks.mdw_ceiling --datasets openclipart --noise 0.5 --seeds 0   # one pool
    python -m benchmarks.mdw_ceiling --expert-only    # only the expert trained again, other columns kept
    python -m benchmarks.mdw_ceiling --tables-only    # no training: the per-cell table against today's grid

For every pool of the distillation grid (``benchmarks.retrieval.distill``: dataset, caption noise, seed; the same
permuted captions and clean probabilities), heads are trained as the grid trains a coreset
(``hf_coreset.evaluation.train_and_score``: AdamW, 500 steps of 128 pairs, the pool's seed) on

* ``oracle``: every pair the caption noise left matched (what no method can know, the pool's clean information),
* ``deemed clean``: every pair MDW deems clean (clean probability >= 0.5, the pairs it distils from),
* ``whole pool``: every pair, mismatched ones included;

and ``expert`` is MDW's own averaged expert (``train_experts`` with the default ``MDWConfig``: 2 tracks x 250
steps on the pairs deemed clean, drawn in proportion to their clean probability), the teacher P comes from.

Then, per (dataset, noise, N) cell of the committed grid (``results/distill_<dataset>.json``), what MDW's mean must
exceed for issue 16's two margins (above the best selector and above mdw-init by more than 2 pooled std): with
MDW's spread over the seeds as measured in the grid, and with a spread of 0 (the least any method could need).
A cell whose least need lies above the oracle's mean asks N pairs to train better heads than every clean pair of
the pool does. Writes ``results/mdw_ceiling.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from hf_coreset.distill import MDWConfig
from hf_coreset.distill.mdw.distill import train_experts
from hf_coreset.evaluation import ProxyData, retrieval_scores, train_and_score

from .mdw_variants import scored_pool
from .retrieval.__main__ import test_pairs
from .retrieval.distill import RESULTS, cells, fmt, load_features, summary_of

TRAININGS = ("oracle", "deemed clean", "whole pool", "expert")


def pool_ceilings(train: dict, test, dataset: str, noise: float, seed: int) -> dict:
    """r_mean of heads trained on the oracle, deemed-clean and whole pools of one grid pool, and of MDW's expert."""
    scored, texts, mismatched = scored_pool(train, noise, seed)
    probability = np.asarray(scored["clean_probability"])
    pairs = ProxyData({"image": train["image"], "text": texts})
    rows = {"oracle": np.flatnonzero(~mismatched), "deemed clean": np.flatnonzero(probability >= 0.5),
            "whole pool": np.arange(len(probability))}
    scores = {name: train_and_score("dual_encoder", pairs, chosen, test, steps=500, seed=seed)["r_mean"]
              for name, chosen in rows.items()}
    scores["expert"] = expert_r_mean(train, texts, probability, test, seed)
    record = {"dataset": dataset, "noise": noise, "seed": seed, "r_mean": scores,
              "rows": {name: len(chosen) for name, chosen in rows.items()}}
    print(f"  {dataset} noise={noise} seed={seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()), flush=True)
    return record


def expert_r_mean(train: dict, texts, probability: np.ndarray, test, seed: int) -> float:
    """r_mean of MDW's averaged expert (default ``MDWConfig``) on one pool."""
    images = torch.as_tensor(np.asarray(train["image"]), dtype=torch.float32)
    expert, _ = train_experts(images, torch.as_tensor(np.asarray(texts), dtype=torch.float32), probability,
                              MDWConfig(seed=seed), keep_trajectory=False)
    return retrieval_scores(expert, test)["r_mean"]


def retrain_expert(train: dict, test, record: dict) -> dict:
    """A saved pool's record with its expert column trained again on today's code (the rest kept)."""
    scored, texts, _ = scored_pool(train, record["noise"], record["seed"])
    score = expert_r_mean(train, texts, np.asarray(scored["clean_probability"]), test, record["seed"])
    print(f"  {record['dataset']} noise={record['noise']} seed={record['seed']}: expert {score:.2f} "
          f"(was {record['r_mean']['expert']:.2f})", flush=True)
    return {**record, "r_mean": {**record["r_mean"], "expert": score}}


def needs(cell: dict) -> dict[str, float]:
    """What MDW's mean must exceed to pass both margins: with its grid spread, and with a spread of 0."""
    methods = cell["methods"]
    mdw_std = methods["mdw"][1]
    others = [methods[cell["best_selector"]], methods["mdw-init"]]
    return {"with_mdw_spread": max(mean + 2 * np.hypot(std, mdw_std) for mean, std in others),
            "spread_0": max(mean + 2 * std for mean, std in others)}


def within(need: dict[str, float], ceiling: float) -> str:
    """Whether a cell's need lies below a ceiling: with MDW's spread, only with a smaller one, or not at all."""
    if need["with_mdw_spread"] <= ceiling:
        return "yes"
    return "only with a smaller spread" if need["spread_0"] <= ceiling else "**no**"


def feasibility_table(grid_cells: list[dict], runs: list[dict]) -> str:
    lines = ["| dataset | noise | N | mdw | needs (MDW's spread) | needs (spread 0) | oracle | deemed clean | expert | "
             "needs within deemed clean? | needs within the oracle? |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for cell in grid_cells:
        pools = [r for r in runs if (r["dataset"], r["noise"]) == (cell["dataset"], cell["noise"])]
        if not pools:
            continue
        ceiling = {name: summary_of([r["r_mean"][name] for r in pools]) for name in TRAININGS}
        need = needs(cell)
        verdicts = [within(need, ceiling[name][0]) for name in ("deemed clean", "oracle")]
        lines.append(f"| {cell['dataset']} | {cell['noise']:.0%} | {cell['pairs']} | {fmt(cell['methods']['mdw'])} | "
                     f"{need['with_mdw_spread']:.2f} | {need['spread_0']:.2f} | {fmt(ceiling['oracle'])} | "
                     f"{fmt(ceiling['deemed clean'])} | {fmt(ceiling['expert'])} | {' | '.join(verdicts)} |")
    return "\n".join(lines)


def pool_table(runs: list[dict]) -> str:
    lines = ["| dataset | noise | seed | " + " | ".join(TRAININGS) + " | rows: oracle / deemed clean / whole |",
             "|---|---:|---:|" + "---:|" * len(TRAININGS) + "---:|"]
    for r in runs:
        lines.append(f"| {r['dataset']} | {r['noise']:.0%} | {r['seed']} | "
                     + " | ".join(f"{r['r_mean'][name]:.2f}" for name in TRAININGS)
                     + f" | {r['rows']['oracle']} / {r['rows']['deemed clean']} / {r['rows']['whole pool']} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["openclipart", "fashion_mnist"])
    parser.add_argument("--noise", nargs="+", type=float, default=[0.0, 0.2, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--output", default=str(RESULTS / "mdw_ceiling"), help="writes <output>.md and .json")
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument("--tables-only", action="store_true",
                       help="train nothing: rebuild the tables from <output>.json's pools and today's grid (e.g. "
                            "after the grid was re-run)")
    reuse.add_argument("--expert-only", action="store_true",
                       help="train only the expert again (e.g. after MDW's experts changed); the other columns come "
                            "from <output>.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the grid
    saved = json.loads(Path(f"{args.output}.json").read_text()) if args.tables_only or args.expert_only else None
    runs, grid_cells = [], []
    with threadpool_limits(1):
        for dataset in args.datasets:
            kept = [r for r in saved["runs"] if r["dataset"] == dataset and r["noise"] in args.noise] if saved else []
            if args.tables_only:
                runs += kept
            else:
                features = load_features(dataset)
                train, test = features["train"], test_pairs(features["test"])
                if args.expert_only:
                    runs += [retrain_expert(train, test, r) for r in kept]
                else:
                    runs += [pool_ceilings(train, test, dataset, noise, seed)
                             for noise in args.noise for seed in args.seeds]
            grid = RESULTS / f"distill_{dataset}.json"
            grid_cells += [c for c in cells(json.loads(grid.read_text())["runs"]) if c["noise"] in args.noise]
    # With saved pools the columns are what the saved command gives on today's code (the expert the only one that
    # depends on MDW's code), so the saved command stays the one to quote.
    command = saved["command"] if saved is not None else \
        "python -m benchmarks.mdw_ceiling " + " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n\n".join([
        f"Command: `{command.strip()}`",
        "Heads trained as the grid trains a coreset (500 steps), on every pool of the distillation grid; r_mean (%) "
        "on the clean test split, per pool:", pool_table(runs),
        "Per cell of the committed grid: the least mean MDW needs to pass both of issue 16's margins (above the best "
        "selector and above mdw-init by more than 2 pooled std), with MDW's spread over the seeds as in the grid and "
        "with a spread of 0, beside the ceilings (mean ± std over the seeds):", feasibility_table(grid_cells, runs)])
    with open(f"{args.output}.md", "w") as handle:
        handle.write(text + "\n")
    with open(f"{args.output}.json", "w") as handle:
        json.dump({"command": command.strip(), "runs": runs}, handle, indent=1)
    print("\n" + text)


if __name__ == "__main__":
    main()
