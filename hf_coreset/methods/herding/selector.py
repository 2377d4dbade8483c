from __future__ import annotations

import numpy as np

from ...selector import EmbeddingSelector, FeatureSet


class HerdingSelector(EmbeddingSelector):
    """Each pick keeps the mean of the picked rows as close as possible to the mean of all rows.

    At step t it adds the row x minimising ||mu - (sum_S + x) / (t + 1)||, i.e. maximising
    2 <r, x> - ||x||^2 with r = (t + 1) mu - sum_S: one matrix-vector product per pick.
    """

    score_meaning = "distance between the picked rows' mean and the data mean after this pick"

    def _select(self, features: FeatureSet, budget: int):
        x = self.embed(features)
        mu = x.mean(axis=0)
        sq_norms = np.einsum("ij,ij->i", x, x)
        picked_sum = np.zeros_like(mu)
        available = np.ones(len(x), dtype=bool)
        indices = np.empty(budget, dtype=np.int64)
        gaps = np.empty(budget)
        for step in range(budget):
            residual = (step + 1) * mu - picked_sum
            gain = np.where(available, 2.0 * (x @ residual) - sq_norms, -np.inf)
            pick = int(np.argmax(gain))
            indices[step], available[pick] = pick, False
            picked_sum += x[pick]
            gaps[step] = np.linalg.norm(mu - picked_sum / (step + 1))
        return indices, gaps, {"final_mean_gap": float(gaps[-1])}
