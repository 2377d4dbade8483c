from __future__ import annotations

import numpy as np

from ...selector import FeatureSet, Selector


class RandomSelector(Selector):
    """Each row gets a uniform random priority; the ``budget`` highest are kept (a draw without replacement).

    Needs no features, so it runs on any dataset.
    """

    needs_features = False
    score_meaning = "uniform random priority in [0, 1); the highest are kept"

    def _select(self, features: FeatureSet, budget: int):
        priority = self.make_rng().random(features.n_rows)
        order = np.argsort(-priority, kind="stable")[:budget]
        return order, priority[order], {}
