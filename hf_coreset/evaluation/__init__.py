"""Does this coreset beat random? Train a light proxy on it and on random subsets, score on held-out rows.

* :func:`evaluate_coreset` -> :class:`CoresetReport` (verdict at 2 pooled std, Markdown, JSON, PNG);
* :func:`evaluate_coresets`: several coresets of one pool (one per method) against baselines trained once;
* :func:`train_and_score` with :class:`ProxyData`: one proxy run, the code path ``benchmarks/retrieval`` shares.
"""

from .quality import evaluate_coreset, evaluate_coresets
from .report import BEATS, NO_BETTER, WORSE, CoresetReport
from .runs import PROXIES, ProxyData, retrieval_scores, train_and_score

__all__ = ["BEATS", "NO_BETTER", "PROXIES", "WORSE", "CoresetReport", "ProxyData", "evaluate_coreset",
           "evaluate_coresets", "retrieval_scores", "train_and_score"]
