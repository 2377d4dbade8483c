"""Where one MDW distillation's time goes, what each of its steps adds, and its objective per iteration.

    python -m benchmarks.mdw_distill_profile                     # Open Clip Art, 50 % caption noise, N = 200, seed 0
    python -m benchmarks.mdw_distill_profile --noise 0.2 --pairs 100 --seeds 0 1 2

For each seed: the training pairs get permuted captions (``hf_coreset.noise``), the clean probability is estimated
once, then one distillation with the default ``MDWConfig`` runs with its stages timed (wall and CPU seconds, one
torch thread), and a few matching iterations run again under ``torch.profiler`` to show which operations the
matching spends its time in. Heads are trained on each stage's output (``train_on_distilled`` / the benchmark's
``train_and_score``, 500 steps) and scored on the clean test split (r_mean, %):

* ``mdw-init``: the real starting pairs (cluster medoids of the likely-clean pairs);
* ``blend``: the cluster means, P the identity (``iterations=0, correspondence_scale=0``);
* ``blend + P``: the cluster means with P from the experts' similarity, no matching (``iterations=0``);
* ``mdw``: the full distillation (``blend + P`` then trajectory matching).

Writes ``results/mdw_distill_profile.{md,json}`` and ``results/mdw_distill_objective.png`` (the objective per
iteration, and the held objective before and after the matching).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from hf_coreset.distill import (
    CleanProbability,
    distill,
    estimate_clean_probability,
    get_distillation_result,
    train_on_distilled,
)
from hf_coreset.distill.mdw import distill as mdw
from hf_coreset.distill.mdw.config import MDWConfig
from hf_coreset.evaluation import ProxyData, retrieval_scores, train_and_score

from .retrieval.__main__ import test_pairs
from .retrieval.data import noisy_pool
from .retrieval.distill import load_features

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("starting_pairs", "experts", "matching")


def profile_matching(pool_images: torch.Tensor, pool_texts: torch.Tensor, probability: np.ndarray, pairs: int,
                     seed: int, iterations: int = 5) -> str:
    """``iterations`` matching iterations under torch.profiler: the top operations by self CPU time."""
    config = MDWConfig(seed=seed, iterations=iterations)
    synthetic, _ = mdw.init_synthetic(pool_images, pool_texts, probability, pairs, config)
    expert, trajectory = mdw.train_experts(pool_images, pool_texts, probability, config)
    synthetic.correspondence, _ = mdw.expert_correspondence(expert, synthetic.images.detach(),
                                                            synthetic.texts.detach(), config)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        mdw.match_trajectories(synthetic, expert, trajectory, config, pixels=False, show_progress=False)
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)


def run_seed(train: dict, test, args, seed: int) -> dict:
    pool, texts, mismatched = noisy_pool(train, args.noise, seed)
    probability = estimate_clean_probability(pool, "img_emb", "txt_emb", seed=seed, show_progress=False)
    scored = pool.map(CleanProbability(probability), with_indices=True, batched=True)
    common = {"image_column": "img_emb", "text_column": "txt_emb", "seed": seed, "show_progress": False,
              "clean_probability_column": "clean_probability"}
    arms = {"blend": {"iterations": 0, "correspondence_scale": 0.0}, "blend + P": {"iterations": 0}, "mdw": {}}
    record = {"seed": seed, "r_mean": {}}
    for arm, options in arms.items():
        started = (time.perf_counter(), time.process_time())
        small = distill(scored, "mdw", args.pairs, **common, **options)
        wall, cpu = time.perf_counter() - started[0], time.process_time() - started[1]
        record["r_mean"][arm] = retrieval_scores(train_on_distilled(small, seed=seed), test)["r_mean"]
        if arm == "mdw":
            result = get_distillation_result(small)
            record.update(wall_s=wall, cpu_s=cpu, timings=result.provenance["timings"],
                          objective=result.objective, diagnostics=result.diagnostics, student_lr=result.student_lr)
            starts = np.asarray(small["source_row"])
            pairs = ProxyData({"image": train["image"], "text": texts})
            record["r_mean"]["mdw-init"] = train_and_score("dual_encoder", pairs, starts, test, seed=seed)["r_mean"]
            record["mismatched_starts"] = int(mismatched[starts].sum())
    print(f"seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in record["r_mean"].items())
          + f"; distillation {record['cpu_s']:.1f} CPU s", flush=True)
    return record


def report(args, runs: list[dict], profile: str, command: str) -> str:
    arms = ("mdw-init", "blend", "blend + P", "mdw")
    lines = [f"Command: `{command}`", "",
             f"{args.dataset}, {args.noise:.0%} of captions permuted, N = {args.pairs}, default MDWConfig "
             f"({MDWConfig().iterations} iterations, {MDWConfig().expert_tracks} expert tracks x "
             f"{MDWConfig().expert_steps} steps), one torch thread.", "",
             "Where a distillation's time goes (the clean-probability estimate runs once per pool, not here):", "",
             "| seed | " + " | ".join(f"{s} (wall / CPU s)" for s in STAGES) + " | total wall / CPU s |",
             "|---:|" + "---:|" * (len(STAGES) + 1)]
    for r in runs:
        t = r["timings"]
        lines.append(f"| {r['seed']} | " + " | ".join(f"{t[f'{s}_s']:.1f} / {t[f'{s}_cpu_s']:.1f}" for s in STAGES)
                     + f" | {t['total_s']:.1f} / {t['total_cpu_s']:.1f} |")
    lines += ["", "What each step adds, r_mean (%) on the clean test split:", "",
              "| seed | " + " | ".join(arms) + " | held objective before -> after matching | matching shift "
              "(images / texts) | student lr |", "|---:|" + "---:|" * (len(arms) + 3)]
    for r in runs:
        d = r["diagnostics"]
        lines.append(f"| {r['seed']} | " + " | ".join(f"{r['r_mean'][a]:.2f}" for a in arms)
                     + f" | {d['objective_before']:.3f} -> {d['objective_after']:.3f} | "
                     f"{d['matching_shift']['images']:.3f} / {d['matching_shift']['texts']:.3f} | "
                     f"{r['student_lr']:.2e} |")
    if len(runs) > 1:
        lines.append("| mean ± std | " + " | ".join(
            f"{np.mean([r['r_mean'][a] for r in runs]):.2f} ± {np.std([r['r_mean'][a] for r in runs], ddof=1):.2f}"
            for a in arms) + " | | | |")
    lines += ["", "Matching shift: mean distance each synthetic vector moved over the mean distance of the "
              "starting vectors from their centroid.", "",
              f"Top operations of {5} matching iterations (seed {runs[0]['seed']}, torch.profiler, self CPU):", "",
              "```", profile.rstrip(), "```", "", "Objective per iteration: mdw_distill_objective.png"]
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for r in runs:
        line, = ax.plot(r["objective"], alpha=0.7, label=f"seed {r['seed']}: per iteration")
        last = len(r["objective"]) - 1
        ax.plot([0, last], [r["diagnostics"]["objective_before"], r["diagnostics"]["objective_after"]], "o--",
                color=line.get_color(), label=f"seed {r['seed']}: held objective before / after")
    ax.set(xlabel="matching iteration", ylabel="objective (distance to target / expert's move)", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="openclipart", choices=["openclipart", "fashion_mnist"])
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    features = load_features(args.dataset)
    train, test = features["train"], test_pairs(features["test"])
    with threadpool_limits(1):
        runs = [run_seed(train, test, args, seed) for seed in args.seeds]
        pool, texts, _ = noisy_pool(train, args.noise, args.seeds[0])
        probability = estimate_clean_probability(pool, "img_emb", "txt_emb", seed=args.seeds[0],
                                                 show_progress=False)
        profile = profile_matching(torch.as_tensor(train["image"], dtype=torch.float32),
                                   torch.as_tensor(texts, dtype=torch.float32), probability, args.pairs,
                                   args.seeds[0])
    command = "python -m benchmarks.mdw_distill_profile " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(args, runs, profile, command.strip())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mdw_distill_profile.md").write_text(text)
    (RESULTS / "mdw_distill_profile.json").write_text(json.dumps({"command": command.strip(), "runs": runs},
                                                                 indent=1))
    plot(runs, RESULTS / "mdw_distill_objective.png",
         f"MDW matching, {args.dataset}, {args.noise:.0%} noise, N = {args.pairs}")
    print(text)


if __name__ == "__main__":
    main()
