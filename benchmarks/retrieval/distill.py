"""Distilled vs selected vs random: N image-text pairs each, trained on, retrieval measured on a clean test split.

    python -m benchmarks.retrieval.distill                       # Open Clip Art, N = 100 200 500, noise 0 / 0.2 / 0.5
    python -m benchmarks.retrieval.distill --sizes 100 --noise 0.5 --seeds 0 1 2

For every caption-noise level the training pairs get permuted captions (``hf_coreset.noise``), then
* ``random``, ``dq``, ``herding``: ``hf_coreset.select_coreset(..., embedding_columns=[...])`` picks N real pairs;
* ``mdw``: ``hf_coreset.distill.distill(method="mdw")`` learns N synthetic pairs and their correspondence P;
* ``mdw-init``: the N real pairs MDW's distillation started from (drawn among the pairs both noise-estimate
  tracks deem clean), i.e. the noise filter alone, without the distillation.
Heads are trained as in ``python -m benchmarks.retrieval`` (AdamW, 500 steps, batch 128; ``mdw`` uses P's
blocks as soft targets via ``train_on_distilled``) and scored with ``hf_coreset.evaluation.retrieval_scores``.
CPU seconds (process time, one torch thread) of the selection / distillation and of the training are
reported. Writes ``benchmarks/results/distill_openclipart.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import hf_coreset
from hf_coreset.distill import distill, get_distillation_result, train_on_distilled
from hf_coreset.evaluation import retrieval_scores
from hf_coreset.proxies import train_heads

from .__main__ import encode_splits, test_pairs
from .data import LOADERS, noisy_pool

RESULTS = Path(__file__).resolve().parents[1] / "results"
SELECTORS = ("random", "dq", "herding")


def load_features(dataset: str = "openclipart") -> dict[str, dict[str, np.ndarray]]:
    """Train / test features of a benchmark dataset (a cache hit after the first encoding)."""
    from hf_coreset.features import load_offline_image_encoder, load_offline_text_encoder

    encoders = {"image_encoder": load_offline_image_encoder(), "text_encoder": load_offline_text_encoder()}
    return encode_splits(LOADERS[dataset](), encoders)


def timed(function, *args, **kwargs):
    """``(result, CPU seconds)`` of one call."""
    started = time.process_time()
    return function(*args, **kwargs), time.process_time() - started


def run_selector(pool, train_images, texts, method: str, size: int, seed: int, args):
    core, cpu_s = timed(hf_coreset.select_coreset, pool, method, size, embedding_columns=["img_emb", "txt_emb"],
                        seed=seed, show_progress=False)
    indices = hf_coreset.get_selection_result(core).indices
    model, train_s = timed(train_heads, train_images[indices], texts[indices], steps=args.steps, seed=seed)
    return model, cpu_s, train_s, indices


def run_mdw(pool, size: int, seed: int, args):
    small, cpu_s = timed(distill, pool, "mdw", size, image_column="img_emb", text_column="txt_emb", seed=seed,
                         show_progress=False, iterations=args.iterations,
                         synthetic_batch_size=args.synthetic_batch_size)
    model, train_s = timed(train_on_distilled, small, steps=args.steps, seed=seed)
    return model, cpu_s, train_s, small


def score(setting: dict, method: str, model, test, **figures) -> dict:
    """One run's record: the setting, the method, its figures and the test recalls; printed as it comes."""
    scores = retrieval_scores(model, test)
    print(f"  noise={setting['noise']} seed={setting['seed']} N={setting['pairs']} {method}: "
          f"r_mean {scores['r_mean']:.2f} ({figures['cpu_s']:.1f} CPU s)", flush=True)
    return {**setting, "method": method, **figures, **scores}


def run_grid(args) -> list[dict]:
    features = load_features()
    train, test = features["train"], test_pairs(features["test"])
    print(f"openclipart: {len(train['image'])} train / {len(test)} test pairs", flush=True)
    runs = []
    for noise in args.noise:
        for seed in args.seeds:
            pool, texts, mismatched = noisy_pool(train, noise, seed)
            for size in args.sizes:
                setting = {"noise": noise, "seed": seed, "pairs": size}
                for method in SELECTORS:
                    model, cpu_s, train_s, indices = run_selector(pool, train["image"], texts, method, size, seed,
                                                                  args)
                    runs.append(score(setting, method, model, test, cpu_s=cpu_s, train_cpu_s=train_s,
                                      mismatched=int(mismatched[indices].sum())))
                model, cpu_s, train_s, small = run_mdw(pool, size, seed, args)
                result = get_distillation_result(small)
                rows = np.asarray(small["source_row"])
                runs.append(score(setting, "mdw", model, test, cpu_s=cpu_s, train_cpu_s=train_s,
                                  mismatched=int(mismatched[rows].sum()),
                                  first_objective=float(np.mean(result.objective[:10])),
                                  last_objective=float(np.mean(result.objective[-10:])),
                                  student_lr=result.student_lr,
                                  both_tracks_clean=result.diagnostics["both_tracks_clean"]))
                init_model, init_train_s = timed(train_heads, train["image"][rows], texts[rows], steps=args.steps,
                                                 seed=seed)
                runs.append(score(setting, "mdw-init", init_model, test, cpu_s=cpu_s,
                                  train_cpu_s=init_train_s, mismatched=int(mismatched[rows].sum())))
    return runs


def summarise(runs: list[dict]) -> str:
    """One row per (noise, method); per N: r_mean mean +- std, CPU s of the selection / distillation, and how
    many of the N pairs (for mdw: the pairs it started from) were mismatched."""
    sizes = sorted({r["pairs"] for r in runs})
    order = {m: i for i, m in enumerate([*SELECTORS, "mdw", "mdw-init"])}
    keys = sorted({(r["noise"], r["method"]) for r in runs}, key=lambda k: (k[0], order[k[1]]))
    header = " | ".join(f"N={n} r_mean | N={n} CPU s | N={n} mismatched" for n in sizes)
    lines = [f"| noise | method | {header} |", "|---:|---|" + "---:|---:|---:|" * len(sizes)]
    for noise, method in keys:
        cells = []
        for size in sizes:
            group = [r for r in runs if (r["noise"], r["method"], r["pairs"]) == (noise, method, size)]
            values = np.array([r["r_mean"] for r in group])
            spread = f" ± {values.std():.2f}" if len(values) > 1 else ""  # one seed: no spread to show
            cells += [f"{values.mean():.2f}{spread}", f"{np.mean([r['cpu_s'] for r in group]):.1f}",
                      f"{np.mean([r['mismatched'] for r in group]):.0f}"]
        lines.append(f"| {noise:.0%} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 200, 500])
    parser.add_argument("--noise", nargs="+", type=float, default=[0.0, 0.2, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=500, help="training steps of the heads")
    parser.add_argument("--iterations", type=int, default=80, help="MDW distillation iterations")
    parser.add_argument("--synthetic-batch-size", type=int, default=128,
                        help="synthetic pairs per student step (keeps a distillation iteration's cost flat in N)")
    parser.add_argument("--from-json", type=Path, help="re-make the Markdown table of an earlier run, no training")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        write_results(saved["command"], saved["runs"])
        return
    torch.set_num_threads(1)  # CPU times comparable across methods; 2 threads on 2 shared cores only contend
    started = time.perf_counter()
    runs = run_grid(args)
    command = "python -m benchmarks.retrieval.distill " + " ".join(argv if argv is not None else sys.argv[1:])
    write_results(command.strip(), runs)
    print(f"Total {time.perf_counter() - started:.0f} s")


def write_results(command: str, runs: list[dict]) -> None:
    text = (f"Command: `{command}`\n\nOpen Clip Art, r_mean (%) on the clean 1,000-pair test split; "
            "CPU s = process time of the selection or distillation (mdw-init: the same distillation run); "
            "mismatched = how many of the N pairs had a permuted caption (mdw: the real pairs it started "
            f"from).\n\n{summarise(runs)}\n")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distill_openclipart.md").write_text(text)
    (RESULTS / "distill_openclipart.json").write_text(json.dumps({"command": command, "runs": runs}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
