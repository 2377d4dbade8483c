"""How well MDW's dual-track clean probability separates matched from mismatched pairs on real data.

    python -m benchmarks.mdw_clean_probability                 # Open Clip Art train pairs, noise 20 % and 50 %
    python -m benchmarks.mdw_clean_probability --seeds 0 1 2 --datasets openclipart fashion_mnist

Captions are permuted among a fraction of the Open Clip Art training pairs (``hf_coreset.noise``), the clean
probability is estimated from the image and text features (EfficientNet-Lite0 / all-MiniLM-L6-v2, from the
datasets cache), and its ROC AUC against the true matched / mismatched flags is reported, with the precision
and recall of ``KeepLikelyClean(0.5)`` and the CPU time. Writes ``results/mdw_clean_probability.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score

from hf_coreset.distill import estimate_clean_probability

from .retrieval.data import noisy_pool
from .retrieval.distill import load_features

RESULTS = Path(__file__).resolve().parent / "results"


def measure(train: dict, noise: float, seed: int) -> dict:
    pool, _, mismatched = noisy_pool(train, noise, seed)
    clean = ~mismatched
    started = time.process_time()
    probability = estimate_clean_probability(pool, "img_emb", "txt_emb", seed=seed, show_progress=False)
    cpu_s = time.process_time() - started
    kept = probability >= 0.5
    return {"noise": noise, "seed": seed, "auc": roc_auc_score(clean, probability),
            "kept": int(kept.sum()), "precision": float(clean[kept].mean()) if kept.any() else float("nan"),
            "recall": float(kept[clean].mean()), "cpu_s": cpu_s}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--noise", nargs="+", type=float, default=[0.2, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--datasets", nargs="+", default=["openclipart"], choices=["openclipart", "fashion_mnist"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lines = ["| dataset | train pairs | noise | seed | ROC AUC | kept at p >= 0.5 | precision (clean among kept) "
             "| recall (clean kept) | CPU s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for dataset in args.datasets:
        train = load_features(dataset)["train"]
        for noise in args.noise:
            for seed in args.seeds:
                r = measure(train, noise, seed)
                n = len(train["text"])
                lines.append(f"| {dataset} | {n} | {r['noise']:.0%} | {r['seed']} | {r['auc']:.3f} | {r['kept']}/{n} | "
                             f"{r['precision']:.3f} | {r['recall']:.3f} | {r['cpu_s']:.1f} |")
                print(lines[-1], flush=True)
    command = "python -m benchmarks.mdw_clean_probability " + " ".join(argv if argv is not None else sys.argv[1:])
    text = f"Command: `{command.strip()}`\n\nDefault MDWConfig.\n\n" + "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mdw_clean_probability.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
