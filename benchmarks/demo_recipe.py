"""Is the demo's cheap training recipe a faithful stand-in for the benchmark protocol (MLP heads, 500 steps)?

    python -m benchmarks.demo_recipe                                   # mlp:500 (reference), mlp:100, ...
    python -m benchmarks.demo_recipe --recipes mlp:500 mlp:100 --from-json benchmarks/results/demo_recipe.json

On the demo's split of the shipped sample (``hf_coreset.demo.held_out_split``: 1,500-pair pool, 500 held-out
pairs), every registered method selects 10 % of the pool; ``evaluate_coresets`` then judges each selection with
each recipe (heads:steps, 3 seeds). The table gives r_mean (mean ± std), the margin over random ± pooled std and the
verdict per recipe, the agreement of each recipe's verdicts with the reference's, and the wall time of each
recipe's training runs (same machine, same run). Writes ``benchmarks/results/demo_recipe.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def run(recipes: list[str]) -> dict:
    import hf_coreset
    from hf_coreset.data import load_default_dataset
    from hf_coreset.demo import EMBEDDING_COLUMNS, IMAGE_COLUMN, TEXT_COLUMN, held_out_split
    from hf_coreset.evaluation import evaluate_coresets
    from hf_coreset.features import encode_dataset, load_offline_image_encoder, load_offline_text_encoder

    dataset = load_default_dataset()
    encoded = encode_dataset(dataset, image_column=IMAGE_COLUMN, text_column=TEXT_COLUMN,
                             image_encoder=load_offline_image_encoder(), text_encoder=load_offline_text_encoder())
    pool, test = held_out_split(dataset, encoded.embeddings)
    coresets = {}
    for method in hf_coreset.available_methods():
        try:
            coresets[method] = hf_coreset.select_coreset(pool, method, 0.1, embedding_columns=EMBEDDING_COLUMNS,
                                                          show_progress=False)
        except hf_coreset.CoresetInputError as err:
            print(f"{method}: skipped ({err})", flush=True)
    results = {}
    for recipe in recipes:
        heads, steps = recipe.split(":")
        started = time.perf_counter()
        reports = evaluate_coresets(pool, coresets, test=test, embedding_columns=EMBEDDING_COLUMNS, heads=heads,
                                    steps=int(steps), show_progress=False)
        results[recipe] = {"wall_s": time.perf_counter() - started,
                           "reports": {method: report.to_dict() for method, report in reports.items()}}
        print(f"{recipe}: {results[recipe]['wall_s']:.1f} s", flush=True)
    return results


def summarise(results: dict) -> str:
    from hf_coreset import CoresetReport

    recipes = list(results)
    reference = recipes[0]
    reports = {r: {m: CoresetReport.from_dict(d) for m, d in results[r]["reports"].items()} for r in recipes}
    lines = ["| method | " + " | ".join(f"{r}: r_mean | {r}: margin ± pooled std | {r}: verdict" for r in recipes)
             + " |", "|---|" + "---:|---:|---|" * len(recipes)]
    for method in reports[reference]:
        cells = []
        for recipe in recipes:
            report = reports[recipe][method]
            mean, std = report.summary("coreset")
            cells += [f"{mean:.2f} ± {std:.2f}", f"{report.margin:+.2f} ± {report.pooled_std:.2f}", report.verdict]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for arm in ("random", "full"):
        cells = []
        for recipe in recipes:
            mean, std = next(iter(reports[recipe].values())).summary(arm)
            cells += [f"{mean:.2f} ± {std:.2f}", "", ""]
        lines.append(f"| *{arm}* | " + " | ".join(cells) + " |")
    lines.append("")
    for recipe in recipes:
        agree = sum(reports[recipe][m].verdict == reports[reference][m].verdict for m in reports[reference])
        lines.append(f"* {recipe}: verdict as {reference} for {agree} of {len(reports[reference])} methods; "
                     f"training runs {results[recipe]['wall_s']:.0f} s "
                     f"({results[recipe]['wall_s'] / results[reference]['wall_s']:.2f} of {reference}'s).")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="+", default=["mlp:500", "mlp:100", "mlp:200", "linear:100", "linear:200"],
                        help="heads:steps; the first is the reference (default: the benchmark's mlp:500)")
    parser.add_argument("--from-json", type=Path, help="re-make the table of an earlier run, no training")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        command, results = saved["command"], {r: saved["results"][r] for r in args.recipes}
    else:
        command = "python -m benchmarks.demo_recipe " + " ".join(argv if argv is not None else sys.argv[1:])
        results = run(args.recipes)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "demo_recipe.json").write_text(json.dumps({"command": command, "results": results}, indent=1))
    table = summarise(results)
    (RESULTS / "demo_recipe.md").write_text(f"Command: `{command}`\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
