"""Speed of one proxy run (``hf_coreset.evaluation.train_and_score``): torch threads, and the recall scoring.

    python -m benchmarks.proxy_training_speed                 # 500 steps, MLP heads, 197 pairs, 1,000 test pairs
    python -m benchmarks.proxy_training_speed --steps 200 --repeats 3

Same features (random, with the benchmark's widths 1280 / 384: speed does not depend on the values), same
machine, same run. Prints wall seconds per configuration and the ratio to the reference:

* training: ``num_threads=1`` against torch's default thread count (the reference);
* scoring 1,000 test pairs: ``retrieval_scores`` (``hf_coreset.metrics`` directly) against the ``evaluate`` module
  (``evaluate.load(RETRIEVAL_RECALL_PATH).compute``, the reference), which writes the embeddings to an Arrow
  cache first. Both give the same numbers (tests/test_evaluation.py).
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import torch

from hf_coreset.evaluation import ProxyData, retrieval_scores, train_and_score
from hf_coreset.proxies import train_heads

print = functools.partial(print, flush=True)  # noqa: A001  (rows appear as they are measured)


def best_of(repeats: int, function, *args, **kwargs) -> float:
    """The fastest of ``repeats`` wall-clock timings (the least disturbed by other work on the machine)."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(*args, **kwargs)
        timings.append(time.perf_counter() - started)
    return min(timings)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--rows", type=int, default=197, help="training pairs (10 %% of Open Clip Art's pool)")
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    pool = ProxyData({"image": rng.normal(size=(args.rows, 1280)), "text": rng.normal(size=(args.rows, 384))})
    test = ProxyData({"image": rng.normal(size=(args.test_rows, 1280)),
                      "text": rng.normal(size=(args.test_rows, 384))}, labels=np.arange(args.test_rows))
    rows = np.arange(args.rows)
    default_threads = torch.get_num_threads()

    print(f"One training run: MLP heads, {args.steps} steps, batch 128, {args.rows} pairs (best of {args.repeats})\n")
    print("| training | wall s | ratio to the reference |\n|---|---:|---:|")
    reference = best_of(args.repeats, train_and_score, "dual_encoder", pool, rows, test, steps=args.steps,
                        num_threads=None)
    single = best_of(args.repeats, train_and_score, "dual_encoder", pool, rows, test, steps=args.steps,
                     num_threads=1)
    print(f"| torch default ({default_threads} threads), the reference | {reference:.2f} | 1.00 |")
    print(f"| num_threads=1 | {single:.2f} | {reference / single:.2f}x faster |")

    import evaluate

    from hf_coreset.metrics import RETRIEVAL_RECALL_PATH

    model = train_heads(pool.blocks["image"], pool.blocks["text"], steps=1)
    metric = evaluate.load(RETRIEVAL_RECALL_PATH)

    def through_evaluate():
        with torch.no_grad():
            image_out, text_out = model.eval()(torch.as_tensor(test.blocks["image"]),
                                               torch.as_tensor(test.blocks["text"]))
        return metric.compute(image_embeddings=image_out.numpy(), text_embeddings=text_out.numpy(),
                              labels=test.labels)

    assert through_evaluate() == retrieval_scores(model, test)
    slow = best_of(args.repeats, through_evaluate)
    fast = best_of(args.repeats, retrieval_scores, model, test)
    print(f"\nScoring {args.test_rows} test pairs (best of {args.repeats})\n")
    print("| scoring | wall s | ratio to the reference |\n|---|---:|---:|")
    print(f"| evaluate module compute, the reference | {slow:.3f} | 1.00 |")
    print(f"| retrieval_scores (hf_coreset.metrics) | {fast:.3f} | {slow / fast:.2f}x faster |")


if __name__ == "__main__":
    main()
