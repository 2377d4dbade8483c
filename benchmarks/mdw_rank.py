"""How much of the experts' correspondence P a rank-r factorisation keeps, per N (the reason for ``rank=128``).

    python -m benchmarks.mdw_rank                                        # Open Clip Art, 50 % caption noise
    python -m benchmarks.mdw_rank --dataset fashion_mnist --noise 0 --ranks 32 64 128

For each seed and N, as the distillation grid builds them (same pools, clean probabilities, starting synthetic
pairs and experts, default ``MDWConfig``): P's starting point is ``correspondence_scale`` times the experts'
cosine similarity of the synthetic images and texts, stored as ``diag(a) + L R^T`` with ``L``, ``R`` of width
``rank`` (best rank-r approximation off the diagonal, diagonal exact). Printed per rank: the spread of P's
off-diagonal logits, the root-mean-square and largest error of the factorised ones, and the mean KL divergence
between the softmax targets of the exact and the factorised P on random 128-pair blocks (the blocks a training
step sees). Appends the table to ``results/mdw_rank.md``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from hf_coreset.distill import MDWConfig
from hf_coreset.distill.mdw.distill import expert_correspondence, init_synthetic, train_experts
from hf_coreset.distill.mdw.inputs import read_pairs
from hf_coreset.distill.mdw.low_rank import LowRankCorrespondence

from .mdw_variants import COLUMNS, scored_pool
from .retrieval.distill import RESULTS, load_features

BLOCK = 128


def experts_correspondence(scored, size: int, seed: int) -> torch.Tensor:
    """The exact ``(size, size)`` P the default distillation of ``scored`` starts from (its factors as wide as
    the matrix, so nothing is cut)."""
    images, texts = read_pairs(scored, COLUMNS["image_column"], COLUMNS["text_column"])
    probability = np.asarray(scored["clean_probability"])
    config = MDWConfig(seed=seed)
    synthetic, _ = init_synthetic(images, texts, probability, size, config)
    expert, _ = train_experts(images, texts, probability, config, keep_trajectory=False)
    with torch.no_grad():
        exact, _ = expert_correspondence(expert, synthetic.images, synthetic.texts, replace(config, rank=size))
        return exact.matrix().double()


def block_kl(exact: torch.Tensor, factorised: torch.Tensor, seed: int, blocks: int = 20) -> float:
    """Mean KL(exact targets || factorised targets) of the row softmax on random ``BLOCK``-pair blocks."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(blocks):
        rows = torch.as_tensor(np.sort(rng.choice(len(exact), min(BLOCK, len(exact)), replace=False)))
        p = torch.log_softmax(exact[rows][:, rows], dim=1)
        q = torch.log_softmax(factorised[rows][:, rows], dim=1)
        values.append(float((p.exp() * (p - q)).sum(dim=1).mean()))
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="openclipart")
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 200, 500])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--ranks", nargs="+", type=int, default=[32, 128])
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = load_features(args.dataset)["train"]
    lines = [f"\n{args.dataset}, {args.noise:.0%} of captions permuted, default MDWConfig; "
             f"`python -m benchmarks.mdw_rank --dataset {args.dataset} --noise {args.noise} "
             f"--seeds {' '.join(map(str, args.seeds))}`\n",
             "| seed | N | rank | off-diagonal spread of P | error rms | error max | KL of 128-pair targets |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    with threadpool_limits(1):
        for seed in args.seeds:
            scored, _, _ = scored_pool(train, args.noise, seed)
            for size in args.sizes:
                exact = experts_correspondence(scored, size, seed)
                off_diagonal = ~torch.eye(size, dtype=torch.bool)
                for rank in args.ranks:
                    factorised = LowRankCorrespondence.from_matrix(exact, rank).matrix().detach().double()
                    error = (exact - factorised)[off_diagonal]
                    lines.append(f"| {seed} | {size} | {rank} | {float(exact[off_diagonal].std()):.3f} | "
                                 f"{float(error.pow(2).mean().sqrt()):.3f} | {float(error.abs().max()):.3f} | "
                                 f"{block_kl(exact, factorised, seed):.5f} |")
                    print(lines[-1], flush=True)
    path = RESULTS / "mdw_rank.md"
    header = "" if path.exists() else ("How much of the experts' correspondence P a rank-r factorisation keeps "
                                       "(P's logits: correspondence_scale x the experts' cosine similarity).\n")
    with path.open("a") as handle:
        handle.write(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
