"""Distilled vs selected vs random: N image-text pairs each, trained on, retrieval measured on a clean test split.

    python -m benchmarks.retrieval.distill --dataset openclipart --noise 0.5          # one chunk: 3 seeds x 3 N
    python -m benchmarks.retrieval.distill --merge                                    # tables + plots of all chunks
    python -m benchmarks.retrieval.distill --dataset fashion_mnist --selectors cast --selectors-only  # re-run one
    python -m benchmarks.retrieval.distill --dataset fashion_mnist --mdw-only   # re-run MDW's arms, selectors kept

For one dataset and one caption-noise level per run (a chunk, ~20 minutes on a shared 2-core machine), for
every seed the training pairs get permuted captions (``hf_coreset.noise``), MDW's clean probability is
estimated once (``add_clean_probability``, its CPU time reported on its own), and for every N:

* the selectors (``random``, ``herding``, ``dq``, ``cast``, ``facility_location`` by default) pick N real pairs
  with ``hf_coreset.select_coreset(..., embedding_columns=[...])``;
* ``mdw``: ``hf_coreset.distill.distill(method="mdw")`` with the default ``MDWConfig``, reading the clean
  probability column, learns N synthetic pairs and their correspondence P;
* ``mdw-init``: the N real pairs MDW starts from (by default the medoids of its clusters of likely-clean pairs);
* ``mdw-blend`` (ablation): the cluster means MDW starts from, with P the identity (``correspondence_scale=0``,
  ``iterations=0``): what the blended starts alone give;
* ``mdw-nomatch`` (ablation): the cluster means with P from the experts, no trajectory matching
  (``iterations=0``): ``mdw`` minus this is what the matching adds;
* ``mdw-match`` (ablation, ``--match-iterations``): the default plus that many trajectory-matching iterations.

Heads are trained as every coreset is (``hf_coreset.evaluation.train_and_score``: AdamW, 500 steps, batch 128);
a distilled set trains through ``train_on_distilled`` (the same loop, P's blocks as soft targets). CPU seconds
are process time with one torch thread and one BLAS / OpenMP thread. Each chunk writes
``results/distill_chunks/<dataset>_noise<pct>.json``; ``--merge`` writes ``results/distill_<dataset>.{md,json}``,
``results/distill_summary.md`` (MDW against the best selector and against mdw-init, per cell, with the
2-pooled-std verdicts) and ``results/distill_objective.png`` (the matching objective per iteration).
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

import hf_coreset
from hf_coreset.distill import (
    CleanProbability,
    distill,
    estimate_clean_probability,
    get_distillation_result,
    train_on_distilled,
)
from hf_coreset.evaluation import ProxyData, retrieval_scores, train_and_score

from .__main__ import encode_splits, test_pairs, with_runs_replaced
from .data import LOADERS, noisy_pool

RESULTS = Path(__file__).resolve().parents[1] / "results"
CHUNKS = RESULTS / "distill_chunks"
SELECTORS = ("random", "herding", "dq", "cast", "facility_location")
MDW_ARMS = ("mdw", "mdw-init", "mdw-blend", "mdw-nomatch", "mdw-match")


def load_features(dataset: str = "openclipart") -> dict[str, dict[str, np.ndarray]]:
    """Train / test features of a benchmark dataset (a cache hit after the first encoding)."""
    from hf_coreset.features import load_offline_image_encoder, load_offline_text_encoder

    encoders = {"image_encoder": load_offline_image_encoder(), "text_encoder": load_offline_text_encoder()}
    return encode_splits(LOADERS[dataset](), encoders)


def timed(function, *args, **kwargs):
    """``(result, CPU seconds)`` of one call."""
    started = time.process_time()
    return function(*args, **kwargs), time.process_time() - started


def record(setting: dict, method: str, scores: dict, **figures) -> dict:
    """One run's record, printed as it comes."""
    print(f"  {setting['dataset']} noise={setting['noise']} seed={setting['seed']} N={setting['pairs']} {method}: "
          f"r_mean {scores['r_mean']:.2f} ({figures.get('cpu_s', 0.0):.1f} CPU s)", flush=True)
    return {**setting, "method": method, **figures, **{k: v for k, v in scores.items() if k != "train_s"}}


def run_chunk(args) -> list[dict]:
    features = load_features(args.dataset)
    train, test = features["train"], test_pairs(features["test"])
    print(f"{args.dataset}: {len(train['image'])} train / {len(test)} test pairs", flush=True)
    runs = []
    for seed in args.seeds:
        pool, texts, mismatched = noisy_pool(train, args.noise, seed)
        pairs = ProxyData({"image": train["image"], "text": texts})
        if not args.selectors_only:
            probability, estimate_cpu_s = timed(estimate_clean_probability, pool, "img_emb", "txt_emb", seed=seed,
                                                show_progress=False)
            scored = pool.map(CleanProbability(probability), with_indices=True, batched=True)
        for size in args.sizes:
            setting = {"dataset": args.dataset, "noise": args.noise, "seed": seed, "pairs": size}
            for method in args.selectors:
                core, cpu_s = timed(hf_coreset.select_coreset, pool, method, size,
                                    embedding_columns=["img_emb", "txt_emb"], seed=seed, show_progress=False)
                rows = hf_coreset.get_selection_result(core).indices
                scores, train_cpu_s = timed(train_and_score, "dual_encoder", pairs, rows, test, steps=args.steps,
                                            seed=seed)
                runs.append(record(setting, method, scores, cpu_s=cpu_s, train_cpu_s=train_cpu_s,
                                   mismatched=int(mismatched[rows].sum())))
            if not args.selectors_only:
                runs += run_mdw_arms(scored, pairs, test, mismatched, setting, estimate_cpu_s, args)
    return runs


def run_mdw_arms(scored, pairs, test, mismatched, setting: dict, estimate_cpu_s: float, args) -> list[dict]:
    """mdw, mdw-init and the ablations for one setting."""
    seed, size = setting["seed"], setting["pairs"]
    common = {"image_column": "img_emb", "text_column": "txt_emb", "seed": seed, "show_progress": False,
              "clean_probability_column": "clean_probability"}
    arms = {"mdw": {}, "mdw-blend": {"correspondence_scale": 0.0, "iterations": 0},
            "mdw-nomatch": {"iterations": 0}}
    if args.match_iterations:
        arms["mdw-match"] = {"iterations": args.match_iterations}
    runs = []
    for arm, options in arms.items():
        small, cpu_s = timed(distill, scored, "mdw", size, **common, **options)
        result = get_distillation_result(small)
        model, train_cpu_s = timed(train_on_distilled, small, steps=args.steps, seed=seed)
        starts = np.asarray(small["source_row"])
        runs.append(record(setting, arm, retrieval_scores(model, test), cpu_s=cpu_s, train_cpu_s=train_cpu_s,
                           estimate_cpu_s=estimate_cpu_s, mismatched=int(mismatched[starts].sum()),
                           timings=result.provenance["timings"], objective=result.objective,
                           student_lr=result.student_lr, deemed_clean=result.diagnostics["deemed_clean"],
                           objective_before=result.diagnostics.get("objective_before"),
                           objective_after=result.diagnostics.get("objective_after"),
                           matching_shift=result.diagnostics.get("matching_shift"),
                           cluster_sizes=[int(v) for v in np.bincount(small["cluster_size"])]))
        if arm == "mdw":  # its starting pairs: real rows, trained on like any coreset
            scores, init_train_cpu_s = timed(train_and_score, "dual_encoder", pairs, starts, test,
                                             steps=args.steps, seed=seed)
            runs.append(record(setting, "mdw-init", scores, cpu_s=cpu_s, train_cpu_s=init_train_cpu_s,
                               mismatched=int(mismatched[starts].sum())))
    return runs


# ----- merging the chunks ---------------------------------------------------------------------------------------


def summary_of(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1, as the retrieval tables; 0 for a single value)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def margins(methods: dict[str, tuple[float, float]], arm: str = "mdw") -> dict:
    """Issue 16's two margins of ``arm`` in one cell (``methods``: name -> (mean, std) over the seeds): over the
    best selector and over MDW's starting pairs (mdw-init); each counts when larger than 2 pooled std."""
    best = max((m for m in methods if m not in MDW_ARMS), key=lambda m: methods[m][0])
    out: dict = {"best_selector": best}
    for key, other in (("vs_best", best), ("vs_init", "mdw-init")):
        margin = methods[arm][0] - methods[other][0]
        pooled = float(np.hypot(methods[arm][1], methods[other][1]))
        out[key] = {"margin": margin, "pooled_std": pooled, "beats": margin > 2 * pooled}
    return out


def margin_text(margin: dict) -> str:
    """One of :func:`margins`' entries as the tables print it: ``+1.23 (0.98): yes`` (the margin, 2 pooled std)."""
    return f"{margin['margin']:+.2f} ({2 * margin['pooled_std']:.2f}): {'yes' if margin['beats'] else '**no**'}"


def passes(methods: dict[str, tuple[float, float]], arm: str = "mdw") -> bool:
    """Whether ``arm`` passes both of issue 16's margins in a cell."""
    found = margins(methods, arm)
    return found["vs_best"]["beats"] and found["vs_init"]["beats"]


def cells(runs: list[dict]) -> list[dict]:
    """Per (dataset, noise, N): mean and std of every method, the best selector, and MDW's two margins."""
    out = []
    for dataset, noise, size in sorted({(r["dataset"], r["noise"], r["pairs"]) for r in runs}):
        mine = [r for r in runs if (r["dataset"], r["noise"], r["pairs"]) == (dataset, noise, size)]
        methods = {m: summary_of([r["r_mean"] for r in mine if r["method"] == m])
                   for m in sorted({r["method"] for r in mine})}
        cell = {"dataset": dataset, "noise": noise, "pairs": size, "methods": methods,
                "seeds": len({r["seed"] for r in mine}), **margins(methods)}
        mdw_runs = [r for r in mine if r["method"] == "mdw"]
        cell["mdw_cpu_s"] = summary_of([r["cpu_s"] for r in mdw_runs])
        cell["estimate_cpu_s"] = summary_of([r["estimate_cpu_s"] for r in mdw_runs])
        out.append(cell)
    return out


def fmt(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f} ± {pair[1]:.2f}"


def summary_table(all_cells: list[dict]) -> str:
    lines = ["| dataset | noise | N | seeds | mdw | mdw-init | best selector | random | mdw - best (2 pooled std) "
             "| mdw - init (2 pooled std) | mdw - mdw-nomatch (what the matching adds) | MDW CPU s (+ estimate) |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for c in all_cells:
        m = c["methods"]
        matching = (f"{m['mdw'][0] - m['mdw-nomatch'][0]:+.2f} ({2 * np.hypot(m['mdw'][1], m['mdw-nomatch'][1]):.2f})"
                    if "mdw-nomatch" in m else "")
        lines.append(
            f"| {c['dataset']} | {c['noise']:.0%} | {c['pairs']} | {c['seeds']} | {fmt(m['mdw'])} | "
            f"{fmt(m['mdw-init'])} | {c['best_selector']} {fmt(m[c['best_selector']])} | {fmt(m['random'])} | "
            f"{margin_text(c['vs_best'])} | {margin_text(c['vs_init'])} | "
            f"{matching} | {c['mdw_cpu_s'][0]:.1f} (+ {c['estimate_cpu_s'][0]:.1f}) |")
    return "\n".join(lines)


def pass_counts(all_cells: list[dict]) -> str:
    """How many cells each distilling arm passes both margins in (the same margins as mdw's above)."""
    arms = [a for a in MDW_ARMS if a != "mdw-init" and all(a in c["methods"] for c in all_cells)]
    counts = [f"{arm} {sum(passes(c['methods'], arm) for c in all_cells)}" for arm in arms]
    return f"Cells passing both margins, of {len(all_cells)}: " + ", ".join(counts) + "."


def full_table(all_cells: list[dict], runs: list[dict]) -> str:
    methods = [m for m in (*SELECTORS, *MDW_ARMS) if any(m in c["methods"] for c in all_cells)]
    lines = ["| noise | N | " + " | ".join(methods) + " |", "|---:|---:|" + "---:|" * len(methods)]
    for c in all_cells:
        lines.append(f"| {c['noise']:.0%} | {c['pairs']} | "
                     + " | ".join(fmt(c["methods"][m]) if m in c["methods"] else "" for m in methods) + " |")
    lines += ["", "Mismatched pairs among the N (mean over seeds; MDW arms: among the starting pairs):", "",
              "| noise | N | " + " | ".join(methods) + " |", "|---:|---:|" + "---:|" * len(methods)]
    for c in all_cells:
        group = [r for r in runs if (r["noise"], r["pairs"]) == (c["noise"], c["pairs"])]
        lines.append(f"| {c['noise']:.0%} | {c['pairs']} | " + " | ".join(
            f"{np.mean([r['mismatched'] for r in group if r['method'] == m]):.0f}" if m in c["methods"] else ""
            for m in methods) + " |")
    return "\n".join(lines)


def time_table(runs: list[dict]) -> str:
    """Where a distillation's CPU time goes (mean over seeds), per dataset and N, and how far the matching
    moved the objective (held objective, same starts and batches before and after) and the synthetic set."""
    stages = ("starting_pairs", "experts", "matching")
    lines = ["| dataset | arm | N | clean-probability estimate (once per pool) | "
             + " | ".join(stages) + " | distillation total | held objective before -> after | shift images / texts |",
             "|---|---|---:|---:|" + "---:|" * (len(stages) + 3)]
    for dataset, arm, size in sorted({(r["dataset"], r["method"], r["pairs"]) for r in runs if "timings" in r}):
        group = [r for r in runs if (r["dataset"], r["method"], r["pairs"]) == (dataset, arm, size)]
        stage_cpu = [np.mean([r["timings"].get(f"{s}_cpu_s", 0.0) for r in group]) for s in stages]
        moved = ""
        if all(r.get("objective_before") is not None for r in group):
            moved = (f"{np.mean([r['objective_before'] for r in group]):.3f} -> "
                     f"{np.mean([r['objective_after'] for r in group]):.3f}")
        shift = ""
        if all(r.get("matching_shift") for r in group):
            shift = (f"{np.mean([r['matching_shift']['images'] for r in group]):.3f} / "
                     f"{np.mean([r['matching_shift']['texts'] for r in group]):.3f}")
        lines.append(f"| {dataset} | {arm} | {size} | {np.mean([r['estimate_cpu_s'] for r in group]):.1f} | "
                     + " | ".join(f"{v:.1f}" for v in stage_cpu)
                     + f" | {np.mean([r['cpu_s'] for r in group]):.1f} | {moved} | {shift} |")
    return "\n".join(lines)


def plot_objectives(runs: list[dict], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [r for r in runs if r["method"] == "mdw" and r.get("objective")]
    if not curves:
        return False
    panels = sorted({(r["dataset"], r["pairs"]) for r in curves})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (dataset, size) in zip(axes[0], panels):
        for r in (r for r in curves if (r["dataset"], r["pairs"]) == (dataset, size)):
            ax.plot(r["objective"], alpha=0.6, label=f"noise {r['noise']:.0%} seed {r['seed']}")
        ax.set(xlabel="iteration", ylabel="matching objective (normalised distance)", yscale="log",
               title=f"{dataset}, N = {size}")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def merge() -> None:
    chunks = sorted(CHUNKS.glob("*.json"))
    saved = [json.loads(p.read_text()) for p in chunks]
    runs = [r for s in saved for r in s["runs"]]
    all_cells = cells(runs)
    for dataset in sorted({r["dataset"] for r in runs}):
        mine = [r for r in runs if r["dataset"] == dataset]
        commands = [s["command"] for s in saved if s["runs"] and s["runs"][0]["dataset"] == dataset]
        listed = "\n".join(f"    {c}" for c in commands)
        table = full_table([c for c in all_cells if c["dataset"] == dataset], mine)
        (RESULTS / f"distill_{dataset}.md").write_text(
            f"Commands (one chunk each):\n\n{listed}\n\n{dataset}, r_mean (%) on the clean test split, mean ± sample "
            f"std over seeds, every method at N pairs:\n\n{table}\n")
        (RESULTS / f"distill_{dataset}.json").write_text(json.dumps({"commands": commands, "runs": mine}, indent=1))
    has_plot = plot_objectives(runs, RESULTS / "distill_objective.png")
    text = (f"MDW against the best selector (highest mean among {', '.join(SELECTORS)}) and against its own "
            "starting pairs (mdw-init), r_mean (%) mean ± sample std over seeds; a margin counts when it is larger "
            "than 2 pooled std (sqrt(std_a^2 + std_b^2)). CPU s: one distillation, with the clean-probability "
            f"estimate (shared by the N of a pool) in brackets.\n\n{summary_table(all_cells)}\n\n"
            f"{pass_counts(all_cells)}\n\n"
            f"Where a distillation's CPU time goes (s):\n\n{time_table(runs)}\n"
            + ("\nObjective per iteration: distill_objective.png\n" if has_plot else ""))
    (RESULTS / "distill_summary.md").write_text(text)
    print(text)


def add_cell_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that name a chunk of the grid: dataset, caption noise, sizes N and seeds."""
    parser.add_argument("--dataset", default="openclipart", choices=sorted(LOADERS))
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 200, 500])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_cell_arguments(parser)
    parser.add_argument("--selectors", nargs="+", default=list(SELECTORS))
    parser.add_argument("--steps", type=int, default=500, help="training steps of the heads")
    parser.add_argument("--match-iterations", type=int, default=0,
                        help="also run the mdw-match ablation with this many matching iterations")
    parser.add_argument("--selectors-only", action="store_true",
                        help="run only --selectors and replace their runs in the chunk already saved for these "
                             "options (e.g. one selector re-run after a change); the chunk keeps its MDW runs")
    parser.add_argument("--mdw-only", action="store_true",
                        help="run only MDW's arms and replace their runs in the chunk already saved for these options "
                             "(e.g. after an MDWConfig default changed); the chunk keeps its selectors' runs")
    parser.add_argument("--merge", action="store_true", help="merge the chunks into tables and plots, no training")
    args = parser.parse_args(argv)
    if args.selectors_only and args.mdw_only:
        parser.error("--selectors-only and --mdw-only exclude each other.")
    if args.mdw_only:
        args.selectors = []
    if args.merge:
        merge()
        return
    seeds = "-".join(str(seed) for seed in args.seeds)
    path = CHUNKS / f"{args.dataset}_noise{round(100 * args.noise)}_n{'-'.join(map(str, args.sizes))}_seeds{seeds}.json"
    replacing = args.selectors_only or args.mdw_only
    if replacing and not path.exists():
        parser.error(f"--{'selectors' if args.selectors_only else 'mdw'}-only replaces runs in {path}, which does not "
                     "exist: run the whole chunk first.")
    torch.set_num_threads(1)  # CPU times comparable across methods; 2 threads on 2 shared cores only contend
    started = time.perf_counter()
    with threadpool_limits(1):  # k-means and BLAS: OpenMP threads spin on an oversubscribed machine
        runs = run_chunk(args)
    command = "python -m benchmarks.retrieval.distill " + " ".join(argv if argv is not None else sys.argv[1:])
    CHUNKS.mkdir(parents=True, exist_ok=True)
    wall_s = time.perf_counter() - started
    saved = {"command": command.strip(), "wall_s": wall_s, "runs": runs}
    if replacing:  # the chunk as saved, with these (seed, N, method) runs replaced and the command added
        previous = json.loads(path.read_text())
        saved = with_runs_replaced(previous, runs, saved["command"],
                                   cell=lambda r: (r["seed"], r["pairs"], r["method"]))
        saved["wall_s"] = [*np.atleast_1d(previous["wall_s"]).tolist(), wall_s]  # one per command, in order
    path.write_text(json.dumps(saved, indent=1))
    print(f"{len(runs)} runs in {time.perf_counter() - started:.0f} s -> {path}")


if __name__ == "__main__":
    main()
