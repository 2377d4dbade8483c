from __future__ import annotations

from ...graph.facility_location import facility_location_greedy, knn_similarity
from ...selector import EmbeddingSelector, FeatureSet


class FacilityLocationSelector(EmbeddingSelector):
    """Picks the rows that best represent the pool: maximises ``sum_i max_{j in S} cos(x_i, x_j)^2``.

    ``x`` is the aggregated row vector (default: each modality block L2-normalised, then concatenated). The
    squared cosine is apricot-select's ``metric="cosine"`` kernel; the similarity is kept for each row's
    ``n_neighbors`` nearest rows only, so memory and time grow as N k. Deterministic (the seed only seeds
    an approximate kNN index).

    Example:
        >>> import numpy as np
        >>> from hf_coreset.methods.facility_location import FacilityLocationConfig
        >>> x = np.random.default_rng(0).normal(size=(50, 4))
        >>> selector = FacilityLocationSelector(FacilityLocationConfig()).fit(FeatureSet(50, {"x": x}), 5)
        >>> len(set(selector.indices_.tolist()))
        5
    """

    scores_are_marginal_gains = True
    picks_among_candidates = True
    score_meaning = "facility-location gain when picked: increase of sum_i max_{j in S} cos(x_i, x_j)^2"

    def _select(self, features: FeatureSet, budget: int):
        config = self.config
        similarity = knn_similarity(self.embed(features), config.n_neighbors, config.index, config.seed,
                                    config.search_dims)
        indices, gains = facility_location_greedy(similarity, budget, candidates=features.candidates)
        objective = float(gains.sum())
        return indices, gains, {"objective": objective, "mean_best_similarity": objective / features.n_rows,
                                "similarity_entries": int(similarity.nnz)}
