"""Train-on-coreset retrieval benchmark: dataset x budget x method x noise, r_mean mean +- std over seeds.

    python -m benchmarks.retrieval --quick            # Open Clip Art, 10 % and 100 %, 1 seed, noise 0 / 0.5
    python -m benchmarks.retrieval                    # the full grid (hours on 2 CPU cores)
    python -m benchmarks.retrieval --datasets openclipart --budgets 0.05 0.1 --methods random dq --seeds 0 1 2

Features come from the library's own feature stage (offline EfficientNet-Lite0 and all-MiniLM-L6-v2, cached
by fingerprint), selections from ``hf_coreset.select_coreset`` on the (possibly noisy) training pairs; each
training run and its recall come from ``hf_coreset.evaluation.train_and_score``, the code path of
``hf_coreset.evaluate_coreset`` (recall: ``hf_coreset.metrics``, the function behind the ``evaluate`` module in
``hf_coreset/metrics/retrieval_recall``). Writes a Markdown table, the raw runs as JSON and a plot of r_mean
against the budget to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import datasets
import numpy as np

import hf_coreset
from hf_coreset.evaluation import ProxyData, train_and_score
from hf_coreset.features import encode_dataset, load_offline_image_encoder, load_offline_text_encoder
from hf_coreset.validation import resolve_budget

from .data import LOADERS, noisy_pool

RESULTS = Path(__file__).resolve().parents[1] / "results"
FULL = "full"


def encode_splits(splits: datasets.DatasetDict, encoders: dict) -> dict[str, dict[str, np.ndarray]]:
    features = {}
    for split, ds in splits.items():
        encoded = encode_dataset(ds, image_column="image", text_column="caption", **encoders)
        if encoded.failed_rows:
            raise RuntimeError(f"{split}: rows failed to encode: {encoded.failed_rows}")
        features[split] = {**encoded.embeddings, "label": np.asarray(ds["label"])}
    return features


def test_pairs(features: dict[str, np.ndarray]) -> ProxyData:
    """A split's features as the proxies score them: image and text vectors, ``label`` as the relevance."""
    return ProxyData({"image": features["image"], "text": features["text"]}, labels=features["label"])


def parse_method(spec: str) -> tuple[str, dict]:
    """``"cast"`` -> ("cast", {}); an ablation ``"cast:matching=false,coverage=true"`` -> ("cast", {...})."""
    name, _, options = spec.partition(":")
    parsed = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        parsed[key] = json.loads(value) if value in ("true", "false", "null") or value[:1].isdigit() else value
    return name, parsed


# Methods whose picks at a smaller budget are the first picks at a larger one (OST keeps rows by descending
# utility, and nothing it computes depends on the budget): the grid selects them once per pool and seed, at
# the largest budget, and takes prefixes.
NESTED_METHODS = ("ost",)


def select(pool: datasets.Dataset, method: str, budget: float, seed: int,
           largest_budget: float | None = None, memo: dict | None = None) -> tuple[np.ndarray, float]:
    if method == FULL:
        return np.arange(pool.num_rows), 0.0
    name, options = parse_method(method)
    if memo is not None and name in NESTED_METHODS and not options.get("redundancy") and largest_budget:
        key = (pool._fingerprint, method, seed)
        if key not in memo:
            memo[key] = select(pool, method, largest_budget, seed)
        indices, seconds = memo[key]
        return indices[: resolve_budget(budget, pool.num_rows)], seconds
    name, _, partitions = name.partition("@")
    if partitions:  # "kcenter@4": partitioned into 4 by the Ray engine (hf_coreset.sharded)
        from hf_coreset.sharded import select_with_ray

        result = select_with_ray(pool, name, budget, embedding_columns=["img_emb", "txt_emb"], seed=seed,
                                 num_partitions=int(partitions), show_progress=False, **options)
        return result.indices, result.provenance["timings"]["total_s"]
    core = hf_coreset.select_coreset(pool, name, budget, embedding_columns=["img_emb", "txt_emb"], seed=seed,
                                     show_progress=False, **options)
    result = hf_coreset.get_selection_result(core)
    return result.indices, result.provenance["timings"]["selection_s"]


def run_grid(args) -> list[dict]:
    encoders = {"image_encoder": load_offline_image_encoder(), "text_encoder": load_offline_text_encoder()}
    threads = args.train_threads or None
    runs = []
    for name in args.datasets:
        features = encode_splits(LOADERS[name](), encoders)
        train, test = features["train"], test_pairs(features["test"])
        print(f"{name}: {len(train['image'])} train / {len(test)} test pairs", flush=True)
        clean = ProxyData({"image": train["image"], "text": train["text"]})
        untrained = train_and_score("dual_encoder", clean, np.arange(len(clean)), test, steps=0, seed=0)
        runs.append({"dataset": name, "method": "untrained", "budget": 0.0, "noise": 0.0, "seed": 0,
                     "heads": "mlp", **_recalls(untrained)})
        for noise in args.noise:
            for seed in args.seeds:
                pool, texts, mismatched = noisy_pool(train, noise, seed)
                pairs = ProxyData({"image": train["image"], "text": texts})
                largest_budget, memo = max((b for b in args.budgets if b < 1.0), default=None), {}
                for budget in args.budgets:
                    for method in ([FULL] if budget >= 1.0 else args.methods):
                        indices, select_s = select(pool, method, budget, seed, largest_budget, memo)
                        for heads in args.heads:
                            if heads != "mlp" and budget not in args.cross_budgets:
                                continue
                            scores = train_and_score("dual_encoder", pairs, indices, test, steps=args.steps,
                                                     seed=seed, heads=heads, num_threads=threads)
                            runs.append({"dataset": name, "method": method, "budget": budget, "noise": noise,
                                         "seed": seed, "heads": heads, "rows": len(indices),
                                         "mismatched_selected": int(mismatched[indices].sum()),
                                         "selection_s": select_s, "train_s": scores["train_s"],
                                         **_recalls(scores)})
                            print(f"  {name} noise={noise} seed={seed} {method}@{budget} {heads}: "
                                  f"r_mean {scores['r_mean']:.2f}", flush=True)
    return runs


def _recalls(scores: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in scores.items() if k != "train_s"}


def summarise(runs: list[dict]) -> str:
    """Markdown: one row per (dataset, noise, heads, method), one column per budget, r_mean mean +- sample std
    over seeds."""
    budgets = sorted({r["budget"] for r in runs if r["method"] not in ("untrained",)})
    keys = sorted({(r["dataset"], r["noise"], r["heads"], r["method"]) for r in runs if r["method"] != "untrained"},
                  key=lambda k: (k[0], k[1], k[2], k[3] != "random", k[3]))
    lines = ["| dataset | noise | heads | method | " + " | ".join(f"{b:.0%}" for b in budgets)
             + " | mismatched selected (at each budget) | selection time (s) |",
             "|---|---:|---|---|" + "---:|" * len(budgets) + "---|---:|"]
    for dataset, noise, heads, method in keys:
        cells, mismatch, times = [], [], []
        for budget in budgets:
            group = [r for r in runs if (r["dataset"], r["noise"], r["heads"], r["method"], r["budget"])
                     == (dataset, noise, heads, method, budget)]
            if not group:  # the full-data row has only the 100 % column, methods only the others
                cells.append("")
                continue
            values = np.array([r["r_mean"] for r in group])
            spread = values.std(ddof=1) if len(values) > 1 else 0.0  # sample std, as evaluate_coreset's verdict
            cells.append(f"{values.mean():.2f} ± {spread:.2f}")
            mismatch.append(f"{np.mean([r['mismatched_selected'] for r in group]):.0f}/{group[0]['rows']}")
            times.append(np.mean([r["selection_s"] for r in group]))
        lines.append(f"| {dataset} | {noise:.0%} | {heads} | {method} | " + " | ".join(cells)
                     + f" | {', '.join(mismatch)} | {np.mean(times):.2f} |")
    for r in runs:
        if r["method"] == "untrained":
            lines.append(f"\nUntrained heads on {r['dataset']}: r_mean {r['r_mean']:.2f} (chance level).")
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["dataset"], r["noise"]) for r in runs if r["method"] != "untrained" and r["heads"] == "mlp"})
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (dataset, noise) in zip(axes[0], panels):
        mine = [r for r in runs if r["dataset"] == dataset and r["noise"] == noise and r["heads"] == "mlp"
                and r["method"] != "untrained"]
        full = [r["r_mean"] for r in mine if r["method"] == FULL]
        for method in sorted({r["method"] for r in mine} - {FULL}):
            budgets = sorted({r["budget"] for r in mine if r["method"] == method})
            means = [np.mean([r["r_mean"] for r in mine if r["method"] == method and r["budget"] == b])
                     for b in budgets]
            ax.plot([100 * b for b in budgets], means, "--" if method == "random" else "-", marker="o", label=method)
        if full:
            ax.axhline(np.mean(full), color="grey", linestyle=":", label="full data")
        ax.set(xscale="log", xlabel="budget (% of training pairs)", ylabel="r_mean (%)",
               title=f"{dataset}, caption noise {noise:.0%}")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_table_and_plot(json_path: Path, command: str, runs: list[dict]) -> str:
    """The Markdown table and the plot beside a result's ``.json`` (same name); returns the table."""
    table = summarise(runs)
    json_path.with_suffix(".md").write_text(f"Command: `{command}`\n\n{table}\n")
    plot(runs, json_path.with_suffix(".png"))
    return table


def _cell(run: dict) -> tuple:
    return run["dataset"], run["noise"], run["method"], run["budget"], run["heads"], run["seed"]


def with_runs_replaced(saved: dict, runs: list[dict], command: str, cell=_cell) -> dict:
    """``saved`` (a results file's record) with its runs of the cells in ``runs`` replaced by them and
    ``command`` appended to its commands; ``cell(run)`` names a run's cell."""
    new_cells = {cell(run) for run in runs}
    kept = [run for run in saved["runs"] if cell(run) not in new_cells]
    return {**saved, "command": f"{saved['command']} ; {command}", "runs": kept + runs}


def merge_into(path: Path, runs: list[dict], command: str) -> None:
    """Replace ``path``'s runs of the cells in ``runs`` (e.g. one method re-run after a change) and re-make its
    table and plot; the earlier commands stay in the record, this one is appended."""
    saved = with_runs_replaced(json.loads(path.read_text()), runs, command)
    path.write_text(json.dumps(saved, indent=1))
    write_table_and_plot(path, saved["command"], saved["runs"])
    print(f"merged {len(runs)} runs into {path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Open Clip Art, budgets 10 %% and 100 %%, 1 seed")
    parser.add_argument("--datasets", nargs="+", default=["openclipart", "fashion_mnist"], choices=sorted(LOADERS))
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.01, 0.05, 0.1, 0.2, 1.0])
    parser.add_argument("--methods", nargs="+", default=None,
                        help="default: every registered method; ablations as NAME:KEY=VALUE,... "
                             "(e.g. cast:matching=false); NAME@P selects in P partitions on Ray (kcenter@4)")
    parser.add_argument("--noise", nargs="+", type=float, default=[0.0, 0.2, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--heads", nargs="+", default=["mlp", "linear"], choices=["mlp", "linear"])
    parser.add_argument("--cross-budgets", nargs="+", type=float, default=[0.1],
                        help="budgets at which non-MLP heads are also trained (cross-architecture)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--train-threads", type=int, default=1,
                        help="torch threads while training the heads (default 1: on 2 shared cores a second thread "
                             "mostly spins; 0 = torch's default); results do not depend on it beyond float rounding")
    parser.add_argument("--tag", default=None, help="name of the result files (default: quick or full)")
    parser.add_argument("--from-json", type=Path, help="re-make the table and plot of an earlier run, no training")
    parser.add_argument("--merge-into", type=Path,
                        help="an earlier result (.json): this run's cells replace the same cells there (dataset, "
                             "noise, method, budget, heads, seed), and its table and plot are re-made")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        print(write_table_and_plot(args.from_json, saved["command"], saved["runs"]))
        return
    if args.quick:
        args.datasets, args.budgets, args.seeds, args.noise = ["openclipart"], [0.1, 1.0], [0], [0.0, 0.5]
    args.methods = args.methods or hf_coreset.available_methods()
    tag = args.tag or ("quick" if args.quick else "full")

    started = time.perf_counter()
    runs = run_grid(args)
    RESULTS.mkdir(exist_ok=True)
    command = "python -m benchmarks.retrieval " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    if args.merge_into:
        merge_into(args.merge_into, runs, command)
    (RESULTS / f"retrieval_{tag}.json").write_text(json.dumps({"command": command, "runs": runs}, indent=1))
    table = write_table_and_plot(RESULTS / f"retrieval_{tag}.json", command, runs)
    print(f"\n{table}\n\nTotal {time.perf_counter() - started:.0f} s; results in {RESULTS}/retrieval_{tag}.*")


if __name__ == "__main__":
    main()
